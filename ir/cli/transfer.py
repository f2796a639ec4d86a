"""`ir bundle push` and `ir bundle pull`: move bundles between the local spool and S3.

Also the S3 option decorators a capture command shares (`s3_connection_options`,
`s3_store_options`) and `store_options()`, which turns them into `open_store()` keywords.
"""

from __future__ import annotations

import os
import posixpath
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ir.bundle import layout
from ir.bundle.signing import load_signer
from ir.cli.bundle import bundle, endpoint_option, public_key_option, trust_from
from ir.cli.output import byte_progress, emit, exit_line, printable, table, warn
from ir.errors import ExitCode, StoreError, UsageError
from ir.store import ENV_STORE
from ir.store.s3 import S3Store, pull_bundle
from ir.store.s3client import S3Connection, endpoint_from_env, parse_s3_uri
from ir.store.spool import default_spool_dir, read_state, spooled_bundles

F = Callable[..., Any]


def s3_connection_options(func: F) -> F:
    """--aws-profile and --aws-region (the endpoint option is `endpoint_option` of ir.cli.bundle)."""
    func = click.option(
        "--aws-region",
        metavar="REGION",
        default=None,
        help="AWS region (default from the profile or $AWS_REGION).",
    )(func)
    func = click.option(
        "--aws-profile",
        metavar="NAME",
        default=None,
        envvar="AWS_PROFILE",
        help="AWS profile (default $AWS_PROFILE, else the credentials chain).",
    )(func)
    return func


def s3_store_options(func: F) -> F:
    """What an S3 store does with a bundle: spool, encryption, Object Lock, tags."""
    options = [
        click.option(
            "--spool-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Local spool for bundles bound for S3 (default $IR_SPOOL_DIR or "
            "~/.local/state/ir/spool).",
        ),
        click.option(
            "--keep-spool", is_flag=True, help="Keep the local copy after a confirmed upload."
        ),
        click.option(
            "--sse",
            type=click.Choice(["AES256", "aws:kms"]),
            default=None,
            help="Server-side encryption of the objects.",
        ),
        click.option(
            "--sse-kms-key-id", metavar="KEY", default=None, help="KMS key for --sse aws:kms."
        ),
        click.option(
            "--object-lock-mode",
            type=click.Choice(["GOVERNANCE", "COMPLIANCE"], case_sensitive=False),
            default=None,
            help="Object Lock retention mode (the bucket must have Object Lock).",
        ),
        click.option(
            "--object-lock-days",
            type=click.IntRange(min=1),
            default=None,
            help="Retention period in days (with --object-lock-mode).",
        ),
        click.option("--legal-hold", is_flag=True, help="Put a legal hold on the objects."),
        click.option(
            "--s3-tag",
            "s3_tags",
            metavar="KEY=VALUE",
            multiple=True,
            help="Extra object tag (repeatable, at most 6).",
        ),
        click.option("--s3-storage-class", metavar="CLASS", default=None, help="S3 storage class."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def store_options(
    *,
    s3_endpoint_url: str | None = None,
    aws_profile: str | None = None,
    aws_region: str | None = None,
    spool_dir: Path | None = None,
    keep_spool: bool = False,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
    object_lock_mode: str | None = None,
    object_lock_days: int | None = None,
    legal_hold: bool = False,
    s3_tags: tuple[str, ...] = (),
    s3_storage_class: str | None = None,
    **_other: Any,
) -> dict[str, Any]:
    """The keywords of `open_store()` for an s3:// store, from the options above."""
    tags = {}
    for item in s3_tags:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--s3-tag {item!r}: expected KEY=VALUE")
        tags[name] = value
    return {
        "endpoint_url": s3_endpoint_url,
        "profile": aws_profile,
        "region": aws_region,
        "spool_dir": spool_dir,
        "keep_spool": keep_spool,
        "sse": sse,
        "kms_key_id": sse_kms_key_id,
        "retention_mode": object_lock_mode,
        "retention_days": object_lock_days,
        "legal_hold": legal_hold,
        "tags": tags,
        "storage_class": s3_storage_class,
    }


@bundle.command("push")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[SPOOL_DIR|BUNDLE]...")
@click.option(
    "--store",
    "store_uri",
    metavar="s3://BUCKET/PREFIX",
    default=None,
    help=f"Target store (default ${ENV_STORE}, else where each bundle was bound when captured).",
)
@click.option(
    "--signing-key",
    metavar="FILE",
    default=None,
    help="Sign the 'uploaded' custody record (default $IR_SIGNING_KEY).",
)
@endpoint_option
@s3_connection_options
@s3_store_options
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format: text for people, json for machines.",
)
def push(
    paths: tuple[Path, ...], store_uri: str | None, signing_key: str | None, output: str, **kw: Any
) -> int:
    """Upload spooled bundles (default: the whole spool) to S3, resuming interrupted multipart
    uploads: parts S3 still holds are checked against the local file and not sent again.

    A local copy is deleted only after S3 confirmed the checksum and the custody records landed
    (and never for a bundle outside the spool). Exit 0: all uploaded. 3: some upload failed
    (kept locally). 1: incomplete (unsealed) bundles were found and left alone."""
    if store_uri and not store_uri.startswith("s3://"):
        raise UsageError(f"--store {store_uri}: push uploads to an s3://BUCKET/PREFIX store")
    signer = load_signer(signing_key)
    options = store_options(**kw)
    roots = list(paths) or [Path(options["spool_dir"] or default_spool_dir())]
    stores: dict[tuple[str, str | None], S3Store] = {}
    rows: list[dict[str, Any]] = []
    for root in roots:
        if not root.exists() and not paths:
            continue  # an empty default spool is not an error
        for path in spooled_bundles(root):
            rows.append(_push_one(path, store_uri, options, stores, signer, output == "text"))
    emit(output, rows, lambda: _print_push(rows))
    statuses = {r["status"] for r in rows}
    code = (
        ExitCode.STORE
        if "failed" in statuses
        else ExitCode.FAILED
        if "incomplete" in statuses
        else ExitCode.OK
    )
    if output == "text":
        exit_line(
            code,
            "; ".join(
                f"{r['bundle']}: {r['status']} ({r['detail']})"
                for r in rows
                if r["status"] in ("failed", "incomplete")
            ),
        )
    return int(code)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # push says what is wrong with it


def _object_size(client: Any, ref: Any) -> int:
    """The object's size for a progress bar (0: no bar); only asked when stderr is a terminal."""
    if not sys.stderr.isatty():
        return 0
    args = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        args["VersionId"] = ref.version_id
    try:
        return int(client.head_object(**args).get("ContentLength") or 0)
    except Exception:  # noqa: BLE001 -- the download itself reports what is wrong
        return 0


def _push_one(
    path: Path,
    store_uri: str | None,
    options: dict[str, Any],
    stores: dict[tuple[str, str | None], S3Store],
    signer: Any,
    show_progress: bool = False,
) -> dict[str, Any]:
    row: dict[str, Any] = {"bundle": str(path), "status": "", "location": None, "detail": ""}
    if path.name.endswith(layout.PARTIAL_SUFFIX):
        row.update(status="incomplete", detail="not sealed (capture interrupted); left in place")
        return row
    try:
        state = read_state(path)
        uri = store_uri or os.environ.get(ENV_STORE) or (state.store_uri if state else None)
        if not uri or not uri.startswith("s3://"):
            raise UsageError(
                "no s3:// store: give --store s3://BUCKET/PREFIX (no upload state names one)"
            )
        # --s3-endpoint-url, else $AWS_ENDPOINT_URL, else the endpoint the capture used.
        endpoint = (
            options["endpoint_url"]
            or endpoint_from_env()
            or (state.endpoint_url if state and state.store_uri == uri else None)
        )
        cache_key = (uri, endpoint)
        if cache_key not in stores:
            stores[cache_key] = S3Store.from_uri(uri, **{**options, "endpoint_url": endpoint})
        total = _size(path) if show_progress else 0  # no bar for -o json
        with byte_progress(total, f"uploading {path.name}") as advance:
            result = stores[cache_key].push(path, custody_signer=signer, progress=advance)
    except (StoreError, UsageError) as exc:
        row.update(status="failed", detail=exc.message)
        return row
    row["location"] = result.location
    row["warnings"] = result.warnings
    if result.confirmed:
        d = result.detail
        kept = f"; local copy kept at {d['kept']}" if d.get("kept") else "; local copy removed"
        row.update(
            status="uploaded",
            version_id=d.get("version_id"),
            object_sha256=d.get("object_sha256"),
            detail=f"{d.get('parts_sent', 0)} part(s) sent, {d.get('parts_reused', 0)} reused, "
            f"checksum confirmed by {d.get('confirmed_by')}{kept}",
            parts_sent=d.get("parts_sent"),
            parts_reused=d.get("parts_reused"),
        )
    else:
        row.update(status="failed", detail=result.detail.get("error", "upload not confirmed"))
    return row


def _print_push(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("nothing to push")
        return
    for row in rows:
        mark = {"uploaded": "UPLOADED", "failed": "FAILED", "incomplete": "INCOMPLETE"}[
            row["status"]
        ]
        click.echo(f"{mark}: {printable(row['bundle'])}")
        if row.get("location"):
            click.echo(
                f"  to:     {row['location']}"
                + (f" (version {row['version_id']})" if row.get("version_id") else "")
            )
        label = "detail:" if row["status"] == "uploaded" else "why:"
        click.echo(f"  {label:<8}{printable(row['detail'])}")
        if row["status"] == "failed":
            click.echo(
                "  kept:   the local bundle is untouched; run the same push again when S3 is reachable"
            )
        for text in row.get("warnings", []):
            if row["status"] == "uploaded":
                warn(printable(text))


@bundle.command("pull")
@click.argument(
    "refs", nargs=-1, required=True, metavar="s3://BUCKET/KEY.tar|s3://BUCKET/PREFIX/ ..."
)
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to download into (bundles land in DIR/<case>/<id>.tar).",
)
@public_key_option
@endpoint_option
@s3_connection_options
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format: text for people, json for machines.",
)
def pull(
    refs: tuple[str, ...],
    to: Path,
    public_key: str | None,
    s3_endpoint_url: str | None,
    aws_profile: str | None,
    aws_region: str | None,
    output: str,
) -> int:
    """Download bundles from S3 (one object, or every bundle under a prefix), verify each after
    download and record the download in the custody log (in S3 and beside the local copy).

    Exit 0: every bundle valid. 1: one failed verification (kept as <name>.download)."""
    key = trust_from(public_key)
    connection = S3Connection(s3_endpoint_url, aws_profile, aws_region)
    client = connection.client()
    rows: list[dict[str, Any]] = []
    for ref_text in refs:
        ref = parse_s3_uri(ref_text)
        if ref.key.endswith(layout.BUNDLE_SUFFIX):
            targets = [ref]
        else:
            lister = S3Store(ref.bucket, ref.key, connection=connection, client=client)
            targets = [
                parse_s3_uri(r.location)
                for r in lister.list_bundles()
                if not r.status.startswith("uploading")
            ]
            if not targets:
                raise StoreError(f"{ref_text}: no bundles there")
        for target in targets:
            total = _object_size(client, target) if output == "text" else 0
            with byte_progress(total, f"downloading {posixpath.basename(target.key)}") as advance:
                result = pull_bundle(
                    client, connection, target, to, public_key=key, progress=advance
                )
            rows.append(
                {
                    "ref": str(target),
                    "path": str(result.path),
                    "verdict": result.verdict,
                    "intact": result.report.intact,
                    "object_sha256": result.object_sha256,
                    "errors": result.report.errors,
                    "custody_seq": result.custody_seq,
                }
            )
    emit(
        output,
        rows,
        lambda: table(
            [(r["verdict"].upper(), r["ref"], r["path"]) for r in rows], ["verdict", "from", "to"]
        ),
    )
    for row in rows:
        for error in row["errors"]:
            click.echo(f"  FAIL: {printable(error)}", err=True)
    if all(r["verdict"] == "valid" for r in rows):
        return int(ExitCode.OK)
    code = ExitCode.UNTRUSTED if all(r["intact"] for r in rows) else ExitCode.FAILED
    if output == "text":
        exit_line(
            code, "; ".join(f"{r['ref']}: {r['verdict']}" for r in rows if r["verdict"] != "valid")
        )
    return int(code)


def s3_capture_options(func: F) -> F:
    """Everything an S3 store takes, for the capture commands (endpoint, profile, SSE, lock...)."""
    func = s3_store_options(func)
    func = s3_connection_options(func)
    return click.option(
        "--s3-endpoint-url",
        metavar="URL",
        default=None,
        help="S3-compatible endpoint (default $AWS_ENDPOINT_URL).",
    )(func)


def open_capture_store(store: str | None, options: dict[str, Any]) -> Any:
    """open_store() with the S3 options when the store is s3:// (or $IR_STORE is)."""
    from ir.store import open_store, store_uri

    if store_uri(store).startswith("s3://"):
        return open_store(store, **store_options(**options))
    return open_store(store)
