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
from ir.cluster.collector import CollectorSettings
from ir.cluster.context import KubeContextCollector, KubeletCheckpointCollector, KubeLogsCollector
from ir.cluster.kube import Kube
from ir.cluster.ops import Operator, check_namespace
from ir.cluster.record import record_actions
from ir.cluster.replace import ReplaceResult, replace_pod
from ir.cluster.resolve import ContainerRef, PodTarget, resolve_pod
from ir.cluster.respond import QuarantineResult, quarantine_pod
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
    probe_image: str | None = None  # prove the quarantine by traffic (ir.cluster.probe)
    # the node collector (ir.cluster.collector), run on the suspect's node when ir itself is not
    # there ($IR_COLLECTOR_IMAGE, as the CLI's --collector-image); None: no collector
    collector: CollectorSettings | None = field(default_factory=CollectorSettings.from_env)
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
    replace_timeout: float | None = None  # what --replace-timeout asked for, in seconds

    @property
    def replace_timed_out(self) -> bool:
        return (
            self.replace is not None
            and self.capture is not None
            and self.replace.strategy not in ("not-possible", "already")
            and not self.replace.ready
        )

    @property
    def exit_code(self) -> ExitCode:
        causes = self.causes()
        return causes[0][0] if causes else ExitCode.OK

    def causes(self) -> list[tuple[ExitCode, str]]:
        """Every outcome that makes the exit non-zero, with its exit code, the one that decides
        first: a failed cluster request (4: the pod may be half-acted on); the safety gate shut
        (5); the capture's own failure (3 store, 1 partial); a replacement not Ready in time (4:
        the evidence is whole, the cluster did not serve a clean pod). Empty when it is 0."""
        found = [(ExitCode.CLUSTER, error) for error in self.errors]
        if self.requested_action and not self.gate_open:
            found.append((ExitCode.REFUSED, f"not acting on the pod: {self.gate_reason}"))
        if self.capture is not None:
            m = self.capture.sealed.manifest
            stored = self.capture.stored
            if not stored.confirmed:
                why = "; ".join(stored.warnings)
                found.append(
                    (
                        ExitCode.STORE,
                        "the bundle is not confirmed stored"
                        + (f" ({why})" if why else "")
                        + (
                            f"; kept in the local spool: {stored.spooled}" if stored.spooled else ""
                        ),
                    )
                )
            if m.outcome != "complete":
                bad = [
                    f"{c.name}{f' [{c.container}]' if c.container else ''}: {c.status}"
                    + (f" ({c.error})" if c.error else "")
                    for c in m.collectors
                    if c.status in ("failed", "partial")
                ]
                found.append(
                    (
                        ExitCode.FAILED,
                        f"capture {m.outcome}: " + ("; ".join(bad) or "see the manifest"),
                    )
                )
        if self.replace_timed_out and self.replace is not None:
            found.append((ExitCode.CLUSTER, self._replace_cause(self.replace)))
        return found

    def _replace_cause(self, replace: ReplaceResult) -> str:
        limit = self.replace_timeout if self.replace_timeout is not None else replace.waited_seconds
        which = (
            f"replacement pod {replace.replacement} not ready"
            if replace.strategy == "clone-bare-pod" and replace.replacement
            else "no ready replacement"
        )
        kept = (
            "the suspect stays quarantined"
            if self.quarantine is not None
            else "the suspect keeps running, out of its controller and not quarantined"
        )
        return f"replace: {which} within {limit:g} s; {kept}"

    def reasons(self) -> list[str]:
        """Why the exit code is not 0, in words (empty when it is 0), the one that decides the
        exit code last: the last line of the text output; `errors` of -o json."""
        causes = [text for _, text in self.causes()]
        return causes[1:] + causes[:1]


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
    if capture_container is None and _uploads_direct(store, target, opts):
        try:
            capture = _capture_direct(kube, store, target, opts, echo, capturer)
        except _CollectorFailed as exc:
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
    failed: _CollectorFailed | None = None,
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
    if not opts.collectors or KUBE_COLLECTOR in opts.collectors:
        session.run(
            [KubeContextCollector(kube, target)],
            scope=None,
            target=target,
            options={},
            label=label,
        )
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
        extra: list[Any] = []
        if opts.api_logs:
            extra.append(KubeLogsCollector(kube, target, ref.name))
        if opts.checkpoint and ref.state == "running":
            extra.append(KubeletCheckpointCollector(kube, target, ref.name))
        if extra:
            session.run(
                extra,
                scope=_scope(ref),
                target=target,
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
                collectors=_container_names(opts) or None,
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
                options=_collector_options(opts) + _container_collectors(opts),
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
                options=_collector_options(opts) + _container_collectors(opts),
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


def _collector_options(opts: PodCaptureOptions) -> list[str]:
    """The container options as arguments of ir in the collector."""
    options = []
    max_file = opts.container_options.get("max_file_size")
    max_diff = opts.container_options.get("max_diff_size")
    if max_file:
        options += ["--max-file-size", str(int(max_file))]
    if max_diff:
        options += ["--max-diff-size", str(int(max_diff))]
    if opts.container_options.get("include_env"):
        options.append("--include-env")
    return options


def _container_names(opts: PodCaptureOptions) -> list[str]:
    """The container collectors asked for (all when empty); `kubernetes` is the pod's own."""
    return [n for n in opts.collectors if n != KUBE_COLLECTOR]


def _container_collectors(opts: PodCaptureOptions) -> list[str]:
    """The same, as arguments of `ir capture container` in a collector."""
    names = _container_names(opts)
    return ["--collectors", ",".join(names)] if names else []


def _uploads_direct(store: Store, target: PodTarget, opts: PodCaptureOptions) -> bool:
    """The collector captures the whole pod and uploads it itself: an S3 store, a collector image,
    direct upload asked for, and a container only a collector on its node can reach."""
    if opts.collector is None or opts.collector.upload != "direct":
        return False
    if not str(getattr(store, "uri", "")).startswith("s3://"):
        return False
    if not opts.api_logs:
        return False  # ir capture pod always asks the apiserver for logs: relay instead
    return _collector_needed(target, opts) is not None


def _capture_direct(
    kube: Kube,
    store: Store,
    target: PodTarget,
    opts: PodCaptureOptions,
    echo: Echo,
    capturer: Any,
) -> CaptureResult | None:
    """The node collector captures the pod straight into the S3 store; this ir then reads the
    bundle back from S3, verifies it (every artifact, the root digest the collector reported, the
    pod's UID) and appends a `receive` custody record with every request made to the collector.

    Returns None when the relay path should run instead (the collector could not start: its error
    is handed to `capturer`, so each container records why). A bundle the collector could only
    spool in its pod is brought here through the apiserver and pushed to the store by this ir."""
    from ir.cluster.collector import (
        CollectorRefused,
        capture_pod_in_collector,
        fetch_file,
        remove_collector,
        start_collector,
    )
    from ir.errors import IrError

    log: list[dict[str, Any]] = []

    def record(action: str, outcome: str, **detail: Any) -> None:
        from ir.clock import rfc3339, utcnow

        log.append({"at": rfc3339(utcnow()), "action": action, "outcome": outcome, **detail})

    runtime = _collector_needed(target, opts)
    settings = opts.collector
    assert settings is not None and runtime is not None  # _uploads_direct said so
    echo(
        f"starting the node collector on {target.node} ({settings.image}); it uploads "
        f"to {getattr(store, 'uri', '')} itself"
    )
    try:
        pod = start_collector(kube, target, runtime, settings, direct=True, record=record)
    except IrError as exc:
        if hasattr(capturer, "collector_error"):  # the relay path reuses the verdict
            capturer.collector_error = exc.message
            capturer.collector_refused = isinstance(exc, CollectorRefused)
        echo(f"  node collector not available: {exc.message}")
        return None
    argv = _collector_options(opts)
    for flag, value in (("--reason", opts.reason), ("--operator", opts.operator)):
        if value:
            argv += [flag, value]
    if opts.checkpoint:
        argv.append("--checkpoint")
    if opts.collectors:
        argv += ["--collectors", ",".join(opts.collectors)]
    if opts.only_container:
        argv += ["--container", opts.only_container]
    if opts.alert is not None:
        import json

        argv += ["--alert-json", json.dumps(opts.alert, separators=(",", ":"))]
    fetched: str | None = None
    try:
        doc = capture_pod_in_collector(
            kube, pod, target, getattr(store, "uri", ""), case_id=opts.case_id,
            options=argv, record=record,
        )  # fmt: skip
        bundle = doc.get("bundle") or {}
        location = str(bundle.get("location") or "")
        spooled = str(bundle.get("spooled") or "")
        if not bundle.get("stored") and spooled.startswith(WORK_PREFIX):
            echo(f"  the collector could not upload ({location}); bringing its spooled copy here")
            fetched = fetch_file(kube, pod, spooled, what="the spooled bundle", record=record).path
    except IrError as exc:
        remove_collector(kube, pod, record)
        raise _CollectorFailed(exc.message, log) from None
    remove_collector(kube, pod, record)
    return _receive(store, target, opts, doc, fetched, log, echo)


WORK_PREFIX = "/work/"


class _CollectorFailed(Exception):
    def __init__(self, message: str, log: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.message, self.log = message, log


def _receive(
    store: Store,
    target: PodTarget,
    opts: PodCaptureOptions,
    doc: dict[str, Any],
    fetched: str | None,
    log: list[dict[str, Any]],
    echo: Echo,
) -> CaptureResult:
    """Verify the collector's bundle in S3 (pushing a fetched spool copy first) and record its
    receipt in the custody log. The result is what a capture here would have returned."""
    from pathlib import Path

    from ir.bundle.custody import append_record, operator_name
    from ir.bundle.signing import public_key_of
    from ir.bundle.trust import load_trust
    from ir.bundle.verify import verify_bundle
    from ir.bundle.writer import SealedBundle
    from ir.store.base import StoreResult
    from ir.store.s3 import open_s3_bundle

    bundle = doc.get("bundle") or {}
    reported = str(bundle.get("root_digest") or "")
    warnings: list[str] = []
    if fetched is not None:
        try:
            pushed = store.push(Path(fetched), custody_signer=opts.signer)  # type: ignore[attr-defined]
        finally:
            os.unlink(fetched)
        location = pushed.location
        if not pushed.confirmed:
            raise _CollectorFailed(
                f"the collector's bundle could not be stored from here either: kept at "
                f"{pushed.spooled}",
                log,
            )
    else:
        location = str(bundle.get("location") or "")
    if not location.startswith("s3://"):
        raise _CollectorFailed(f"the collector stored no bundle in S3 ({location!r})", log)
    client = getattr(store, "client", None)
    trust = load_trust()
    if opts.signer is not None:  # this ir's own key (a file or a KMS key): it signs the receipt
        trust.add(public_key_of(opts.signer))
    with open_s3_bundle(location, client=client) as handle:
        report = verify_bundle(
            handle.reader, trust=trust, custody_lines=handle.custody.read_lines()
        )
        manifest = handle.reader.manifest
        size = int(getattr(handle.reader.source, "size", 0))
        problems = list(report.errors)
        if reported and report.root_digest != reported:
            problems.append(
                f"root digest {report.root_digest} differs from the {reported} the collector reported"
            )
        if manifest.target.get("uid") not in (None, target.uid):
            problems.append(
                f"the bundle is of pod uid {manifest.target.get('uid')}, not {target.uid}"
            )
        ok = report.intact and not problems
        append_record(
            handle.custody,
            action="receive",
            bundle_id=manifest.bundle_id,
            bundle_digest=str(report.root_digest),
            actor=operator_name(opts.operator),
            detail={
                "from": "node collector (direct upload)",
                "verdict": report.verdict if not problems else "failed",
                "signature": report.signature.detail if report.signature else None,
                "problems": problems,
                "collector_actions": log,
            },
            signer=opts.signer,
        )
    echo(f"  received {location}: {'verified' if ok else 'NOT verified: ' + '; '.join(problems)}")
    if not ok:
        warnings.extend(problems)
    if ok and opts.signer is not None and not report.authentic:
        note = (
            f"the collector's bundle is {report.verdict}: give the collector the signing key "
            "(IR_SIGNING_KEY in its Secret, see --collector-secret); this ir's receipt is signed"
        )
        warnings.append(note)
        echo(f"  warning: {note}")
    stored = StoreResult(
        location, str(report.root_digest), size, confirmed=ok, warnings=warnings,
        detail={"via": "node collector (direct upload)"},
    )  # fmt: skip
    sealed = SealedBundle(Path(location), str(report.root_digest), size, manifest)
    return CaptureResult(sealed, stored, list(manifest.collectors))


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
    collector = _collector_needed(target, opts)
    if collector is not None and opts.collector is not None:
        from ir.cluster.collector import DEADLINE_SECONDS, collector_manifest, collector_name

        direct = _uploads_direct(store, target, opts)
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


def _collector_needed(target: PodTarget, opts: PodCaptureOptions) -> str | None:
    """The runtime of the first container only a collector on its node can reach, if any."""
    from ir.runtime.cri_node import node_has_runtime_state

    if opts.collector is None:
        return None
    for ref in target.containers:
        if opts.only_container and ref.name != opts.only_container:
            continue
        if (
            ref.container_id is not None
            and ref.runtime not in ("docker", None)
            and not node_has_runtime_state(ref.runtime, opts.node_root)
        ):
            return str(ref.runtime)
    return None


class _DryCapture:
    class stored:  # noqa: N801 -- a stand-in with the one attribute _respond reads
        location = "(dry run: no bundle)"
