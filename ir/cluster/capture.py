"""`ir capture pod`: resolve the pod, capture its Kubernetes context and its containers into one
bundle, then -- only if the capture succeeded (or --force) -- quarantine and replace it.

The bundle is sealed and stored before anything is changed on the cluster; the actions that
follow are appended to the bundle's chain of custody.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ir.cluster.context import KubeTarget, PodAsk, pod_collectors
from ir.cluster.directupload import CollectorFailed, capture_direct, uploads_direct
from ir.cluster.kube import Kube
from ir.cluster.ops import Operator, check_namespace
from ir.cluster.podoptions import (
    PodCaptureOptions,
    PodCaptureResult,
    collector_needed,
    collector_options,
    container_collector_args,
    container_names,
)
from ir.cluster.record import record_actions
from ir.cluster.replace import replace_pod
from ir.cluster.resolve import ContainerRef, PodTarget, resolve_pod
from ir.cluster.respond import quarantine_pod
from ir.collect.session import CaptureRequest, CaptureResult, CaptureSession
from ir.store.base import Store

Echo = Callable[[str], None]
__all__ = ["PodCaptureOptions", "PodCaptureResult", "capture_pod"]  # the options live beside

ContainerCapture = Callable[
    [CaptureSession, PodTarget, ContainerRef, PodCaptureOptions, Echo], None
]


def capture_pod(
    kube: Kube,
    store: Store,
    namespace: str,
    name: str,
    opts: PodCaptureOptions,
    *,
    echo: Echo,
    capture_container: ContainerCapture | None = None,
) -> PodCaptureResult:
    acting = opts.quarantine or opts.replace or opts.cordon
    if acting:
        check_namespace(namespace, opts.allow_protected)
    target = resolve_pod(kube, namespace, name)
    if opts.dry_run:
        return _dry_run(kube, store, target, opts, echo)
    capturer = capture_container or ContainerCapturer(kube)
    capture, failed = None, None
    if capture_container is None and uploads_direct(store, target, opts):
        try:
            capture = capture_direct(kube, store, target, opts, echo, capturer)
        except CollectorFailed as exc:
            echo(f"  direct upload failed: {exc.message}; capturing through this ir instead")
            failed = exc
    if capture is None:
        capture = _capture(store, kube, target, opts, echo, capturer, failed)
    outcome = capture.sealed.manifest.outcome
    gate_open, gate_reason = True, ""
    if outcome != "complete" or not capture.stored.confirmed:
        gate_reason = (
            f"capture outcome is {outcome}"
            if outcome != "complete"
            else "the bundle is not confirmed stored"
        ) + "; nothing destructive without --force"
        gate_open = opts.force
    result = PodCaptureResult(
        target,
        capture,
        gate_open,
        gate_reason,
        requested_action=acting,
        replace_timeout=opts.replace_timeout,
    )
    op = Operator(kube, gate_open=gate_open, gate_reason=gate_reason, echo=echo)
    if opts.force and gate_reason:
        op.note("gate", "forced", why=gate_reason)
    if acting and not gate_open:
        echo(f"not acting on the pod: {gate_reason}")
    else:
        _respond(op, target, opts, capture, result)
    result.actions = [a.to_dict() for a in op.log]
    if op.log:
        record_actions(capture.stored.location, op, "capture-pod", signer=opts.signer)
    return result


def _respond(
    op: Operator,
    target: PodTarget,
    opts: PodCaptureOptions,
    capture: CaptureResult,
    result: PodCaptureResult,
) -> None:
    from ir.bundle.custody import operator_name
    from ir.errors import IrError

    try:
        if opts.quarantine:
            result.quarantine = quarantine_pod(
                op,
                target,
                reason=opts.reason or "ir capture pod",
                case_id=opts.case_id,
                actor=operator_name(opts.operator),
                allow_egress_cidrs=opts.allow_egress_cidrs,
                cordon=opts.cordon,
                allow_protected=opts.allow_protected,
                bundle=capture.stored.location,
                probe_image=opts.probe_image,
            )
        if opts.replace:
            result.replace = replace_pod(
                op, target, timeout=opts.replace_timeout, allow_protected=opts.allow_protected
            )
    except IrError as exc:
        result.errors.append(exc.message)


def _capture(
    store: Store,
    kube: Kube,
    target: PodTarget,
    opts: PodCaptureOptions,
    echo: Echo,
    capture_container: ContainerCapture,
    failed: CollectorFailed | None = None,
) -> CaptureResult:
    request = CaptureRequest(
        case_id=opts.case_id,
        target=target.describe(),
        operator=opts.operator,
        reason=opts.reason,
        signer=opts.signer,
        labels={"namespace": target.namespace, "pod": target.name},
    )
    closer = getattr(capture_container, "close", None)
    with CaptureSession(store, request) as session:
        if failed is not None:  # the direct upload that did not give a bundle, and all it did
            session.record_action(
                "collector-direct-upload",
                f"pod {target.namespace}/{target.name}",
                outcome="failed",
                error=failed.message,
                collector_actions=failed.log,
            )
        try:
            _capture_into(session, kube, target, opts, echo, capture_container)
        finally:
            # the collector pod goes before the seal, so its removal is in the manifest
            if closer is not None:
                closer(session)
        return session.finish()


def _capture_into(
    session: CaptureSession,
    kube: Kube,
    target: PodTarget,
    opts: PodCaptureOptions,
    echo: Echo,
    capture_container: ContainerCapture,
) -> None:
    echo(f"capturing pod {target.namespace}/{target.name} into bundle {session.bundle_id}")
    label = f"pod {target.namespace}/{target.name}"
    pod = KubeTarget(kube, target, PodAsk(opts.collectors, opts.api_logs, opts.checkpoint))
    chosen = pod_collectors("pod", pod)
    if chosen:
        session.run(chosen, scope=None, target=pod, options={}, label=label)
    if opts.alert is not None:
        session.add_json("alert.json", opts.alert, kind="alert", collector="alert")
    for ref in target.containers:
        if opts.only_container and ref.name != opts.only_container:
            continue
        if ref.container_id is None:
            session.record_action(
                "skip-container",
                label,
                outcome="skipped",
                container=ref.name,
                why="no container id (never started)",
            )
            continue
        capture_container(session, target, ref, opts, echo)
        here = pod.of_container(ref)
        extra = pod_collectors("container", here)
        if extra:
            session.run(
                extra,
                scope=_scope(ref),
                target=here,
                options={},
                label=label,
                container=ref.name,
            )


class ContainerCapturer:
    """Reach each container of the pod and run every container collector on it.

    Docker containers through the node's engine (--docker-host) or its /proc; CRI containers
    (containerd, CRI-O) through their node: locally when ir runs there (the runtime's task state
    is under --node-root), else through the node collector pod (--collector-image), one per pod
    capture, removed at the end. When a container cannot be reached, a failed `container-access`
    collector says why and what to do."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.collector: Any = None  # ir.cluster.collector.CollectorPod, once started
        self.collector_error: str | None = None
        self.collector_refused = False  # by the apiserver: then the debug-container fallback
        self._record: Any = None  # records the collector's actions in the pod's bundle

    def __call__(
        self,
        session: CaptureSession,
        target: PodTarget,
        ref: ContainerRef,
        opts: PodCaptureOptions,
        echo: Echo,
    ) -> None:
        from ir.errors import IrError, Unsupported
        from ir.runtime import open_container
        from ir.runtime.cri_node import node_has_runtime_state
        from ir.runtime.resolve import open_cri_container

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
        from ir.collect.container import CaptureOptions, capture_container

        try:
            known = set(CaptureOptions.__dataclass_fields__)
            options = CaptureOptions(
                **{k: v for k, v in opts.container_options.items() if k in known}
            )
            capture_container(
                session,
                handle,
                options,
                scope=_scope(ref),
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
        from ir.cluster.collector import CollectorRefused, capture_in_collector, start_collector
        from ir.errors import IrError

        if self._record is None:
            label = f"pod {target.namespace}/{target.name}"

            def record(action: str, outcome: str, **detail: Any) -> None:
                session.record_action(action, label, outcome=outcome, **detail)

            self._record = record
        settings = opts.collector
        assert settings is not None
        if self.collector is None and self.collector_error is None:
            echo(f"  starting the node collector on {target.node} ({settings.image})")
            try:
                self.collector = start_collector(
                    self.kube, target, str(ref.runtime), settings, record=self._record
                )
            except CollectorRefused as exc:
                self.collector_error, self.collector_refused = exc.message, True
            except IrError as exc:
                self.collector_error = exc.message
        if self.collector is None:
            if self.collector_refused:
                self._via_debug_container(session, target, ref, opts, echo)
                return
            _access_failed(
                session,
                ref,
                f"node collector for container {ref.container_id} on node {target.node} not "
                f"available: {self.collector_error}",
            )
            return
        try:
            moved = capture_in_collector(
                self.kube,
                self.collector,
                ref,
                case_id=opts.case_id,
                reason=opts.reason,
                options=collector_options(opts) + container_collector_args(opts),
                record=self._record,
            )
        except IrError as exc:
            _access_failed(session, ref, f"node collector {self.collector.name}: {exc.message}")
            return
        try:
            session.import_bundle(
                moved.path,
                scope=_scope(ref),
                container=ref.name,
                via=f"node collector pod {self.collector.name} on node {target.node}",
            )
        finally:
            os.unlink(moved.path)
        echo(
            f"    via collector {self.collector.name}: capture {moved.seconds.get('capture')} s, "
            f"transfer {moved.size} bytes in {moved.seconds.get('transfer')} s (sha256 matched)"
        )

    def _via_debug_container(
        self,
        session: CaptureSession,
        target: PodTarget,
        ref: ContainerRef,
        opts: PodCaptureOptions,
        echo: Echo,
    ) -> None:
        """The collector was refused: capture from an ephemeral debug container in the suspect's
        pod (ir.cluster.debug), else say that only the apiserver's evidence is left."""
        from ir.cluster.collector import capture_in_collector
        from ir.cluster.debug import (
            NOT_REMOVABLE,
            WORK,
            start_debug_container,
            stop_debug_container,
        )
        from ir.errors import IrError

        assert opts.collector is not None
        refused = f"the node collector was refused ({self.collector_error})"
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
        try:
            session.import_bundle(moved.path, scope=_scope(ref), container=ref.name, via=via)
        finally:
            os.unlink(moved.path)
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
        if self.collector is not None:
            from ir.cluster.collector import remove_collector

            remove_collector(self.kube, self.collector, self._record)
            self.collector = None


def _scope(ref: ContainerRef) -> str:
    from ir.bundle.layout import safe_component

    return f"containers/{safe_component(ref.name, 'container')}"


def _access_failed(
    session: CaptureSession, ref: ContainerRef, note: str, status: str = "failed"
) -> None:
    """The `container-access` entry: how (or why not) the container was reached."""
    session.record_access("container-access", note, status=status, container=ref.name)


def _dry_run(
    kube: Kube, store: Store, target: PodTarget, opts: PodCaptureOptions, echo: Echo
) -> PodCaptureResult:
    from ir.cluster.ops import Request

    echo(
        f"[dry-run] would capture pod {target.namespace}/{target.name} (uid {target.uid}) on node {target.node}: "
        f"Kubernetes context and containers "
        + ", ".join(f"{c.name} ({c.container_id})" for c in target.containers)
    )
    op = Operator(kube, dry_run=True, echo=echo)
    collector = collector_needed(target, opts)
    if collector is not None and opts.collector is not None:
        from ir.cluster.collector import DEADLINE_SECONDS, collector_manifest, collector_name

        direct = uploads_direct(store, target, opts)
        settings = opts.collector
        doc = collector_manifest(
            collector_name(), target, collector, settings, DEADLINE_SECONDS, direct=direct
        )
        how = (
            f"ir capture pod in it uploads to {getattr(store, 'uri', '')} itself; this ir "
            "verifies the bundle there and adds a receive custody record"
            if direct
            else "ir capture container in it per container; each bundle streamed back through "
            "the apiserver, hashed on both ends"
        )
        op.apply(
            "create-collector-pod",
            Request(
                "POST",
                f"/api/v1/namespaces/{settings.namespace}/pods",
                doc,
                why=f"the node collector on {target.node}: {how}; deleted when done",
                destructive=False,
            ),
        )
    result = PodCaptureResult(target, None, True, "")
    _respond(op, target, opts, _DryCapture(), result)  # type: ignore[arg-type]
    result.actions = [a.to_dict() for a in op.log]
    return result


class _DryCapture:
    class stored:  # noqa: N801 -- a stand-in with the one attribute _respond reads
        location = "(dry run: no bundle)"
