"""The bundle comparison (`ir bundle diff A B`) rendered: the JSON document, and the text page
where "-" lines are only in A, "+" only in B, "~" in both but different."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ir.replay.diff import CountDelta, FileDelta
from ir.replay.evidence import Evidence
from ir.replay.render.text import printable
from ir.replay.trust import Trust
from ir.store.local import describe_target

_SIGNS = {"only-a": "-", "only-b": "+", "differs": "~"}


def diff_document(
    a: Evidence,
    trust_a: Trust,
    b: Evidence,
    trust_b: Trust,
    files: Iterable[FileDelta],
    processes: list[CountDelta],
    connections: list[CountDelta],
) -> dict[str, Any]:
    """The comparison for `-o json`: each bundle with its verification, then the differences."""
    return {
        "a": {
            "bundle": a.display,
            "bundle_id": a.manifest.bundle_id,
            "verification": trust_a.to_dict(),
        },
        "b": {
            "bundle": b.display,
            "bundle_id": b.manifest.bundle_id,
            "verification": trust_b.to_dict(),
        },
        "files": [d.to_dict() for d in files],
        "processes": [d.to_dict() for d in processes],
        "connections": [d.to_dict() for d in connections if d.kind == "connection"],
        "listeners": [d.to_dict() for d in connections if d.kind == "listener"],
        "problems": a.problems + b.problems,
    }


def diff_lines(
    a: Evidence,
    b: Evidence,
    files: Iterable[FileDelta],
    processes: list[CountDelta],
    connections: list[CountDelta],
) -> Iterator[str]:
    """The comparison as text: which bundles, then files (streamed), processes, listeners and
    connections, each section saying so when nothing differs."""
    yield f"A: {printable(a.display)}  ({a.manifest.bundle_id}, {printable(_target(a))})"
    yield f"B: {printable(b.display)}  ({b.manifest.bundle_id}, {printable(_target(b))})"
    yield "\nFiles"
    n = 0
    for fd in files:
        n += 1
        side = fd.a if fd.status == "only-a" else fd.b
        assert side is not None
        sign = _SIGNS[fd.status]
        what = f"({', '.join(fd.differs)})" if fd.differs else f"{side['change']} {side['type']}"
        yield f"  {sign} [{printable(fd.container)}] {printable(fd.path)}  {printable(what)}"
    if not n:
        yield "  no difference"
    for title, kind, deltas in (
        ("Processes (executable + command line)", "process", processes),
        ("Listeners", "listener", connections),
        ("Connections", "connection", connections),
    ):
        yield f"\n{title}"
        shown = [d for d in deltas if d.kind == kind]
        for d in shown:
            sign = "-" if d.status == "only-a" else "+" if d.status == "only-b" else "~"
            yield f"  {sign} [{printable(d.container)}] {printable(d.key)}  (A: {d.a}, B: {d.b})"
        if not shown:
            yield "  no difference"


def _target(ev: Evidence) -> str:
    return describe_target(ev.manifest.target)
