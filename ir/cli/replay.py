"""`ir replay BUNDLE ...`: offline views over a bundle (verified first), and `ir bundle diff A B`."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from ir.cli.bundle import TRUST_HELP, bundle, trust_from
from ir.cli.output import byte_progress, emit_json, info, printable, table
from ir.clock import parse_timestamp, rfc3339
from ir.errors import ExitCode, UsageError
from ir.records import FileChange
from ir.replay.diff import diff_connections, diff_files, diff_processes
from ir.replay.evidence import Cited, Evidence
from ir.replay.export import write_csv, write_jsonl, write_timesketch
from ir.replay.files import (
    DELETION_LABELS,
    UNKNOWN_TIME,
    DeletionTimes,
    FsFilter,
    iter_changes,
    locate_file,
    stream_file,
)
from ir.replay.findings import TITLES
from ir.replay.network import NET_COLUMNS, connection_rows, endpoint
from ir.replay.processes import exe_path, process_rows
from ir.replay.report import write_report
from ir.replay.summary import build_summary
from ir.replay.timeline import SOURCES, TimelineEvent, TimelineStats, build_timeline
from ir.replay.trust import Trust, establish_trust
from ir.store import open_bundle

_FLAG_CODES = {"deleted-exe": "D", "started-late": "L", "temp-dir": "T"}
_DEFAULT_LOG_DESCRIPTION = "Log line written (runtime time)"


# -- opening and trusting a bundle ------------------------------------------------------------


@dataclass
class _Options:
    force: bool = False
    public_key: str | None = None
    reverify: bool = False
    endpoint: str | None = None
    details: bool = False  # the verdict's long form, not its one line

    def merge(self, other: _Options) -> _Options:
        return _Options(
            self.force or other.force,
            other.public_key or self.public_key,
            self.reverify or other.reverify,
            other.endpoint or self.endpoint,
            self.details or other.details,
        )


@dataclass
class _Session:
    """What the `replay` group parsed; the bundle is opened (and verified) by the subcommand,
    so `ir replay BUNDLE ps --help` touches nothing."""

    ref: str
    options: _Options


def _trust_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The same options on the group and on every subcommand: both spellings work."""
    for decorator in reversed(
        [
            click.option(
                "--force",
                is_flag=True,
                default=None,
                help="Show a bundle that failed verification (tampered/incomplete); every page says so.",
            ),
            click.option(
                "--trust",
                "--public-key",
                "public_key",
                metavar="FILE|DIR",
                default=None,
                help=TRUST_HELP,
            ),
            click.option(
                "--reverify",
                is_flag=True,
                default=None,
                help="Hash every artifact again, ignoring a cached verdict.",
            ),
            click.option(
                "--s3-endpoint-url",
                "endpoint",
                metavar="URL",
                default=None,
                help="S3-compatible endpoint (default $AWS_ENDPOINT_URL).",
            ),
            click.option(
                "--verdict-details",
                is_flag=True,
                default=None,
                help="The verification verdict in full (how it was reached, signature, custody "
                "chain) instead of its one line. `ir bundle verify` says even more.",
            ),
        ]
    ):
        f = decorator(f)
    return f


def _open(
    ctx: click.Context,
    force: bool | None,
    public_key: str | None,
    reverify: bool | None,
    endpoint: str | None,
    verdict_details: bool | None,
    *,
    announce: bool = True,
) -> tuple[Evidence, Trust]:
    session: _Session = ctx.find_object(_Session)  # type: ignore[assignment]
    opts = session.options.merge(
        _Options(bool(force), public_key, bool(reverify), endpoint, bool(verdict_details))
    )
    return open_evidence(ctx, session.ref, opts, announce=announce)


def open_evidence(
    ctx: click.Context, ref: str, opts: _Options, *, announce: bool = True, name: str = ""
) -> tuple[Evidence, Trust]:
    """Open and verify a bundle. The verdict's one line goes to stderr first (its long form with
    --verdict-details) unless the page prints it itself (`announce` False); `name` tells two
    bundles apart (`ir bundle diff`: A, B)."""
    key = trust_from(opts.public_key)
    handle = (
        open_bundle(ref, endpoint_url=opts.endpoint)
        if ref.startswith("s3://")
        else open_bundle(ref)
    )
    ctx.call_on_close(handle.close)
    reader = handle.reader
    total = sum(a.stored_size for a in reader.manifest.artifacts) if reader.sealed else 0
    with byte_progress(total, "verifying") as advance:
        trust = establish_trust(
            handle, public_key=key, force=opts.force, use_cache=not opts.reverify, progress=advance
        )
    try:
        custody = handle.custody.read_lines()
    except Exception:  # noqa: BLE001 -- reported by establish_trust already
        custody = []
    evidence = Evidence(reader, display=handle.display, custody_lines=custody)
    if not trust.valid:
        info(click.style(f"ir: {trust.banner()}", fg="red", bold=True))
    elif announce:
        info(f"ir: {name + ': ' if name else ''}{trust.short()}")
    if opts.details:
        for line in trust.details():
            info(f"ir: {name + ': ' if name else ''}{printable(line)}")
    return evidence, trust


def _exit_code(*trusts: Trust) -> int:
    """0 for a verified bundle; 1 when a bad one was shown with --force (scripts must not take
    forced output for good evidence)."""
    return int(ExitCode.OK if all(t.valid for t in trusts) else ExitCode.FAILED)


def _print_banner(trust: Trust) -> None:
    banner = trust.banner()
    if banner:
        bar = "!" * min(100, len(banner))
        click.echo(click.style(f"{bar}\n{printable(banner)}\n{bar}", fg="red", bold=True))


@contextlib.contextmanager
def _page(trust: Trust, output: str) -> Iterator[None]:
    """Text pages carry the banner at the top and the bottom; machine formats carry the verdict
    in their data (and the banner went to stderr)."""
    text = output in ("text", "table")
    if text:
        _print_banner(trust)
    yield
    sys.stdout.flush()  # rows were written to sys.stdout directly, banner goes after them
    if text:
        _print_banner(trust)


def _problems(ev: Evidence) -> None:
    for problem in ev.problems:
        click.echo(f"problem: {printable(problem)}", err=True)


def _time_option(value: str | None, ev: Evidence, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value, reference=ev.reference_time).utc
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _size_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    factor = 1
    for suffix, mult in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if text.endswith(suffix):
            text, factor = text[:-1], mult
            break
    try:
        return int(float(text) * factor)
    except ValueError:
        raise UsageError(f"{name}: not a size: {value!r} (e.g. 4096, 10k, 2M)") from None


def _out_stream(path: str | None) -> contextlib.AbstractContextManager[IO[str]]:
    if path in (None, "-"):
        return contextlib.nullcontext(sys.stdout)
    return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115


#: Rows a streamed table holds to size its columns (a view can have millions of rows).
SIZE_ROWS = 2000


def _stream_table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    out: IO[str],
    *,
    right: Sequence[str] = (),
) -> int:
    """Write rows as a table whose columns are as wide as their values, streaming: the first
    SIZE_ROWS rows are held to size the columns; a wider value later widens its column from that
    row on. Cells are made printable; the last column is not padded. The one table layout of
    the streamed views (fs, timeline), as ir.cli.output.table is for the small ones."""
    iterator = iter(rows)
    held = [[printable(c) for c in row] for row in itertools.islice(iterator, SIZE_ROWS)]
    widths = [len(h) for h in headers]
    for cells in held:
        widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]
    aligned = [h in right for h in headers]

    def line(cells: Sequence[str]) -> str:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths[i], len(cell))
        padded = [
            c.rjust(w) if r else c.ljust(w)
            for c, w, r in zip(cells[:-1], widths, aligned, strict=False)
        ]
        return "  ".join([*padded, cells[-1]]).rstrip() + "\n"

    out.write(line(list(headers)))
    out.write("  ".join("-" * w for w in [*widths[:-1], len(headers[-1])]) + "\n")
    n = 0
    for cells in itertools.chain(held, ([printable(c) for c in row] for row in iterator)):
        out.write(line(cells))
        n += 1
    return n


# -- ir replay --------------------------------------------------------------------------------


class _ReplayGroup(click.Group):
    """Accepts the group's options after BUNDLE too (`ir replay B --force ps`): the options
    between BUNDLE and the subcommand name are moved in front of BUNDLE before parsing."""

    _VALUED = ("--trust", "--public-key", "--s3-endpoint-url")
    _FLAGS = ("--force", "--reverify", "--verdict-details", "-h", "--help")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options: list[str] = []
        positionals: list[str] = []
        i = 0
        while i < len(args) and len(positionals) < 2:
            token = args[i]
            if token in self._VALUED and i + 1 < len(args):
                options += [token, args[i + 1]]
                i += 2
                continue
            if token in self._FLAGS or token.startswith(tuple(f"{v}=" for v in self._VALUED)):
                options.append(token)
            else:
                positionals.append(token)
            i += 1
        return super().parse_args(ctx, options + positionals + args[i:])


@click.group("replay", cls=_ReplayGroup)
@click.argument("ref", metavar="BUNDLE")
@_trust_options
@click.pass_context
def replay(
    ctx: click.Context,
    ref: str,
    force: bool | None,
    public_key: str | None,
    reverify: bool | None,
    endpoint: str | None,
    verdict_details: bool | None,
) -> None:
    """Offline views over a bundle (a path or s3:// URI): summary, ps, net, fs, logs, timeline,
    export.

    The bundle is verified first (every artifact's hashes, the root digest, signature, custody
    chain); a tampered or incomplete bundle is refused (exit 1) unless --force, and then every
    page says so. The verdict is cached per bundle id + digest in ~/.cache/ir/verified/ while the
    file's size and mtime are unchanged, so repeated views of a big bundle do not re-hash it.
    Each page starts with the verdict in one line (`verdict: valid (signed by KEY, intact;
    cached)`); --verdict-details gives its long form.

    \b
    Examples:
      ir replay evidence/INC-42/<id>.tar summary
      ir replay <id>.tar timeline --since 2025-03-14T09:00Z --source log,process -o csv
      ir replay <id>.tar fs --glob '/usr/bin/*' --change added
      ir replay <id>.tar fs cat /tmp/payload.sh
      ir replay <id>.tar export html --out report.html
    """
    ctx.obj = _Session(
        ref, _Options(bool(force), public_key, bool(reverify), endpoint, bool(verdict_details))
    )


_output_text_json = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)


@replay.command("summary")
@_output_text_json
@_trust_options
@click.pass_context
def summary_cmd(ctx: click.Context, output: str, **trust_opts: Any) -> int:
    """Target, times, collectors and key findings."""
    ev, trust = _open(ctx, **trust_opts, announce=output == "json")
    doc = build_summary(ev, trust)
    if output == "json":
        emit_json(doc)
        return _exit_code(trust)
    with _page(trust, output):
        _print_summary(doc, trust)
    _problems(ev)
    return _exit_code(trust)


def _print_summary(doc: dict[str, Any], trust: Trust) -> None:
    def line(label: str, value: Any) -> None:
        if value not in (None, "", []):
            click.echo(f"{label:<11}{printable(value)}")

    if trust.valid:
        click.echo(printable(trust.short()))  # the page's first line (a forced one has a banner)
    line("bundle:", doc["bundle"])
    line("id:", f"{doc['bundle_id']}   case: {doc['case_id']}")
    line("target:", doc["target"] + (f" on node {doc['node']}" if doc["node"] else ""))
    line(
        "captured:",
        f"{doc['started_at']} .. {doc['ended_at']}  outcome: {doc['outcome']}  by {doc['operator']} on {doc['host']}",
    )
    line("reason:", doc["reason"])
    if doc["alert"]:
        a = doc["alert"]
        line("alert:", f"{a['source']}: {a['rule']} [{a['priority']}] at {a['time']}")
    for error in trust.errors:
        line("FAIL:", error)
    click.echo("")
    table(
        [
            (c["name"], c["image"], c["started"], c["restarts"], len(c["artifacts"]))
            for c in doc["containers"]
        ],
        ["container", "image", "started (UTC)", "restarts", "artifacts"],
    )
    click.echo("")
    table(
        [(c["name"], c["container"], c["status"], c["error"] or "") for c in doc["collectors"]],
        ["collector", "container", "status", "error"],
    )
    findings = doc["findings"]
    total = sum(findings["counts"].values())
    click.echo("")
    click.echo(click.style(f"KEY FINDINGS ({total})", bold=True))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for f in findings["items"]:
        grouped.setdefault(f["kind"], []).append(f)
    for kind, title in TITLES.items():
        count = findings["counts"].get(kind, 0)
        if not count:
            continue
        items = grouped.get(kind, [])
        severity = items[0]["severity"] if items else ""
        click.echo(
            click.style(
                f"  [{severity}] {title} ({count})", fg="red" if severity == "high" else "yellow"
            )
        )
        for f in items:
            click.echo(f"      {printable(f['summary'])}")
            click.echo(f"          [{printable(f['container'])}] {printable(f['cited'])}")
    if not total:
        click.echo("  none of the rules matched (that is not proof of innocence)")
    for note in findings["notes"]:
        click.echo(f"  note: {printable(note)}")


@replay.command("ps")
@click.option("--container", help="Only this container.")
@_output_text_json
@_trust_options
@click.pass_context
def ps_cmd(ctx: click.Context, container: str | None, output: str, **trust_opts: Any) -> int:
    """The process tree: users, start times, executables and their hashes.

    Flags: D deleted executable, L started after the container, T running from a temp dir."""
    ev, trust = _open(ctx, **trust_opts)
    rows = list(process_rows(ev, container))
    if output == "json":
        emit_json(
            {
                "verification": trust.to_dict(),
                "processes": [r.to_dict() for r in rows],
                "problems": ev.problems,
            }
        )
        return _exit_code(trust)
    with _page(trust, output):
        table(
            [
                (
                    r.cited.container,
                    r.record.pid,
                    r.record.ppid,
                    r.record.user or r.record.uid,
                    rfc3339(r.started) if r.started else r.record.start_time,
                    "".join(_FLAG_CODES[f] for f in r.flags) or "",
                    (r.record.exe_sha256 or "")[:12],
                    "  " * min(r.depth, 30)
                    + ("\\_ " if r.depth else "")
                    + (exe_path(r.record) or "?")
                    + ("  " + " ".join(r.record.cmdline) if r.record.cmdline else ""),
                )
                for r in rows
            ],
            [
                "container",
                "pid",
                "ppid",
                "user",
                "started (UTC)",
                "flags",
                "sha256",
                "executable  command line",
            ],
        )
        click.echo(
            "flags: D deleted executable, L started after the container, T running from /tmp, /var/tmp, /dev/shm"
        )
    _problems(ev)
    return _exit_code(trust)


@replay.command("net")
@click.option("--container", help="Only this container.")
@click.option(
    "--direction",
    type=click.Choice(["listen", "inbound", "outbound", "unknown", "unix", "other", "local"]),
    multiple=True,
    help="Only these directions (repeatable); local: connections whose peer is a socket of the "
    "same network namespace, either direction.",
)
@_output_text_json
@_trust_options
@click.pass_context
def net_cmd(
    ctx: click.Context,
    container: str | None,
    direction: tuple[str, ...],
    output: str,
    **trust_opts: Any,
) -> int:
    """Sockets with their owning processes: listeners, and connections inbound (a listener of the
    same network namespace has their port), outbound or unknown, each with the reason."""
    ev, trust = _open(ctx, **trust_opts)
    rows = [
        r
        for r in connection_rows(ev, container)
        if not direction or r.direction in direction or ("local" in direction and r.peer_here)
    ]
    if output == "json":
        emit_json(
            {
                "verification": trust.to_dict(),
                "connections": [r.to_dict() for r in rows],
                "problems": ev.problems,
            }
        )
        return _exit_code(trust)
    with _page(trust, output):
        table(
            [
                (
                    r.cited.container,
                    r.record.proto,
                    endpoint(r.record.local_addr, r.record.local_port),
                    endpoint(r.record.remote_addr, r.record.remote_port)
                    if r.record.remote_port
                    else (r.record.path or ""),
                    r.record.state,
                    r.direction,
                    r.process,
                    ",".join(r.flags),
                    r.basis + (" (peer: a socket here)" if r.peer_here else ""),
                )
                for r in rows
            ],
            list(NET_COLUMNS),
        )
    _problems(ev)
    return _exit_code(trust)


@replay.group("fs", invoke_without_command=True)
@click.option("--container", help="Only this container.")
@click.option(
    "--glob", "glob", metavar="PATTERN", help="Path glob, e.g. '/usr/bin/*' ('*' also crosses '/')."
)
@click.option("--type", "types", multiple=True, help="file, dir, symlink, ... (repeatable).")
@click.option(
    "--change",
    "changes",
    type=click.Choice(["added", "changed", "deleted"]),
    multiple=True,
    help="Only these changes (repeatable).",
)
@click.option("--min-size", metavar="SIZE", help="At least this size (4096, 10k, 2M).")
@click.option("--max-size", metavar="SIZE", help="At most this size.")
@click.option(
    "--since", metavar="TIME", help="mtime or ctime at or after TIME (any format ir parses)."
)
@click.option("--until", metavar="TIME", help="mtime or ctime at or before TIME.")
@click.option("--executable", is_flag=True, default=None, help="Only executable files.")
@click.option(
    "-o", "--output", type=click.Choice(["text", "jsonl"]), default="text", show_default=True
)
@_trust_options
@click.pass_context
def fs_cmd(
    ctx: click.Context,
    container: str | None,
    glob: str | None,
    types: tuple[str, ...],
    changes: tuple[str, ...],
    min_size: str | None,
    max_size: str | None,
    since: str | None,
    until: str | None,
    executable: bool | None,
    output: str,
    **trust_opts: Any,
) -> int | None:
    """Added, changed and deleted files (streamed), with filters; `fs cat PATH` prints one
    captured file."""
    if ctx.invoked_subcommand is not None:
        ctx.obj.options = ctx.obj.options.merge(
            _Options(
                bool(trust_opts["force"]),
                trust_opts["public_key"],
                bool(trust_opts["reverify"]),
                trust_opts["endpoint"],
                bool(trust_opts["verdict_details"]),
            )
        )
        return None
    ev, trust = _open(ctx, **trust_opts)
    flt = FsFilter(
        glob=glob,
        types=set(types),
        changes=set(changes),
        min_size=_size_option(min_size, "--min-size"),
        max_size=_size_option(max_size, "--max-size"),
        since=_time_option(since, ev, "--since"),
        until=_time_option(until, ev, "--until"),
        executable=executable,
    )
    out = sys.stdout
    deletions = DeletionTimes()
    found = iter_changes(ev, flt, container, deletions)
    with _page(trust, output):
        if output == "jsonl":
            for cited in found:
                doc = cited.record.to_dict() | {
                    "container": cited.container,
                    "cited": cited.citation,
                    "bundle_verdict": trust.overall,
                }
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
        else:
            _stream_table(
                (_fs_cells(cited, deletions) for cited in found),
                ["container", "change", "type", "mode", "size", "time (UTC)", "time is", "path"],
                out,
                right=["size"],
            )
    _problems(ev)
    return _exit_code(trust)


def _fs_cells(cited: Cited[FileChange], deletions: DeletionTimes) -> list[Any]:
    """One fs row: the time shown is the mtime, or for a deletion the time of its deletion (the
    whiteout's or the opaque directory's ctime), never the deleted file's old mtime."""
    c = cited.record
    if c.change == "deleted":
        kind = deletions.kind(cited)
        when, what = (c.ctime if kind != UNKNOWN_TIME else None), DELETION_LABELS[kind][0]
    else:
        when, what = c.mtime, "mtime"
    target = f" -> {c.link_target}" if c.link_target else ""
    note = (
        ""
        if c.captured or c.change == "deleted" or c.type == "dir"
        else f"  [not captured: {c.skipped or '-'}]"
    )
    return [
        cited.container,
        c.change,
        c.type,
        c.mode,
        c.size if c.size is not None else "",
        when,
        what,
        c.path + target + note,
    ]


@fs_cmd.command("cat")
@click.argument("path")
@click.option(
    "--container", help="The container whose capture holds PATH (needed when several do)."
)
@click.option("--raw", is_flag=True, help="Write the bytes as they are, even to a terminal.")
@_trust_options
@click.pass_context
def fs_cat_cmd(
    ctx: click.Context, path: str, container: str | None, raw: bool, **trust_opts: Any
) -> int:
    """Print a captured file's content, streamed from the capture's tar (nothing is extracted).

    On a terminal, control characters are escaped unless --raw; into a pipe, bytes go as they are."""
    ev, trust = _open(ctx, **trust_opts)
    located = locate_file(ev, path, container)
    if located.change is not None:
        digest = located.change.record.sha256
        where = f"ir: {printable(located.change.record.path)} from {located.tar_artifact}"
        info(where + (f" (sha256 {digest})" if digest else ""))
    elif located.note:
        info(f"ir: {printable(path)}: {printable(located.note)}, from {located.tar_artifact}")
    _print_banner_stderr(trust)
    out = sys.stdout.buffer
    terminal = sys.stdout.isatty() and not raw
    for chunk in stream_file(ev, located, path):
        if terminal:
            text = chunk.decode("utf-8", "replace")
            out.write(
                "\n".join(printable(part) if part else "" for part in text.split("\n")).encode()
            )
        else:
            out.write(chunk)
    out.flush()
    return _exit_code(trust)


def _print_banner_stderr(trust: Trust) -> None:
    banner = trust.banner()
    if banner:
        click.echo(click.style(printable(banner), fg="red", bold=True), err=True)


@replay.command("logs")
@click.option(
    "--container", "containers", multiple=True, help="Only these containers (repeatable)."
)
@click.option(
    "--instance", type=click.Choice(["current", "previous"]), help="Only this container instance."
)
@click.option(
    "--since",
    metavar="TIME",
    help="At or after TIME (any format ir parses; year-less: capture's year).",
)
@click.option("--until", metavar="TIME", help="At or before TIME.")
@click.option(
    "-o", "--output", type=click.Choice(["text", "jsonl", "csv"]), default="text", show_default=True
)
@_trust_options
@click.pass_context
def logs_cmd(
    ctx: click.Context,
    containers: tuple[str, ...],
    instance: str | None,
    since: str | None,
    until: str | None,
    output: str,
    **trust_opts: Any,
) -> int:
    """Container logs merged across containers and instances, in time order (UTC), each line's
    time as precise as it was given and where it came from (the runtime's stamp, else the time
    written in the message)."""
    ev, trust = _open(ctx, **trust_opts)
    stats = TimelineStats()
    rows = build_timeline(
        ev,
        sources=["log"],
        since=_time_option(since, ev, "--since"),
        until=_time_option(until, ev, "--until"),
        containers=set(containers) or None,
        stats=stats,
    )
    if instance:
        rows = (r for r in rows if r.fields.get("instance") == instance)
    with _page(trust, output):
        if output == "jsonl":
            write_jsonl(rows, sys.stdout, verdict=trust.overall)
        elif output == "csv":
            write_csv(rows, sys.stdout, verdict=trust.overall)
        else:
            # time from: the runtime's stamp, the time written in the message, or none (placed
            # after the previous line)
            _stream_table(
                (
                    [
                        r.stamp.text,
                        r.clock if r.timed else "none",
                        r.container,
                        f"{r.fields.get('instance', '-')}/{r.fields.get('stream')}",
                        r.message,
                    ]
                    for r in rows
                ),
                ["time (UTC)", "time from", "container", "instance/stream", "message"],
                sys.stdout,
            )
    _stats_notes(stats)
    _problems(ev)
    return _exit_code(trust)


def _stats_notes(stats: TimelineStats) -> None:
    if stats.late.late:
        info(
            f"note: {stats.late.late} log line(s) were more than the reorder window out of order and are shown "
            "where they were read"
        )


def _sources_option(values: tuple[str, ...]) -> list[str] | None:
    chosen = [s.strip() for v in values for s in v.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise UsageError(
            f"--source: unknown {', '.join(unknown)}; choose from {', '.join(SOURCES)}"
        )
    return chosen or None


@replay.command("timeline")
@click.option(
    "--since",
    metavar="TIME",
    help="At or after TIME (RFC 3339, '10/Oct/2000:13:55:36 -0700', epoch, ...).",
)
@click.option("--until", metavar="TIME", help="At or before TIME.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME[,NAME]",
    help=f"Only these sources: {', '.join(SOURCES)} (repeatable or comma-separated).",
)
@click.option(
    "--container",
    "containers",
    multiple=True,
    help="Only rows of these containers (and bundle-level rows).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "csv", "jsonl", "timesketch"]),
    default="table",
    show_default=True,
    help="timesketch: JSON Lines ready for Timesketch import.",
)
@click.option("--out", "out_path", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="The table shows ir's own capture actions too (left out by default, counted on stderr; "
    "csv, jsonl and timesketch always carry every row).",
)
@_trust_options
@click.pass_context
def timeline_cmd(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    sources: tuple[str, ...],
    containers: tuple[str, ...],
    output: str,
    out_path: str | None,
    show_all: bool,
    **trust_opts: Any,
) -> int:
    """One merged, UTC timeline: log lines, Kubernetes events and pod status, container and
    process starts, file mtimes/ctimes, the alert and ir's own actions, each row citing its
    artifact and line. The table leaves ir's own actions out unless --all or --source ir. Year-less times (syslog, klog) take the capture's year; times without
    offset are taken as UTC and say so."""
    ev, trust = _open(ctx, **trust_opts)
    stats = TimelineStats()
    rows = build_timeline(
        ev,
        sources=_sources_option(sources),
        since=_time_option(since, ev, "--since"),
        until=_time_option(until, ev, "--until"),
        containers=set(containers) or None,
        stats=stats,
    )
    started = time.monotonic()
    with _out_stream(out_path) as out, _page(trust, output if out_path is None else "file"):
        if output == "csv":
            n = write_csv(rows, out, verdict=trust.overall)
        elif output == "jsonl":
            n = write_jsonl(rows, out, verdict=trust.overall)
        elif output == "timesketch":
            n = write_timesketch(
                rows,
                out,
                bundle_id=ev.manifest.bundle_id,
                case_id=ev.manifest.case_id,
                verdict=trust.overall,
            )
        else:
            own = show_all or "ir" in (_sources_option(sources) or ())
            hidden = [0]
            n = _write_table(_without_ir(rows, hidden) if not own else rows, out)
            if hidden[0]:
                info(f"ir: {hidden[0]} of ir's own capture actions not shown (--all shows them)")
    if out_path:
        info(f"ir: wrote {n} rows to {out_path} in {time.monotonic() - started:.1f}s")
    _stats_notes(stats)
    _problems(ev)
    return _exit_code(trust)


def _without_ir(rows: Iterator[TimelineEvent], hidden: list[int]) -> Iterator[TimelineEvent]:
    """The rows an investigator reads first: what happened in the workload, not ir's capture."""
    for row in rows:
        if row.source == "ir":
            hidden[0] += 1
            continue
        yield row


def _write_table(rows: Iterator[TimelineEvent], out: IO[str]) -> int:
    """The timeline as a table: each time with the digits its source gave, its precision, and
    the clock that made it, starred when that is not the capture host's (noted on stderr)."""
    others: set[str] = set()

    def cells(r: TimelineEvent) -> list[Any]:
        what = "" if r.description == _DEFAULT_LOG_DESCRIPTION else f"{r.description}: "
        note = f" ({r.time_note})" if r.time_note else ""
        if r.other_clock:
            others.add(r.clock)
        return [
            r.stamp.text,
            r.precision,
            r.clock + ("*" if r.other_clock else ""),
            r.source,
            r.container or "-",
            f"{what}{r.message}{note}  [{r.cited}]",
        ]

    n = _stream_table(
        (cells(r) for r in rows),
        ["time (UTC)", "precision", "clock", "source", "container", "message  [cited]"],
        out,
    )
    if others:
        info(
            f"ir: clock*: not the capture host's clock ({', '.join(sorted(others))}); order across "
            "clocks is only as good as their agreement (docs/replay.md, Clocks)"
        )
    return n


@replay.group("export")
def export_grp() -> None:
    """Exports: Timesketch JSON Lines, a self-contained HTML report."""


@export_grp.command("timesketch")
@click.option(
    "--out",
    "out_path",
    metavar="FILE",
    default="-",
    show_default=True,
    help="Output file ('-': stdout).",
)
@_trust_options
@click.pass_context
def export_timesketch(ctx: click.Context, out_path: str, **trust_opts: Any) -> int:
    """The whole timeline as Timesketch JSON Lines (message, datetime, timestamp_desc, timestamp
    and the source fields; every row carries bundle_id and bundle_verdict)."""
    ev, trust = _open(ctx, **trust_opts)
    with _out_stream(out_path) as out:
        n = write_timesketch(
            build_timeline(ev),
            out,
            bundle_id=ev.manifest.bundle_id,
            case_id=ev.manifest.case_id,
            verdict=trust.overall,
        )
    if out_path != "-":
        info(f"ir: wrote {n} Timesketch events to {out_path}")
    _print_banner_stderr(trust)
    _problems(ev)
    return _exit_code(trust)


@export_grp.command("html")
@click.option("--out", "out_path", metavar="FILE", required=True, help="The report file to write.")
@click.option(
    "--cached-verdict",
    is_flag=True,
    help="Use a cached verification verdict instead of hashing every artifact again (the report's "
    "header then says it was cached, and when).",
)
@_trust_options
@click.pass_context
def export_html(ctx: click.Context, out_path: str, cached_verdict: bool, **trust_opts: Any) -> int:
    """A self-contained HTML report (no network needed to open it): summary, findings, timeline
    chart, process/network/file tables and the timeline rows. The bundle is hashed again for the
    report unless --cached-verdict."""
    if not cached_verdict:
        trust_opts["reverify"] = True
    ev, trust = _open(ctx, **trust_opts)
    target = Path(out_path)
    tmp = target.with_name(f".{target.name}.partial")
    local = Path(ctx.find_object(_Session).ref)  # type: ignore[union-attr]
    file_sha256 = _file_sha256(local) if local.is_file() else None
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            counts = write_report(ev, trust, out, file_sha256=file_sha256)
        tmp.replace(target)
    except OSError as exc:
        raise UsageError(f"cannot write {out_path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    info(
        f"ir: wrote {out_path}: {counts['timeline_rows']} timeline rows ({counts['timeline_rows_in_table']} in the "
        f"table), {counts['findings']} findings"
    )
    _print_banner_stderr(trust)
    _problems(ev)
    return _exit_code(trust)


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- ir bundle diff ---------------------------------------------------------------------------


@bundle.command("diff")
@click.argument("ref_a", metavar="A")
@click.argument("ref_b", metavar="B")
@_trust_options
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def diff_cmd(
    ctx: click.Context,
    ref_a: str,
    ref_b: str,
    output: str,
    force: bool | None,
    public_key: str | None,
    reverify: bool | None,
    endpoint: str | None,
    verdict_details: bool | None,
) -> int:
    """What differs between two bundles of the same workload (e.g. the suspect pod and its clean
    replacement): files, processes (by executable + command line), connections and listeners.

    Both are verified first (refused unless valid, or --force). "-" lines are only in A, "+"
    only in B, "~" in both but different."""
    opts = _Options(bool(force), public_key, bool(reverify), endpoint, bool(verdict_details))
    a, trust_a = open_evidence(ctx, ref_a, opts, name="A")
    b, trust_b = open_evidence(ctx, ref_b, opts, name="B")
    processes = diff_processes(a, b)
    connections = diff_connections(a, b)
    if output == "json":
        emit_json(
            {
                "a": {
                    "bundle": a.display,
                    "bundle_id": a.manifest.bundle_id,
                    "verification": trust_a.to_dict(),
                },
                "b": {
                    "bundle": b.display,
                    "bundle_id": b.manifest.bundle_id,
                    "verification": trust_b.to_dict(),
                },
                "files": [d.to_dict() for d in diff_files(a, b)],
                "processes": [d.to_dict() for d in processes],
                "connections": [d.to_dict() for d in connections if d.kind == "connection"],
                "listeners": [d.to_dict() for d in connections if d.kind == "listener"],
                "problems": a.problems + b.problems,
            }
        )
        return _exit_code(trust_a, trust_b)
    for trust in (trust_a, trust_b):
        _print_banner(trust)
    click.echo(f"A: {printable(a.display)}  ({a.manifest.bundle_id}, {printable(_target(a))})")
    click.echo(f"B: {printable(b.display)}  ({b.manifest.bundle_id}, {printable(_target(b))})")
    click.echo("\nFiles")
    n = 0
    for fd in diff_files(a, b):
        n += 1
        side = fd.a if fd.status == "only-a" else fd.b
        assert side is not None
        sign = {"only-a": "-", "only-b": "+", "differs": "~"}[fd.status]
        what = f"({', '.join(fd.differs)})" if fd.differs else f"{side['change']} {side['type']}"
        click.echo(f"  {sign} [{printable(fd.container)}] {printable(fd.path)}  {printable(what)}")
    if not n:
        click.echo("  no difference")
    for title, kind, deltas in (
        ("Processes (executable + command line)", "process", processes),
        ("Listeners", "listener", connections),
        ("Connections", "connection", connections),
    ):
        click.echo(f"\n{title}")
        shown = [d for d in deltas if d.kind == kind]
        for d in shown:
            sign = "-" if d.status == "only-a" else "+" if d.status == "only-b" else "~"
            click.echo(
                f"  {sign} [{printable(d.container)}] {printable(d.key)}  (A: {d.a}, B: {d.b})"
            )
        if not shown:
            click.echo("  no difference")
    for trust in (trust_a, trust_b):
        _print_banner(trust)
    for problem in a.problems + b.problems:
        click.echo(f"problem: {printable(problem)}", err=True)
    return _exit_code(trust_a, trust_b)


def _target(ev: Evidence) -> str:
    from ir.store.local import describe_target

    return describe_target(ev.manifest.target)


COMMANDS = [replay]
