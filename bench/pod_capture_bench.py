#!/usr/bin/env python3
"""`ir capture pod` on the real node, from a laptop's point of view: time from command start to
bundle confirmed, for pods whose filesystem diff is 100 MiB and 1 GiB of incompressible data,
split into collector start, capture (in the collector), transfer (exec stream through the
apiserver, hashed on both ends) and the responder's verify.

    python bench/pod_capture_bench.py                     # 100 MiB and 1 GiB, 2 runs each
    python bench/pod_capture_bench.py --sizes 100 --runs 1

The limit, measured in the same run on the same pod: `ir capture pod` with ir on the node itself
(IR_NODE_ROOT: the node backend reads the containerd state directly, no collector, no transfer),
into the same kind of store. The ratio is limit / collector time (1.0 = the collector costs
nothing). Two stores: a directory (the collector relays the bundle through the apiserver) and S3
(SeaweedFS on the node's bridge; the collector uploads itself, this ir verifies the bundle in S3
and records the receipt: "bundle confirmed" is when the command returns). Only capture is timed:
--no-quarantine --no-replace, so the same pod is captured by every run.

Set-up: tests/testbed/node.py (control plane + kubelet/containerd node), the collector image of
scripts/build-collector-image imported with ctr, namespace ir-collectors (Pod Security privileged).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write_json  # noqa: E402

IMAGE = "localhost/ir-testbed/busybox:1"
# local: ir on the node into a directory (the limit of collector); collector: relayed through the
# apiserver into a directory; local-s3: ir on the node into S3 (the limit of direct-s3); direct-s3:
# the collector uploads to S3 itself, this ir verifies the bundle there
MODES = ("local", "collector", "local-s3", "direct-s3")


def ir(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ir.cli.main", *args], capture_output=True, text=True, env=env
    )
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1024", help="diff sizes in MiB, comma-separated")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]

    from ir.bundle.signing import generate_keypair
    from tests.testbed.collector import install_collector, store_secret
    from tests.testbed.node import NODE_IP, start_cluster
    from tests.testbed.s3 import SeaweedFS

    work = Path(tempfile.mkdtemp(prefix="ir-pod-bench-", dir="/var/tmp"))
    results: list[dict[str, Any]] = []
    # signed as in production: ir and the collector (through the Secret) sign, ir trusts the key
    key, pub = generate_keypair(work / "keys")
    os.environ.update(IR_SIGNING_KEY=str(key), IR_TRUST=str(pub))
    node = start_cluster(work / "k8s")
    s3 = SeaweedFS(work / "s3", ip=NODE_IP)  # on the node's bridge: the collector reaches it
    try:
        cp = node.cp
        ref = install_collector(node)
        s3.start()
        store_secret(node, s3)
        bucket = s3.create_bucket("ir-pod-bench")
        base = {k: v for k, v in os.environ.items() if k not in ("IR_NODE_ROOT", "DOCKER_HOST")}
        base.update(KUBECONFIG=str(cp.kubeconfig), IR_OPERATOR="bench")
        for size in sizes:
            name = f"diff-{size}m"
            cp.api(
                "POST",
                "/api/v1/namespaces/default/pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": IMAGE,
                                "imagePullPolicy": "Never",
                                "command": [
                                    "sh",
                                    "-c",
                                    f"mkdir -p /data && head -c {size}m /dev/urandom > /data/blob "
                                    "&& echo written && exec sleep 100000",
                                ],
                            }
                        ]
                    },
                },
            )
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    if "written" in cp.api("GET", f"/api/v1/namespaces/default/pods/{name}/log"):
                        break
                except Exception:  # noqa: BLE001 -- not started yet
                    pass
                time.sleep(0.5)
            row: dict[str, Any] = {"size_mib": size, **{m: [] for m in MODES}}
            for run in range(args.runs):
                for mode in MODES:
                    store = work / f"evidence-{size}-{mode}-{run}"
                    env = dict(base)
                    uri = str(store)
                    if mode.endswith("s3"):
                        uri = f"s3://{bucket}/{mode}-{run}"
                        env.update(s3.env(), IR_SPOOL_DIR=str(work / "spool"))
                    cmd = [
                        "capture", "pod", name, "-n", "default", "--store", uri,
                        "--no-quarantine", "--no-replace", "--max-file-size", str(2 << 30),
                        "--max-diff-size", str(4 << 30), "-o", "json",
                    ]  # fmt: skip
                    if mode.startswith("local"):
                        env["IR_NODE_ROOT"] = node.host_root
                    else:
                        cmd += ["--collector-image", ref]
                    seconds, done = ir(cmd, env)
                    if done.returncode != 0:
                        raise SystemExit(f"{mode} capture failed: {done.stderr[-2000:]}")
                    bundle = json.loads(done.stdout)["bundle"]["location"]
                    verify_s, verified = ir(["bundle", "verify", bundle], env)
                    entry: dict[str, Any] = {
                        "total_s": round(seconds, 2),
                        "verify_s": round(verify_s, 2),
                        "verified": verified.returncode == 0,
                    }
                    if mode == "direct-s3":
                        # every request to the collector is in the responder's receipt
                        custody = json.loads(
                            ir(["bundle", "custody", bundle, "-o", "json"], env)[1].stdout
                        )
                        receipt = next(r for r in custody if r["action"] == "receive")
                        acts = {a["action"]: a for a in receipt["detail"]["collector_actions"]}
                        entry["collector_start_s"] = acts["collector-pod-running"]["seconds"]
                        entry["capture_in_collector_s"] = acts["collector-capture-pod"]["seconds"]
                    if mode == "collector":
                        show = json.loads(
                            ir(["bundle", "show", bundle, "-o", "json"], env)[1].stdout
                        )
                        acts = {a["action"]: a["detail"] for a in show["manifest"]["actions"]}
                        entry["collector_start_s"] = acts["collector-pod-running"]["seconds"]
                        entry["capture_in_collector_s"] = acts["collector-capture-container"][
                            "seconds"
                        ]
                        entry["transfer_s"] = acts["collector-transfer-bundle"]["seconds"]
                        entry["transfer_bytes"] = acts["collector-transfer-bundle"]["bytes"]
                        m = re.search(r"capture ([\d.]+) s", done.stderr)
                        entry["echo"] = m.group(0) if m else None
                    row[mode].append(entry)
                    shutil.rmtree(store, ignore_errors=True)
                    print(f"{size} MiB {mode} run {run + 1}: {entry}", file=sys.stderr)
            med = {m: statistics.median(e["total_s"] for e in row[m]) for m in MODES}
            row["median_local_s"], row["median_collector_s"] = med["local"], med["collector"]
            row["ratio_local_over_collector"] = round(med["local"] / med["collector"], 2)
            row["median_local_s3_s"], row["median_direct_s3_s"] = med["local-s3"], med["direct-s3"]
            row["ratio_local_s3_over_direct"] = round(med["local-s3"] / med["direct-s3"], 2)
            results.append(row)
    finally:
        s3.stop()
        node.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n== ir capture pod through the node collector (laptop: kubeconfig only)")
    print("size      local(limit)  collector  ratio  start  capture  transfer  verify")
    for r in results:
        c = r["collector"][-1]
        print(
            f"{r['size_mib']:>5} MiB  {r['median_local_s']:>9.2f} s  {r['median_collector_s']:>7.2f} s"
            f"  {r['ratio_local_over_collector']:>5.2f}  {c['collector_start_s']:>5.2f}"
            f"  {c['capture_in_collector_s']:>7.2f}  {c['transfer_s']:>8.2f}  {c['verify_s']:>6.2f}"
        )
    print("\n== into S3: the collector uploads itself (direct); limit: ir on the node into S3")
    print("size      local(limit)  direct  ratio  start  capture-in-collector")
    for r in results:
        d = r["direct-s3"][-1]
        print(
            f"{r['size_mib']:>5} MiB  {r['median_local_s3_s']:>9.2f} s  {r['median_direct_s3_s']:>6.2f} s"
            f"  {r['ratio_local_s3_over_direct']:>5.2f}  {d['collector_start_s']:>5.2f}"
            f"  {d['capture_in_collector_s']:>7.2f}"
        )
    write_json(args.json, {"bench": "pod-capture", "machine": machine(), "results": results})


if __name__ == "__main__":
    main()
