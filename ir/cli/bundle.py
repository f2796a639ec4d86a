"""`ir bundle`: verify, show, list, read and extract evidence bundles (local paths or s3:// URIs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ir.bundle.custody import append_record
from ir.bundle.signing import load_signer
from ir.bundle.verify import VALID
from ir.cli.lazygroup import LazyGroup
from ir.cli.output import (
    byte_progress,
    emit,
    emit_json,
    exit_line,
    info,
    output_option,
    printable,
    table,
    warn,
)
from ir.errors import ExitCode
from ir.store import open_bundle, open_store
from ir.store.local import describe_target

TRUST_HELP = (
    "Trusted signing key(s): an Ed25519 public key (PEM) or a directory of them (*.pub, *.pem), "
    "added to $IR_TRUST (paths, ':'-separated) and $IR_VERIFY_KEY. A bundle is authentic only "
    "when signed by one of them."
)
public_key_option = click.option(
    "--trust", "--public-key", "public_key", metavar="FILE|DIR", help=TRUST_HELP
)


def trust_from(option: str | None) -> Any:
    """The TrustStore of the --trust option and the environment."""
    from ir.bundle.trust import load_trust

    return load_trust([option] if option else [])


endpoint_option = click.option(
    "--s3-endpoint-url",
    metavar="URL",
    default=None,
    help="S3-compatible endpoint (default $AWS_ENDPOINT_URL).",
)


@click.group(
    "bundle",
    cls=LazyGroup,
    elsewhere={"push": "transfer", "pull": "transfer", "diff": "bundle_diff"},
)
def bundle() -> None:
    """Work with evidence bundles: verify, verify-case, show, ls, cat, extract (paths or s3:// URIs)."""


@bundle.command("verify")
@click.argument("ref", metavar="BUNDLE")
@public_key_option
@click.option(
    "--expect-digest",
    metavar="SHA256",
    help="Root digest recorded elsewhere (ticket, custody log) to compare.",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Exit 0 for an intact bundle without a signature (the verdict still says unsigned).",
)
@click.option(
    "--allow-untrusted",
    is_flag=True,
    help="Exit 0 for an intact bundle signed by a key not trusted (the verdict still says so).",
)
@click.option(
    "--require-signature",
    is_flag=True,
    hidden=True,
    help="Kept for old scripts: the default now (exit 6 unless authentic).",
)
@click.option(
    "--record",
    is_flag=True,
    help="Append a 'verified' custody record (only for an intact bundle; verify never writes "
    "into a bundle's custody unless asked).",
)
@click.option("--no-custody-record", is_flag=True, hidden=True, help="Kept for old scripts.")
@endpoint_option
@output_option
def verify(
    ref: str,
    public_key: str | None,
    expect_digest: str | None,
    allow_unsigned: bool,
    allow_untrusted: bool,
    require_signature: bool,
    record: bool,
    no_custody_record: bool,
    s3_endpoint_url: str | None,
    output: str,
) -> int:
    """Check a bundle end to end: every artifact's stored and content SHA-256, the root digest of
    the manifest, who signed it (against the trusted keys) and the custody chain.

    \b
    Verdicts: valid (intact and signed by a trusted key); unsigned, untrusted (intact, origin
    not proven); incomplete; tampered.
    Exit 0: valid (or allowed). 6: unsigned or untrusted. 1: tampered or incomplete (each
    failing artifact or record is named). 2: not a usable bundle. The verdict is the first line,
    the cause of a non-zero exit the last."""
    key = trust_from(public_key)
    later: list[str] = []  # warnings, printed after the report
    with open_bundle(ref, endpoint_url=s3_endpoint_url) as handle:
        total = (
            sum(a.stored_size for a in handle.reader.manifest.artifacts)
            if handle.reader.sealed
            else 0
        )
        with byte_progress(total, "verifying") as advance:
            report = handle.verify(trust=key, expected_digest=expect_digest, progress=advance)
        if record and report.root_digest and report.intact:
            append_record(
                handle.custody,
                action="verified",
                bundle_id=report.bundle_id or "",
                bundle_digest=report.root_digest,
                detail={"verdict": report.verdict},
                signer=load_signer(None),  # the hand that writes it signs it ($IR_SIGNING_KEY)
            )
        elif record:
            later.append(f"no custody record: the bundle is {report.verdict}")
    code = report.exit_code_for(allow_unsigned=allow_unsigned, allow_untrusted=allow_untrusted)
    cause = report.cause(allow_unsigned=allow_unsigned, allow_untrusted=allow_untrusted)
    if cause and report.intact:  # origin not proven: say how to accept it
        flag = "--allow-unsigned" if report.verdict == "unsigned" else "--allow-untrusted"
        cause += f" (trust its key with --trust or $IR_TRUST, or accept it with {flag})"
    elif report.intact and not report.authentic:  # accepted by --allow-unsigned/--allow-untrusted
        later.append(
            f"origin not proven ({report.verdict}): every digest agrees, but no trusted key "
            "signed this bundle"
        )
    doc = report.to_dict()
    doc["exit_code"] = code
    if code and not doc["errors"]:
        doc["errors"] = [cause]

    def text() -> None:
        _print_report(report)
        for message in later:
            warn(message)
        exit_line(code, cause)

    for message in later if output == "json" else ():
        warn(message)
    emit(output, doc, text)
    return code


def _print_report(report: Any) -> None:
    """The verdict on one line, then the details (what was checked, each failure, each note)."""
    mark = {
        "valid": "VALID",
        "unsigned": "INTACT, UNSIGNED",
        "untrusted": "INTACT, SIGNED BY A KEY NOT TRUSTED",
        "incomplete": "INCOMPLETE",
        "tampered": "TAMPERED",
    }[report.verdict]
    click.echo(f"{mark}: {report.bundle}")
    if report.root_digest:
        click.echo(f"  root digest: sha256:{report.root_digest}")
    if report.bundle_id:
        click.echo(f"  bundle id:   {report.bundle_id} (capture outcome: {report.outcome})")
    click.echo(
        f"  artifacts:   {report.artifacts_checked} checked, {report.bytes_checked} stored bytes"
    )
    if report.signature is not None:
        click.echo(f"  signature:   {report.signature.status}: {report.signature.detail}")
    if report.custody is not None:
        click.echo(f"  custody:     {report.custody.summary()}")
    for error in report.errors:
        click.echo(f"  FAIL: {printable(error)}")
    for warning in report.warnings:
        click.echo(f"  note: {printable(warning)}")


@bundle.command("verify-case")
@click.argument("index", metavar="CASE_INDEX")
@public_key_option
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Exit 0 when the index or a bundle is intact but unsigned (the verdicts still say so).",
)
@click.option(
    "--allow-untrusted",
    is_flag=True,
    help="Exit 0 when the index or a bundle is intact but signed by a key not trusted.",
)
@endpoint_option
@output_option
def verify_case(
    index: str,
    public_key: str | None,
    allow_unsigned: bool,
    allow_untrusted: bool,
    s3_endpoint_url: str | None,
    output: str,
) -> int:
    """Check the case index of one `ir capture pod -l`/`--all` run and every bundle it lists:
    the index's signature (CASE_INDEX.sig beside it), then each bundle end to end as
    `ir bundle verify` does, against the root digest the signed index records for it -- so a
    bundle swapped for another, even a valid one, is found.

    \b
    CASE_INDEX is a local file (<store>/<case>/case-index-<time>-<id>.json; copy it out of S3
    first). Each bundle is read where the index says (a path, or an s3:// URI), or beside the
    index by its file name (a case directory copied elsewhere). Pods the index records as not
    captured are listed, not failed. Nothing is written.
    Exit 0: the index and every bundle valid (or allowed). 6: every digest agrees but an origin is
    not proven. 1: the index or a bundle tampered, incomplete, missing or unreadable (each named).
    2: not a case index. Progress, one line a pod, on stderr."""
    from ir.cluster.caseindex import verify_index  # here: only this command reads an index

    def progress(number: int, total: int, pod: Any) -> None:
        if output != "json":
            info(f"[{number}/{total}] {printable(pod.pod)}: {pod.verdict}")

    check = verify_index(
        Path(index),
        trust_from(public_key),
        allow_unsigned=allow_unsigned,
        allow_untrusted=allow_untrusted,
        progress=progress,
        endpoint_url=s3_endpoint_url,
    )
    doc = check.describe()
    cause = check.errors[-1] if check.errors else None

    def text() -> None:
        mark = {0: "VALID", 6: "INTACT, ORIGIN NOT PROVEN"}.get(check.exit_code, "FAILED")
        click.echo(f"{mark}: case index {printable(check.index)}")
        click.echo(
            f"  case:      {printable(str(doc['case_id']))} (index {printable(str(doc['index_id']))})"
        )
        click.echo(f"  signature: {check.signature.status}: {printable(check.signature.detail)}")
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(check.counts().items()))
        click.echo(f"  pods:      {len(check.pods)} listed: {counts or 'none'}")
        table(
            [[p.pod, p.verdict, p.recorded, p.location or "-"] for p in check.pods],
            ["pod", "verdict", "recorded outcome", "bundle read"],
        )
        for error in check.errors[:-1]:
            click.echo(f"  FAIL: {printable(error)}")
        exit_line(check.exit_code, cause)

    emit(output, doc, text)
    return check.exit_code


@bundle.command("show")
@click.argument("ref", metavar="BUNDLE")
@endpoint_option
@output_option
def show(ref: str, s3_endpoint_url: str | None, output: str) -> None:
    """Summarise a bundle: target, times, collectors and artifacts (no integrity check: use verify)."""
    with open_bundle(ref, endpoint_url=s3_endpoint_url) as handle:
        reader = handle.reader
        m = reader.manifest
        doc = {
            "bundle": handle.display,
            "root_digest": reader.root_digest,
            "signed": reader.signature_document() is not None,
            "custody_records": len(handle.custody.read_lines()),
            "manifest": _manifest_dict(m),
        }

    def text() -> None:
        click.echo(f"bundle:    {handle.display}")
        click.echo(f"id:        {m.bundle_id}   case: {printable(m.case_id)}")
        click.echo(f"target:    {printable(describe_target(m.target))}")
        click.echo(f"time:      {m.started_at} .. {m.ended_at}  outcome: {m.outcome}")
        click.echo(
            f"operator:  {printable(m.operator)} on {printable(m.host.get('hostname'))}  tool: {m.tool.get('name')} {m.tool.get('version')}"
        )
        if m.reason:
            click.echo(f"reason:    {printable(m.reason)}")
        click.echo(
            f"digest:    sha256:{doc['root_digest']}  signed: {'yes' if doc['signed'] else 'no'}  custody records: {doc['custody_records']}"
        )
        click.echo("")
        table(
            [(c.name, c.container, c.status, c.error or "") for c in m.collectors],
            ["collector", "container", "status", "error"],
        )
        click.echo("")
        table(
            [(a.name, a.kind, a.size, a.stored_size, a.status, a.sha256[:16]) for a in m.artifacts],
            ["artifact", "kind", "size", "stored", "status", "sha256"],
        )
        if m.actions:
            click.echo("")
            table(
                [(a.time, a.action, a.target, a.outcome) for a in m.actions],
                ["time", "action on target", "target", "outcome"],
            )

    emit(output, doc, text)


def _manifest_dict(m: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(m)


@bundle.command("ls")
@click.argument("store", required=False, metavar="[STORE]")
@endpoint_option
@output_option
def ls(store: str | None, s3_endpoint_url: str | None, output: str) -> None:
    """List the bundles in a store (default $IR_STORE or ./evidence; or s3://BUCKET/PREFIX)."""
    st = (
        open_store(store, endpoint_url=s3_endpoint_url)
        if (store or "").startswith("s3://")
        else open_store(store)
    )
    rows = list(st.list_bundles())
    emit(
        output,
        [vars(r) for r in rows],
        lambda: table(
            [
                (r.case_id, r.bundle_id, r.target, r.started_at, r.size, r.status, r.location)
                for r in rows
            ],
            ["case", "bundle", "target", "started", "size", "status", "location"],
        ),
    )


@bundle.command("cat")
@click.argument("ref", metavar="BUNDLE")
@click.argument("artifact")
@endpoint_option
def cat(ref: str, artifact: str, s3_endpoint_url: str | None) -> None:
    """Write one artifact, decompressed, to stdout (bounded by its declared size)."""
    out = sys.stdout.buffer
    with open_bundle(ref, endpoint_url=s3_endpoint_url) as handle:
        for chunk in handle.reader.iter_artifact(artifact):
            out.write(chunk)
    out.flush()


@bundle.command("extract")
@click.argument("ref", metavar="BUNDLE")
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Target directory.",
)
@click.option("--artifact", "names", multiple=True, help="Only these artifacts (repeatable).")
@click.option(
    "--allow-high-ratio", is_flag=True, help="Extract artifacts that expand more than 1000x."
)
@endpoint_option
def extract(
    ref: str, to: Path, names: tuple[str, ...], allow_high_ratio: bool, s3_endpoint_url: str | None
) -> int:
    """Extract artifacts (decompressed, digest-checked) under DIR/artifacts/, never outside DIR."""
    from ir.bundle.extract import extract_bundle

    with open_bundle(ref, endpoint_url=s3_endpoint_url, record_access=True) as handle:
        reader = handle.reader
        entries = [reader.entry(n) for n in names] if names else reader.manifest.artifacts
        with byte_progress(sum(e.size for e in entries), "extracting") as advance:
            result = extract_bundle(
                reader,
                to,
                names=list(names) or None,
                allow_high_ratio=allow_high_ratio,
                progress=advance,
            )
        append_record(
            handle.custody,
            action="extracted",
            bundle_id=reader.manifest.bundle_id,
            bundle_digest=reader.root_digest,
            detail={"to": str(to.resolve()), "artifacts": len(result.written)},
            signer=load_signer(None),
        )
    click.echo(f"extracted {len(result.written)} artifact(s) to {to}")
    return int(ExitCode.OK)


@bundle.command("custody")
@click.argument("ref", metavar="BUNDLE")
@endpoint_option
@output_option
def custody(ref: str, s3_endpoint_url: str | None, output: str) -> None:
    """Show the chain-of-custody records of a bundle."""
    import json

    with open_bundle(ref, endpoint_url=s3_endpoint_url) as handle:
        records = [json.loads(line) for line in handle.custody.read_lines()]
    emit(
        output,
        records,
        lambda: table(
            [
                (
                    r.get("seq"),
                    r.get("time"),
                    r.get("action"),
                    r.get("actor"),
                    r.get("host"),
                    "yes" if r.get("sig") else "no",
                )
                for r in records
            ],
            ["seq", "time", "action", "actor", "host", "signed"],
        ),
    )


COMMANDS = [bundle]
_ = (emit_json, VALID)
