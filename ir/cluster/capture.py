"""`ir capture pod`: resolve the pod, capture its Kubernetes context and its containers into one
bundle, then -- only if the capture succeeded (or --force) -- quarantine and replace it.

The bundle is sealed and stored before anything is changed on the cluster; the actions that
follow are appended to the bundle's chain of custody.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ir.bundle.signing import Signer
from ir.cluster.context import KubeContextCollector, KubeletCheckpointCollector, KubeLogsCollector
from ir.cluster.kube import Kube
from ir.cluster.ops import Operator, check_namespace
from ir.cluster.record import record_actions
from ir.cluster.resolve import ContainerRef, PodTarget, resolve_pod
from ir.cluster.respond import QuarantineResult, ReplaceResult, quarantine_pod, replace_pod
from ir.collect.session import CaptureRequest, CaptureResult, CaptureSession
from ir.errors import ExitCode
from ir.store.base import Store

Echo = Callable[[str], None]
KUBE_COLLECTOR = "kubernetes"  # the name playbooks use for the Kubernetes context collectors


@dataclass
class PodCaptureOptions:
    case_id: str
    reason: str | None = None
    operator: str | None = None
    quarantine: bool = True
    replace: bool = True
    cordon: bool = False
    force: bool = False
    dry_run: bool = False
    allow_protected: bool = False
    replace_timeout: float = 120.0
    allow_egress_cidrs: tuple[str, ...] = ()
    container_options: dict[str, Any] = field(default_factory=dict)  # to the container collectors
    backend: str = "auto"
    docker_host: str | None = None
    # the node's filesystem, when ir runs on the pod's node ($IR_NODE_ROOT, as the CLI's --node-root)
    node_root: str = field(default_factory=lambda: os.environ.get("IR_NODE_ROOT") or "/")
    signer: Signer | None = None
    alert: dict[str, Any] | None = None
    api_logs: bool = True
    checkpoint: bool = False  # ask the kubelet for a CRIU checkpoint of each running container
    collectors: tuple[str, ...] = ()  # container collectors to run (default: all)
    only_container: str | None = None  # capture just this container of the pod


@dataclass
class PodCaptureResult:
    target: PodTarget
    capture: CaptureResult | None
    gate_open: bool
    gate_reason: str
    quarantine: QuarantineResult | None = None
    replace: ReplaceResult | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    requested_action: bool = False

    @property
    def exit_code(self) -> ExitCode:
        if self.errors:
            return ExitCode.CLUSTER
        if self.requested_action and not self.gate_open:
            return ExitCode.REFUSED
        if self.capture is not None and self.capture.exit_code != ExitCode.OK:
            return self.capture.exit_code
        if (
            self.replace is not None
            and self.capture is not None
            and self.replace.strategy not in ("not-possible", "already")
            and not self.replace.ready
        ):
            return ExitCode.FAILED
        return ExitCode.OK


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
        return _dry_run(kube, target, opts, echo)
    capture = _capture(
        store, kube, target, opts, echo, capture_container or _default_container_capture
    )
    outcome = capture.sealed.manifest.outcome
    gate_open, gate_reason = True, ""
    if outcome != "complete" or not capture.stored.confirmed:
        gate_reason = (
            f"capture outcome is {outcome}"
            if outcome != "complete"
            else "the bundle is not confirmed stored"
        ) + "; nothing destructive without --force"
        gate_open = opts.force
    result = PodCaptureResult(target, capture, gate_open, gate_reason, requested_action=acting)
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
) -> CaptureResult:
    request = CaptureRequest(
        case_id=opts.case_id,
        target=target.describe(),
        operator=opts.operator,
        reason=opts.reason,
        signer=opts.signer,
        labels={"namespace": target.namespace, "pod": target.name},
    )
    with CaptureSession(store, request) as session:
        echo(f"capturing pod {target.namespace}/{target.name} into bundle {session.bundle_id}")
        label = f"pod {target.namespace}/{target.name}"
        if not opts.collectors or KUBE_COLLECTOR in opts.collectors:
            session.run(
                [KubeContextCollector(kube, target)],
                scope=None,
                target=target,
                options={},
                label=label,
            )
        if opts.alert is not None:
            session.writer.add_json("alert.json", opts.alert, kind="alert", collector="alert")
        for ref in target.containers:
            if opts.only_container and ref.name != opts.only_container:
                continue
            if ref.container_id is None:
                session.writer.record_action(
                    "skip-container",
                    label,
                    outcome="skipped",
                    container=ref.name,
                    why="no container id (never started)",
                )
                continue
            capture_container(session, target, ref, opts, echo)
            extra: list[Any] = []
            if opts.api_logs:
                extra.append(KubeLogsCollector(kube, target, ref.name))
            if opts.checkpoint and ref.state == "running":
                extra.append(KubeletCheckpointCollector(kube, target, ref.name))
            if extra:
                from ir.bundle.layout import safe_component

                session.run(
                    extra,
                    scope=f"containers/{safe_component(ref.name)}",
                    target=target,
                    options={},
                    label=label,
                    container=ref.name,
                )
        return session.finish()


def _default_container_capture(
    session: CaptureSession,
    target: PodTarget,
    ref: ContainerRef,
    opts: PodCaptureOptions,
    echo: Echo,
) -> None:
    """Reach the container through the node's runtime and run every container collector on it.
    When it cannot be reached, a failed `container-access` collector says why and what to do."""
    from ir.bundle.layout import safe_component
    from ir.bundle.manifest import CollectorEntry
    from ir.clock import rfc3339, utcnow
    from ir.collect.container import CaptureOptions, capture_container
    from ir.errors import IrError, Unsupported
    from ir.runtime import open_container
    from ir.runtime.resolve import open_cri_container

    scope = f"containers/{safe_component(ref.name, 'container')}"

    def access_failed(note: str) -> None:
        session.writer.record_collector(
            CollectorEntry(
                "container-access",
                "failed",
                rfc3339(utcnow()),
                rfc3339(utcnow()),
                note,
                container=ref.name,
            )
        )

    echo(f"  container {ref.name} ({ref.container_id})")
    try:
        if ref.runtime in ("docker", None):
            handle = open_container(
                ref.runtime_id, backend=opts.backend, docker_host=opts.docker_host, name=ref.name
            )
        elif opts.backend == "docker":
            raise Unsupported(f"runtime {ref.runtime}: the Docker API cannot read it")
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
        access_failed(
            f"cannot reach container {ref.container_id} on node {target.node}: {why}. Run ir "
            "on that node (--node-root for its filesystem), give --docker-host for a Docker node, "
            "or use `ir serve --dispatch jobs` to capture there."
        )
        return
    try:
        known = set(CaptureOptions.__dataclass_fields__)
        options = CaptureOptions(**{k: v for k, v in opts.container_options.items() if k in known})
        names = [n for n in opts.collectors if n != KUBE_COLLECTOR]
        capture_container(session, handle, options, scope=scope, collectors=names or None)
    finally:
        handle.close()


def _dry_run(
    kube: Kube, target: PodTarget, opts: PodCaptureOptions, echo: Echo
) -> PodCaptureResult:
    echo(
        f"[dry-run] would capture pod {target.namespace}/{target.name} (uid {target.uid}) on node {target.node}: "
        f"Kubernetes context and containers "
        + ", ".join(f"{c.name} ({c.container_id})" for c in target.containers)
    )
    op = Operator(kube, dry_run=True, echo=echo)
    result = PodCaptureResult(target, None, True, "")
    _respond(op, target, opts, _DryCapture(), result)  # type: ignore[arg-type]
    result.actions = [a.to_dict() for a in op.log]
    return result


class _DryCapture:
    class stored:  # noqa: N801 -- a stand-in with the one attribute _respond reads
        location = "(dry run: no bundle)"
