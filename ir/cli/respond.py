"""`ir quarantine pod`, `ir replace pod`, `ir release pod`: act on a suspect pod (every request
recorded; `--dry-run` prints them instead)."""

from __future__ import annotations

from typing import Any

import click

from ir.bundle.custody import operator_name
from ir.cli.kubeopts import (
    dry_run_option,
    kube_from,
    kube_options,
    probe_image_option,
    protected_option,
)
from ir.cli.output import emit, exit_line, info, output_option, warn
from ir.cluster.ops import Operator, check_namespace
from ir.cluster.record import record_actions
from ir.cluster.replace import replace_pod
from ir.cluster.resolve import resolve_pod
from ir.cluster.respond import quarantine_pod, release_pod
from ir.errors import ExitCode


def _operator(kube: Any, dry_run: bool) -> Operator:
    return Operator(kube, dry_run=dry_run, echo=info)


evidence_option = click.option(
    "--evidence",
    "evidence",
    metavar="BUNDLE",
    help="Bundle of this pod: the actions are appended to its custody log.",
)


@click.group("quarantine")
def quarantine() -> None:
    """Isolate a suspect with a deny-all NetworkPolicy."""


@quarantine.command("pod")
@click.argument("name")
@kube_options
@click.option("--reason", default="manual quarantine", show_default=True)
@click.option("--case", "case_id", default="adhoc")
@click.option("--operator", "actor", help="Who acts (default $IR_OPERATOR or the login name).")
@click.option(
    "--allow-egress-cidr",
    "allow",
    multiple=True,
    metavar="CIDR",
    help="Let the pod reach this CIDR (a forensics endpoint); repeatable.",
)
@click.option("--cordon", is_flag=True, help="Also cordon the pod's node.")
@probe_image_option
@evidence_option
@dry_run_option
@protected_option
@output_option
def quarantine_cmd(
    name: str,
    kubeconfig: str | None,
    kube_context: str | None,
    namespace: str | None,
    reason: str,
    case_id: str,
    actor: str | None,
    allow: tuple[str, ...],
    cordon: bool,
    probe_image: str | None,
    evidence: str | None,
    dry_run: bool,
    allow_protected_namespace: bool,
    output: str,
) -> None:
    """Label pod NAME with a quarantine id and create a NetworkPolicy that selects only that label and
    denies all ingress and egress; then check that it selects exactly that pod. Idempotent."""
    kube = kube_from(kubeconfig, kube_context, namespace)
    check_namespace(kube.namespace, allow_protected_namespace)
    op = _operator(kube, dry_run)
    target = resolve_pod(kube, kube.namespace, name)
    try:
        result = quarantine_pod(
            op,
            target,
            reason=reason,
            case_id=case_id,
            actor=operator_name(actor),
            allow_egress_cidrs=allow,
            cordon=cordon,
            allow_protected=allow_protected_namespace,
            bundle=evidence,
            probe_image=probe_image,
        )
    finally:
        record_actions(evidence, op, "quarantine")
    for w in result.warnings:
        warn(w)
    emit(
        output,
        {"quarantine": vars(result), "actions": [a.to_dict() for a in op.log]},
        lambda: click.echo(
            f"{'would quarantine' if dry_run else 'quarantined'} {kube.namespace}/{name}: policy {result.policy}"
            + (" (already in place)" if result.already else "")
            + f"; {result.enforcement}"
        ),
    )


@click.group("replace")
def replace() -> None:
    """Replace a suspect with a clean pod while keeping it for investigation."""


@replace.command("pod")
@click.argument("name")
@kube_options
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    help="Seconds to wait for the replacement to be ready.",
)
@click.option("--no-wait", is_flag=True, help="Do not wait for the replacement.")
@evidence_option
@dry_run_option
@protected_option
@output_option
def replace_cmd(
    name: str,
    kubeconfig: str | None,
    kube_context: str | None,
    namespace: str | None,
    timeout: float,
    no_wait: bool,
    evidence: str | None,
    dry_run: bool,
    allow_protected_namespace: bool,
    output: str,
) -> int:
    """Take pod NAME out of its controller's selector (original labels saved in an annotation): the
    controller creates a clean replacement and Services stop sending the suspect traffic.
    ReplicaSet/Deployment, DaemonSet, Job: released; bare pod: cloned; StatefulSet: not possible."""
    kube = kube_from(kubeconfig, kube_context, namespace)
    check_namespace(kube.namespace, allow_protected_namespace)
    op = _operator(kube, dry_run)
    target = resolve_pod(kube, kube.namespace, name)
    try:
        result = replace_pod(
            op, target, timeout=timeout, wait=not no_wait, allow_protected=allow_protected_namespace
        )
    finally:
        record_actions(evidence, op, "replace")
    for note in result.notes:
        info(note)
    emit(
        output,
        {"replace": vars(result), "actions": [a.to_dict() for a in op.log]},
        lambda: click.echo(
            f"replace {kube.namespace}/{name}: {result.strategy}"
            + (
                f", replacement {result.replacement} ready after {result.waited_seconds}s"
                if result.ready
                else ""
            )
        ),
    )
    cause = None
    if result.strategy == "not-possible":
        cause = "replace: not possible (" + "; ".join(result.notes or [result.strategy]) + ")"
    elif not (result.ready or no_wait or dry_run or result.strategy == "already"):
        cause = f"replace: no ready replacement within {timeout:g} s; the suspect stays as it is"
    if cause is None:
        return 0
    if output == "text":
        exit_line(ExitCode.CLUSTER, cause)
    return int(ExitCode.CLUSTER)


@click.group("release")
def release() -> None:
    """End a quarantine."""


@release.command("pod")
@click.argument("name")
@kube_options
@click.option("--delete", is_flag=True, help="Delete the suspect pod (needs --evidence).")
@click.option("--uncordon", is_flag=True, help="Uncordon the pod's node.")
@evidence_option
@click.option(
    "--trust",
    "trust_source",
    metavar="FILE|DIR",
    help="Trusted signing key(s) for --evidence (also $IR_TRUST, $IR_VERIFY_KEY): --delete needs "
    "a complete capture of this very pod (UID, node), signed by one of them.",
)
@dry_run_option
@protected_option
@output_option
def release_cmd(
    name: str,
    kubeconfig: str | None,
    kube_context: str | None,
    namespace: str | None,
    delete: bool,
    uncordon: bool,
    evidence: str | None,
    trust_source: str | None,
    dry_run: bool,
    allow_protected_namespace: bool,
    output: str,
) -> None:
    """Remove the quarantine policy and label of pod NAME; with --delete, delete the pod once its
    evidence (--evidence BUNDLE, verified first) is stored."""
    kube = kube_from(kubeconfig, kube_context, namespace)
    check_namespace(kube.namespace, allow_protected_namespace)
    op = _operator(kube, dry_run)
    if delete and evidence:
        from ir.bundle.trust import load_trust
        from ir.cluster.record import check_evidence_for

        check_evidence_for(
            kube,
            evidence,
            kube.namespace,
            name,
            load_trust([trust_source] if trust_source else []),
        )
    try:
        result = release_pod(
            op,
            kube.namespace,
            name,
            delete=delete,
            evidence=evidence,
            uncordon=uncordon,
            allow_protected=allow_protected_namespace,
        )
    finally:
        record_actions(evidence, op, "release")
    emit(
        output,
        {"release": vars(result), "actions": [a.to_dict() for a in op.log]},
        lambda: click.echo(
            f"released {kube.namespace}/{name}: policy deleted={result.policy_deleted} labels removed="
            f"{result.labels_removed} pod deleted={result.pod_deleted}"
        ),
    )


COMMANDS = [quarantine, replace, release]
