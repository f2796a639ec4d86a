"""`ir capture pod`: capture a suspect pod, then quarantine and replace it; or every pod of a
label selector (-l) or of a workload (TYPE/NAME --all), each into its own bundle, with a signed
case index (ir.cluster.podset; its output is ir/cli/capture_pods.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ir.bundle.signing import load_signer
from ir.cli.capture import capture
from ir.cli.capture_pods import capture_many
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
from ir.cluster.nodecollectors import COLLECTOR_SLOTS
from ir.cluster.selection import Workload, parse_target, select_pods
from ir.collect.registry import CONTAINER_COLLECTORS
from ir.errors import UsageError


@capture.command("pod")
@click.argument("name", metavar="[NAME | TYPE/NAME]", required=False)
@kube_options
@click.option(
    "-l",
    "--selector",
    metavar="SELECTOR",
    help="Capture every pod this label selector matches (app=web, 'tier in (a,b)', !canary), "
    "each into its own bundle, as kubectl -l.",
)
@click.option(
    "--all",
    "all_pods",
    is_flag=True,
    help="With TYPE/NAME (deployment, statefulset, daemonset, replicaset, job; kubectl's short "
    "names too): capture every pod of that workload, as kubectl logs --all-pods (the pods its "
    "selector matches that it owns).",
)
@click.option(
    "-A",
    "--all-namespaces",
    is_flag=True,
    help="With -l: match pods in every namespace (protected ones are refused per pod when ir "
    "acts on the pods).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    metavar="N",
    help="With -l or --all: pods captured at once (pods on one node share one node collector, "
    f"which runs at most {COLLECTOR_SLOTS} captures at once).",
)
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
    name: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
    namespace: str | None,
    selector: str | None,
    all_pods: bool,
    all_namespaces: bool,
    parallel: int,
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
    With --dry-run nothing is captured or changed: the API requests are printed.

    Many pods: `-l SELECTOR`, or `TYPE/NAME --all` for every pod of a workload (deployment/web,
    sts/db, ds/agent, rs/web-7f9c, job/batch). Each pod gets its own bundle, exactly as one pod
    does; up to --parallel pods are captured at once, pods on one node through one node
    collector (started once, removed at the end); each pod is quarantined and replaced right
    after its own capture, only if that capture succeeded; a pod that fails is recorded and the
    others go on. Then a case index (JSON: what was selected, by whom, when, and per pod its
    bundle, root digest, outcome, quarantine and replacement, errors), signed with the bundles'
    key, is stored beside the bundles: `<case>/case-index-<id>.json` (+ `.sig`). Progress goes
    to stderr, one table line per pod to stdout (-o json: one document).

    \b
    Exit codes with many pods: 0 when every pod is complete (and acted on
    as asked); else the worst of the pods' own codes, in this order:
      70 internal error, 4 cluster (also: no pod matched), 5 refused (the
      safety gate, a protected namespace), 3 store (also: the case index
      not stored), 1 a capture not complete; 2 a bad selector or target;
      130 interrupted (the pods under way finish, the index is written)."""
    from ir.clock import utcnow

    single, workload = _target(name, selector, all_pods, all_namespaces)
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
    if single is None:
        return capture_many(
            kube,
            store,
            select_pods(
                kube,
                None if all_namespaces else kube.namespace,
                selector=selector,
                workload=workload,
            ),
            opts,
            parallel=parallel,
            output=output,
        )
    result = capture_pod(kube, store, kube.namespace, single, opts, echo=info)
    doc = result.document()
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


def _target(
    name: str | None, selector: str | None, all_pods: bool, all_namespaces: bool
) -> tuple[str | None, Workload | None]:
    """(one pod's name, None) or (None, the workload or None for -l), checked like kubectl."""
    if name and selector is not None:
        raise UsageError("give a pod NAME (or TYPE/NAME --all) or -l SELECTOR, not both")
    if all_namespaces and selector is None:
        raise UsageError("-A (every namespace) goes with -l SELECTOR")
    if selector is not None:
        if all_pods:
            raise UsageError("--all goes with TYPE/NAME; -l takes every pod it matches already")
        return None, None
    if not name:
        raise UsageError(
            "give a pod NAME, a workload TYPE/NAME with --all, or -l SELECTOR (see --help)"
        )
    target = parse_target(name)
    if isinstance(target, Workload):
        if not all_pods:
            raise UsageError(
                f"{name} is a workload, not a pod: add --all to capture every one of its pods "
                "(as kubectl logs --all-pods), or name one pod"
            )
        return None, target
    if all_pods:
        raise UsageError(
            f"--all takes the pods of a workload (e.g. deployment/{target}); {name} is one pod"
        )
    return target, None
