"""The `summary` view declared: target, times, collectors and key findings
(`ir.replay.summary`), as text (`ir.replay.render.summary`) or JSON."""

from __future__ import annotations

from ir.replay.evidence import Evidence
from ir.replay.render.summary import summary_lines
from ir.replay.summary import build_summary
from ir.replay.trust import Trust
from ir.replay.views.model import Document, Page, Text, View
from ir.replay.views.options import TEXT_OR_JSON


def summary_page(ev: Evidence, trust: Trust, *, output: str) -> Page:
    doc = build_summary(ev, trust)
    if output == "json":
        return Document(doc)
    return Text(summary_lines(doc, trust))


VIEW = View(
    "summary",
    "Target, times, collectors and key findings.",
    (TEXT_OR_JSON,),
    summary_page,
    verdict_on_page=("text",),  # its first line
)
