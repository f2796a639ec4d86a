"""`ir replay BUNDLE summary` (ir/replay/summary.py) and the findings it lists
(ir/replay/findings.py): every planted fact is found, cited to a real line, and shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ir.replay.evidence import Evidence
from ir.replay.findings import find_all
from tests.replay_fixtures import (
    PLANTED,
    ir,
)


def test_findings_name_every_planted_fact(evidence: Evidence) -> None:
    found = find_all(evidence)
    by_kind: dict[str, list[Any]] = {}
    for f in found.items:
        by_kind.setdefault(f.kind, []).append(f)
    assert [f.detail["pid"] for f in by_kind["deleted-exe"]] == [PLANTED["deleted_exe"]["pid"]]
    assert sorted(f.detail["pid"] for f in by_kind["started-late"]) == PLANTED["late_processes"]
    assert [f.detail["local_port"] for f in by_kind["undeclared-listener"]] == [
        PLANTED["undeclared_listener"]
    ]
    assert "5133 .kworker" in by_kind["undeclared-listener"][0].summary  # owner found through fds
    assert by_kind["undeclared-listener"][0].container == "web"  # the owner's container, once
    assert [(f.detail["remote_addr"], f.detail["remote_port"]) for f in by_kind["outbound"]] == [
        PLANTED["outbound"]
    ]
    assert sorted(f.detail["path"] for f in by_kind["binary-dir-file"]) == sorted(
        PLANTED["bin_dir_files"]
    )
    assert sorted(f.detail["path"] for f in by_kind["temp-executable"]) == sorted(
        PLANTED["temp_executables"]
    )
    assert sorted(f.detail["pid"] for f in by_kind["temp-dir-process"]) == [5133, 5140]
    for f in found.items:  # every finding cites a real line
        artifact, line = f.cited.rsplit(":", 1)
        assert (
            1 <= int(line) <= sum(1 for _ in evidence.json_lines(evidence.reader.entry(artifact)))
        )


def test_summary_cli_text_and_json(bundles: dict[str, Path], cache: Path) -> None:
    ran = ir("replay", bundles["bad"], "summary", cache=cache)
    assert ran.code == 0
    for text in (
        "pod shop/web-7f9c on node node-1",
        "falco: Terminal shell in container [Warning]",
        "Deleted executables running (1)",
        "Listeners not declared in the pod spec (1)",
        "0.0.0.0:31337",
        "203.0.113.7:4444",
        "/usr/bin/.sysupdate",
        "/dev/shm/.x/miner",
        "image-history  agent      failed",
    ):
        assert text in ran.out, text
    # the verdict in one line, first; its details only when asked
    assert (
        ran.lines[0] == "verdict: unsigned (no signature: origin not proven, intact; verified now)"
    )
    assert "cached verdict" not in ran.out + ran.err
    assert not [line for line in ran.lines if line.startswith(("verified:", "signature:"))]
    doc = json.loads(ir("replay", bundles["bad"], "summary", "-o", "json", cache=cache).out)
    assert doc["verification"]["verdict"] == "unsigned"
    assert doc["findings"]["counts"]["outbound"] == 1
    assert {c["name"]: c["started"] for c in doc["containers"]} == {
        "web": "2025-03-14T08:00:05.123456Z",  # inspect State.StartedAt, nanoseconds cut
        "agent": "2025-03-14T08:30:02.000000Z",
    }
