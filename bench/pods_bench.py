#!/usr/bin/env python3
"""`ir capture pod -l SELECTOR` on many pods of the test bed's node: total time, time per pod, and
what limits it -- the node's CPU, the apiserver, the store's disk -- measured during the run.

    python bench/pods_bench.py                               # 20 pods of 10 MiB, --parallel 1,4,8
    python bench/pods_bench.py --pods 6 --size-mib 2 --parallel 4 --runs 1    # a smoke pass

Set-up: the test bed's cluster (tests/testbed/node.py: control plane + one kubelet/containerd
node), ir's collector image imported into the node (tests/testbed/collector.py), bundles signed
as in production. A Deployment of N pods, each with a diff of SIZE MiB of /dev/urandom.

Cases, all `--no-quarantine --no-replace` (the same pods every time) but the last:
  single-node        one pod, ir on the node itself (IR_NODE_ROOT: no collector, no transfer);
                     the per-pod limit, as in bench/pod_capture_bench.py
  single-collector   one pod with only a kubeconfig: its own collector pod, started and removed
  pods-node-pP       every pod (-l), ir on the node, --parallel P
  pods-collector-pP  every pod (-l) with only a kubeconfig: one shared collector, --parallel P
  quarantine-pP      every pod through the collector, each quarantined after its capture

Measured around each command: node CPU from /proc/stat sampled every 0.5 s (the node is this
machine: busy share, iowait) and CPU-seconds per component (kube-apiserver, etcd, kubelet,
containerd from their /proc/PID/stat; ir here from its rusage; the pods on the node -- the
collector's ir -- from the node's cpuacct cgroup; "other" is the rest of the machine, which is
shared); apiserver requests and mean latency from its /metrics (apiserver_request_total,
apiserver_request_duration_seconds; all clients, the kubelet's too); bytes ir wrote (its
rusage), bytes the store's block device wrote (/proc/diskstats: the whole machine's writes to
it) and bytes of bundles stored.

Ratios, measured in the same run: speedup = N x the single pod / the run's total (same path);
CPU floor = busy CPU-seconds / cores, and floor / total (1.0: the run kept every core busy,
CPU-bound); per pod against the single pod on the node (the per-pod limit); disk write rate
against `dd oflag=direct` into the same directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write_json  # noqa: E402

IMAGE = "localhost/ir-testbed/busybox:1"
NAMESPACE = "bench-pods"
TICK = os.sysconf("SC_CLK_TCK")
LONG_RUNNING = ("WATCH", "CONNECT")  # their durations are streams, not request latency


# -- what is sampled -------------------------------------------------------------------------


def cpu_jiffies() -> tuple[int, int, int]:
    """(busy, iowait, total) jiffies of all CPUs since boot (/proc/stat's cpu line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, iowait, busy + idle + iowait


class CpuSampler(threading.Thread):
    """The node's busy share every `every` seconds while a command runs."""

    def __init__(self, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        last = cpu_jiffies()
        while not self._halt.wait(self.every):
            now = cpu_jiffies()
            total = now[2] - last[2]
            if total:
                self.samples.append((now[0] - last[0]) / total)
            last = now

    def stop(self) -> list[float]:
        self._halt.set()
        self.join()
        return self.samples


def process_cpu(pid: int) -> float:
    """CPU-seconds (user + system) of one process so far; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def node_pods_cpu() -> float:
    """CPU-seconds of everything the node runs in pods (the collector pod's ir, the bench pods):
    the test bed's cgroup root (tests/testbed/node.py CGROUP_ROOT), cgroup v1 cpuacct."""
    from tests.testbed.node import CGROUP_ROOT

    usage = Path("/sys/fs/cgroup/cpuacct", CGROUP_ROOT, "cpuacct.usage")
    try:
        return int(usage.read_text()) / 1e9
    except OSError:
        return 0.0


def disk_written(path: Path) -> int | None:
    """Bytes the block device holding `path` has written since boot (None: not a block device,
    e.g. an overlay or tmpfs)."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    for line in Path("/proc/diskstats").read_text().splitlines():
        parts = line.split()
        if int(parts[0]) == major and int(parts[1]) == minor:
            return int(parts[9]) * 512
    return None


METRIC = re.compile(r"^(apiserver_request_total|apiserver_request_duration_seconds_(?:sum|count))"
                    r"\{([^}]*)\} ([0-9.e+-]+)$")  # fmt: skip


def apiserver_metrics(cp: Any) -> dict[str, dict[str, float]]:
    """Per verb: requests, and the duration sum/count of its latency histogram."""
    text = cp.api("GET", "/metrics")
    out: dict[str, dict[str, float]] = {}
    for line in str(text).splitlines():
        m = METRIC.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        verb = labels.get("verb", "?")
        if labels.get("subresource") == "exec":
            verb = "EXEC"
        slot = out.setdefault(verb, {"requests": 0.0, "sum": 0.0, "count": 0.0})
        key = {"apiserver_request_total": "requests"}.get(m.group(1), m.group(1).rsplit("_", 1)[1])
        slot[key] += float(m.group(3))
    return out


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.tar") if p.is_file())


def dd_limit(directory: Path, mib: int = 256) -> float:
    """MiB/s of a direct (uncached) sequential write into `directory`: the disk's limit here."""
    target = directory / "dd-limit"
    started = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", "oflag=direct",
         "status=none"],
        check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    target.unlink()
    return mib / seconds


# -- one measured command ----------------------------------------------------------------------


def measure(
    label: str,
    args: list[str],
    env: dict[str, str],
    cp: Any,
    pids: dict[str, int],
    store: Path,
) -> dict[str, Any]:
    store.mkdir(parents=True, exist_ok=True)
    cpu0, proc0 = cpu_jiffies(), {name: process_cpu(pid) for name, pid in pids.items()}
    pods0 = node_pods_cpu()
    api0, disk0 = apiserver_metrics(cp), disk_written(store)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = CpuSampler()
    sampler.start()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ir.cli.main", *args], capture_output=True, text=True, env=env
    )
    total = time.perf_counter() - started
    samples = sampler.stop()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1, proc1 = cpu_jiffies(), {name: process_cpu(pid) for name, pid in pids.items()}
    pods1 = node_pods_cpu()
    api1, disk1 = apiserver_metrics(cp), disk_written(store)
    if done.returncode != 0:
        raise SystemExit(f"{label}: exit {done.returncode}: {done.stderr[-3000:]}")
    doc = json.loads(done.stdout)
    busy_s = (cpu1[0] - cpu0[0]) / TICK
    components = {name: round(proc1[name] - proc0[name], 2) for name in pids}
    components["ir (this side)"] = round(
        kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime, 2
    )
    components["pods on the node (collector)"] = round(pods1 - pods0, 2)
    # the machine is shared: what none of the above used is other work (shims, other jobs)
    components["other"] = round(busy_s - sum(components.values()), 2)
    verbs = {}
    for verb, now in api1.items():
        before = api0.get(verb, {"requests": 0.0, "sum": 0.0, "count": 0.0})
        n = now["requests"] - before["requests"]
        if n:
            count = now["count"] - before["count"]
            verbs[verb] = {
                "requests": int(n),
                "mean_ms": round(1000 * (now["sum"] - before["sum"]) / count, 1) if count else None,
            }
    short = [v for k, v in verbs.items() if k not in LONG_RUNNING and k != "EXEC" and v["mean_ms"]]
    n_short = sum(v["requests"] for v in short)
    pods = doc.get("pods") or [doc]
    entry: dict[str, Any] = {
        "case": label,
        "pods": len(pods),
        "total_s": round(total, 2),
        "per_pod_s": round(total / len(pods), 2),
        "pod_seconds_median": round(statistics.median(p.get("seconds") or total for p in pods), 2),
        "cpu_busy_mean": round(statistics.mean(samples), 3) if samples else None,
        "cpu_busy_p90": round(sorted(samples)[int(0.9 * (len(samples) - 1))], 3) if samples else None,
        "iowait_share": round((cpu1[1] - cpu0[1]) / max(1, cpu1[2] - cpu0[2]), 3),
        "cpu_seconds": round(busy_s, 2),
        "cpu_floor_s": round(busy_s / (os.cpu_count() or 1), 2),
        "cpu_by_component": components,
        "api_requests": sum(v["requests"] for v in verbs.values()),
        "api_by_verb": verbs,
        "api_mean_ms": round(
            sum(v["requests"] * v["mean_ms"] for v in short) / n_short, 1
        ) if n_short else None,
        "disk_written_mib": round((disk1 - disk0) / 2**20, 1) if disk0 is not None and disk1 else None,
        "ir_written_mib": round((kids1.ru_oublock - kids0.ru_oublock) * 512 / 2**20, 1),
        "stored_mib": round(store_bytes(store) / 2**20, 1),
    }  # fmt: skip
    entry["cpu_floor_ratio"] = round(entry["cpu_floor_s"] / total, 2)
    entry["store_mib_s"] = round(entry["stored_mib"] / total, 1)
    entry["ir_write_mib_s"] = round(entry["ir_written_mib"] / total, 1)
    if entry["disk_written_mib"] is not None:
        entry["disk_mib_s"] = round(entry["disk_written_mib"] / total, 1)
    if "collectors" in doc:
        entry["collector_pods"] = len(doc["collectors"])
        entry["index"] = (doc.get("index") or {}).get("location")
    shutil.rmtree(store, ignore_errors=True)
    print(f"{label}: {json.dumps(entry)}", file=sys.stderr)
    return entry


def median_entry(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose total is the median (its other figures come with it)."""
    ordered = sorted(entries, key=lambda e: e["total_s"])
    return {**ordered[(len(ordered) - 1) // 2], "runs": [e["total_s"] for e in entries]}


# -- the run -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--size-mib", type=int, default=10, help="diff per pod")
    parser.add_argument("--parallel", default="1,4,8", help="values of --parallel to run")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-quarantine", action="store_true", help="skip the quarantine case")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    levels = [int(x) for x in args.parallel.split(",") if x]

    from ir.bundle.signing import generate_keypair
    from tests.k8s_helpers import deployment
    from tests.testbed.collector import install_collector
    from tests.testbed.node import start_cluster

    work = Path(tempfile.mkdtemp(prefix="ir-pods-bench-", dir="/var/tmp"))
    key, pub = generate_keypair(work / "keys")
    os.environ.update(IR_SIGNING_KEY=str(key), IR_TRUST=str(pub))
    node = start_cluster(work / "k8s")
    results: dict[str, Any] = {"pods": args.pods, "size_mib": args.size_mib, "cases": {}}
    try:
        cp = node.cp
        collector = install_collector(node)
        cp.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": NAMESPACE}})  # fmt: skip
        command = (
            f"mkdir -p /data && head -c {args.size_mib}m /dev/urandom > /data/blob "
            "&& echo written && exec sleep 100000"
        )
        spec = deployment("bench", command, replicas=args.pods, labels={"app": "bench"})
        spec["spec"]["template"]["spec"]["containers"][0]["image"] = IMAGE
        cp.api("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", spec)
        names = wait_written(cp, args.pods)
        pids = {
            name: proc.pid
            for name, proc in {**cp.processes, **node.processes}.items()
            if name in ("kube-apiserver", "etcd", "kubelet", "containerd")
        }
        base = {k: v for k, v in os.environ.items() if k not in ("IR_NODE_ROOT", "DOCKER_HOST")}
        base.update(KUBECONFIG=str(cp.kubeconfig), IR_OPERATOR="bench")
        on_node = {**base, "IR_NODE_ROOT": node.host_root}
        common = ["-n", NAMESPACE, "--no-quarantine", "--no-replace", "-o", "json"]
        via = ["--collector-image", collector]
        results["dd_limit_mib_s"] = round(dd_limit(work), 1)
        cases: dict[str, list[dict[str, Any]]] = {}

        def run(label: str, argv: list[str], env: dict[str, str]) -> None:
            for n in range(args.runs):
                store = work / f"evidence-{label}-{n}"
                argv_n = [*argv, "--store", str(store), "--case", f"{label}-{n}"]
                cases.setdefault(label, []).append(measure(label, argv_n, env, cp, pids, store))

        run("single-node", ["capture", "pod", names[0], *common], on_node)
        run("single-collector", ["capture", "pod", names[0], *common, *via], base)
        selector = ["capture", "pod", "-l", "app=bench", *common]
        for p in levels:
            run(f"pods-node-p{p}", [*selector, "--parallel", str(p)], on_node)
            run(f"pods-collector-p{p}", [*selector, *via, "--parallel", str(p)], base)
        if not args.no_quarantine:
            p = max(levels)
            argv = ["capture", "pod", "-l", "app=bench", "-n", NAMESPACE, "--no-replace",
                    "-o", "json", *via, "--parallel", str(p)]  # fmt: skip
            store = work / "evidence-quarantine"
            cases[f"quarantine-p{p}"] = [
                measure(f"quarantine-p{p}", [*argv, "--store", str(store)], base, cp, pids, store)
            ]
        for label, entries in cases.items():
            results["cases"][label] = median_entry(entries)
    finally:
        node.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, levels)
    write_json(args.json, {"bench": "pods", "machine": machine(), **results})


def wait_written(cp: Any, count: int, timeout: float = 600) -> list[str]:
    """The names of the Deployment's pods once each has written its diff."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = cp.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app=bench")
        names = sorted(p["metadata"]["name"] for p in pods["items"])
        written = 0
        for name in names:
            try:
                log = cp.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/log")
            except Exception:  # noqa: BLE001 -- not started yet
                continue
            written += "written" in str(log)
        if len(names) == count and written == count:
            return names
        time.sleep(1)
    raise SystemExit(f"the {count} bench pods did not all write their diff in {timeout:.0f} s")


def report(results: dict[str, Any], levels: list[int]) -> None:
    cases = results["cases"]
    n = results["pods"]
    print(f"\n== ir capture pod -l: {n} pods of {results['size_mib']} MiB on one node "
          f"({os.cpu_count()} cores; medians)")  # fmt: skip
    print(f"{'case':<22}{'total':>8}{'/pod':>7}{'cpu busy':>10}{'floor/total':>13}"
          f"{'api req':>9}{'api ms':>8}{'ir MiB/s':>10}{'disk MiB/s':>12}{'collector cpu':>15}")  # fmt: skip
    for label, e in cases.items():
        print(
            f"{label:<22}{e['total_s']:>7.2f}s{e['per_pod_s']:>6.2f}s"
            f"{100 * (e['cpu_busy_mean'] or 0):>9.0f}%{e['cpu_floor_ratio']:>13.2f}"
            f"{e['api_requests']:>9}{e['api_mean_ms'] or 0:>8.1f}{e['ir_write_mib_s']:>10.1f}"
            f"{e.get('disk_mib_s', float('nan')):>12.1f}"
            f"{e['cpu_by_component']['pods on the node (collector)']:>14.1f}s"
        )
    single = {k: cases[f"single-{k}"]["total_s"] for k in ("node", "collector")}
    print(f"\ndisk limit (dd oflag=direct, same directory): {results['dd_limit_mib_s']} MiB/s")
    for p in levels:
        for path in ("node", "collector"):
            e = cases[f"pods-{path}-p{p}"]
            speedup = n * single[path] / e["total_s"]
            vs_limit = single["node"] / e["per_pod_s"]
            print(
                f"pods-{path}-p{p}: speedup {speedup:.2f}x ({n} x single {single[path]:.2f} s / "
                f"{e['total_s']:.2f} s); per pod {e['per_pod_s']:.2f} s = {vs_limit:.2f}x the "
                f"single pod on the node; CPU floor {e['cpu_floor_s']:.1f} s "
                f"({e['cpu_floor_ratio']:.2f} of the total); cpu by component "
                f"{e['cpu_by_component']}"
            )
    results["ratios"] = {
        f"pods-{path}-p{p}": {
            "speedup": round(n * single[path] / cases[f"pods-{path}-p{p}"]["total_s"], 2),
            "per_pod_vs_single_node": round(
                single["node"] / cases[f"pods-{path}-p{p}"]["per_pod_s"], 2
            ),
        }
        for p in levels
        for path in ("node", "collector")
    }


if __name__ == "__main__":
    main()
