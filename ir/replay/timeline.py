"""One timeline of everything in a bundle that has a time, UTC, in order, each row citing the
artifact (and line, or JSON pointer) it comes from.

Sources (select with `sources`):
  log        container log lines: the runtime's time of each line; lines the runtime did not stamp
             take the time written in the message (RFC 3339, common log, syslog, klog, Go log,
             epoch..., see ir.clock.find_timestamp), else the previous line's. The message's own
             time is always kept in the row's fields (message_time) so a skewed or lying
             application clock shows next to the runtime's.
  k8s        Kubernetes events (first and last seen) and the pod's status times (created, started,
             conditions, container states and restarts)
  container  container created/started/finished (inspect.json), image created (image.json)
  process    process start times
  file       file mtime and ctime of added/changed files (one row when they are equal); a deletion
             at its whiteout's ctime ("whiteout created"), at or before the ctime of the opaque
             directory that hides it, or "deleted before capture; time unknown" placed at capture
             start -- never the deleted file's old mtime
  alert      the alert that triggered the capture (at the precision the sender gave, from the
             alert's `time_ns`/`time_precision` when the alert parser recorded them)
  ir         what ir did: capture start and seal, actions recorded during capture (manifest),
             failed collectors, and the custody log beside the bundle (e.g. respond: quarantine)

Every row keeps its time as precise as its source gave it (`stamp`: nanoseconds where given), the
source's precision, and whose clock made it (`clock`, see ir.replay.clocks); rows on another clock
than the capture host's are marked (`other_clock`).

Order: by instant, then the tie rule of ir.replay.event (finer precision, then container, k8s,
process, file, log, alert, ir, then artifact and line). Log artifacts are in time order already
(see ir.replay.ordering.reorder_window); all other sources go through an external merge sort;
heapq.merge joins them. See ordering.py for why. The log source is read here; the others are
ir.replay.sources.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ir.bundle.manifest import ArtifactEntry
from ir.clock import ParsedTime, find_timestamp
from ir.records import LogLine
from ir.replay import clocks
from ir.replay.clocks import Stamp, from_parsed
from ir.replay.event import TimelineEvent, order_key
from ir.replay.evidence import Evidence, label_of
from ir.replay.ordering import LateCounter, external_sorted, reorder_window
from ir.replay.sources import (
    alert_events,
    container_events,
    file_events,
    ir_events,
    k8s_events,
    process_events,
)

__all__ = [
    "RUNTIME_LOG",
    "SOURCES",
    "TimelineEvent",
    "TimelineStats",
    "build_timeline",
    "log_events",
]

SOURCES = ("log", "k8s", "container", "process", "file", "alert", "ir")
# The description of a log line timed by the runtime's stamp (the usual case: tables leave it out).
RUNTIME_LOG = "Log line written (runtime time)"
MAX_MESSAGE = 8192  # characters of a log message kept in a row
SCAN_PREFIX = 4096  # a message's own timestamp is looked for in its first characters only
MAX_UNTIMED_HEAD = 10_000  # untimed lines held back until the first timed line of an artifact
_EPOCH_STAMP = Stamp(0, clocks.SECOND)


@dataclass
class TimelineStats:
    rows: int = 0
    late: LateCounter = field(default_factory=LateCounter)


def build_timeline(
    ev: Evidence,
    *,
    sources: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    containers: set[str] | None = None,
    spill_dir: str | None = None,
    stats: TimelineStats | None = None,
) -> Iterator[TimelineEvent]:
    """The merged timeline, streamed. Unselected sources (and other containers' logs, when
    `containers` is given) are not even read."""
    selected = set(sources or SOURCES)
    stats = stats or TimelineStats()

    def window(events: Iterable[TimelineEvent]) -> Iterator[TimelineEvent]:
        for e in events:
            if (
                (since is None or e.time >= since)
                and (until is None or e.time <= until)
                and (containers is None or e.container is None or e.container in containers)
            ):
                yield e

    streams: list[Iterator[TimelineEvent]] = []
    if "log" in selected:
        for entry in ev.artifacts("logs"):
            if containers is not None and label_of(entry) not in containers:
                continue
            streams.append(
                reorder_window(window(log_events(ev, entry)), order_key, counter=stats.late)
            )
    producers: dict[str, Callable[[Evidence], Iterator[TimelineEvent]]] = {
        "k8s": k8s_events,
        "container": container_events,
        "process": process_events,
        "file": file_events,
        "alert": alert_events,
        "ir": ir_events,
    }
    for name, produce in producers.items():
        if name in selected:
            streams.append(external_sorted(window(produce(ev)), order_key, spill_dir=spill_dir))
    for event in heapq.merge(*streams, key=order_key):
        stats.rows += 1
        yield event


# -- log lines -----------------------------------------------------------------------------------


def log_events(ev: Evidence, entry: ArtifactEntry) -> Iterator[TimelineEvent]:
    reference = ev.reference_time
    instance_default = str(entry.meta.get("instance") or "current")
    previous: TimelineEvent | None = None
    held: list[TimelineEvent] = []  # untimed lines before the first time in this artifact
    for cited in ev.records_of(LogLine, entry):
        rec = cited.record
        message = rec.message
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + f"... [{len(message) - MAX_MESSAGE} more characters]"
        fields: dict[str, Any] = {
            "stream": rec.stream,
            "instance": rec.instance or instance_default,
        }
        found = find_timestamp(rec.message[:SCAN_PREFIX], reference=reference)
        if found is not None:
            fields["message_time"] = from_parsed(found.parsed).text
            fields["message_time_format"] = found.format
            fields["message_time_original"] = found.parsed.original
            note = _time_note(found.parsed)
            if note:
                fields["message_time_note"] = note
        runtime = ev.parse_time(rec.time)
        container = cited.container or rec.container
        if runtime is not None:
            event = TimelineEvent(
                from_parsed(runtime),
                "log",
                RUNTIME_LOG,
                message,
                cited.artifact,
                cited.line,
                container=container,
                fields=fields,
                clock=clocks.RUNTIME,
            )
        elif found is not None:
            event = TimelineEvent(
                from_parsed(found.parsed),
                "log",
                "Time written in the log message",
                message,
                cited.artifact,
                cited.line,
                container=container,
                fields=fields,
                time_original=found.parsed.original,
                time_note=_time_note(found.parsed),
                clock=clocks.APPLICATION,
            )
        else:
            event = TimelineEvent(
                previous.stamp if previous else _EPOCH_STAMP,
                "log",
                "Log line (no time: placed after the previous line)",
                message,
                cited.artifact,
                cited.line,
                container=container,
                fields=fields,
                time_note="no time in the line",
                clock=previous.clock if previous else clocks.RUNTIME,
                timed=False,
            )
            if previous is None:
                if len(held) < MAX_UNTIMED_HEAD:
                    held.append(event)
                    continue
                event.time_note = "no time in the line; shown at the epoch"
        if held and previous is None and event.timed:
            for waiting in held:
                waiting.clock = event.clock
                waiting.retime(event.stamp)
                yield waiting
            held.clear()
        if event.timed:
            previous = event
        yield event
    yield from held  # an artifact with no time at all: at the epoch, flagged


def _time_note(parsed: ParsedTime) -> str | None:
    notes = []
    if parsed.assumed_utc:
        notes.append("no offset in the text: UTC assumed")
    if parsed.assumed_year:
        notes.append("no year in the text: year of the capture assumed")
    return "; ".join(notes) or None
