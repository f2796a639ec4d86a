"""The timeline and log views (`ir replay timeline`, `ir replay logs`) as streamed text tables:
each time with the digits its source gave, its precision and the clock that made it, and each row
citing its artifact and line; and the notes said after them. (csv, jsonl and Timesketch are
`ir.replay.export`.)"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

from ir.replay.render.text import stream_table
from ir.replay.timeline import RUNTIME_LOG, TimelineEvent, TimelineStats

TIMELINE_COLUMNS = ("time (UTC)", "precision", "clock", "source", "container", "message  [cited]")
LOG_COLUMNS = ("time (UTC)", "time from", "container", "instance/stream", "message")


def without_ir(rows: Iterable[TimelineEvent], hidden: list[int]) -> Iterator[TimelineEvent]:
    """The rows an investigator reads first: what happened in the workload, not ir's capture.
    `hidden[0]` counts the rows left out."""
    for row in rows:
        if row.source == "ir":
            hidden[0] += 1
            continue
        yield row


def stats_notes(stats: TimelineStats) -> Iterator[str]:
    """What a reader of the rows must know once they are out: log lines read too far out of
    order to be placed by time."""
    if stats.late.late:
        yield (
            f"note: {stats.late.late} log line(s) were more than the reorder window out of order "
            "and are shown where they were read"
        )


def write_timeline_table(rows: Iterable[TimelineEvent], out: IO[str], others: set[str]) -> int:
    """The timeline as a table; a clock that is not the capture host's is starred and added to
    `others` (the caller says what that means). Returns the number of rows."""

    def cells(r: TimelineEvent) -> list[Any]:
        what = "" if r.description == RUNTIME_LOG else f"{r.description}: "
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

    return stream_table((cells(r) for r in rows), TIMELINE_COLUMNS, out)


def write_log_table(rows: Iterable[TimelineEvent], out: IO[str]) -> int:
    """Log lines as a table. "time from": the runtime's stamp, the time written in the message,
    or none (placed after the previous line). Returns the number of rows."""
    return stream_table(
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
        LOG_COLUMNS,
        out,
    )
