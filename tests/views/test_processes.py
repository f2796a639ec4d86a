"""`ir replay BUNDLE ps` (ir/replay/processes.py): the process tree, its flags and hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ir.replay.evidence import Evidence
from ir.replay.processes import process_rows
from tests.replay_fixtures import (
    ir,
)
from tests.views import compromised_kworker


def test_ps_is_a_tree_with_flags_and_hashes(
    evidence: Evidence, bundles: dict[str, Path], cache: Path
) -> None:
    rows = [r for r in process_rows(evidence) if r.cited.container == "web"]
    assert [(r.record.pid, r.depth) for r in rows] == [
        (4101, 0),
        (4130, 1),
        (5120, 2),
        (5133, 3),
        (5140, 4),
    ]
    flags = {r.record.pid: r.flags for r in rows}
    assert flags[5133] == ["deleted-exe", "started-late", "temp-dir"]
    assert flags[4101] == [] and flags[4130] == []  # start-up processes are not "late"
    out = ir("replay", bundles["bad"], "ps", "--container", "web", cache=cache).out
    kworker = next(line for line in out.splitlines() if "5133" in line)
    assert (
        " DLT " in kworker
        and "/tmp/.kworker" in kworker
        and hashlib.sha256(b"").hexdigest()[:4] not in kworker
    )
    assert hashlib.sha256(compromised_kworker()).hexdigest()[:12] in kworker
