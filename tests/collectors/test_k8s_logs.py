"""The API logs collector (ir/cluster/context.py, `k8s-logs`) on the test bed's real cluster: each
instance's lines as the kubelet serves them through the apiserver, one record per line with the
time the kubelet stamped on it; the previous instance the apiserver says does not exist is a note
when the container never restarted; a container that exited non-zero once and was restarted
(restartPolicy Always) has its previous instance too. Once the node no longer has that instance's
log file, the collector is partial with the kubelet's words (found on the real cluster: the kubelet
answers HTTP 200 with its error as the body, which ir once kept as a time-less log line)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ir.cluster.kube import Kube
from tests.collectors.capture import pod_capture
from tests.fixtures_k8s import wait_for
from tests.k8s_helpers import bare_pod, create, is_ready, wait_ready
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import RealNode

pytestmark = [pytest.mark.k8s]

# prints two lines, and runs on
TALKER = "echo listening on :8080; echo 'two  spaces kept'; exec sleep 3600"
# the first instance (no mark yet in the pod's emptyDir, which outlives it) prints, exits 3
CRASH_ONCE = (
    "if [ ! -e /state/ran ]; then touch /state/ran; echo first run; echo crashing >&2; exit 3; fi; "
    + TALKER
)
CURRENT, PREVIOUS = (
    "containers/app/logs-api-current.jsonl",
    "containers/app/logs-api-previous.jsonl",
)


def _pod(cp: ControlPlane, ns: str, command: str) -> dict[str, Any]:
    """Pod `app` (one container `app`, restartPolicy Always) running `command`; it is returned as
    served once Ready (and, for CRASH_ONCE, restarted once)."""
    doc = bare_pod("app", command)
    doc["spec"]["restartPolicy"] = "Always"
    doc["spec"]["volumes"] = [{"name": "state", "emptyDir": {}}]
    doc["spec"]["containers"][0].update(
        name="app", volumeMounts=[{"name": "state", "mountPath": "/state"}]
    )
    create(cp, ns, doc)
    if command == CRASH_ONCE:  # the kubelet restarts it (after its crash back-off)
        return wait_for(  # type: ignore[no-any-return]
            "app restarted once and Ready",
            lambda: (
                (p := cp.api("GET", f"/api/v1/namespaces/{ns}/pods/app"))
                and is_ready(p)
                and p["status"]["containerStatuses"][0]["restartCount"] >= 1
                and p
            ),
            90,
        )
    return wait_ready(cp, ns, "app")


def _served(kube: Any, ns: str, previous: bool = False) -> list[tuple[str, str]]:
    """(time, message) of each line the apiserver serves of `app`, read with the kubernetes
    client (not ir's), timestamps on: the kubelet's RFC 3339 stamp (to the nanosecond, UTC), to
    the microsecond ir keeps -- the stamp cut, not re-computed."""
    import kubernetes

    text = kubernetes.client.CoreV1Api(kube).read_namespaced_pod_log(
        "app", ns, container="app", timestamps=True, previous=previous
    )
    lines = []
    for line in text.splitlines():
        stamp, _, message = line.partition(" ")
        assert stamp.endswith("Z"), line
        seconds, _, fraction = stamp[:-1].partition(".")
        lines.append((f"{seconds}.{fraction:0<6.6}Z", message))
    return lines


def _wait_lines(kube: Any, ns: str, count: int) -> list[tuple[str, str]]:
    return wait_for(  # type: ignore[no-any-return]
        f"{count} lines served",
        lambda: len(lines := _served(kube, ns)) >= count and lines,
    )


def test_current_lines_and_no_previous_instance(
    control_plane: ControlPlane, kube: Any, ir_kube: Kube, namespace: str, tmp_path: Path
) -> None:
    cp, ns = control_plane, namespace
    _pod(cp, ns, TALKER)
    served = _wait_lines(kube, ns, 2)
    with pod_capture(ir_kube, ns, "app", tmp_path, scopes=("container",)) as reader:
        (entry,) = reader.manifest.collectors
        assert (entry.name, entry.status, entry.container) == ("k8s-logs", "ok", "app")
        assert entry.notes == ["no previous instance: the container has not restarted"]
        assert entry.artifacts == [CURRENT]
        lines = list(reader.iter_records(CURRENT))
        assert [(x["time"], x["message"]) for x in lines] == served
        assert [x["message"] for x in lines] == ["listening on :8080", "two  spaces kept"]
        assert {(x["stream"], x["instance"], x["container"]) for x in lines} == {
            ("combined", "current", "app")
        }
        assert reader.entry(CURRENT).meta == {"instance": "current", "source": "kube-api"}
        path = f"/api/v1/namespaces/{ns}/pods/app/log"
        got, refused = reader.manifest.actions
        assert (got.action, got.outcome, got.detail) == (
            "k8s-get-logs",
            "ok",
            {"path": path, "instance": "current"},
        )
        assert (refused.action, refused.outcome) == ("k8s-get-logs", "failed")
        # the apiserver's own answer: there is no terminated instance to read
        error = refused.detail["error"]
        assert 'previous terminated container "app" in pod "app" not found' in error, error
        print(f"\nno previous instance, as the apiserver says: {error}")


def test_a_restarted_container_has_its_previous_instance(
    control_plane: ControlPlane, kube: Any, ir_kube: Kube, namespace: str, tmp_path: Path
) -> None:
    cp, ns = control_plane, namespace
    pod = _pod(cp, ns, CRASH_ONCE)
    (status,) = pod["status"]["containerStatuses"]
    assert status["lastState"]["terminated"]["exitCode"] == 3
    served, before = _wait_lines(kube, ns, 2), _served(kube, ns, previous=True)
    with pod_capture(ir_kube, ns, "app", tmp_path, scopes=("container",)) as reader:
        (entry,) = reader.manifest.collectors
        assert (entry.status, entry.notes) == ("ok", [])
        assert entry.artifacts == [CURRENT, PREVIOUS]
        current = list(reader.iter_records(CURRENT))
        assert [(x["time"], x["message"]) for x in current] == served
        previous = list(reader.iter_records(PREVIOUS))
        assert [(x["time"], x["message"]) for x in previous] == before
        # stdout and stderr come through the API as one stream, each line stamped
        assert {x["message"] for x in previous} == {"first run", "crashing"}
        assert {(x["instance"], x["stream"]) for x in previous} == {("previous", "combined")}
        assert all(x["time"] < current[0]["time"] for x in previous)
        assert [(a.action, a.outcome) for a in reader.manifest.actions] == [
            ("k8s-get-logs", "ok"),
            ("k8s-get-logs", "ok"),
        ]


def test_a_restarted_container_without_its_previous_lines_is_partial(
    control_plane: ControlPlane,
    node: RealNode,
    kube: Any,
    ir_kube: Kube,
    namespace: str,
    tmp_path: Path,
) -> None:
    """The previous instance's log file removed from the real node (/var/log/pods, as a log
    clean-up would): the kubelet cannot serve its lines, so the collector keeps the current
    lines and is partial, saying why in the kubelet's words."""
    import kubernetes

    cp, ns = control_plane, namespace
    pod = _pod(cp, ns, CRASH_ONCE)
    logs = Path(node.host_root, "var/log/pods", f"{ns}_app_{pod['metadata']['uid']}", "app")
    first = logs / "0.log"  # the kubelet names each instance's file by its restart count
    if not (first.is_file() and b"first run" in first.read_bytes()):
        pytest.fail(f"no first instance's log where the kubelet keeps it: {os.listdir(logs)}")
    first.unlink()
    # what the apiserver now serves of the previous instance (read with the kubernetes client)
    answer = kubernetes.client.CoreV1Api(kube).read_namespaced_pod_log(
        "app", ns, container="app", timestamps=True, previous=True
    )
    why = answer.strip()
    if not why.startswith("failed to try resolving symlinks in path"):
        pytest.fail(f"the kubelet's answer changed: {answer!r}")
    print(f"\nthe previous instance's file gone, the kubelet serves (HTTP 200): {why}")
    with pod_capture(ir_kube, ns, "app", tmp_path, scopes=("container",)) as reader:
        (entry,) = reader.manifest.collectors
        assert [x["message"] for x in reader.iter_records(CURRENT)] == [
            "listening on :8080",
            "two  spaces kept",
        ]
        kept = list(reader.iter_records(PREVIOUS)) if PREVIOUS in entry.artifacts else []
        print(f"k8s-logs: {entry.status}; previous instance's records: {kept}")
        assert why not in [x["message"] for x in kept], "the kubelet's error kept as a log line"
        assert entry.status == "partial" and why in (entry.error or ""), entry
