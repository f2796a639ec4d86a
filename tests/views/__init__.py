"""Tests of `ir replay`'s views and `ir bundle diff` (ir/replay/), one file per view, named
after the module declaring it in ir/replay/views/: test_summary.py, test_processes.py (ps),
test_network.py (net), test_files.py (fs), test_logs.py, test_timeline.py; and test_diff.py,
test_exports.py, test_common.py for what every view shares (verification and refusal, the
verdict cache, hostile content, the committed samples), test_every_view.py for the rules of the
recipe (docs/architecture.md: every view declared whole, with its test file). Their bundles are synthetic, with planted facts (tests/replay_fixtures.py; fixtures in
conftest.py); no mocks: real bundle files, the real CLI entry point. Here: the helpers the files
share, reading the text tables the views print."""

from __future__ import annotations

import json
import re
from typing import Any


def compromised_kworker() -> bytes:
    from tests.replay_fixtures import KWORKER

    return KWORKER


def table_columns(out: str) -> list[tuple[int, int]]:
    """(start, end) of each column of a text table, from its dash line (the second line)."""
    dashes = out.splitlines()[1]
    return [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]


def column(out: str, name: str) -> list[str]:
    """The values of one column of a text table (found by its header), one per row."""
    lines = out.splitlines()
    spans = table_columns(out)
    index = next(i for i, (a, b) in enumerate(spans) if lines[0][a:].startswith(name))
    a, b = spans[index]
    last = index == len(spans) - 1
    rows = [line for line in lines[2:] if not line.startswith("flags: ")]  # ps: its legend
    return [line[a:] if last else line[a:b].strip() for line in rows]


def assert_aligned(out: str) -> None:
    """Every cell of every row stays in its column: the two spaces after each column but the
    last are blank on every line (a wider value would spill into them)."""
    lines = out.splitlines()
    spans = table_columns(out)
    assert len(lines) > 2 and len(spans) > 2, out
    for line in lines[2:]:
        if line.startswith("flags: "):  # ps: the legend under the table
            continue
        for a, b in spans[:-1]:
            assert line[b : b + 2] == "  ", (line, a, b)


def _jsonl(ran: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ran.lines]
