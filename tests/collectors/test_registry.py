"""The collector registries (ir/collect/registry.py, ir/cluster/context.py): the run order and
scope of every collector, the `collectors:` filter (the CLI's --collectors, a playbook's capture
params), and the rules of the recipe in docs/architecture.md -- every collector module is
registered, and every registered collector has its test here, tests/collectors/test_<name>.py."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from ir.cluster import context
from ir.cluster.context import POD_COLLECTORS, KubeTarget, PodAsk, pod_collectors
from ir.cluster.kube import Kube
from ir.cluster.resolve import PodTarget, containers_of
from ir.collect.base import Collector
from ir.collect.registry import CONTAINER_COLLECTORS, Registry, container_collectors
from ir.errors import UsageError

HERE = Path(__file__).resolve().parent
COLLECT = HERE.parents[1] / "ir" / "collect"


def registered() -> list[Collector[Any]]:
    return [*CONTAINER_COLLECTORS.values(), *POD_COLLECTORS.values()]


def _in_order(found: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> bool:
    """`wanted` appears in `found` in this order (a new collector may stand anywhere)."""
    rest = iter(found)
    return all(item in rest for item in wanted)


def test_run_order_and_scopes() -> None:
    # The order that matters: volatile state first (metadata, network, processes), then the
    # filesystem, logs last; the kubelet's checkpoint after the pod's context and logs.
    assert _in_order(
        [(c.name, c.scope) for c in CONTAINER_COLLECTORS.values()],
        [
            ("metadata", "container"),
            ("network", "container"),
            ("processes", "container"),
            ("filesystem", "container"),
            ("logs", "container"),
        ],
    )
    assert _in_order(
        [(c.name, c.scope) for c in POD_COLLECTORS.values()],
        [("k8s-context", "pod"), ("k8s-logs", "container"), ("kubelet-checkpoint", "container")],
    )


def test_every_registered_collector_has_its_test() -> None:
    missing = [
        f"tests/collectors/test_{c.name.replace('-', '_')}.py"
        for c in registered()
        if not (HERE / f"test_{c.name.replace('-', '_')}.py").is_file()
    ]
    assert not missing, f"a collector comes with its test (docs/architecture.md): {missing}"


def test_every_collector_module_is_registered() -> None:
    """A module of ir/collect that ends with `COLLECTOR = ...` is in CONTAINER_COLLECTORS, and a
    collector class of ir/cluster/context.py is in POD_COLLECTORS."""
    modules = sorted(
        f"ir.collect.{path.stem}"
        for path in COLLECT.glob("*.py")
        if any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "COLLECTOR" for t in node.targets)
            for node in ast.parse(path.read_text()).body
        )
    )
    registered_modules = sorted(type(c).__module__ for c in CONTAINER_COLLECTORS.values())
    unlisted = sorted(set(modules) - set(registered_modules))
    assert not unlisted, (
        f"collector modules not in ir/collect/registry.py CONTAINER_COLLECTORS: {unlisted} "
        "(docs/architecture.md: register it, and add tests/collectors/test_<name>.py)"
    )
    assert modules == registered_modules
    classes = {
        name
        for name, value in vars(context).items()
        if isinstance(value, type)
        and name.endswith("Collector")
        and hasattr(value, "wanted")
        and value is not context.PodCollector  # the protocol they follow
    }
    assert classes == {type(c).__name__ for c in POD_COLLECTORS.values()}


def test_the_container_filter_keeps_the_run_order() -> None:
    chosen = container_collectors([" logs", "metadata", ""])
    assert [c.name for c in chosen] == ["metadata", "logs"]
    assert [c.name for c in container_collectors(None)] == list(CONTAINER_COLLECTORS)
    with pytest.raises(UsageError, match=r"unknown collector 'nope' \(known: metadata, network"):
        container_collectors(["metadata", "nope"])


def test_a_name_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'logs' registered twice"):
        Registry(CONTAINER_COLLECTORS["logs"], CONTAINER_COLLECTORS["logs"])


def _target(asked: PodAsk, *, running: bool = True) -> KubeTarget:
    """A pod on a node, its one container `app` running (or completed): what the selection
    reads of it; it asks nothing of an apiserver (the client has none), so none is reached."""
    state = {"running": {}} if running else {"terminated": {"exitCode": 0}}
    doc = {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "web"}]},
        "status": {"containerStatuses": [{"name": "app", "state": state}]},
    }
    pod = PodTarget("shop", "web-1", doc, containers_of(doc), [])
    kube = Kube(api_client=None, namespace="shop", context=None, server="")
    return KubeTarget(kube, pod, asked)


@pytest.mark.parametrize(
    ("asked", "pod_level", "per_container"),
    [
        (PodAsk(), ["k8s-context"], ["k8s-logs"]),
        (PodAsk(collectors=("kubernetes",)), ["k8s-context"], ["k8s-logs"]),
        (PodAsk(collectors=("processes", "logs")), [], ["k8s-logs"]),
        (PodAsk(collectors=("kubernetes", "network")), ["k8s-context"], ["k8s-logs"]),
        (PodAsk(api_logs=False), ["k8s-context"], []),
        (PodAsk(checkpoint=True), ["k8s-context"], ["k8s-logs", "kubelet-checkpoint"]),
        (PodAsk(api_logs=False, checkpoint=True), ["k8s-context"], ["kubelet-checkpoint"]),
    ],
)
def test_what_a_pod_capture_runs(
    asked: PodAsk, pod_level: list[str], per_container: list[str]
) -> None:
    """The playbook name `kubernetes` selects the pod's context; the API logs follow
    `api_logs`, the checkpoint `--checkpoint` (and only for a running container)."""
    pod = _target(asked)
    assert [c.name for c in pod_collectors("pod", pod)] == pod_level
    here = pod.of_container(pod.pod.containers[0])
    assert [c.name for c in pod_collectors("container", here)] == per_container


def test_no_checkpoint_of_a_container_not_running() -> None:
    pod = _target(PodAsk(checkpoint=True), running=False)
    here = pod.of_container(pod.pod.containers[0])
    assert [c.name for c in pod_collectors("container", here)] == ["k8s-logs"]
