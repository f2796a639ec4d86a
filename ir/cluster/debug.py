"""The fallback when the node collector pod is refused: an ephemeral debug container in the suspect's
own pod.

Pod Security "baseline" or "restricted" on ir's collector namespace, a policy engine, or missing
rights can refuse the privileged collector. The suspect's pod may still admit an ephemeral
container (`kubectl debug --target`): ir's image, root but unprivileged, sharing the suspect
container's process namespace. From there ir sees the container's processes, their sockets (same
network namespace) and its root filesystem through /proc/1/root -- not the node's overlay, so the
filesystem is a walk for changes since the start, not a diff (ir.runtime.rootwalk), and the
capture is partial, saying why.

This touches the suspect more than the collector does, and the record says so: the pod's spec
gains an ephemeral container that can never be removed (ir stops it when done); ir execs into
*that* container, never into the suspect's; nothing is written to the suspect's filesystem (the
bundle is written in the debug container's own filesystem, then streamed out and deleted).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ir.cluster.collector import CollectorPod, CollectorRefused, record_step
from ir.cluster.execstream import exec_stream
from ir.cluster.kube import ApiError, Kube
from ir.cluster.resolve import ContainerRef, PodTarget, image_problem
from ir.errors import ClusterError

PREFIX = "ir-debug-"
WORK = "/tmp/ir-debug"  # in the debug container's own filesystem
PID_FILE = f"{WORK}/pid"
START_TIMEOUT = 90.0
DEADLINE_SECONDS = 1800
NOT_REMOVABLE = (
    "an ephemeral container cannot be removed from a pod: it stays in the pod's spec, stopped"
)


def debug_container_spec(name: str, ref: ContainerRef, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "targetContainerName": ref.name,
        # its own pid in the shared namespace, so ir can stop exactly this process afterwards
        "command": [
            "/bin/sh",
            "-c",
            # $$$$: the kubelet expands $(VAR) in commands and turns $$ into $
            f"mkdir -p {WORK} && echo $$$$ > {PID_FILE} && exec sleep {DEADLINE_SECONDS}",
        ],
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "privileged": False},
        "terminationMessagePolicy": "File",
    }


def start_debug_container(
    kube: Kube,
    target: PodTarget,
    ref: ContainerRef,
    image: str,
    *,
    record: Any = None,
    timeout: float = START_TIMEOUT,
) -> CollectorPod:
    """Add the debug container to the suspect's pod and wait until it runs. Raises
    CollectorRefused (the apiserver's words: RBAC on pods/ephemeralcontainers, Pod Security of
    the suspect's namespace, a policy engine) or ClusterError (image, time)."""
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    path = f"/api/v1/namespaces/{target.namespace}/pods/{target.name}"
    patch = {"spec": {"ephemeralContainers": [debug_container_spec(name, ref, image)]}}
    try:
        kube.request(
            "PATCH",
            f"{path}/ephemeralcontainers",
            patch,
            content_type="application/strategic-merge-patch+json",
            retry=False,
        )
    except ApiError as exc:
        record_step(record, "add-debug-container", "refused", container=ref.name, error=exc.message)
        if exc.status in (400, 403, 404, 422):
            raise CollectorRefused(
                f"the ephemeral debug container was refused in pod "
                f"{target.namespace}/{target.name}: {exc.message}"
            ) from None
        raise
    record_step(
        record,
        "add-debug-container",
        "ok",
        pod=target.name,
        debug_container=name,
        target_container=ref.name,
        image=image,
        note=NOT_REMOVABLE,
    )
    pod = CollectorPod(target.name, target.namespace, str(target.node), image, container=name)
    deadline = time.monotonic() + timeout
    while True:
        doc = kube.get_optional(path) or {}
        status: dict[str, Any] = next(
            (
                s
                for s in (doc.get("status") or {}).get("ephemeralContainerStatuses") or []
                if s.get("name") == name
            ),
            {},
        )
        state = status.get("state") or {}
        if "running" in state:
            pod.ready_seconds = round(time.monotonic() - pod.started, 2)
            record_step(record, "debug-container-running", "ok", seconds=pod.ready_seconds)
            return pod
        bad = image_problem(doc, name)
        why = None
        if bad:
            why = f"debug image {image} cannot run on {bad}"
        elif "terminated" in state:
            ended = state["terminated"]
            why = f"the debug container ended ({ended.get('reason')}: {ended.get('message', '')})"
        elif time.monotonic() > deadline:
            why = f"the debug container (image {image}) did not run within {timeout:.0f} s"
        if why:
            record_step(record, "debug-container-running", "failed", error=why)
            raise ClusterError(why)
        time.sleep(0.2)


def stop_debug_container(kube: Kube, pod: CollectorPod, record: Any = None) -> None:
    """Stop the debug container's own process (by the pid it wrote): the container ends, and with
    it every exec session ir had there. Failure is recorded (the deadline ends it anyway)."""
    from io import BytesIO

    outcome, detail = "ok", {}
    try:
        done = exec_stream(
            kube,
            pod.namespace,
            pod.name,
            ["/bin/sh", "-c", f"kill $(cat {PID_FILE})"],
            BytesIO(),
            container=pod.container,
            timeout=60,
        )
        if done.exit_code not in (0, None):
            outcome = "failed"
            detail = {"error": f"exit {done.exit_code}: {done.stderr.strip()[-300:]}"}
    except ApiError as exc:
        # the container may end before the exec stream closes: that is the stop succeeding
        outcome = "ok" if exc.status in (0, 500) else "failed"
        detail = {"detail": exc.message}
    except ClusterError as exc:
        outcome, detail = "failed", {"error": str(exc)}
    record_step(record, "stop-debug-container", outcome, debug_container=pod.container, **detail)


__all__ = [
    "NOT_REMOVABLE",
    "WORK",
    "debug_container_spec",
    "start_debug_container",
    "stop_debug_container",
]
