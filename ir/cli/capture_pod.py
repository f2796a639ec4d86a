"""`ir capture pod`: capture a suspect pod, then quarantine and replace it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ir.bundle.signing import load_signer
from ir.cli.capture import capture
from ir.cli.kubeopts import (
    collector_options,
    collector_settings,
    dry_run_option,
    kube_from,
    kube_options,
    probe_image_option,
    protected_option,
)
from ir.cli.output import emit, exit_line, info, output_option, printable, table, warn
from ir.cli.transfer import open_capture_store, s3_capture_options
from ir.cluster.capture import PodCaptureOptions, capture_pod
from ir.collect.registry import CONTAINER_COLLECTORS
from ir.errors import UsageError


@capture.command("pod")
@click.argument("name")
@kube_options
@click.option("--case", "case_id", default=None, help="Case id (default: adhoc-<UTC date>).")
@click.option("--reason", help="Why this pod is captured (goes into the manifest and annotations).")
@click.option("--operator", help="Who captures (default $IR_OPERATOR or the login name).")
@click.option(
    "--store",
    "store_uri",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Evidence store (default $IR_STORE or ./evidence).",
)
@click.option(
    "--quarantine/--no-quarantine",
    default=True,
    show_default=True,
    help="Isolate the pod with a deny-all NetworkPolicy.",
)
@click.option(
    "--replace/--no-replace",
    default=True,
    show_default=True,
    help="Take the pod out of its controller so a clean one replaces it.",
)
@click.option("--cordon", is_flag=True, help="Also cordon the pod's node.")
@probe_image_option
@click.option("--force", is_flag=True, help="Act on the pod even if the capture failed (recorded).")
@click.option(
    "--replace-timeout",
    default=120.0,
    show_default=True,
    help="Seconds to wait for the replacement.",
)
@click.option(
    "--allow-egress-cidr",
    "allow",
    multiple=True,
    metavar="CIDR",
    help="Egress the quarantine still allows.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "docker", "node"]),
    default="auto",
    show_default=True,
    help="How to reach the containers: the node's Docker API, or /proc + overlay on the node.",
)
@click.option(
    "--docker-host", metavar="URL", help="Docker API of the pod's node (default $DOCKER_HOST)."
)
@click.option(
    "--node-root",
    metavar="DIR",
    envvar="IR_NODE_ROOT",
    default="/",
    show_default=True,
    help="Where the pod's node's filesystem is visible when ir runs on that node (containerd and "
    "CRI-O task state, kubelet logs, overlay layers): / on the node itself, the host mount of a "
    "collector pod. Env: IR_NODE_ROOT.",
)
@collector_options()
@click.option(
    "--max-file-size",
    type=int,
    default=None,
    help="Largest changed file whose content is captured (bytes).",
)
@click.option(
    "--max-diff-size", type=int, default=None, help="Total content bytes captured per container."
)
@click.option(
    "--include-env", is_flag=True, help="Capture process environments (redacted values by default)."
)
@click.option(
    "--checkpoint",
    is_flag=True,
    help="Also ask the kubelet for a CRIU checkpoint of each running container (ContainerCheckpoint feature).",
)
@click.option(
    "--alert",
    "alert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Alert JSON to keep in the bundle.",
)
@click.option(
    "--collectors",
    metavar="LIST",
    help="Comma-separated subset of: kubernetes (the pod's Kubernetes context), "
    + ", ".join(CONTAINER_COLLECTORS)
    + " (default all).",
)
@click.option(
    "--container",
    "only_container",
    metavar="NAME",
    help="Capture only this container of the pod (default: every container).",
)
@click.option(
    "--alert-json",
    hidden=True,
    metavar="JSON",
    help="The alert itself (ir in a node collector gets it this way).",
)
@click.option(
    "--signing-key",
    metavar="FILE",
    help="Ed25519 private key (default $IR_SIGNING_KEY); unsigned if none.",
)
@s3_capture_options
@dry_run_option
@protected_option
@output_option
def capture_pod_cmd(
    name: str,
    kubeconfig: str | None,
    kube_context: str | None,
    namespace: str | None,
    case_id: str | None,
    reason: str | None,
    operator: str | None,
    store_uri: str | None,
    quarantine: bool,
    replace: bool,
    cordon: bool,
    probe_image: str | None,
    force: bool,
    replace_timeout: float,
    allow: tuple[str, ...],
    backend: str,
    docker_host: str | None,
    node_root: str,
    collector_image: str | None,
    collector_namespace: str,
    collector_upload: str,
    collector_service_account: str,
    collector_secret: str,
    max_file_size: int | None,
    max_diff_size: int | None,
    include_env: bool,
    checkpoint: bool,
    alert_file: Path | None,
    collectors: str | None,
    only_container: str | None,
    alert_json: str | None,
    signing_key: str | None,
    dry_run: bool,
    allow_protected_namespace: bool,
    output: str,
    **s3: Any,
) -> int:
    """Capture pod NAME (Kubernetes context + every container), seal and store the bundle, then
    quarantine it (deny-all NetworkPolicy) and replace it (the controller starts a clean pod).

    Nothing on the cluster changes unless the capture succeeded (--force overrides, recorded).
    With --dry-run nothing is captured or changed: the API requests are printed."""
    from ir.clock import utcnow

    kube = kube_from(kubeconfig, kube_context, namespace)
    store = open_capture_store(store_uri, s3)
    alert: dict[str, Any] | None = None
    if alert_file is not None:
        try:
            alert = json.loads(alert_file.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read alert {alert_file}: {exc}") from None
    elif alert_json is not None:
        try:
            alert = json.loads(alert_json)
        except ValueError as exc:
            raise UsageError(f"--alert-json: not JSON: {exc}") from None
    container_options = {
        k: v
        for k, v in {
            "max_file_size": max_file_size,
            "max_diff_size": max_diff_size,
            "include_env": include_env,
        }.items()
        if v is not None
    }
    opts = PodCaptureOptions(
        case_id=case_id or f"adhoc-{utcnow():%Y%m%d}",
        reason=reason,
        operator=operator,
        quarantine=quarantine,
        replace=replace,
        cordon=cordon,
        force=force,
        dry_run=dry_run,
        allow_protected=allow_protected_namespace,
        replace_timeout=replace_timeout,
        allow_egress_cidrs=allow,
        container_options=container_options,
        backend=backend,
        docker_host=docker_host,
        node_root=node_root,
        collector=collector_settings(
            collector_image,
            collector_namespace,
            collector_upload,
            collector_service_account,
            collector_secret,
        ),
        signer=load_signer(signing_key),
        alert=alert,
        checkpoint=checkpoint,
        probe_image=probe_image,
        collectors=tuple(n.strip() for n in (collectors or "").split(",") if n.strip()),
        only_container=only_container,
    )
    result = capture_pod(kube, store, kube.namespace, name, opts, echo=info)
    doc = {
        "target": result.target.describe(),
        "bundle": None
        if result.capture is None
        else {
            "location": result.capture.stored.location,
            "root_digest": result.capture.sealed.root_digest,
            "outcome": result.capture.sealed.manifest.outcome,
            "stored": result.capture.stored.confirmed,
            "spooled": result.capture.stored.spooled,
        },
        "gate": {"open": result.gate_open, "reason": result.gate_reason},
        "quarantine": None if result.quarantine is None else vars(result.quarantine),
        "replace": None if result.replace is None else vars(result.replace),
        "actions": result.actions,
        "exit_code": int(result.exit_code),
        "errors": result.reasons(),  # the one that decides the exit code last
    }
    warnings = list(result.quarantine.warnings) if result.quarantine else []
    if output == "json":
        for w in warnings:
            warn(w)

    def text() -> None:
        if result.capture is not None:
            m = result.capture.sealed.manifest
            click.echo(f"bundle:     {result.capture.stored.location}")
            click.echo(f"digest:     sha256:{result.capture.sealed.root_digest}")
            click.echo(f"outcome:    {m.outcome}")
            table(
                [
                    (c.name, c.container or "-", c.status, printable(c.error or ""))
                    for c in m.collectors
                ],
                ["collector", "container", "status", "error"],
            )
        if result.quarantine:
            click.echo(
                f"quarantine: policy {result.quarantine.policy}; {result.quarantine.enforcement}"
            )
        if result.replace:
            r = result.replace
            if r.ready:
                progress = f"; replacement {r.replacement} ready after {r.waited_seconds}s"
            elif result.replace_timed_out:
                progress = f"; NOT ready after {r.waited_seconds}s"
            else:
                progress = ""
            click.echo(f"replace:    {r.strategy}{progress}")
            for note in r.notes:
                click.echo(f"            {note}")
        for w in warnings:  # after the details
            warn(w)
        reasons = result.reasons()
        for reason in reasons[:-1]:
            click.echo(f"error:      {printable(reason)}")
        exit_line(int(result.exit_code), reasons[-1] if reasons else None)  # the last line

    emit(output, doc, text)
    return int(result.exit_code)


COMMANDS: list[Any] = []
