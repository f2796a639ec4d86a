"""`ir capture`: capture evidence from a container (`ir capture container`); pods live in
ir/cli/capture_pod.py and attach to the same group."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import click

from ir.bundle.signing import load_signer
from ir.cli.lazygroup import LazyGroup
from ir.cli.output import emit, exit_line, output_option, printable, table, warn
from ir.cli.transfer import open_capture_store, s3_capture_options
from ir.collect.container import CaptureOptions, capture_container
from ir.collect.registry import CONTAINER_COLLECTORS
from ir.collect.session import CaptureRequest, CaptureResult, CaptureSession
from ir.errors import Unsupported, UsageError
from ir.runtime import BACKENDS, open_container
from ir.runtime.resolve import open_cri_container

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`64M`, `1GiB`, `512k`, `1048576` -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"bad size {text!r} (e.g. 64M, 1G, 1048576)")
    factor = 1024 ** "_kmgt".index(m.group(2).lower() or "_")
    return int(float(m.group(1)) * factor)


class SizeParam(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


@click.group("capture", cls=LazyGroup, elsewhere={"pod": "capture_pod"})
def capture() -> None:
    """Capture evidence: a container (Docker API or node backend) or a pod."""


def store_options(fn: Any) -> Any:
    """The options every capture shares (store, case, reason, operator, signing)."""
    for option in reversed(
        [
            click.option(
                "--store",
                metavar="STORE",
                help="Local directory or s3://BUCKET/PREFIX (default $IR_STORE or ./evidence).",
            ),
            click.option(
                "--case",
                "case_id",
                metavar="ID",
                default="uncased",
                show_default=True,
                help="Case or incident id.",
            ),
            click.option(
                "--reason",
                metavar="TEXT",
                help="Why this capture is made (goes into the manifest).",
            ),
            click.option(
                "--operator",
                metavar="NAME",
                help="Who captures (default $IR_OPERATOR or the login name).",
            ),
            click.option(
                "--signing-key",
                metavar="KEY",
                help="Ed25519 private key (PEM path) to sign the manifest; default $IR_SIGNING_KEY.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@capture.command("container")
@click.argument("ref", metavar="[ID_OR_NAME]", required=False)
@store_options
@s3_capture_options
@click.option(
    "--collectors",
    metavar="LIST",
    help=f"Comma-separated subset of: {', '.join(CONTAINER_COLLECTORS)} (default all).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help="docker: Engine API; node: host /proc + overlay upperdir (root on the node); auto: node when usable.",
)
@click.option(
    "--docker-host", metavar="URL", help="Docker engine (default $DOCKER_HOST or the local socket)."
)
@click.option(
    "--pid",
    type=int,
    metavar="PID",
    help="Host pid of the container's init (node backend; any runtime).",
)
@click.option("--name", "name", metavar="NAME", help="Name for a container given only by --pid.")
@click.option(
    "--whole-node",
    is_flag=True,
    help="Capture the node itself, not a container (ir's node collector, hostPID): every "
    "process and the node's sockets, seen through its container runtime daemon; no files. "
    "Only with --collectors from metadata,processes,network.",
)
@click.option(
    "--root-walk",
    is_flag=True,
    help="With --pid, when the overlay upperdir is out of reach (ir inside the pod, e.g. an "
    "ephemeral debug container): list the files changed since the container started through "
    "/proc/PID/root instead. Not a diff (deletions unseen); the filesystem collector says partial.",
)
@click.option(
    "--node-root",
    metavar="DIR",
    envvar="IR_NODE_ROOT",
    default="/",
    show_default=True,
    help="For containerd://ID and cri-o://ID: where the node's filesystem is visible (its runtime "
    "task state, kubelet logs, overlay layers); the node collector pod mounts it at /host.",
)
@click.option(
    "--max-file-size",
    type=SizeParam(),
    default="64M",
    show_default=True,
    help="Largest file whose content is captured.",
)
@click.option(
    "--max-diff-size",
    type=SizeParam(),
    default="1G",
    show_default=True,
    help="Total file content captured per container.",
)
@click.option(
    "--include-env",
    is_flag=True,
    help="Keep environment values (default: names only, values redacted).",
)
@click.option(
    "--since",
    metavar="TIME",
    help="Logs since: RFC 3339, epoch seconds, or a duration ago (10m, 2h).",
)
@click.option(
    "--tail",
    type=click.IntRange(min=0),
    metavar="N",
    help="Only the last N log lines per instance.",
)
@click.option(
    "--allow-exec",
    is_flag=True,
    help="Allow read-only commands inside the container where nothing else works (recorded).",
)
@output_option
def container(
    ref: str | None,
    store: str | None,
    case_id: str,
    reason: str | None,
    operator: str | None,
    signing_key: str | None,
    collectors: str | None,
    backend: str,
    docker_host: str | None,
    pid: int | None,
    name: str | None,
    whole_node: bool,
    root_walk: bool,
    node_root: str,
    max_file_size: int,
    max_diff_size: int,
    include_env: bool,
    since: str | None,
    tail: int | None,
    allow_exec: bool,
    output: str,
    **s3: Any,
) -> int:
    """Capture one container into an evidence bundle: metadata, network, processes, filesystem
    diff (with contents) and logs. The container is not changed: nothing runs inside it unless
    --allow-exec.

    Exit 0: complete. 1: partial (a collector failed or the container exited; see the summary).
    3: store failed. 4: the engine is unreachable."""
    options = CaptureOptions(
        max_file_size=max_file_size,
        max_diff_size=max_diff_size,
        include_env=include_env,
        since=since,
        tail=tail,
        allow_exec=allow_exec,
    )
    if since:
        options.since_epoch()  # bad times fail before anything is captured
    names = [n for n in (collectors or "").split(",") if n.strip()] or None
    if whole_node and not set(names or ["all"]) <= {"metadata", "processes", "network"}:
        raise UsageError("--whole-node needs --collectors from metadata,processes,network")
    signer = load_signer(signing_key)
    scheme = ref.split("://", 1)[0] if ref and "://" in ref else None
    if scheme and scheme != "docker":
        # A Kubernetes node's CRI container, as the pod status names it (containerd://ID).
        try:
            handle = open_cri_container(scheme, ref.split("://", 1)[1], node_root=node_root)  # type: ignore[union-attr]
        except Unsupported as exc:
            raise UsageError(str(exc)) from None
    else:
        handle = open_container(
            ref.split("://", 1)[-1] if ref else ref,
            backend=backend,
            docker_host=docker_host,
            pid=pid,
            allow_exec=allow_exec,
            name=name,
            root_walk=root_walk,
            whole_node=whole_node,
        )
    try:
        labels = {"backend": handle.backend}
        if allow_exec:
            labels["allow_exec"] = "yes"
        request = CaptureRequest(
            case_id=case_id,
            target=handle.target(),
            operator=operator,
            reason=reason,
            labels=labels,
            # Ed25519Signer.key_id is a property, Signer declares an attribute
            signer=signer,  # type: ignore[arg-type]
        )
        progress = _Progress(handle.label) if output == "text" and sys.stderr.isatty() else None
        with CaptureSession(open_capture_store(store, s3), request) as session:
            capture_container(session, handle, options, collectors=names, progress=progress)
            result = session.finish()
        if progress:
            progress.done()
    finally:
        handle.close()
    emit(output, summary_document(result), lambda: print_summary(result))
    if output == "text":
        exit_line(result.exit_code, result.cause)
    return int(result.exit_code)


class _Progress:
    """One line per collector on a terminal, with the time the previous one took."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()
        self.last: tuple[str, float] | None = None

    def __call__(self, step: str) -> None:
        self._finish_last()
        click.echo(f"capturing {printable(self.label)}: {step} ...", err=True)
        self.last = (step, time.monotonic())

    def _finish_last(self) -> None:
        if self.last:
            click.echo(f"  {self.last[0]} took {time.monotonic() - self.last[1]:.1f}s", err=True)
            self.last = None

    def done(self) -> None:
        self._finish_last()
        click.echo(f"capture finished in {time.monotonic() - self.started:.1f}s", err=True)


def summary_document(result: CaptureResult) -> dict[str, Any]:
    m = result.sealed.manifest
    return {
        "bundle": result.stored.location,
        "bundle_id": m.bundle_id,
        "root_digest": result.sealed.root_digest,
        "outcome": m.outcome,
        "exit_code": int(result.exit_code),
        "errors": [result.cause] if result.cause else [],
        "size": result.sealed.size,
        "store_confirmed": result.stored.confirmed,
        "spooled": result.stored.spooled,
        "collectors": [
            {
                "name": c.name,
                "container": c.container,
                "status": c.status,
                "error": c.error,
                "notes": c.notes,
                "artifacts": c.artifacts,
            }
            for c in result.collectors
        ],
        "artifacts": [
            {
                "name": a.name,
                "kind": a.kind,
                "size": a.size,
                "status": a.status,
                "error": a.error,
                "sha256": a.sha256,
            }
            for a in m.artifacts
        ],
        "warnings": result.stored.warnings,
    }


def print_summary(result: CaptureResult) -> None:
    m = result.sealed.manifest
    click.echo(f"bundle:      {result.stored.location}")
    click.echo(f"root digest: sha256:{result.sealed.root_digest}")
    click.echo(
        f"outcome:     {m.outcome}   ({len(m.artifacts)} artifacts, {result.sealed.size} bytes)"
    )
    click.echo("")
    table(
        [(c.name, c.status, c.error or "; ".join(c.notes)) for c in result.collectors],
        ["collector", "status", "detail"],
    )
    bad = [a for a in m.artifacts if a.status != "ok"]
    if bad:
        click.echo("")
        table([(a.name, a.status, a.error or "") for a in bad], ["artifact", "status", "why"])
    for warning in result.stored.warnings:
        warn(warning)
    if result.stored.spooled:
        warn(f"the store did not confirm the upload; the bundle is kept at {result.stored.spooled}")


COMMANDS = [capture]
