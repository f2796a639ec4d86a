"""The file view (`ir replay fs`) as text: changed files streamed as a table (the time shown is
the mtime, or for a deletion the time of the deletion) or as JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from ir.records import FileChange
from ir.replay.evidence import Cited
from ir.replay.files import DELETION_LABELS, UNKNOWN_TIME, DeletionTimes
from ir.replay.render.text import stream_table

FS_COLUMNS = ("container", "change", "type", "mode", "size", "time (UTC)", "time is", "path")


def write_fs_table(
    found: Iterable[Cited[FileChange]], deletions: DeletionTimes, out: IO[str]
) -> int:
    """Stream the changes as a table to `out`; returns the number of rows."""
    return stream_table(
        (fs_cells(cited, deletions) for cited in found), FS_COLUMNS, out, right=["size"]
    )


def write_fs_jsonl(found: Iterable[Cited[FileChange]], out: IO[str], *, verdict: str) -> int:
    """Stream the changes as JSON Lines, each with its container, citation and the bundle's
    verdict; returns the number of rows."""
    n = 0
    for cited in found:
        doc = cited.record.to_dict() | {
            "container": cited.container,
            "cited": cited.citation,
            "bundle_verdict": verdict,
        }
        out.write(json.dumps(doc, ensure_ascii=False) + "\n")
        n += 1
    return n


def fs_cells(cited: Cited[FileChange], deletions: DeletionTimes) -> list[Any]:
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
