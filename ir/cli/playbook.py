"""`ir playbook`: validate playbooks, show which fire on an alert and why, run one (or rehearse it
with --dry-run, which prints every API request it would make)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ir.bundle.custody import operator_name
from ir.bundle.signing import load_signer
from ir.cli.kubeopts import as_option, cluster_name_option, collector_options, collector_settings
from ir.cli.output import emit, exit_line, info, output_option, printable, table, warn
from ir.errors import ClusterError, ExitCode, UsageError
from ir.playbook.actions import DryRunActions, ResponseActions
from ir.playbook.alerts import load_alert_file, source_names
from ir.playbook.audit import AuditLog
from ir.playbook.engine import Engine, RunResult
from ir.playbook.k8snames import PROTECTED_NAMESPACES
from ir.playbook.loader import (
    PlaybookError,
    check_playbook_text,
    load_playbooks,
    load_playbooks_strict,
    playbook_files,
)
from ir.playbook.match import match_alert, select
from ir.playbook.spec import Playbook

DEFAULT_PLAYBOOKS = "playbooks"
ENV_PLAYBOOKS = "IR_PLAYBOOKS"

playbooks_option = click.option(
    "--playbooks",
    "playbook_dirs",
    multiple=True,
    metavar="PATH",
    help=f"Playbook file or directory (repeatable); default ${ENV_PLAYBOOKS} or ./{DEFAULT_PLAYBOOKS}.",
)
alert_option = click.option(
    "--alert",
    "alert_file",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Alert JSON (Falco, Alertmanager, GuardDuty).",
)
source_option = click.option(
    "--source",
    type=click.Choice(source_names()),
    default=None,
    help="Alert source (default: detected from the content).",
)
protect_option = click.option(
    "--protect-namespace",
    "protect",
    multiple=True,
    metavar="NS",
    help="Protect this namespace too (repeatable); always protected: "
    + ", ".join(PROTECTED_NAMESPACES)
    + ".",
)


def playbook_paths(given: tuple[str, ...]) -> list[str]:
    if given:
        return list(given)
    return [p for p in os.environ.get(ENV_PLAYBOOKS, DEFAULT_PLAYBOOKS).split(os.pathsep) if p]


def make_actions(
    kind: str,
    *,
    store: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    signing_key: str | None = None,
    echo: Callable[[str], None] | None = None,
    collector: Any = None,
) -> ResponseActions:
    """The ResponseActions for `--actions cluster|dry-run`. `cluster` imports ir.cluster only
    now (ClusterActions over the standard kubeconfig/in-cluster credentials) and fails with a
    clear message when it is not available."""
    if kind == "dry-run":
        return DryRunActions(echo=echo)
    try:
        from ir.cli.kubeopts import acting_as
        from ir.cluster.actions import ClusterActions
        from ir.cluster.kube import connect
    except ImportError as exc:
        raise ClusterError(
            f"--actions cluster needs ir.cluster.actions.ClusterActions, which is not "
            f"available ({exc}); use --actions dry-run to rehearse"
        ) from None
    return ClusterActions(
        connect(kubeconfig, context, act_as=acting_as()),
        store_uri=store,
        signer=load_signer(signing_key),  # type: ignore[arg-type]  # key_id: property vs attribute
        echo=echo,
        collector=collector,
    )


@click.group("playbook")
def playbook() -> None:
    """Response playbooks: validate, match alerts to playbooks, run one."""


@playbook.command("validate")
@click.argument("paths", nargs=-1, metavar="[PATHS]...")
@output_option
def validate(paths: tuple[str, ...], output: str) -> int:
    """Check playbooks (files or directories of *.yaml) against the schema. Every problem is
    reported as FILE:LINE:COLUMN: where: what. Exit 0: all valid; 2: problems found."""
    chosen = playbook_paths(paths)
    files = playbook_files(chosen)
    if not files:
        raise UsageError("no playbook files in " + ", ".join(chosen))
    playbooks, problems = load_playbooks(chosen)
    document = {
        "valid": not problems,
        "files": [str(f) for f in files],
        "playbooks": [p.summary() for p in playbooks],
        "problems": [p.to_dict() for p in problems],
    }

    def render() -> None:
        for p in playbooks:
            click.echo(
                f"ok      {p.path}: {p.name} ({len(p.steps)} steps"
                + (", dry-run" if p.dry_run else "")
                + ")"
            )
        for problem in problems:
            click.echo(f"error   {printable(str(problem))}")
        click.echo(f"{len(playbooks)} valid, {len(problems)} problem(s) in {len(files)} file(s)")

    emit(output, document, render)
    return int(ExitCode.USAGE if problems else ExitCode.OK)


@playbook.command("match")
@alert_option
@source_option
@playbooks_option
@protect_option
@output_option
def match(
    alert_file: str,
    source: str | None,
    playbook_dirs: tuple[str, ...],
    protect: tuple[str, ...],
    output: str,
) -> int:
    """Show which playbooks fire on an alert and why (and why the others do not). The first match
    in playbook order is the one `ir serve` runs. Exit 0."""
    playbooks = load_playbooks_strict(playbook_paths(playbook_dirs))
    protected = tuple(PROTECTED_NAMESPACES) + protect
    alerts = load_alert_file(alert_file, source)
    documents: list[dict[str, Any]] = []
    for alert in alerts:
        results = match_alert(playbooks, alert, protected)
        chosen = select(results)
        documents.append(
            {
                "alert": alert.summary_dict(),
                "notes": list(alert.notes),
                "selected": chosen.playbook.name if chosen else None,
                "playbooks": [r.to_dict() for r in results],
            }
        )

    def render() -> None:
        for doc, alert in zip(documents, alerts, strict=True):
            click.echo(
                f"alert {printable(alert.source)}: {printable(alert.rule)} [{alert.priority or '?'}] "
                f"{alert.status}, id {printable(alert.alert_id)}"
            )
            for note in alert.notes:
                click.echo(f"  note: {printable(note)}")
            rows = []
            for r in doc["playbooks"]:
                mark = "RUNS" if r["playbook"] == doc["selected"] else r["decision"]
                rows.append([r["playbook"], mark, "; ".join(r["reasons"])])
            table(rows, ["PLAYBOOK", "DECISION", "WHY"])
            click.echo("")

    emit(output, {"alerts": documents}, render)
    return int(ExitCode.OK)


def _find_playbook(name_or_path: str, paths: list[str]) -> Playbook:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
        book, problems = check_playbook_text(text, str(candidate))
        if book is None:
            raise PlaybookError(problems)
        return book
    playbooks = load_playbooks_strict(paths)
    for book in playbooks:
        if book.name == name_or_path:
            return book
    raise UsageError(
        f"no playbook named {name_or_path!r} in {', '.join(paths)} "
        f"(known: {', '.join(p.name for p in playbooks)})"
    )


@playbook.command("run")
@click.argument("name", metavar="PLAYBOOK")
@alert_option
@source_option
@playbooks_option
@protect_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="Act on nothing; print every API request that would be made (offline: --actions dry-run).",
)
@click.option(
    "--actions",
    "actions_kind",
    type=click.Choice(["cluster", "dry-run"]),
    default="cluster",
    show_default=True,
    help="Who acts: the Kubernetes API (ir.cluster) or nobody.",
)
@click.option("--store", default=None, metavar="URI", help="Where captures go (default $IR_STORE).")
@click.option(
    "--kubeconfig", default=None, metavar="FILE", help="kubeconfig (default the standard lookup)."
)
@click.option("--context", "kube_context", default=None, metavar="NAME", help="kubeconfig context.")
@as_option
@cluster_name_option
@click.option(
    "--signing-key",
    metavar="KEY",
    help="Ed25519 key (PEM path) to sign bundles; default $IR_SIGNING_KEY.",
)
@click.option(
    "--audit-log", default=None, metavar="FILE", help="Append the audit records (JSON Lines) here."
)
@click.option(
    "--operator",
    default=None,
    help="Who runs this (recorded); default $IR_OPERATOR or the login name.",
)
@collector_options()
@output_option
def run(
    name: str,
    alert_file: str,
    source: str | None,
    playbook_dirs: tuple[str, ...],
    protect: tuple[str, ...],
    dry_run: bool,
    actions_kind: str,
    store: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
    cluster_name: str | None,
    signing_key: str | None,
    audit_log: str | None,
    operator: str | None,
    output: str,
    **collector: Any,
) -> int:
    """Run PLAYBOOK (a name, or a path to a .yaml file) on each firing alert in the alert file.
    The playbook must match the alert; its target is validated first.

    Exit 0: every step ok (or dry run); 1: a step failed or was partial; 5: refused (playbook
    does not match, target invalid or protected, capture gate closed)."""
    book = _find_playbook(name, playbook_paths(playbook_dirs))
    alerts = [a for a in load_alert_file(alert_file, source) if a.status == "firing"]
    if not alerts:
        raise UsageError(f"{alert_file}: no firing alert (resolved alerts never run playbooks)")
    dry = dry_run or actions_kind == "dry-run" or book.dry_run
    # A dry run with --actions cluster asks the cluster what it would do (exact requests, read
    # from the live objects); --actions dry-run rehearses offline.
    actions = make_actions(
        actions_kind,
        store=store,
        kubeconfig=kubeconfig,
        context=kube_context,
        signing_key=signing_key,
        echo=info,
        collector=collector_settings(**collector),
    )
    audit = AuditLog(audit_log) if audit_log else AuditLog()
    engine = Engine(
        actions,
        dry_run_actions=actions,
        audit=audit,
        operator=operator_name(operator),
        protected_namespaces=tuple(PROTECTED_NAMESPACES) + protect,
        dry_run=dry,
        cluster_name=cluster_name,
    )
    results = [engine.run(book, alert) for alert in alerts]
    audit.close()

    def render() -> None:
        for result in results:
            _print_run(result)

    causes = [c for c in (_cause(r) for r in results) if c]
    emit(output, {"runs": [r.to_dict() for r in results], "errors": causes}, render)
    code = max((r.exit_code for r in results), key=_severity)
    if output == "text":
        exit_line(code, "; ".join(causes))
    return int(code)


def _cause(run: RunResult) -> str | None:
    """Why a run did not end ok, in one line: its refusal, or its steps that did not succeed."""
    if run.exit_code == ExitCode.OK:
        return None
    if run.reason:
        return f"{run.playbook}: {run.status}: {run.reason}"
    steps = [
        f"{s.step} {s.status} ({s.detail})"
        for s in run.steps
        if s.status in ("failed", "partial", "refused")
    ]
    return f"{run.playbook}: {run.status}: " + "; ".join(steps)


def _severity(code: ExitCode) -> int:
    return {ExitCode.OK: 0, ExitCode.FAILED: 1, ExitCode.REFUSED: 2}.get(code, 3)


def _print_run(result: RunResult) -> None:
    alert = result.alert
    head = "DRY RUN " if result.dry_run else ""
    click.echo(
        f"{head}playbook {result.playbook} on {printable(alert.source)}: {printable(alert.rule)} "
        f"(alert {printable(alert.alert_id)})"
    )
    if result.target is None:
        click.echo(f"  REFUSED: {printable(result.reason)}")
        return
    click.echo(f"  target {result.target.key}, case {result.case_id}, run {result.run_id}")
    for note in result.notes:
        warn(printable(note))
    for step in result.steps:
        click.echo(f"  [{step.status:>8}] {step.step}: {printable(step.detail)}")
        if step.bundle:
            click.echo(f"             bundle {printable(step.bundle)} {step.bundle_digest or ''}")
        for request in step.requests:
            click.echo(
                f"             {'would ' if result.dry_run else ''}{printable(str(request))}"
            )
    click.echo(f"  outcome: {result.status}")


COMMANDS = [playbook]
