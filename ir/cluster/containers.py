"""Reach each container of a pod being captured and run the container collectors on it: through
the node's Docker engine or /proc, through the CRI runtime's state when ir runs on the node, or
through the node collector pod (ir.cluster.nodecollectors: the pod's own, or one shared by every
pod of a run on that node), falling back to an ephemeral debug container in the pod when the
apiserver refuses the collector. What could not be reached is a failed `container-access` entry
saying why and what to do.

May import the cluster room's collector, debug, nodecollectors, podoptions and resolve modules,
ir.collect (the container capture and the session), ir.runtime, ir.bundle.layout and ir.errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ir.bundle.layout import safe_component
from ir.cluster.collector import capture_in_collector
from ir.cluster.debug import NOT_REMOVABLE, WORK, start_debug_container, stop_debug_container
from ir.cluster.kube import Kube
from ir.cluster.nodecollectors import NodeCollector, NodeCollectors
from ir.cluster.podoptions import (
    PodCaptureOptions,
    collector_options,
    container_collector_args,
    container_names,
)
from ir.cluster.resolve import ContainerRef, PodTarget
from ir.collect.container import CaptureOptions, capture_container
from ir.collect.session import CaptureSession
from ir.errors import IrError, Unsupported
from ir.runtime import open_container
from ir.runtime.cri_node import node_has_runtime_state
from ir.runtime.resolve import open_cri_container

Echo = Callable[[str], None]


class ContainerCapturer:
    """Reach each container of the pod and run every container collector on it.

    Docker containers through the node's engine (--docker-host) or its /proc; CRI containers
    (containerd, CRI-O) through their node: locally when ir runs there (the runtime's task state
    is under --node-root), else through the node collector pod (--collector-image) of
    `collectors`: the pod's own (started on first use, removed by `close`) unless a run shares
    them. When a container cannot be reached, a failed `container-access` collector says why and
    what to do."""

    def __init__(self, kube: Kube, collectors: NodeCollectors | None = None) -> None:
        self.kube = kube
        self.collectors = collectors  # None: made on first use, this pod's own
        self._record: Any = None  # records the collector's actions in the pod's bundle

    def __call__(
        self,
        session: CaptureSession,
        target: PodTarget,
        ref: ContainerRef,
        opts: PodCaptureOptions,
        echo: Echo,
    ) -> None:
        echo(f"  container {ref.name} ({ref.container_id})")
        try:
            if ref.runtime in ("docker", None):
                handle = open_container(
                    ref.runtime_id,
                    backend=opts.backend,
                    docker_host=opts.docker_host,
                    name=ref.name,
                )
            elif opts.backend == "docker":
                raise Unsupported(f"runtime {ref.runtime}: the Docker API cannot read it")
            elif opts.collector and not node_has_runtime_state(ref.runtime, opts.node_root):
                self._via_collector(session, target, ref, opts, echo)
                return
            else:
                handle = open_cri_container(
                    ref.runtime,
                    ref.runtime_id or "",
                    node_root=opts.node_root,
                    pod={
                        "namespace": target.namespace,
                        "pod": target.name,
                        "uid": target.uid,
                        "container": ref.name,
                        **({"image": ref.image} if ref.image else {}),
                    },
                )
        except (IrError, Unsupported) as exc:
            why = exc.message if isinstance(exc, IrError) else str(exc)
            hint = (
                "Give --collector-image (ir's collector image) so ir captures it on its node, "
                "run ir on that node (--node-root for its filesystem), or give --docker-host for "
                "a Docker node."
            )
            _access_failed(
                session,
                ref,
                f"cannot reach container {ref.container_id} on node {target.node}: {why}. {hint}",
            )
            return
        try:
            known = set(CaptureOptions.__dataclass_fields__)
            options = CaptureOptions(
                **{k: v for k, v in opts.container_options.items() if k in known}
            )
            capture_container(
                session,
                handle,
                options,
                scope=scope_of(ref),
                collectors=container_names(opts) or None,
            )
        finally:
            handle.close()

    def _via_collector(
        self,
        session: CaptureSession,
        target: PodTarget,
        ref: ContainerRef,
        opts: PodCaptureOptions,
        echo: Echo,
    ) -> None:
        if self._record is None:
            label = f"pod {target.namespace}/{target.name}"

            def record(action: str, outcome: str, **detail: Any) -> None:
                session.record_action(action, label, outcome=outcome, **detail)

            self._record = record
        settings = opts.collector
        assert settings is not None
        if self.collectors is None:
            self.collectors = NodeCollectors(self.kube, settings, shared=False)
        node = self.collectors.get(target, str(ref.runtime), record=self._record, echo=echo)
        if node.pod is None:
            if node.refused:
                self._via_debug_container(session, target, ref, opts, echo, node)
                return
            _access_failed(
                session,
                ref,
                f"node collector for container {ref.container_id} on node {target.node} not "
                f"available: {node.error}",
            )
            return
        collector = node.pod
        try:
            with node.slots:
                moved = capture_in_collector(
                    self.kube,
                    collector,
                    ref,
                    case_id=opts.case_id,
                    reason=opts.reason,
                    options=collector_options(opts) + container_collector_args(opts),
                    record=self._record,
                )
        except IrError as exc:
            _access_failed(session, ref, f"node collector {collector.name}: {exc.message}")
            return
        _import(
            session, moved.path, ref, f"node collector pod {collector.name} on node {target.node}"
        )
        echo(
            f"    via collector {collector.name}: capture {moved.seconds.get('capture')} s, "
            f"transfer {moved.size} bytes in {moved.seconds.get('transfer')} s (sha256 matched)"
        )

    def _via_debug_container(
        self,
        session: CaptureSession,
        target: PodTarget,
        ref: ContainerRef,
        opts: PodCaptureOptions,
        echo: Echo,
        node: NodeCollector,
    ) -> None:
        """The collector was refused: capture from an ephemeral debug container in the suspect's
        pod (ir.cluster.debug), else say that only the apiserver's evidence is left."""
        assert opts.collector is not None
        refused = f"the node collector was refused ({node.error})"
        if ref.state != "running":
            _access_failed(
                session,
                ref,
                f"{refused}; container {ref.name} is {ref.state}, so no debug container can join "
                "it: only the apiserver's evidence (Kubernetes context, logs)",
            )
            return
        echo(f"  {refused}; trying an ephemeral debug container in the pod for {ref.name}")
        try:
            debug = start_debug_container(
                self.kube, target, ref, opts.collector.image, record=self._record
            )
        except IrError as exc:
            _access_failed(
                session,
                ref,
                f"{refused}; the ephemeral debug container too ({exc.message}): only the "
                "apiserver's evidence (Kubernetes context, logs)",
            )
            return
        try:
            moved = capture_in_collector(
                self.kube,
                debug,
                ref,
                case_id=opts.case_id,
                reason=opts.reason,
                options=collector_options(opts) + container_collector_args(opts),
                record=self._record,
                source=["--backend", "node", "--pid", "1", "--root-walk", "--name", ref.name],
                work=WORK,
            )
        except IrError as exc:
            _access_failed(
                session, ref, f"{refused}; debug container {debug.container}: {exc.message}"
            )
            return
        finally:
            stop_debug_container(self.kube, debug, self._record)
        via = f"ephemeral debug container {debug.container} in pod {target.namespace}/{target.name}"
        _import(session, moved.path, ref, via)
        _access_failed(
            session,
            ref,
            f"{refused}; captured from the {via} instead: processes and sockets as on the node, "
            "the filesystem as changes since the start (not an image diff, deletions unseen); "
            f"{NOT_REMOVABLE}",
            status="partial",
        )
        echo(f"    via {via}: {moved.size} bytes (sha256 matched)")

    def close(self, session: CaptureSession) -> None:
        """The pod's capture ends: its own collector pod goes (a shared one stays for the run)."""
        if self.collectors is not None:
            self.collectors.finished(self._record)


def _import(session: CaptureSession, path: str, ref: ContainerRef, via: str) -> None:
    """The container's bundle, brought from where ir captured it, into the pod's bundle; the
    local copy goes once imported. If the import fails (the pod's bundle cannot be written),
    the copy stays where it arrived, checked: evidence is not deleted before it is stored."""
    session.import_bundle(path, scope=scope_of(ref), container=ref.name, via=via)
    os.unlink(path)


def scope_of(ref: ContainerRef) -> str:
    """Where a container's artifacts go in the pod's bundle."""
    return f"containers/{safe_component(ref.name, 'container')}"


def _access_failed(
    session: CaptureSession, ref: ContainerRef, note: str, status: str = "failed"
) -> None:
    """The `container-access` entry: how (or why not) the container was reached."""
    session.record_access("container-access", note, status=status, container=ref.name)
