"""Direct upload: the node collector captures the whole pod and uploads the bundle to the S3
store itself; this ir reads it back, verifies it (every artifact, the root digest the collector
reported, the pod's UID) and appends a `receive` custody record listing every request made to
the collector. When the collector cannot start, the relay path (ir.cluster.capture) runs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ir.clock import rfc3339, utcnow
from ir.cluster.collector import capture_pod_in_collector, fetch_file
from ir.cluster.kube import Kube
from ir.cluster.nodecollectors import NodeCollectors
from ir.cluster.podoptions import PodCaptureOptions, collector_needed, collector_options
from ir.cluster.resolve import PodTarget
from ir.collect.session import CaptureResult
from ir.errors import IrError
from ir.store.base import Store

Echo = Callable[[str], None]


def uploads_direct(store: Store, target: PodTarget, opts: PodCaptureOptions) -> bool:
    """The collector captures the whole pod and uploads it itself: an S3 store, a collector image,
    direct upload asked for, and a container only a collector on its node can reach."""
    if opts.collector is None or opts.collector.upload != "direct":
        return False
    if not str(getattr(store, "uri", "")).startswith("s3://"):
        return False
    if not opts.api_logs:
        return False  # ir capture pod always asks the apiserver for logs: relay instead
    return collector_needed(target, opts) is not None


def capture_direct(
    kube: Kube,
    store: Store,
    target: PodTarget,
    opts: PodCaptureOptions,
    echo: Echo,
    collectors: NodeCollectors,
) -> CaptureResult | None:
    """The node collector captures the pod straight into the S3 store; this ir then reads the
    bundle back from S3, verifies it (every artifact, the root digest the collector reported, the
    pod's UID) and appends a `receive` custody record with every request made to the collector.

    Returns None when the relay path should run instead (the collector could not start: its error
    stays with `collectors`, so each container records why). A bundle the collector could only
    spool in its pod is brought here through the apiserver and pushed to the store by this ir.
    The collector is the node's in `collectors`: this pod's own (removed when done here) or the
    run's (removed when the run ends)."""
    log: list[dict[str, Any]] = []

    def record(action: str, outcome: str, **detail: Any) -> None:
        log.append({"at": rfc3339(utcnow()), "action": action, "outcome": outcome, **detail})

    runtime = collector_needed(target, opts)
    settings = opts.collector
    assert settings is not None and runtime is not None  # uploads_direct said so
    node = collectors.get(
        target,
        runtime,
        record=record,
        echo=echo,
        direct=True,
        start_line=f"starting the node collector on {target.node} ({settings.image}); it uploads "
        f"to {getattr(store, 'uri', '')} itself",
    )
    if node.pod is None:
        echo(f"  node collector not available: {node.error}")
        return None
    pod = node.pod
    argv = collector_options(opts)
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
        argv += ["--alert-json", json.dumps(opts.alert, separators=(",", ":"))]
    fetched: str | None = None
    try:
        with node.slots:
            doc = capture_pod_in_collector(
                kube, pod, target, getattr(store, "uri", ""), case_id=opts.case_id,
                options=argv, record=record,
            )  # fmt: skip
            bundle = doc.get("bundle") or {}
            location = str(bundle.get("location") or "")
            spooled = str(bundle.get("spooled") or "")
            if not bundle.get("stored") and spooled.startswith(WORK_PREFIX):
                echo(
                    f"  the collector could not upload ({location}); bringing its spooled copy here"
                )
                fetched = fetch_file(
                    kube, pod, spooled, what="the spooled bundle", record=record
                ).path
    except IrError as exc:
        collectors.finished(record)
        raise CollectorFailed(exc.message, log) from None
    collectors.finished(record)
    return receive(store, target, opts, doc, fetched, log, echo)


WORK_PREFIX = "/work/"


class CollectorFailed(Exception):
    def __init__(self, message: str, log: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.message, self.log = message, log


def receive(
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
            raise CollectorFailed(
                f"the collector's bundle could not be stored from here either: kept at "
                f"{pushed.spooled}",
                log,
            )
    else:
        location = str(bundle.get("location") or "")
    if not location.startswith("s3://"):
        raise CollectorFailed(f"the collector stored no bundle in S3 ({location!r})", log)
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
