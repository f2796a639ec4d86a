"""`ir serve`: the webhook receiver for Falco/Falcosidekick, Alertmanager and GuardDuty alerts
that runs playbooks. Secrets come from files or the environment, never from the command line.
Transport: HTTPS (rotated certificates reloaded), a separate plain-HTTP metrics listener, and
replay protection that survives a restart (docs/serve-transport.md)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click

from ir.bundle.signing import ENV_SIGNING_KEY
from ir.cli.kubeopts import (
    acting_as,
    as_option,
    cluster_name_option,
    collector_options,
    collector_settings,
)
from ir.cli.output import exit_line, info, warn
from ir.cli.playbook import make_actions, playbook_paths
from ir.errors import ClusterError, ExitCode, UsageError
from ir.playbook.actions import DryRunActions, ResponseActions
from ir.playbook.audit import AuditLog
from ir.playbook.k8snames import PROTECTED_NAMESPACES
from ir.playbook.loader import load_playbooks_strict
from ir.playbook.runstate import RunStore, RunStoreError
from ir.serve.config import ServeConfig, is_loopback
from ir.serve.memoryruns import MemoryRuns
from ir.serve.server import AlertServer
from ir.serve.tls import TlsFiles

ENV_TOKEN = "IR_SERVE_TOKEN"
DEFAULT_IMAGE = "ghcr.io/ir-project/ir:0.1.0"
ENV_HMAC = "IR_SERVE_HMAC_SECRET"
ENV_TLS_CERT = "IR_SERVE_TLS_CERT"
ENV_TLS_KEY = "IR_SERVE_TLS_KEY"
ENV_REPLAY_STATE = "IR_SERVE_REPLAY_STATE"


def _read_lines(path: str | None) -> list[str]:
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _listen(value: str, option: str = "--listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(
            f"{option} {value!r}: expected HOST:PORT (e.g. 127.0.0.1:8080 or [::]:8080)"
        )
    return host.strip("[]") or "0.0.0.0", int(port)


def _tls_pair(
    cert: str | None, key: str | None, directory: str | None
) -> tuple[str | None, str | None]:
    if not directory:
        return cert, key
    if cert or key:
        raise UsageError(
            f"give --tls-dir or --tls-cert/--tls-key (${ENV_TLS_CERT}/${ENV_TLS_KEY}), not both"
        )
    files = TlsFiles.in_dir(directory)
    return str(files.cert), str(files.key)


@click.command("serve")
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Address for alerts. A non-loopback address needs TLS (--tls-cert and --tls-key, or "
    "--tls-dir) or --allow-insecure-http.",
)
@click.option(
    "--playbooks",
    "playbook_dirs",
    multiple=True,
    metavar="PATH",
    help="Playbook file or directory (repeatable); default $IR_PLAYBOOKS or ./playbooks.",
)
@click.option(
    "--token-file",
    metavar="FILE",
    help=f"Bearer tokens, one per line (rotation: list old and new). Also ${ENV_TOKEN}.",
)
@click.option(
    "--hmac-secret-file",
    metavar="FILE",
    help=f"HMAC-SHA256 secrets, one per line, for X-Ir-Signature. Also ${ENV_HMAC}.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Accept unauthenticated alerts. Refused unless listening on a loopback address.",
)
@click.option(
    "--tls-cert",
    metavar="FILE",
    envvar=ENV_TLS_CERT,
    help=f"PEM certificate chain: serve HTTPS (TLS 1.2+); a changed file is loaded for new "
    f"connections. Also ${ENV_TLS_CERT}.",
)
@click.option(
    "--tls-key",
    metavar="FILE",
    envvar=ENV_TLS_KEY,
    help=f"Its PEM private key. Also ${ENV_TLS_KEY}.",
)
@click.option(
    "--tls-dir",
    metavar="DIR",
    help="A mounted kubernetes.io/tls Secret: DIR/tls.crt and DIR/tls.key (rotation is picked up).",
)
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    help="Plain HTTP on a non-loopback --listen, when TLS ends before ir serve (a mesh sidecar).",
)
@click.option(
    "--metrics-listen",
    metavar="HOST:PORT",
    help="Serve /metrics, /healthz, /readyz here, plain HTTP and unauthenticated (0.0.0.0:9090 in "
    "a pod); /metrics on --listen then answers 404. Without it, /metrics needs the bearer token.",
)
@click.option(
    "--replay-state",
    metavar="FILE",
    envvar=ENV_REPLAY_STATE,
    help="Journal of used HMAC signatures, kept across restarts. Without it, a signed request "
    f"timestamped before the start is refused (403). Also ${ENV_REPLAY_STATE}.",
)
@click.option(
    "--actions",
    "actions_kind",
    type=click.Choice(["cluster", "dry-run"]),
    default="cluster",
    show_default=True,
    help="Who acts: the Kubernetes API (ir.cluster) or nobody (audit only).",
)
@click.option(
    "--dispatch",
    type=click.Choice(["inline", "jobs"]),
    default="inline",
    hidden=True,
    help="Kept for old deployments: captures of pods on other nodes always run in a node "
    "collector pod (--collector-image), whichever is given.",
)
@collector_options(DEFAULT_IMAGE)
@click.option("--store", default=None, metavar="URI", help="Where captures go (default $IR_STORE).")
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="kubeconfig (default: in-cluster or standard).",
)
@click.option("--context", "kube_context", default=None, metavar="NAME", help="kubeconfig context.")
@as_option
@cluster_name_option
@click.option(
    "--signing-key",
    metavar="KEY",
    help="Ed25519 key (PEM path or text) that signs every bundle and custody record; default "
    "$IR_SIGNING_KEY. Required with --actions cluster unless --allow-unsigned.",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Run without a signing key: bundles are intact but their origin cannot be proven.",
)
@click.option(
    "--audit-log",
    default="-",
    show_default=True,
    metavar="FILE",
    help="JSON Lines audit log; '-' is standard output.",
)
@click.option("--workers", default=4, show_default=True, help="Playbook runs in parallel.")
@click.option("--queue-size", default=1000, show_default=True, help="Runs waiting before 503s.")
@click.option(
    "--max-body", default=1024 * 1024, show_default=True, help="Largest request body, bytes."
)
@click.option(
    "--max-connections", default=256, show_default=True, help="Open connections before 503s."
)
@click.option(
    "--dedupe-window",
    default=600.0,
    show_default=True,
    help="Seconds in which the same alert, or the same playbook on the same target, runs once.",
)
@click.option(
    "--rate-limit", default=5, show_default=True, help="Runs per target per --rate-window (0: off)."
)
@click.option("--rate-window", default=60.0, show_default=True, help="Seconds.")
@click.option(
    "--hmac-tolerance", default=300.0, show_default=True, help="Seconds a signature stays valid."
)
@click.option(
    "--shutdown-grace",
    default=30.0,
    show_default=True,
    help="Seconds to finish queued/running work on SIGTERM; the rest is audited as abandoned.",
)
@click.option(
    "--protect-namespace",
    "protect",
    multiple=True,
    metavar="NS",
    help="Protect this namespace too (repeatable); always: "
    + ", ".join(PROTECTED_NAMESPACES)
    + ".",
)
@click.option(
    "--runs",
    "runs_kind",
    type=click.Choice(["cluster", "memory"]),
    default=None,
    help="Where accepted runs are recorded before the 202: 'cluster' (IrRun objects through the "
    "apiserver: they survive a crash, and every replica shares dedupe, rate limits and "
    "claims) or 'memory' (this process only: lost if it dies). Default: cluster with "
    "--actions cluster, memory with --actions dry-run.",
)
@click.option(
    "--runs-namespace",
    default="ir-system",
    show_default=True,
    metavar="NS",
    envvar="IR_RUNS_NAMESPACE",
    help="Namespace of the IrRun objects (ir serve's own identity writes them, not --as).",
)
@click.option(
    "--replica",
    default=None,
    metavar="NAME",
    envvar="IR_REPLICA",
    help="This replica's name (default: the host name, which is the pod's name in a pod). A "
    "restarted replica takes over its own unfinished runs at once; others wait for --run-lease.",
)
@click.option(
    "--run-lease",
    default=60.0,
    show_default=True,
    help="Seconds a claimed run stays with its worker without renewal before another may take "
    "it over (a killed replica's runs resume after this).",
)
@click.option(
    "--run-scan-interval",
    default=5.0,
    show_default=True,
    help="Seconds between scans of the run store for runs to take up.",
)
@click.option(
    "--run-ttl",
    default=7 * 86400.0,
    show_default=True,
    help="Seconds finished runs are kept in the store before they are deleted (the audit log "
    "is the long-term record).",
)
@click.option("--dry-run", is_flag=True, help="Run every playbook as a dry run (act on nothing).")
def serve(
    listen: str,
    playbook_dirs: tuple[str, ...],
    token_file: str | None,
    hmac_secret_file: str | None,
    insecure_no_auth: bool,
    tls_cert: str | None,
    tls_key: str | None,
    tls_dir: str | None,
    allow_insecure_http: bool,
    metrics_listen: str | None,
    replay_state: str | None,
    actions_kind: str,
    dispatch: str,
    collector_image: str,
    collector_namespace: str,
    collector_upload: str,
    collector_service_account: str,
    collector_secret: str,
    store: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
    cluster_name: str | None,
    signing_key: str | None,
    allow_unsigned: bool,
    audit_log: str,
    workers: int,
    queue_size: int,
    max_body: int,
    max_connections: int,
    dedupe_window: float,
    rate_limit: int,
    rate_window: float,
    hmac_tolerance: float,
    shutdown_grace: float,
    protect: tuple[str, ...],
    runs_kind: str | None,
    runs_namespace: str,
    replica: str | None,
    run_lease: float,
    run_scan_interval: float,
    run_ttl: float,
    dry_run: bool,
) -> int:
    """Receive alerts over HTTPS (or HTTP on loopback) and run the playbooks they trigger.

    \b
    POST /v1/alerts                (source detected)
    POST /v1/alerts/falco          (Falco http_output, Falcosidekick webhook)
    POST /v1/alerts/alertmanager   (webhook_config, payload version 4)
    POST /v1/alerts/guardduty      (EventBridge API destination, or a bare finding)
    GET  /healthz  /readyz         (no credentials: probes)
    GET  /metrics                  (bearer token; anonymous on --metrics-listen only)

    Authentication: `Authorization: Bearer <token>` or `X-Ir-Timestamp` + `X-Ir-Signature:
    sha256=<hex HMAC of "<timestamp>." + body>`, each signature accepted once. SIGTERM drains
    gracefully. Unsafe settings are refused at start with exit code 2.

    \b
    Durable runs (--runs cluster, the default with --actions cluster): an alert is answered
    202 only once its run is recorded as an IrRun object (kubectl get irruns -n ir-system);
    a replica or restart takes up runs a dead process left, resuming at the step it was in."""
    host, port = _listen(listen)
    tls_cert, tls_key = _tls_pair(tls_cert, tls_key, tls_dir)
    tokens = _read_lines(token_file) + (
        [os.environ[ENV_TOKEN]] if os.environ.get(ENV_TOKEN) else []
    )
    secrets = [s.encode() for s in _read_lines(hmac_secret_file)]
    if os.environ.get(ENV_HMAC):
        secrets.append(os.environ[ENV_HMAC].encode())
    config = ServeConfig(
        host=host,
        port=port,
        tokens=tuple(tokens),
        hmac_secrets=tuple(secrets),
        allow_unauthenticated=insecure_no_auth,
        tls_cert=tls_cert,
        tls_key=tls_key,
        allow_insecure_http=allow_insecure_http,
        metrics_listen=_listen(metrics_listen, "--metrics-listen") if metrics_listen else None,
        replay_state=replay_state,
        hmac_tolerance=hmac_tolerance,
        max_body=max_body,
        max_connections=max_connections,
        queue_size=queue_size,
        workers=workers,
        dedupe_window=dedupe_window,
        rate_limit=rate_limit,
        rate_window=rate_window,
        shutdown_grace=shutdown_grace,
        protected_namespaces=tuple(PROTECTED_NAMESPACES) + protect,
        cluster_name=cluster_name,
        run_lease=run_lease,
        run_scan_interval=run_scan_interval,
        run_ttl=run_ttl,
        replica=replica or socket.gethostname(),
    )
    config.validate()
    if insecure_no_auth:
        warn("accepting unauthenticated alerts on a loopback address (--insecure-no-auth)")
    if not tls_cert and not is_loopback(host):
        warn(f"--allow-insecure-http: alerts and credentials reach {host} unencrypted")
    if actions_kind == "cluster" and not (signing_key or os.environ.get(ENV_SIGNING_KEY)):
        if not allow_unsigned:
            raise UsageError(
                "ir serve signs the bundles it captures: give --signing-key or $IR_SIGNING_KEY "
                "(deploy: the Secret ir-signing), or --allow-unsigned to run without"
            )
        warn("--allow-unsigned: captured bundles are not signed; their origin cannot be proven")
    if actions_kind == "cluster" and not acting_as():
        warn(
            "acting with the credentials' own rights: the shipped admission policies bound ir's "
            "service accounts (deploy: --as system:serviceaccount:ir-system:ir-responder)"
        )
    playbooks = load_playbooks_strict(playbook_paths(playbook_dirs))
    actions: ResponseActions = make_actions(
        actions_kind,
        store=store,
        kubeconfig=kubeconfig,
        context=kube_context,
        signing_key=signing_key,
        echo=info,
        collector=collector_settings(
            collector_image,
            collector_namespace,
            collector_upload,
            collector_service_account,
            collector_secret,
        ),
    )
    if dispatch == "jobs":
        warn(
            "--dispatch jobs is no longer needed: captures of pods on other nodes run in a node "
            "collector pod (--collector-image) either way"
        )
    kube = getattr(actions, "kube", None)
    if kube is not None:  # a step rides out an apiserver restart (within half the run lease)
        kube.outage_wait = run_lease / 2
    runs = _run_store(
        runs_kind or ("cluster" if actions_kind == "cluster" else "memory"),
        kubeconfig,
        kube_context,
        runs_namespace,
        queue_size,
    )
    audit = (
        AuditLog(stream=click.get_text_stream("stdout"))
        if audit_log == "-"
        else AuditLog(audit_log)
    )
    server = AlertServer(
        config,
        playbooks,
        actions,
        audit=audit,
        # dry runs (--dry-run, or a playbook's dry_run: true) go through the same implementation
        # with context.dry_run set: ClusterActions then reports the exact requests it would make
        dry_run_actions=actions if actions_kind == "cluster" else DryRunActions(),
        dry_run=dry_run or actions_kind == "dry-run",
        runs=runs,
    )
    server.start()
    info(
        f"ir serve: listening on {server.url} with {len(playbooks)} playbook(s), "
        f"{workers} worker(s), actions {actions_kind}"
        + (" (dry run)" if dry_run else "")
        + f", node collector {collector_image or 'none'}, runs in {runs.where}"
        + (f", metrics on {server.metrics_url}" if server.metrics_url else "")
    )
    if not runs.durable:
        warn(
            "runs are kept in this process's memory (--runs memory): an accepted alert whose run "
            "has not finished is lost if it dies, and dedupe holds within this process only"
        )
    report = server.run_until_signal()
    audit.close()
    if runs.durable:
        info(
            f"ir serve: stopped: {report['completed']} run(s) completed; {report['left']} not "
            f"started and {report['interrupted']} interrupted stay recorded in {runs.where} for "
            "the next process or another replica"
        )
        return int(ExitCode.OK)
    info(
        f"ir serve: stopped: {report['completed']} run(s) completed, {report['abandoned']} abandoned, "
        f"{report['interrupted']} interrupted"
    )
    if report["abandoned"] or report["interrupted"]:
        exit_line(
            ExitCode.FAILED,
            f"{report['abandoned']} run(s) abandoned and {report['interrupted']} interrupted at "
            "shutdown (the audit log lists them)",
        )
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def _run_store(
    kind: str, kubeconfig: str | None, context: str | None, namespace: str, max_open: int
) -> RunStore:
    """The run store `--runs` names; with cluster, checked now (CRD, namespace, RBAC) so a
    missing piece is a clear error at start, not a 503 on the first alert."""
    if kind == "memory":
        return MemoryRuns(max_open=max_open)
    from ir.cluster.kube import connect
    from ir.cluster.runs import KubeRuns

    # ir serve's own identity (never --as): the responder has no rights on run objects
    store = KubeRuns(connect(kubeconfig, context), namespace, max_open=max_open)
    try:
        store.check()
    except RunStoreError as exc:
        raise ClusterError(str(exc)) from None
    return store


COMMANDS = [serve]
