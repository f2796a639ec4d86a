"""The summary page as text: what was captured (bundle, target, times, reason, alert), the
containers and collectors, and the key findings grouped by kind, from `build_summary`'s document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ir.replay.findings import TITLES
from ir.replay.render.text import Emphasis, Line, printable, table_lines
from ir.replay.trust import Trust


def summary_lines(doc: dict[str, Any], trust: Trust) -> Iterator[Line]:
    """The lines of the summary page of `doc` (`ir.replay.summary.build_summary`)."""

    def line(label: str, value: Any) -> Iterator[str]:
        if value not in (None, "", []):
            yield f"{label:<11}{printable(value)}"

    if trust.valid:
        yield printable(trust.short())  # the page's first line (a forced one has a banner)
    yield from line("bundle:", doc["bundle"])
    yield from line("id:", f"{doc['bundle_id']}   case: {doc['case_id']}")
    yield from line("target:", doc["target"] + (f" on node {doc['node']}" if doc["node"] else ""))
    yield from line(
        "captured:",
        f"{doc['started_at']} .. {doc['ended_at']}  outcome: {doc['outcome']}  by {doc['operator']} on {doc['host']}",
    )
    yield from line("reason:", doc["reason"])
    if doc["alert"]:
        a = doc["alert"]
        yield from line("alert:", f"{a['source']}: {a['rule']} [{a['priority']}] at {a['time']}")
    for error in trust.errors:
        yield from line("FAIL:", error)
    yield ""
    yield from table_lines(
        [
            (c["name"], c["image"], c["started"], c["restarts"], len(c["artifacts"]))
            for c in doc["containers"]
        ],
        ["container", "image", "started (UTC)", "restarts", "artifacts"],
    )
    yield ""
    yield from table_lines(
        [(c["name"], c["container"], c["status"], c["error"] or "") for c in doc["collectors"]],
        ["collector", "container", "status", "error"],
    )
    yield ""
    yield from _finding_lines(doc["findings"])


def _finding_lines(findings: dict[str, Any]) -> Iterator[Line]:
    """KEY FINDINGS: each kind with its severity and count, then each finding and its citation."""
    total = sum(findings["counts"].values())
    yield Emphasis(f"KEY FINDINGS ({total})", bold=True)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for f in findings["items"]:
        grouped.setdefault(f["kind"], []).append(f)
    for kind, title in TITLES.items():
        count = findings["counts"].get(kind, 0)
        if not count:
            continue
        items = grouped.get(kind, [])
        severity = items[0]["severity"] if items else ""
        yield Emphasis(
            f"  [{severity}] {title} ({count})", color="red" if severity == "high" else "yellow"
        )
        for f in items:
            yield f"      {printable(f['summary'])}"
            yield f"          [{printable(f['container'])}] {printable(f['cited'])}"
    if not total:
        yield "  none of the rules matched (that is not proof of innocence)"
    for note in findings["notes"]:
        yield f"  note: {printable(note)}"
