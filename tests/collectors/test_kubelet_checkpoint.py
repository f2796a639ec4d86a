"""The kubelet checkpoint collector (ir/cluster/context.py, `kubelet-checkpoint`) on the test bed's
real cluster: asked for (`--checkpoint`) and the container running, it asks the real kubelet
through the apiserver's node proxy. No runtime on this machine can complete a checkpoint
(containerd's default runc reaches CRIU, which fails on this kernel; the node's RuntimeClass
`no-criu` runs a runc that finds no CRIU at all), so what a real cluster shows here is the
refusal: kept in the bundle as the kubelet answered it, the collector partial with the reason in
words, and the rest of the capture going on. Only the kubelet's answer to a checkpoint that
worked is stood in for (`test_the_kubelets_answer_is_kept`): no part on this machine gives one."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from ir.cluster.context import PodAsk
from ir.cluster.kube import Kube
from tests.collectors.capture import pod_capture
from tests.fixtures_k8s import IMAGE, NODE
from tests.k8s_helpers import create, wait_ready
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import NO_CRIU

pytestmark = [pytest.mark.k8s]

ASKED = PodAsk(checkpoint=True)
CONTAINERS = ("app", "side")


def _pod(cp: ControlPlane, ns: str, runtime_class: str | None = None) -> dict[str, Any]:
    """Pod `app`, two containers running (`app`, then `side`), served once Ready."""
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {"name": c, "image": IMAGE, "imagePullPolicy": "Never",
             "command": ["sh", "-c", f"echo {c} up; exec sleep 3600"]}
            for c in CONTAINERS
        ],
    }  # fmt: skip
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    create(cp, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": spec})
    return wait_ready(cp, ns, "app")


def _path(ns: str, container: str) -> str:
    return f"/api/v1/nodes/{NODE}/proxy/checkpoint/{ns}/app/{container}"


@pytest.mark.parametrize(
    ("runtime_class", "reason"),
    [
        (None, "CRIU failed on this node"),
        (NO_CRIU, "the container runtime cannot checkpoint (no CRIU)"),
    ],
    ids=["criu-fails-on-this-kernel", "runtime-without-criu"],
)
def test_a_refusal_is_kept_with_its_reason(
    control_plane: ControlPlane,
    ir_kube: Kube,
    namespace: str,
    tmp_path: Path,
    runtime_class: str | None,
    reason: str,
) -> None:
    """Each container's checkpoint refused by the real kubelet: its answer (HTTP status and
    message, passed on by the apiserver) is the artifact and the collector's error; the pod's
    context, each container's logs, and the second container's checkpoint request after the
    first's refusal all run; the containers keep running."""
    cp, ns = control_plane, namespace
    _pod(cp, ns, runtime_class)
    with pod_capture(ir_kube, ns, "app", tmp_path, ASKED) as reader:
        m = reader.manifest
        assert [(c.name, c.container) for c in m.collectors] == [
            ("k8s-context", None),
            ("k8s-logs", "app"),
            ("kubelet-checkpoint", "app"),
            ("k8s-logs", "side"),
            ("kubelet-checkpoint", "side"),
        ]
        assert all(c.status == "ok" for c in m.collectors if c.name != "kubelet-checkpoint")
        checkpoints = [c for c in m.collectors if c.name == "kubelet-checkpoint"]
        refusals = [a for a in m.actions if a.action == "kubelet-checkpoint"]
        assert [a.detail["path"] for a in refusals] == [_path(ns, c) for c in CONTAINERS]
        for entry, action, container in zip(checkpoints, refusals, CONTAINERS, strict=True):
            assert entry.status == "partial", entry
            assert entry.artifacts == [f"containers/{container}/checkpoint.json"]
            kept = reader.read_json(entry.artifacts[0])
            assert kept["request"] == _path(ns, container)
            refused = kept["refused"]
            assert refused["status"] >= 400 and refused["message"], kept
            # the error: the reason in words, then the kubelet's answer as it came
            assert (entry.error or "").startswith(f"kubelet checkpoint refused ({reason}): ")
            assert (entry.error or "").endswith(refused["message"])
            assert (action.outcome, action.detail["error"]) == ("refused", refused["message"])
            assert reader.entry(entry.artifacts[0]).status == "ok"  # the answer is whole
        print(f"\n{runtime_class or 'runc'}: {checkpoints[0].error}")
        for container in CONTAINERS:
            (line,) = reader.iter_records(f"containers/{container}/logs-api-current.jsonl")
            assert line["message"] == f"{container} up"
    assert wait_ready(cp, ns, "app")  # the refused checkpoints left the containers running


class CheckpointingKubelet(Kube):
    """ir's real client of the test bed's apiserver, except for one answer: a kubelet whose
    runtime completed the checkpoint, which no runtime on this machine does (see the module's
    docstring). The answer is the kubelet's documented one (`items`: the archive on the node)."""

    def request(self, method: str, path: str, *args: Any, **kw: Any) -> Any:
        if method == "POST" and "/proxy/checkpoint/" in path:
            *_, ns, pod, container = path.split("/")
            return {"items": [archive(ns, pod, container)]}
        return super().request(method, path, *args, **kw)


def archive(ns: str, pod: str, container: str) -> str:
    return (
        f"/var/lib/kubelet/checkpoints/checkpoint-{pod}_{ns}-{container}-2026-03-02T09:14:08Z.tar"
    )


def test_the_kubelets_answer_is_kept(
    control_plane: ControlPlane, ir_kube: Kube, namespace: str, tmp_path: Path
) -> None:
    cp, ns = control_plane, namespace
    _pod(cp, ns)
    kube = CheckpointingKubelet(**{f.name: getattr(ir_kube, f.name) for f in fields(ir_kube)})
    asked = PodAsk(api_logs=False, checkpoint=True)
    with pod_capture(kube, ns, "app", tmp_path, asked, scopes=("container",)) as reader:
        entries = reader.manifest.collectors
        assert [(c.name, c.container, c.status) for c in entries] == [
            ("kubelet-checkpoint", c, "ok") for c in CONTAINERS
        ]
        for entry, container in zip(entries, CONTAINERS, strict=True):
            assert entry.artifacts == [f"containers/{container}/checkpoint.json"]
            assert reader.read_json(entry.artifacts[0]) == {
                "request": _path(ns, container),
                "answer": {"items": [archive(ns, "app", container)]},
            }
        assert [(a.action, a.outcome, a.detail) for a in reader.manifest.actions] == [
            ("kubelet-checkpoint", "ok", {"path": _path(ns, c)}) for c in CONTAINERS
        ]


def test_a_pod_on_no_node_is_not_checkpointed(
    control_plane: ControlPlane, ir_kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """A pod the scheduler cannot place (its nodeSelector matches no node) has no node and no
    running container: nothing is asked of a kubelet, and the capture says so by leaving the
    checkpoint out (only the pod's context is captured)."""
    cp, ns = control_plane, namespace
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app"},
        "spec": {
            "nodeSelector": {"no-such-label": "anywhere"},
            "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Never"}],
        },
    }
    create(cp, ns, pod)
    with pod_capture(ir_kube, ns, "app", tmp_path, ASKED) as reader:
        assert reader.manifest.target["node"] is None
        assert [(c.name, c.status) for c in reader.manifest.collectors] == [("k8s-context", "ok")]
        assert reader.read_json("k8s/node.json") is None
        assert not [a for a in reader.manifest.actions if a.action == "kubelet-checkpoint"]
