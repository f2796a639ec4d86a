"""Proof that a quarantine is enforced, not just stored: a short-lived probe pod connects to the
suspect before and after the NetworkPolicy.

A NetworkPolicy object that reads back proves nothing about traffic: only a network plugin that
enforces policies makes it true (and some let established connections live on). So ir, when given
a probe image (one with busybox's `sh`, `nc` and `timeout`, present on the node or pullable),
starts a pod in the suspect's namespace, pinned to the suspect's node, that connects to one of the
suspect's declared TCP ports every 100 ms and prints each change of state ("open", "refused").
ir waits for "open" before it creates the policy (the port answers: a later refusal means
something), then for "refused" after it (the policy is enforced), then deletes the probe pod.
Every request is an Operator action, so it is in the action log and the bundle's custody.

The probe pod holds nothing of the suspect's and runs as nobody with no privileges, no service
account token, a read-only root filesystem, tight limits and a deadline: it passes Pod Security
"restricted". Without a probe image, a declared port or a pod IP, the result says exactly why the
enforcement was not verified.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from ir.cluster.kube import ApiError
from ir.cluster.ops import Operator, Request
from ir.cluster.resolve import PodTarget, image_problem

PROBE_LABEL = "ir.forensics/probe"
DEADLINE_SECONDS = 90
START_TIMEOUT = 60.0
#: Prints "open"/"refused" on every change of a TCP connect's result to $IP:$PORT (busybox).
SCRIPT = (
    'state=none; n=0; while [ "$n" -lt 800 ]; do '
    'if timeout 2 nc -w 1 "$IP" "$PORT" </dev/null >/dev/null 2>&1; then s=open; else s=refused; fi; '
    'if [ "$s" != "$state" ]; then echo "$s"; state=$s; fi; '
    "n=$((n+1)); sleep 0.1; done"
)


@dataclass
class Probe:
    """A probe pod started before the policy: `open` once its first connection succeeded."""

    name: str
    namespace: str
    ip: str
    port: int
    open: bool = False
    why: str = ""
    removed: bool = False


def probe_port(target: PodTarget) -> int | None:
    """The first TCP port the suspect's containers declare."""
    for ref in target.containers:
        for port in ref.ports:
            if (port.get("protocol") or "TCP") == "TCP" and port.get("containerPort"):
                return int(port["containerPort"])
    return None


def probe_pod(name: str, target: PodTarget, image: str, ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/managed-by": "ir", PROBE_LABEL: "enforcement"},
            "annotations": {"ir.forensics/probes": f"{target.name} ({target.uid}) {ip}:{port}"},
        },
        "spec": {
            "nodeName": target.node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", SCRIPT],
                    "env": [{"name": "IP", "value": ip}, {"name": "PORT", "value": str(port)}],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "8Mi"},
                        "limits": {"cpu": "100m", "memory": "32Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def start_probe(op: Operator, target: PodTarget, image: str, qid: str) -> Probe | str:
    """Start the probe and wait for its first "open"; returns the Probe, or why none can run."""
    ip = (target.pod.get("status") or {}).get("podIP")
    port = probe_port(target)
    if not ip:
        return "the pod has no IP to probe"
    if port is None:
        return "the pod declares no TCP containerPort to probe"
    if not target.node:
        return "the pod is not on a node"
    probe = Probe(f"ir-probe-{qid}"[:63], target.namespace, ip, port)
    try:
        op.apply(
            "create-enforcement-probe",
            Request(
                "POST",
                f"/api/v1/namespaces/{target.namespace}/pods",
                probe_pod(probe.name, target, image, ip, port),
                why=f"a pod that connects to {ip}:{port} before and after the policy",
                retry=False,
            ),
        )
    except ApiError as exc:
        return f"the probe pod was refused: {exc.message}"
    lines, why = _wait_for_line(op, probe, "open", START_TIMEOUT)
    if "open" in lines:
        probe.open = True
    else:
        probe.why = why or (
            f"the probe could not reach {ip}:{port} before the policy ({', '.join(lines) or 'no answer'})"
        )
    return probe


def confirm_refused(op: Operator, probe: Probe, timeout: float = 30.0) -> tuple[bool, str]:
    """After the policy: wait for the probe's "refused"; then delete the probe pod."""
    try:
        if not probe.open:
            return False, probe.why
        started = time.monotonic()
        lines, why = _wait_for_line(op, probe, "refused", timeout, after_open=True)
        if lines and lines[-1] == "refused":
            took = time.monotonic() - started
            return True, (
                f"enforcement verified: a probe pod's connection to {probe.ip}:{probe.port} "
                f"was open before the policy and refused {took:.1f} s after it"
            )
        return False, why or (
            f"connections to {probe.ip}:{probe.port} still succeed {timeout:.0f} s after the "
            "policy: the cluster's network plugin does not enforce it"
        )
    finally:
        remove_probe(op, probe)


def remove_probe(op: Operator, probe: Probe) -> None:
    probe.removed = True
    # a failure is recorded by the Operator; activeDeadlineSeconds ends the probe anyway
    with contextlib.suppress(ApiError):
        op.apply(
            "delete-enforcement-probe",
            Request(
                "DELETE",
                f"/api/v1/namespaces/{probe.namespace}/pods/{probe.name}?gracePeriodSeconds=0",
                why="the probe's work is done",
                retry=True,
            ),
        )


def _wait_for_line(
    op: Operator, probe: Probe, want: str, timeout: float, *, after_open: bool = False
) -> tuple[list[str], str]:
    """Poll the probe's log until its last line is `want` (and, after_open, an "open" came
    first); returns (lines, why it gave up)."""
    deadline = time.monotonic() + timeout
    path = f"/api/v1/namespaces/{probe.namespace}/pods/{probe.name}"
    lines: list[str] = []
    why = ""
    while time.monotonic() < deadline:
        try:
            text = op.kube.get_text(f"{path}/log")
        except ApiError as exc:
            why = f"probe log not available: {exc.message}"
            pod = op.kube.get_optional(path) or {}
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Failed", "Succeeded"):
                return lines, f"the probe pod ended ({phase}) before it answered"
            bad = image_problem(pod)
            if bad:
                return lines, f"the probe image cannot run on {bad}"
            time.sleep(0.2)
            continue
        lines = [x.strip() for x in text.splitlines() if x.strip()]
        if lines and lines[-1] == want and (not after_open or "open" in lines):
            return lines, ""
        time.sleep(0.1)
    return lines, why
