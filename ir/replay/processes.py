"""The process view: every container's processes as a tree, with the flags an investigator looks
for first (deleted executable, started after the container, running from a temp directory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ir.clock import rfc3339
from ir.records import ProcessRecord
from ir.replay.evidence import Cited, Evidence

MAX_PROCESSES = 200_000  # per bundle; a process table is small, a hostile one is not held whole
# Processes started within this long after the container are its start-up, not "later".
STARTUP_GRACE = timedelta(seconds=5)
TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/")
DELETED_SUFFIX = " (deleted)"


@dataclass
class ProcessRow:
    cited: Cited[ProcessRecord]
    depth: int
    started: datetime | None
    flags: list[str] = field(default_factory=list)  # deleted-exe, started-late, temp-dir

    @property
    def record(self) -> ProcessRecord:
        return self.cited.record

    def to_dict(self) -> dict[str, Any]:
        doc = self.record.to_dict()
        doc.update(
            container=self.cited.container,
            depth=self.depth,
            flags=self.flags,
            start_time=rfc3339(self.started) if self.started else self.record.start_time,
            cited=self.cited.citation,
        )
        return doc


def exe_path(record: ProcessRecord) -> str | None:
    exe = record.exe
    if exe and exe.endswith(DELETED_SUFFIX):
        return exe[: -len(DELETED_SUFFIX)]
    return exe


def is_deleted(record: ProcessRecord) -> bool:
    return bool(record.exe_deleted or (record.exe and record.exe.endswith(DELETED_SUFFIX)))


def in_temp_dir(path: str | None) -> bool:
    return bool(path) and any(str(path).startswith(d) for d in TEMP_DIRS)


def process_flags(
    cited: Cited[ProcessRecord], started: datetime | None, container_start: datetime | None
) -> list[str]:
    record = cited.record
    flags = []
    if is_deleted(record):
        flags.append("deleted-exe")
    if (
        container_start is not None
        and started is not None
        and record.ns_pid != 1
        and started > container_start + STARTUP_GRACE
    ):
        flags.append("started-late")
    if in_temp_dir(exe_path(record)):
        flags.append("temp-dir")
    return flags


def process_rows(ev: Evidence, container: str | None = None) -> Iterator[ProcessRow]:
    """Processes of each container (all, or one) in tree order (children under parents)."""
    for name in [container] if container else ev.containers() or [None]:  # type: ignore[list-item]
        yield from _container_rows(ev, name)


def _container_rows(ev: Evidence, container: str | None) -> Iterator[ProcessRow]:
    started_info = ev.container_started(container) if container else None
    container_start = started_info[0] if started_info else None
    cited_all = ev.records_upto(ProcessRecord, container, MAX_PROCESSES, "processes")
    by_pid: dict[int, Cited[ProcessRecord]] = {}
    for cited in cited_all:
        by_pid.setdefault(cited.record.pid, cited)
    children: dict[int, list[Cited[ProcessRecord]]] = {}
    roots: list[Cited[ProcessRecord]] = []
    for cited in cited_all:
        ppid = cited.record.ppid
        if ppid is not None and ppid != cited.record.pid and ppid in by_pid:
            children.setdefault(ppid, []).append(cited)
        else:
            roots.append(cited)
    seen: set[int] = set()

    def walk(node: Cited[ProcessRecord], depth: int) -> Iterator[ProcessRow]:
        # iterative enough: a hostile ppid chain is bounded by MAX_PROCESSES, and cycles by `seen`
        stack = [(node, depth)]
        while stack:
            current, level = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            started = ev.time_of(current.record.start_time)
            yield ProcessRow(
                current, level, started, process_flags(current, started, container_start)
            )
            kids = sorted(
                children.get(current.record.pid, []), key=lambda c: c.record.pid, reverse=True
            )
            stack.extend((kid, level + 1) for kid in kids)

    for root in sorted(roots, key=lambda c: c.record.pid):
        yield from walk(root, 0)
    # members of a ppid cycle have no root: show them flat rather than lose them
    for cited in cited_all:
        if id(cited) not in seen:
            yield from walk(cited, 0)
