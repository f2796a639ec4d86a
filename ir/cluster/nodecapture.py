"""A capture of a node itself: what a node-level finding (a kernel module loaded, a host process)
needs preserved before anyone acts on the node.

ir starts its node collector on the node (ir.cluster.collector: its own image, hostPID,
read-only runtime state) and runs there, in one fixed form the admission policy admits,

    ir capture container --whole-node --name node-NAME ... --collectors metadata,processes,network

that is: every process of the node (executables hashed, command lines, users, start times) and
the node's sockets with their owning processes, seen through its container runtime daemon (a
process in the node's own namespaces, whatever the node's init is) -- no files. The bundle also
holds the Node object as the API served it and the alert. The collector's bundle is brought back
hashed on both ends and imported (every artifact re-hashed) into the bundle ir seals and signs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ir.bundle.signing import Signer
from ir.cluster.collector import (
    DEADLINE_SECONDS,
    CollectorSettings,
    capture_in_collector,
    collector_manifest,
    collector_name,
    remove_collector,
    start_collector,
)
from ir.cluster.kube import Kube
from ir.cluster.resolve import ContainerRef, check_name
from ir.collect.session import CaptureRequest, CaptureResult, CaptureSession
from ir.errors import ClusterError, IrError
from ir.store.base import Store

#: what a node capture collects (the exec admission policy admits exactly this list)
NODE_COLLECTORS = "metadata,processes,network"


@dataclass(frozen=True)
class NodeSubject:
    """The node a collector is started for (ir.cluster.collector.CollectorSubject)."""

    node: str
    uid: str

    @classmethod
    def of(cls, node: dict[str, Any]) -> NodeSubject:
        """The subject of a Node object as served."""
        meta = node["metadata"]
        return cls(str(meta["name"]), str(meta.get("uid", "")))

    @property
    def collects(self) -> str:
        return f"node {self.node} ({self.uid})"


def node_runtime(node: dict[str, Any]) -> str:
    """containerd or cri-o, from the node's status (containerRuntimeVersion "containerd://2.2")."""
    version = str(node.get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion", ""))
    scheme = version.split("://", 1)[0]
    return "cri-o" if scheme in ("cri-o", "crio") else scheme


def check_node(kube: Kube, name: str, instance_id: str | None = None) -> dict[str, Any]:
    """The Node `name` of this cluster, as served; with `instance_id` (the cloud instance an alert
    names), its providerID must end with it. Raises ClusterError naming the mismatch."""
    check_name("node", name)
    node = kube.get_optional(f"/api/v1/nodes/{name}")
    if node is None:
        raise ClusterError(f"node {name} is not a node of this cluster")
    provider = str(node.get("spec", {}).get("providerID") or "")
    if instance_id and not provider.endswith("/" + instance_id):
        raise ClusterError(
            f"node {name} is not instance {instance_id} (its providerID is {provider or 'not set'})"
        )
    return node


def node_collector_manifest(node: dict[str, Any], settings: CollectorSettings) -> dict[str, Any]:
    """The collector pod a capture of `node` (check_node's answer) creates (what its dry run
    sends)."""
    return collector_manifest(
        collector_name(), NodeSubject.of(node), node_runtime(node), settings, DEADLINE_SECONDS
    )


def capture_node(
    kube: Kube,
    store: Store,
    node: dict[str, Any],
    *,
    settings: CollectorSettings,
    case_id: str,
    reason: str | None = None,
    operator: str | None = None,
    signer: Signer | None = None,
    alert: dict[str, Any] | None = None,
    echo: Callable[[str], None] = lambda _m: None,
) -> CaptureResult:
    """Capture `node` (check_node's answer: a node of this cluster, the alert's instance) through
    the node collector (see the module's text). A collector that cannot start or run is a failed
    `node-access` collector in the bundle; the bundle is sealed either way."""
    subject = NodeSubject.of(node)
    name = subject.node
    label = f"node {name}"
    request = CaptureRequest(
        case_id=case_id,
        target={"kind": "node", "name": name, "uid": subject.uid},
        operator=operator,
        reason=reason,
        signer=signer,
        labels={"node": name},
    )
    with CaptureSession(store, request) as session:
        echo(f"capturing node {name} into bundle {session.bundle_id}")
        session.add_json("k8s/node.json", node, kind="kubernetes", collector="kubernetes")
        if alert is not None:
            session.add_json("alert.json", alert, kind="alert", collector="alert")

        def record(action: str, outcome: str, **detail: Any) -> None:
            session.record_action(action, label, outcome=outcome, **detail)

        try:
            pod = start_collector(kube, subject, node_runtime(node), settings, record=record)
        except IrError as exc:
            session.record_access(
                "node-access", f"node collector on {name} not available: {exc.message}"
            )
            return session.finish()
        try:
            moved = capture_in_collector(
                kube,
                pod,
                ContainerRef(f"node-{name}", "node", None, None, None, "running"),
                case_id=case_id,
                reason=None,  # the exec form is fixed (admission): the reason is in this bundle
                options=["--collectors", NODE_COLLECTORS],
                record=record,
                source=["--whole-node", "--name", f"node-{name}"],
            )
            try:
                session.import_bundle(
                    moved.path,
                    scope="node",
                    container=f"node-{name}",
                    via=f"node collector pod {pod.name} on node {name}",
                )
            finally:
                os.unlink(moved.path)
        except IrError as exc:
            session.record_access("node-access", f"node collector {pod.name}: {exc.message}")
        finally:
            remove_collector(kube, pod, record)
        return session.finish()
