"""Timeline rows out: CSV, JSON Lines, and Timesketch-ready JSON Lines, streamed row by row.

Every row carries the bundle's verification verdict (`bundle_verdict`) so a row copied out of a
tampered bundle (shown with --force) still says so wherever it ends up, and its time as precise as
its source gave it, with that precision and the clock that made it (ir.replay.clocks).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import IO, Any

from ir.clock import rfc3339
from ir.replay.timeline import TimelineEvent

CSV_COLUMNS = (
    "time",
    "precision",
    "clock",
    "other_clock",
    "source",
    "description",
    "container",
    "message",
    "cited",
    "time_original",
    "time_note",
    "bundle_verdict",
)
# Timesketch's own fields: a source field of the same name is kept with an `ir_` prefix.
_TIMESKETCH_RESERVED = {
    "message",
    "datetime",
    "timestamp",
    "timestamp_desc",
    "data_type",
    "source_short",
    "tag",
    "label",
    "__ts_timeline_id",
}


def write_jsonl(rows: Iterable[TimelineEvent], out: IO[str], *, verdict: str) -> int:
    n = 0
    for row in rows:
        doc = row.to_dict()
        doc["bundle_verdict"] = verdict
        out.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def write_csv(rows: Iterable[TimelineEvent], out: IO[str], *, verdict: str) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    for row in rows:
        writer.writerow(
            [
                row.time_exact,
                row.precision,
                row.clock,
                "yes" if row.other_clock else "",
                row.source,
                row.description,
                row.container or "",
                _csv_safe(row.message),
                row.cited,
                row.time_original or "",
                row.time_note or "",
                verdict,
            ]
        )
        n += 1
    return n


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet: untrusted log text must not run.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def timesketch_row(row: TimelineEvent, *, bundle: dict[str, Any]) -> dict[str, Any]:
    """One Timesketch event: message, datetime, timestamp_desc (required), timestamp in
    microseconds (what Timesketch reads), the time as the source gave it (`time_exact`, with
    `precision` and `clock`), and the source fields flattened (lists and objects as JSON text)."""
    doc: dict[str, Any] = {
        "message": row.message,
        "datetime": rfc3339(row.time),
        "timestamp": row.timestamp_micros,
        "time_exact": row.time_exact,
        "precision": row.precision,
        "clock": row.clock,
        "other_clock": row.other_clock,
        "timestamp_desc": row.description,
        "data_type": f"ir:{row.source}",
        "source_short": row.source.upper(),
        "ir_source": row.source,
        "container": row.container,
        "artifact": row.artifact,
        "cited": row.cited,
        "time_original": row.time_original,
        "time_note": row.time_note,
        **bundle,
    }
    for key, value in row.fields.items():
        name = f"ir_{key}" if key in _TIMESKETCH_RESERVED or key in doc else key
        doc[name] = (
            json.dumps(value, sort_keys=True, default=str)
            if isinstance(value, list | dict)
            else value
        )
    return {k: v for k, v in doc.items() if v is not None}


def write_timesketch(
    rows: Iterable[TimelineEvent], out: IO[str], *, bundle_id: str, case_id: str, verdict: str
) -> int:
    bundle = {"bundle_id": bundle_id, "case_id": case_id, "bundle_verdict": verdict}
    n = 0
    for row in rows:
        out.write(
            json.dumps(timesketch_row(row, bundle=bundle), ensure_ascii=False, default=str) + "\n"
        )
        n += 1
    return n
