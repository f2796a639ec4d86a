"""`ir capture pod -l SELECTOR` / `TYPE/NAME --all`: run the capture of many pods
(ir.cluster.podset) and print it -- progress on stderr as each pod finishes, one table line per
pod and the case index on stdout, or one JSON document (-o json). The options are those of
`ir capture pod` (ir/cli/capture_pod.py), which calls `capture_many`. Parses nothing itself;
imports the cluster room's podset, selection and caseindex and the CLI's output helpers."""

from __future__ import annotations

from typing import Any

import click

from ir.cli.output import emit, exit_line, info, printable, table, warn
from ir.cluster.caseindex import index_name
from ir.cluster.kube import Kube
from ir.cluster.podoptions import PodCaptureOptions
from ir.cluster.podset import PodOutcome, PodsCaptureResult, capture_pods, plan_pods
from ir.cluster.selection import Selection
from ir.store.base import Store


def capture_many(
    kube: Kube,
    store: Store,
    selection: Selection,
    opts: PodCaptureOptions,
    *,
    parallel: int,
    output: str,
) -> int:
    """Capture (or, --dry-run, plan) every selected pod and print the run; its exit code."""
    where = f"namespace {selection.namespace}" if selection.namespace else "every namespace"
    count = len(selection.pods)
    info(
        f"{count} pod{'s' if count != 1 else ''} of {selection.what} in {where}"
        + (
            " (dry run)"
            if opts.dry_run
            else f"; up to {parallel} at once, into {getattr(store, 'uri', '')} (case "
            f"{opts.case_id})"
        )
    )
    for left in selection.skipped:
        info(f"  not taken: {left['name']}: {left['why']}")
    if opts.dry_run:
        run = plan_pods(kube, store, selection, opts, echo=info)
    else:
        run = capture_pods(
            kube, store, selection, opts, parallel=parallel, echo=info, progress=_progress
        )
    doc = _document(run, store, opts)
    warnings = sorted(
        {
            w
            for p in run.pods
            if p.result and p.result.quarantine
            for w in p.result.quarantine.warnings
        }
        | set(run.index.warnings if run.index else [])
    )
    if output == "json":
        for w in warnings:
            warn(w)
    emit(output, doc, lambda: _text(run, opts, warnings))
    return int(run.exit_code)


def _progress(outcome: PodOutcome, done: int, total: int) -> None:
    info(f"[{done}/{total}] {outcome.namespace}/{outcome.name}: {_state(outcome)}")


def _state(outcome: PodOutcome) -> str:
    """One line: what became of the pod."""
    took = f" ({outcome.seconds:g} s)" if outcome.seconds is not None else ""
    if outcome.error is not None or outcome.result is None:
        return f"{outcome.error or 'not captured'}; exit {int(outcome.exit_code)}{took}"
    result = outcome.result
    parts = [f"capture {outcome.outcome}"]
    if result.quarantine is not None:
        parts.append("quarantined")
    if result.replace is not None:
        parts.append(f"replace {result.replace.strategy}")
    if result.requested_action and not result.gate_open:
        parts.append("not acted on")
    code = int(outcome.exit_code)
    return ", ".join(parts) + (f"; exit {code}" if code else "") + took


def _document(run: PodsCaptureResult, store: Store, opts: PodCaptureOptions) -> dict[str, Any]:
    index: dict[str, Any] | None
    if run.dry_run:
        index = {
            "location": None,
            "would_be": f"{getattr(store, 'uri', '')}: case {opts.case_id}, "
            f"{index_name(run.index_id)}",
        }
    else:
        index = run.index.describe() if run.index is not None else {"error": run.index_error}
    return {
        "selection": run.selection.describe(),
        "case_id": run.case_id,
        "dry_run": run.dry_run,
        "parallel": run.parallel,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "interrupted": run.interrupted,
        "pods": [p.document() for p in run.pods],
        "collectors": run.collectors,
        "index": index,
        "exit_code": int(run.exit_code),
        "errors": run.reasons(),  # the one that decides the exit code last
    }


def _text(run: PodsCaptureResult, opts: PodCaptureOptions, warnings: list[str]) -> None:
    many_namespaces = len({p.namespace for p in run.pods}) > 1
    rows = []
    for p in run.pods:
        result = p.result
        quarantine = replace = "-"
        if run.dry_run and result is not None and p.error is None:
            quarantine = "dry-run" if opts.quarantine else "-"
            replace = "dry-run" if opts.replace else "-"
        elif result is not None:
            if result.quarantine is not None:
                q = result.quarantine
                quarantine = "verified" if q.verified else "applied" if q.policy_verified else "yes"
            elif opts.quarantine and result.requested_action and not result.gate_open:
                quarantine = "held"
            if result.replace is not None:
                r = result.replace
                replace = r.strategy + (f" -> {r.replacement}" if r.replacement and r.ready else "")
            elif opts.replace and result.requested_action and not result.gate_open:
                replace = "held"
        bundle = result.capture.stored.location if result and result.capture else "-"
        rows.append(
            (
                f"{p.namespace}/{p.name}" if many_namespaces else p.name,
                p.node or "-",
                "planned" if run.dry_run and p.error is None else p.outcome,
                quarantine,
                replace,
                int(p.exit_code),
                bundle,
            )
        )
    table(rows, ["pod", "node", "capture", "quarantine", "replace", "exit", "bundle"])
    if run.dry_run:
        click.echo(
            f"index:      (dry run) would be {index_name(run.index_id)} in case {run.case_id}"
        )
    elif run.index is not None:
        click.echo(f"index:      {run.index.location}")
        click.echo(f"digest:     sha256:{run.index.sha256}")
        click.echo(
            f"signature:  {run.index.signature} ({run.index.key_id})"
            if run.index.signature
            else "signature:  none (unsigned: no --signing-key or $IR_SIGNING_KEY)"
        )
    for w in warnings:
        warn(w)
    reasons = run.reasons()
    for reason in reasons[:-1]:
        click.echo(f"error:      {printable(reason)}")
    exit_line(int(run.exit_code), reasons[-1] if reasons else None)
