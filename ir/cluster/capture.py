"""`ir capture pod`: resolve the pod, capture its Kubernetes context and its containers into one
bundle, then -- only if the capture succeeded (or --force) -- quarantine and replace it.

The bundle is sealed and stored before anything is changed on the cluster; the actions that
follow are appended to the bundle's chain of custody. `capture_target` is that whole sequence
for one resolved pod: `capture_pod` (one pod by name) and ir.cluster.podset (every pod of a
selector or workload, one bundle each) both run it.
"""

from __future__ import annotations

from collections.abc import Callable

from ir.bundle.custody import operator_name
from ir.cluster.collector import DEADLINE_SECONDS, collector_manifest, collector_name
from ir.cluster.containers import ContainerCapturer, scope_of
from ir.cluster.context import KubeTarget, PodAsk, pod_collectors
from ir.cluster.directupload import CollectorFailed, capture_direct, uploads_direct
from ir.cluster.kube import Kube
from ir.cluster.nodecollectors import NodeCollectors
from ir.cluster.ops import Operator, Request, check_namespace
from ir.cluster.podoptions import PodCaptureOptions, PodCaptureResult, collector_needed
from ir.cluster.record import record_actions
from ir.cluster.replace import replace_pod
from ir.cluster.resolve import ContainerRef, PodTarget, resolve_pod
from ir.cluster.respond import quarantine_pod
from ir.collect.session import CaptureRequest, CaptureResult, CaptureSession
from ir.errors import IrError
from ir.store.base import Store

Echo = Callable[[str], None]
#: Asked after the capture, before acting: a reason not to act on the pod now (a run that was
#: interrupted), or None. Unlike the capture's own gate, --force does not override it.
Hold = Callable[[], str | None]
__all__ = ["PodCaptureOptions", "PodCaptureResult", "capture_pod", "capture_target"]

ContainerCapture = Callable[
    [CaptureSession, PodTarget, ContainerRef, PodCaptureOptions, Echo], None
]


def acting(opts: PodCaptureOptions) -> bool:
    """Whether the capture is to be followed by a change to the pod or its node."""
    return opts.quarantine or opts.replace or opts.cordon


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
    if acting(opts):
        check_namespace(namespace, opts.allow_protected)
    target = resolve_pod(kube, namespace, name)
    if opts.dry_run:
        return dry_run(kube, store, target, opts, echo)
    return capture_target(kube, store, target, opts, echo=echo, capture_container=capture_container)


def capture_target(
    kube: Kube,
    store: Store,
    target: PodTarget,
    opts: PodCaptureOptions,
    *,
    echo: Echo,
    capture_container: ContainerCapture | None = None,
    collectors: NodeCollectors | None = None,
    hold: Hold | None = None,
) -> PodCaptureResult:
    """Capture one resolved pod into its own bundle, then act on it if the gate is open.
    `collectors`: the node collectors to use (shared by a run); by default the pod's own,
    started when needed and removed when its capture ends."""
    if collectors is None and opts.collector is not None:
        collectors = NodeCollectors(kube, opts.collector, shared=False)
    capturer = capture_container or ContainerCapturer(kube, collectors)
    capture, failed = None, None
    if capture_container is None and collectors is not None and uploads_direct(store, target, opts):
        try:
            capture = capture_direct(kube, store, target, opts, echo, collectors)
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
    held = hold() if hold is not None else None
    if held:
        gate_open, gate_reason = False, held
    result = PodCaptureResult(
        target,
        capture,
        gate_open,
        gate_reason,
        requested_action=acting(opts),
        replace_timeout=opts.replace_timeout,
    )
    op = Operator(kube, gate_open=gate_open, gate_reason=gate_reason, echo=echo)
    if opts.force and gate_reason and not held:
        op.note("gate", "forced", why=gate_reason)
    if acting(opts) and not gate_open:
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
                scope=scope_of(ref),
                target=here,
                options={},
                label=label,
                container=ref.name,
            )


def dry_run(
    kube: Kube,
    store: Store,
    target: PodTarget,
    opts: PodCaptureOptions,
    echo: Echo,
    *,
    collector_planned: bool = False,
) -> PodCaptureResult:
    """Every request the real run would send, sent as server-side dry runs (nothing captured or
    changed). `collector_planned`: the node collector's request was planned already (a run's
    collector is shared by every pod of its node: ir.cluster.podset)."""
    echo(
        f"[dry-run] would capture pod {target.namespace}/{target.name} (uid {target.uid}) on node {target.node}: "
        f"Kubernetes context and containers "
        + ", ".join(f"{c.name} ({c.container_id})" for c in target.containers)
    )
    op = Operator(kube, dry_run=True, echo=echo)
    if not collector_planned:
        plan_collector(op, store, target, opts)
    result = PodCaptureResult(target, None, True, "")
    _respond(op, target, opts, _DryCapture(), result)  # type: ignore[arg-type]
    result.actions = [a.to_dict() for a in op.log]
    return result


def plan_collector(
    op: Operator, store: Store, target: PodTarget, opts: PodCaptureOptions, *, shared: bool = False
) -> bool:
    """The node collector's create request for `target`'s node, through `op` (a dry run), when
    one is needed; True then. `shared`: it serves every pod of the run on that node."""
    collector = collector_needed(target, opts)
    if collector is None or opts.collector is None:
        return False
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
    when = (
        "every pod of this run on the node; deleted when the run ends"
        if shared
        else "deleted when done"
    )
    op.apply(
        "create-collector-pod",
        Request(
            "POST",
            f"/api/v1/namespaces/{settings.namespace}/pods",
            doc,
            why=f"the node collector on {target.node}: {how}; {when}",
            destructive=False,
        ),
    )
    return True


class _DryCapture:
    class stored:  # noqa: N801 -- a stand-in with the one attribute _respond reads
        location = "(dry run: no bundle)"
