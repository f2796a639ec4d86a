"""The `timeline` view declared: one merged UTC timeline of every source, each row citing its
artifact and line (`ir.replay.timeline`), as a table (`ir.replay.render.timeline`), CSV, JSON
Lines or Timesketch JSON Lines (`ir.replay.export`), to stdout or a file."""

from __future__ import annotations

from typing import IO

from ir.errors import UsageError
from ir.replay.evidence import Evidence
from ir.replay.export import write_csv, write_jsonl, write_timesketch
from ir.replay.render.timeline import stats_notes, without_ir, write_timeline_table
from ir.replay.timeline import SOURCES, TimelineStats, build_timeline
from ir.replay.trust import Trust
from ir.replay.views.model import Note, Option, Page, Rows, View
from ir.replay.views.options import output, time_option

HELP = """One merged, UTC timeline: log lines, Kubernetes events and pod status, container and
process starts, file mtimes/ctimes, the alert and ir's own actions, each row citing its
artifact and line. The table leaves ir's own actions out unless --all or --source ir. Year-less times (syslog, klog) take the capture's year; times without
offset are taken as UTC and say so."""

OPTIONS = (
    Option(
        "--since",
        "At or after TIME (RFC 3339, '10/Oct/2000:13:55:36 -0700', epoch, ...).",
        metavar="TIME",
    ),
    Option("--until", "At or before TIME.", metavar="TIME"),
    Option(
        "--source",
        f"Only these sources: {', '.join(SOURCES)} (repeatable or comma-separated).",
        name="sources",
        metavar="NAME[,NAME]",
        multiple=True,
    ),
    Option(
        "--container",
        "Only rows of these containers (and bundle-level rows).",
        name="containers",
        multiple=True,
    ),
    output(
        "table",
        "csv",
        "jsonl",
        "timesketch",
        help="timesketch: JSON Lines ready for Timesketch import.",
    ),
    Option("--out", "Write to FILE instead of stdout.", name="out_path", metavar="FILE"),
    Option(
        "--all",
        "The table shows ir's own capture actions too (left out by default, counted on stderr; "
        "csv, jsonl and timesketch always carry every row).",
        name="show_all",
        flag=True,
    ),
)


def sources_option(values: tuple[str, ...]) -> list[str] | None:
    """The sources --source names (repeated or comma-separated), None for all of them."""
    chosen = [s.strip() for v in values for s in v.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise UsageError(
            f"--source: unknown {', '.join(unknown)}; choose from {', '.join(SOURCES)}"
        )
    return chosen or None


def timeline_page(
    ev: Evidence,
    trust: Trust,
    *,
    since: str | None,
    until: str | None,
    sources: tuple[str, ...],
    containers: tuple[str, ...],
    output: str,
    out_path: str | None,
    show_all: bool | None,
) -> Page:
    stats = TimelineStats()
    rows = build_timeline(
        ev,
        sources=sources_option(sources),
        since=time_option(since, ev, "--since"),
        until=time_option(until, ev, "--until"),
        containers=set(containers) or None,
        stats=stats,
    )

    def write(out: IO[str], note: Note) -> int:
        if output == "csv":
            return write_csv(rows, out, verdict=trust.overall)
        if output == "jsonl":
            return write_jsonl(rows, out, verdict=trust.overall)
        if output == "timesketch":
            return write_timesketch(
                rows,
                out,
                bundle_id=ev.manifest.bundle_id,
                case_id=ev.manifest.case_id,
                verdict=trust.overall,
            )
        own = show_all or "ir" in (sources_option(sources) or ())
        hidden = [0]
        others: set[str] = set()
        n = write_timeline_table(without_ir(rows, hidden) if not own else rows, out, others)
        if others:
            note(
                f"ir: clock*: not the capture host's clock ({', '.join(sorted(others))}); order "
                "across clocks is only as good as their agreement (docs/replay.md, Clocks)"
            )
        if hidden[0]:
            note(f"ir: {hidden[0]} of ir's own capture actions not shown (--all shows them)")
        return n

    return Rows(write, out_path=out_path, notes=lambda: stats_notes(stats))


VIEW = View("timeline", HELP, OPTIONS, timeline_page)
