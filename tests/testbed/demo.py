"""The README's main job, end to end on the test bed's real cluster (run by `scripts/demo`).

Starts the cluster (control plane + a real node: kubelet, containerd, CNI, kube-router; built on
first use, cached after), deploys the sample compromised workload (samples/k8s/compromised.yaml
with samples/compromised/compromised.sh), then runs what a responder runs:

    ir capture pod SUSPECT -n shop --case DEMO-1 --collector-image ... --probe-image ...

shows a client pod's connection to the suspect working before and refused after, the clean
replacement Ready, and the investigator's side: `ir bundle verify` and `ir replay`. ir runs as on
a responder's laptop, with only a kubeconfig: its node collector pod (ir's own image, built from
Debian packages and the ir wheel by scripts/build-collector-image and imported into the node's
containerd: no registry here) captures the containers on their node. The cluster is stopped at
the end (IR_DEMO_KEEP=1 keeps it until Ctrl-C).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.node import BUSYBOX_IMAGE, RealNode, start_cluster

REPO = Path(__file__).resolve().parents[2]
NS = "shop"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(
    args: list[str], env: dict[str, str], *, show_stdout: bool = True
) -> subprocess.CompletedProcess[str]:
    print("$ " + " ".join(args), flush=True)
    done = subprocess.run(args, env=env, text=True, capture_output=True, check=False)
    if show_stdout:
        sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    sys.stdout.flush()
    return done


def apply(node: RealNode, doc: dict[str, Any]) -> None:
    paths = {
        "Deployment": f"/apis/apps/v1/namespaces/{NS}/deployments",
        "Service": f"/api/v1/namespaces/{NS}/services",
        "Pod": f"/api/v1/namespaces/{NS}/pods",
        "ConfigMap": f"/api/v1/namespaces/{NS}/configmaps",
        "Namespace": "/api/v1/namespaces",
    }
    node.cp.api("POST", paths[doc["kind"]], doc)


def wait(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception:  # noqa: BLE001 -- the apiserver may not have the object yet
            result = None
        if result:
            return result
        time.sleep(0.3)
    raise SystemExit(f"demo: timed out waiting for {what}")


def ready(node: RealNode, selector: str) -> list[dict[str, Any]]:
    pods = node.cp.api("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector={selector}")["items"]
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions", [])
        )
    ]


def connects(node: RealNode, ip: str, port: int) -> bool:
    """Whether the client pod gets "ok" from ip:port (exec through the apiserver and kubelet)."""
    from tests.k8s_helpers import tcp_connects

    return tcp_connects(node.cp, NS, "client", ip, port)


def main() -> int:
    started = time.monotonic()
    store = Path(os.environ.get("IR_STORE", "./evidence")).resolve()
    step("test bed: a real cluster (control plane + kubelet/containerd node + kube-router)")
    work = Path(os.environ.get("IR_DEMO_WORKDIR", "/var/tmp/ir-demo-cluster"))
    shutil.rmtree(work, ignore_errors=True)
    node = start_cluster(work)
    try:
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in node.timings.items())
        print(f"cluster ready ({timings}); kubeconfig {node.cp.kubeconfig}")
        env = {
            **os.environ,
            "KUBECONFIG": str(node.cp.kubeconfig),
            "IR_OPERATOR": os.environ.get("IR_OPERATOR", "demo"),
        }
        for name in ("DOCKER_HOST", "IR_NODE_ROOT"):  # a laptop: a kubeconfig and nothing else
            env.pop(name, None)
        if not env.get("IR_SIGNING_KEY"):  # sign and trust the committed demo key (demo only!)
            keys = REPO / "samples" / "bundles"
            env["IR_SIGNING_KEY"] = str(keys / "demo-signing.key")
            env["IR_TRUST"] = str(keys / "demo-signing.pub")
            print(
                "signing with the committed demo key (samples/bundles/demo-signing.key): demo only"
            )

        step("ir's node-collector image (scripts/build-collector-image; cached by content)")
        built = subprocess.run(
            ["bash", str(REPO / "scripts/build-collector-image")],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise SystemExit("demo: scripts/build-collector-image failed")
        archive, collector = built.stdout.strip().splitlines()[-2:]
        node.ctr("images", "import", archive)
        apply(
            node,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "ir-collectors",
                    "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
                },
            },
        )
        print(f"collector image {collector} imported into the node's containerd")

        step(f"the sample compromised Deployment (samples/k8s/compromised.yaml) in namespace {NS}")
        apply(node, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        apply(
            node,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "compromised-sample"},
                "data": {
                    "compromised.sh": (REPO / "samples/compromised/compromised.sh").read_text()
                },
            },
        )
        for doc in yaml.safe_load_all((REPO / "samples/k8s/compromised.yaml").read_text()):
            apply(node, doc)
        pods = wait(
            "2 ready shop-web pods", lambda: len(r := ready(node, "app=shop-web")) == 2 and r
        )
        wait("the client pod", lambda: ready(node, "app=client"))
        suspect = sorted(pods, key=lambda p: p["metadata"]["name"])[0]
        name, ip = suspect["metadata"]["name"], suspect["status"]["podIP"]
        wait(
            "the sample to be compromised",
            lambda: (
                "compromised: ready"
                in node.cp.api("GET", f"/api/v1/namespaces/{NS}/pods/{name}/log")
            ),
        )
        for p in pods:
            print(
                f"  pod {p['metadata']['name']}  {p['status']['podIP']}  {p['status']['containerStatuses'][0]['containerID']}"
            )
        print(
            f"client -> suspect {name} ({ip}:8080): {'connected' if connects(node, ip, 8080) else 'REFUSED'}"
        )

        step(f"capture, quarantine, replace: ir capture pod {name} -n {NS}")
        done = run(
            [
                "ir",
                "capture",
                "pod",
                name,
                "-n",
                NS,
                "--case",
                "DEMO-1",
                "--store",
                str(store),
                "--reason",
                "demo: Falco 'Terminal shell in container'",
                "--collector-image",
                collector,
                "--probe-image",
                BUSYBOX_IMAGE,
                "-o",
                "json",
            ],
            env,
            show_stdout=False,
        )
        try:
            out = json.loads(done.stdout)
        except ValueError:
            raise SystemExit(
                f"demo: ir capture pod exited {done.returncode} without a result"
            ) from None
        bundle = out["bundle"]["location"]
        print(f"bundle {bundle}; outcome {out['bundle']['outcome']}; exit code {done.returncode}")
        print(f"quarantine: {out['quarantine']['enforcement']}")
        replace = out["replace"]
        print(
            f"replacement: {replace['replacement']} ready={replace['ready']} after {replace['waited_seconds']} s"
        )
        refused = wait(
            "the client's connection to be refused",
            lambda: not connects(node, ip, 8080),
            30,
        )
        print(f"client -> suspect {name} ({ip}:8080): {'REFUSED' if refused else 'connected'}")
        serving = ready(node, "app=shop-web")
        print("serving pods now: " + ", ".join(p["metadata"]["name"] for p in serving))

        step("investigator: ir bundle verify")
        run(["ir", "bundle", "verify", bundle], env)
        for view in ("summary", "ps", "net", "fs"):
            step(f"replay: ir replay BUNDLE {view}")
            run(["ir", "replay", bundle, view], env)
        step("replay: ir replay BUNDLE timeline (last 25 rows)")
        print(f"$ ir replay {bundle} timeline | tail -n 25")
        timeline = subprocess.run(
            ["ir", "replay", bundle, "timeline"], env=env, text=True, capture_output=True
        )
        print("\n".join(timeline.stdout.splitlines()[-25:]))
        if os.environ.get("IR_DEMO_KEEP") == "1":
            print(
                f"\nIR_DEMO_KEEP=1: cluster kept; export KUBECONFIG={node.cp.kubeconfig}; Ctrl-C to stop"
            )
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        print(
            f"\ndemo: done in {time.monotonic() - started:.0f} s (capture exit code {done.returncode}; bundle {bundle})"
        )
        return done.returncode
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
