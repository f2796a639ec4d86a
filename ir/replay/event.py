"""One timeline row (`TimelineEvent`) and the order rows are put in. Imports ir.replay.clocks.

Order (`TimelineEvent.key`):
1. the instant, in nanoseconds since the epoch as the source gave it; a coarse time counts as the
   start of its interval (10:00:01.08 from 10 ms ticks is 10:00:01.080000000);
2. at the same instant, the finer precision first (its interval ends first);
3. then the source, in causal order: container, k8s, process, file, log, alert, ir -- a lifecycle
   change before what runs in it, a process before what it writes, an alert after what it saw,
   ir's own actions last;
4. then the artifact's name and the line (or JSON pointer order), i.e. the order the records were
   written.
A row without a time of its own (`timed` False: a log line with no time, a deletion whose time is
unknown) takes the time it is placed at, and sorts as a row of that time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ir.replay import clocks
from ir.replay.clocks import Stamp


@dataclass(slots=True)
class TimelineEvent:
    stamp: Stamp  # the instant, as precise as its source gave it
    source: str
    description: str  # what the time means (Timesketch's timestamp_desc)
    message: str  # untrusted text: escape/print safely
    artifact: str
    line: int | None = None
    pointer: str | None = None  # JSON pointer inside a JSON document artifact
    container: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    time_original: str | None = None  # the text the time was read from, when not ir's own
    time_note: str | None = None  # "assumed UTC", "assumed year", "time of previous line"
    clock: str = clocks.HOST  # whose clock made the time (ir.replay.clocks.CLOCKS)
    timed: bool = True  # False: no time of its own, placed (time_note says where and why)
    key: tuple[int, int, int, str, int] = (0, 0, 0, "", 0)

    def __post_init__(self) -> None:
        self.retime(self.stamp)

    def retime(self, stamp: Stamp) -> None:
        self.stamp = stamp
        self.key = (
            stamp.ns,
            stamp.precision_ns,
            RANK[self.source],
            self.artifact,
            self.line or 0,
        )

    @property
    def time(self) -> datetime:
        """UTC, to the microsecond (`stamp` has every digit the source gave)."""
        return self.stamp.utc

    @property
    def time_exact(self) -> str:
        """RFC 3339 with all nine digits, for machines (sortable as text); `precision` says how
        many of them the source gave."""
        return clocks.format_ns(self.stamp.ns)

    @property
    def other_clock(self) -> bool:
        """Made by another clock than the capture host's."""
        known = clocks.CLOCKS.get(self.clock)
        return known is None or not known.reference

    @property
    def precision(self) -> str:
        return self.stamp.precision if self.timed else "none"

    @property
    def cited(self) -> str:
        if self.line is not None:
            return f"{self.artifact}:{self.line}"
        return f"{self.artifact}#{self.pointer}" if self.pointer else self.artifact

    @property
    def timestamp_micros(self) -> int:
        return self.stamp.ns // 1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time_exact,
            "time_ns": self.stamp.ns,
            "precision": self.precision,
            "clock": self.clock,
            "other_clock": self.other_clock,
            "source": self.source,
            "description": self.description,
            "message": self.message,
            "container": self.container,
            "artifact": self.artifact,
            "line": self.line,
            "pointer": self.pointer,
            "cited": self.cited,
            "time_original": self.time_original,
            "time_note": self.time_note,
            "fields": self.fields,
        }


#: The tie rule's source order (see `TimelineEvent.key`).
RANK = {
    name: i for i, name in enumerate(("container", "k8s", "process", "file", "log", "alert", "ir"))
}


def order_key(event: TimelineEvent) -> tuple[int, int, int, str, int]:
    return event.key
