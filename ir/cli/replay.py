"""`ir replay BUNDLE ...`: the click commands of the offline views over a bundle (verified
first). Each command opens the bundle (`ir.cli.replayopts`), asks the view in `ir.replay` for its
rows and prints them as its renderer in `ir.replay.render` lays them out. `ir bundle diff` is in
`ir.cli.bundle_diff`."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import click

from ir.cli.output import echo_lines, emit_json, info, printable
from ir.cli.replayopts import (
    ReplayOptions,
    ReplaySession,
    exit_code_of,
    open_replay,
    out_stream,
    page,
    print_banner_stderr,
    print_problems,
    size_option,
    time_option,
    trust_options,
)
from ir.errors import UsageError
from ir.replay.export import write_csv, write_jsonl, write_timesketch
from ir.replay.files import DeletionTimes, FsFilter, iter_changes, locate_file, stream_file
from ir.replay.network import connection_rows
from ir.replay.processes import process_rows
from ir.replay.render.files import write_fs_jsonl, write_fs_table
from ir.replay.render.network import connection_lines
from ir.replay.render.processes import process_lines
from ir.replay.render.summary import summary_lines
from ir.replay.render.timeline import without_ir, write_log_table, write_timeline_table
from ir.replay.report import write_report
from ir.replay.summary import build_summary
from ir.replay.timeline import SOURCES, TimelineStats, build_timeline


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
@trust_options
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
    ctx.obj = ReplaySession(
        ref, ReplayOptions(bool(force), public_key, bool(reverify), endpoint, bool(verdict_details))
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
@trust_options
@click.pass_context
def summary_cmd(ctx: click.Context, output: str, **trust_opts: Any) -> int:
    """Target, times, collectors and key findings."""
    ev, trust = open_replay(ctx, **trust_opts, announce=output == "json")
    doc = build_summary(ev, trust)
    if output == "json":
        emit_json(doc)
        return exit_code_of(trust)
    with page(trust, output):
        echo_lines(summary_lines(doc, trust))
    print_problems(ev)
    return exit_code_of(trust)


@replay.command("ps")
@click.option("--container", help="Only this container.")
@_output_text_json
@trust_options
@click.pass_context
def ps_cmd(ctx: click.Context, container: str | None, output: str, **trust_opts: Any) -> int:
    """The process tree: users, start times, executables and their hashes.

    Flags: D deleted executable, L started after the container, T running from a temp dir."""
    ev, trust = open_replay(ctx, **trust_opts)
    rows = list(process_rows(ev, container))
    if output == "json":
        emit_json(
            {
                "verification": trust.to_dict(),
                "processes": [r.to_dict() for r in rows],
                "problems": ev.problems,
            }
        )
        return exit_code_of(trust)
    with page(trust, output):
        echo_lines(process_lines(rows))
    print_problems(ev)
    return exit_code_of(trust)


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
@trust_options
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
    ev, trust = open_replay(ctx, **trust_opts)
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
        return exit_code_of(trust)
    with page(trust, output):
        echo_lines(connection_lines(rows))
    print_problems(ev)
    return exit_code_of(trust)


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
@trust_options
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
            ReplayOptions(
                bool(trust_opts["force"]),
                trust_opts["public_key"],
                bool(trust_opts["reverify"]),
                trust_opts["endpoint"],
                bool(trust_opts["verdict_details"]),
            )
        )
        return None
    ev, trust = open_replay(ctx, **trust_opts)
    flt = FsFilter(
        glob=glob,
        types=set(types),
        changes=set(changes),
        min_size=size_option(min_size, "--min-size"),
        max_size=size_option(max_size, "--max-size"),
        since=time_option(since, ev, "--since"),
        until=time_option(until, ev, "--until"),
        executable=executable,
    )
    deletions = DeletionTimes()
    found = iter_changes(ev, flt, container, deletions)
    with page(trust, output):
        if output == "jsonl":
            write_fs_jsonl(found, sys.stdout, verdict=trust.overall)
        else:
            write_fs_table(found, deletions, sys.stdout)
    print_problems(ev)
    return exit_code_of(trust)


@fs_cmd.command("cat")
@click.argument("path")
@click.option(
    "--container", help="The container whose capture holds PATH (needed when several do)."
)
@click.option("--raw", is_flag=True, help="Write the bytes as they are, even to a terminal.")
@trust_options
@click.pass_context
def fs_cat_cmd(
    ctx: click.Context, path: str, container: str | None, raw: bool, **trust_opts: Any
) -> int:
    """Print a captured file's content, streamed from the capture's tar (nothing is extracted).

    On a terminal, control characters are escaped unless --raw; into a pipe, bytes go as they are."""
    ev, trust = open_replay(ctx, **trust_opts)
    located = locate_file(ev, path, container)
    if located.change is not None:
        digest = located.change.record.sha256
        where = f"ir: {printable(located.change.record.path)} from {located.tar_artifact}"
        info(where + (f" (sha256 {digest})" if digest else ""))
    elif located.note:
        info(f"ir: {printable(path)}: {printable(located.note)}, from {located.tar_artifact}")
    print_banner_stderr(trust)
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
    return exit_code_of(trust)


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
@trust_options
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
    ev, trust = open_replay(ctx, **trust_opts)
    stats = TimelineStats()
    rows = build_timeline(
        ev,
        sources=["log"],
        since=time_option(since, ev, "--since"),
        until=time_option(until, ev, "--until"),
        containers=set(containers) or None,
        stats=stats,
    )
    if instance:
        rows = (r for r in rows if r.fields.get("instance") == instance)
    with page(trust, output):
        if output == "jsonl":
            write_jsonl(rows, sys.stdout, verdict=trust.overall)
        elif output == "csv":
            write_csv(rows, sys.stdout, verdict=trust.overall)
        else:
            write_log_table(rows, sys.stdout)
    _stats_notes(stats)
    print_problems(ev)
    return exit_code_of(trust)


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
@trust_options
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
    ev, trust = open_replay(ctx, **trust_opts)
    stats = TimelineStats()
    rows = build_timeline(
        ev,
        sources=_sources_option(sources),
        since=time_option(since, ev, "--since"),
        until=time_option(until, ev, "--until"),
        containers=set(containers) or None,
        stats=stats,
    )
    started = time.monotonic()
    with out_stream(out_path) as out, page(trust, output if out_path is None else "file"):
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
            others: set[str] = set()
            n = write_timeline_table(without_ir(rows, hidden) if not own else rows, out, others)
            if others:
                info(
                    f"ir: clock*: not the capture host's clock ({', '.join(sorted(others))}); order "
                    "across clocks is only as good as their agreement (docs/replay.md, Clocks)"
                )
            if hidden[0]:
                info(f"ir: {hidden[0]} of ir's own capture actions not shown (--all shows them)")
    if out_path:
        info(f"ir: wrote {n} rows to {out_path} in {time.monotonic() - started:.1f}s")
    _stats_notes(stats)
    print_problems(ev)
    return exit_code_of(trust)


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
@trust_options
@click.pass_context
def export_timesketch(ctx: click.Context, out_path: str, **trust_opts: Any) -> int:
    """The whole timeline as Timesketch JSON Lines (message, datetime, timestamp_desc, timestamp
    and the source fields; every row carries bundle_id and bundle_verdict)."""
    ev, trust = open_replay(ctx, **trust_opts)
    with out_stream(out_path) as out:
        n = write_timesketch(
            build_timeline(ev),
            out,
            bundle_id=ev.manifest.bundle_id,
            case_id=ev.manifest.case_id,
            verdict=trust.overall,
        )
    if out_path != "-":
        info(f"ir: wrote {n} Timesketch events to {out_path}")
    print_banner_stderr(trust)
    print_problems(ev)
    return exit_code_of(trust)


@export_grp.command("html")
@click.option("--out", "out_path", metavar="FILE", required=True, help="The report file to write.")
@click.option(
    "--cached-verdict",
    is_flag=True,
    help="Use a cached verification verdict instead of hashing every artifact again (the report's "
    "header then says it was cached, and when).",
)
@trust_options
@click.pass_context
def export_html(ctx: click.Context, out_path: str, cached_verdict: bool, **trust_opts: Any) -> int:
    """A self-contained HTML report (no network needed to open it): summary, findings, timeline
    chart, process/network/file tables and the timeline rows. The bundle is hashed again for the
    report unless --cached-verdict."""
    if not cached_verdict:
        trust_opts["reverify"] = True
    ev, trust = open_replay(ctx, **trust_opts)
    target = Path(out_path)
    tmp = target.with_name(f".{target.name}.partial")
    local = Path(ctx.find_object(ReplaySession).ref)  # type: ignore[union-attr]
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
    print_banner_stderr(trust)
    print_problems(ev)
    return exit_code_of(trust)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


COMMANDS = [replay]
