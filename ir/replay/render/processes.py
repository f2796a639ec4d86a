"""The process view (`ir replay ps`) as text: one table row per process, indented as a tree,
with the flags as one-letter codes and their legend under the table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ir.clock import rfc3339
from ir.replay.processes import ProcessRow, exe_path
from ir.replay.render.text import table_lines

FLAG_CODES = {"deleted-exe": "D", "started-late": "L", "temp-dir": "T"}
FLAG_LEGEND = "flags: D deleted executable, L started after the container, T running from /tmp, /var/tmp, /dev/shm"
PS_COLUMNS = (
    "container",
    "pid",
    "ppid",
    "user",
    "started (UTC)",
    "flags",
    "sha256",
    "executable  command line",
)
MAX_INDENT = 30  # tree levels shown as indentation; a deeper (hostile) tree stays readable


def process_lines(rows: Iterable[ProcessRow]) -> Iterator[str]:
    """The process table, then the legend of its flags."""
    yield from table_lines(
        [
            (
                r.cited.container,
                r.record.pid,
                r.record.ppid,
                r.record.user or r.record.uid,
                rfc3339(r.started) if r.started else r.record.start_time,
                "".join(FLAG_CODES[f] for f in r.flags) or "",
                (r.record.exe_sha256 or "")[:12],
                "  " * min(r.depth, MAX_INDENT)
                + ("\\_ " if r.depth else "")
                + (exe_path(r.record) or "?")
                + ("  " + " ".join(r.record.cmdline) if r.record.cmdline else ""),
            )
            for r in rows
        ],
        PS_COLUMNS,
    )
    yield FLAG_LEGEND
