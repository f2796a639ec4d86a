"""Builders and probes the Kubernetes tests share: workloads on the real node, readiness, and
traffic checks between pods (the proof that a NetworkPolicy is enforced, not just stored)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from tests.fixtures_k8s import IMAGE, wait_for
from tests.testbed.k8s import ControlPlane


def container(name: str, command: str, **extra: Any) -> dict[str, Any]:
    """A container of the test bed's busybox image running `command` under sh."""
    return {
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
        **extra,
    }


def deployment(
    name: str,
    command: str,
    *,
    replicas: int = 2,
    labels: dict[str, str] | None = None,
    port: int | None = None,
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    labels = labels or {"app": name}
    extra: dict[str, Any] = {}
    if port:
        extra["ports"] = [{"containerPort": port}]
    if env:
        extra["env"] = env
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [container(name, command, **extra)],
                },
            },
        },
    }


def bare_pod(name: str, command: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"role": name}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container(name, command)]},
    }


def create(cp: ControlPlane, ns: str, doc: dict[str, Any]) -> Any:
    kind = doc["kind"]
    path = {
        "Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments",
        "Pod": f"/api/v1/namespaces/{ns}/pods",
        "Service": f"/api/v1/namespaces/{ns}/services",
        "NetworkPolicy": f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    }[kind]
    return cp.api("POST", path, doc)


def is_ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def ready_pods(cp: ControlPlane, ns: str, selector: str) -> list[dict[str, Any]]:
    pods = cp.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"]
    return [p for p in pods if is_ready(p)]


def wait_ready(cp: ControlPlane, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    return wait_for(  # type: ignore[no-any-return]
        f"pod {ns}/{name} Ready",
        lambda: (p := cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")) and is_ready(p) and p,
        timeout,
    )


def deploy_web(cp: ControlPlane, ns: str, replicas: int = 2) -> None:
    """Deployment `web` (labels app=web, tier=front; each pod plants /tmp/dropped.txt, deletes
    /etc/motd and serves OK_SERVER on 8080) and Service `web` in front of it."""
    labels = {"app": "web", "tier": "front"}
    create(
        cp,
        ns,
        deployment(
            "web",
            "echo ready; echo planted > /tmp/dropped.txt; rm -f /etc/motd; "
            + OK_SERVER.format(port=8080),
            replicas=replicas,
            labels=labels,
            port=8080,
        ),
    )
    create(
        cp,
        ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )


def web_pods(
    cp: ControlPlane, ns: str, replicas: int = 2, timeout: float = 90
) -> list[dict[str, Any]]:
    """The one pod set-up the Kubernetes tests share: `deploy_web` with `replicas` pods, returned
    once exactly that many are Ready."""
    deploy_web(cp, ns, replicas=replicas)
    return wait_for(  # type: ignore[no-any-return]
        f"{replicas} ready web pod(s)",
        lambda: (lambda p: p if len(p) == replicas else None)(ready_pods(cp, ns, "app=web")),
        timeout,
    )


def kubectl_exec(
    cp: ControlPlane, ns: str, pod: str, command: list[str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `pod` through the apiserver and the kubelet (exec subresource), with the
    kubernetes client, as a separate process (its websocket client is not thread-friendly)."""
    script = (
        "import json,sys,kubernetes\n"
        "from kubernetes.stream import stream\n"
        "api=kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=sys.argv[1]))\n"
        "r=stream(api.connect_get_namespaced_pod_exec,sys.argv[3],sys.argv[2],command=json.loads(sys.argv[4]),"
        "stderr=True,stdin=False,stdout=True,tty=False,_preload_content=False)\n"
        "r.run_forever(timeout=float(sys.argv[5]))\n"
        "sys.stdout.write(r.read_stdout()); sys.stderr.write(r.read_stderr())\n"
        "code=r.returncode; sys.exit(0 if code is None else code)\n"
    )
    import json

    return subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(cp.kubeconfig),
            ns,
            pod,
            json.dumps(command),
            str(timeout),
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        env=dict(os.environ),
    )


#: A server for `tcp_connects`: answers "ok" to every connection (busybox nc, persistent).
OK_SERVER = "nc -ll -p {port} -e echo ok"


def tcp_connects(cp: ControlPlane, ns: str, pod: str, ip: str, port: int) -> bool:
    """Whether `pod` gets the "ok" of an OK_SERVER at ip:port (busybox nc, 2 s connect timeout)."""
    command = f"timeout 5 nc -w 2 {ip} {port} </dev/null"
    done = kubectl_exec(cp, ns, pod, ["sh", "-c", command], timeout=20)
    return done.returncode == 0 and "ok" in done.stdout


def wait_traffic(
    cp: ControlPlane,
    ns: str,
    pod: str,
    ip: str,
    port: int,
    *,
    allowed: bool,
    timeout: float = 30,
) -> float:
    """Wait until a connection from `pod` to ip:port succeeds (allowed) or fails (not allowed);
    returns the seconds it took. kube-router applies a policy change within its sync (~1 s)."""
    started = time.monotonic()
    wait_for(
        f"{pod} -> {ip}:{port} {'allowed' if allowed else 'refused'}",
        lambda: tcp_connects(cp, ns, pod, ip, port) == allowed,
        timeout,
    )
    return time.monotonic() - started
