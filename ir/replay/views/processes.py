"""The `ps` view declared: the process tree with its flags and hashes (`ir.replay.processes`),
as a text table (`ir.replay.render.processes`) or JSON."""

from __future__ import annotations

from ir.replay.evidence import Evidence
from ir.replay.processes import process_rows
from ir.replay.render.processes import process_lines
from ir.replay.trust import Trust
from ir.replay.views.model import Document, Page, Text, View
from ir.replay.views.options import CONTAINER, TEXT_OR_JSON

HELP = """The process tree: users, start times, executables and their hashes.

Flags: D deleted executable, L started after the container, T running from a temp dir."""


def process_page(ev: Evidence, trust: Trust, *, container: str | None, output: str) -> Page:
    rows = list(process_rows(ev, container))
    if output == "json":
        return Document(
            {
                "verification": trust.to_dict(),
                "processes": [r.to_dict() for r in rows],
                "problems": ev.problems,
            }
        )
    return Text(process_lines(rows))


VIEW = View("ps", HELP, (CONTAINER, TEXT_OR_JSON), process_page)
