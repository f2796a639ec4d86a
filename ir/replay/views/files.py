"""The `fs` view declared: added, changed and deleted files, filtered and streamed
(`ir.replay.files`), as a table or JSON Lines (`ir.replay.render.files`). Its `fs cat PATH`
(a captured file's bytes, not a page) is a command of its own in `ir.cli.replay`."""

from __future__ import annotations

from typing import IO

from ir.replay.evidence import Evidence
from ir.replay.files import DeletionTimes, FsFilter, iter_changes
from ir.replay.render.files import write_fs_jsonl, write_fs_table
from ir.replay.trust import Trust
from ir.replay.views.model import Note, Option, Page, Rows, View
from ir.replay.views.options import CONTAINER, output, size_option, time_option

HELP = """Added, changed and deleted files (streamed), with filters; `fs cat PATH` prints one
captured file."""

OPTIONS = (
    CONTAINER,
    Option("--glob", "Path glob, e.g. '/usr/bin/*' ('*' also crosses '/').", metavar="PATTERN"),
    Option("--type", "file, dir, symlink, ... (repeatable).", name="types", multiple=True),
    Option(
        "--change",
        "Only these changes (repeatable).",
        name="changes",
        choices=("added", "changed", "deleted"),
        multiple=True,
    ),
    Option("--min-size", "At least this size (4096, 10k, 2M).", metavar="SIZE"),
    Option("--max-size", "At most this size.", metavar="SIZE"),
    Option("--since", "mtime or ctime at or after TIME (any format ir parses).", metavar="TIME"),
    Option("--until", "mtime or ctime at or before TIME.", metavar="TIME"),
    Option("--executable", "Only executable files.", flag=True),
    output("text", "jsonl"),
)


def file_page(
    ev: Evidence,
    trust: Trust,
    *,
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
) -> Page:
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

    def write(out: IO[str], note: Note) -> int:
        if output == "jsonl":
            return write_fs_jsonl(found, out, verdict=trust.overall)
        return write_fs_table(found, deletions, out)

    return Rows(write)


VIEW = View("fs", HELP, OPTIONS, file_page)
