"""The `logs` view declared: container logs merged across containers and instances in time
order (the log rows of `ir.replay.timeline`), as a table (`ir.replay.render.timeline`), JSON
Lines or CSV (`ir.replay.export`)."""

from __future__ import annotations

from typing import IO

from ir.replay.evidence import Evidence
from ir.replay.export import write_csv, write_jsonl
from ir.replay.render.timeline import stats_notes, write_log_table
from ir.replay.timeline import TimelineStats, build_timeline
from ir.replay.trust import Trust
from ir.replay.views.model import Note, Option, Page, Rows, View
from ir.replay.views.options import output, time_option

HELP = """Container logs merged across containers and instances, in time order (UTC), each line's
time as precise as it was given and where it came from (the runtime's stamp, else the time
written in the message)."""

OPTIONS = (
    Option("--container", "Only these containers (repeatable).", name="containers", multiple=True),
    Option("--instance", "Only this container instance.", choices=("current", "previous")),
    Option(
        "--since",
        "At or after TIME (any format ir parses; year-less: capture's year).",
        metavar="TIME",
    ),
    Option("--until", "At or before TIME.", metavar="TIME"),
    output("text", "jsonl", "csv"),
)


def log_page(
    ev: Evidence,
    trust: Trust,
    *,
    containers: tuple[str, ...],
    instance: str | None,
    since: str | None,
    until: str | None,
    output: str,
) -> Page:
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

    def write(out: IO[str], note: Note) -> int:
        if output == "jsonl":
            return write_jsonl(rows, out, verdict=trust.overall)
        if output == "csv":
            return write_csv(rows, out, verdict=trust.overall)
        return write_log_table(rows, out)

    return Rows(write, notes=lambda: stats_notes(stats))


VIEW = View("logs", HELP, OPTIONS, log_page)
