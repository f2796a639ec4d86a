"""`ir replay BUNDLE export` (ir/replay/export.py): the Timesketch export. (The HTML report:
tests/test_replay_html.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from tests.replay_fixtures import (
    ir,
)


def test_timesketch_export(bundles: dict[str, Path], cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "ts.jsonl"
    assert ir("replay", bundles["bad"], "export", "timesketch", "--out", out, cache=cache).code == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) > 50
    for e in events:
        assert {
            "message",
            "datetime",
            "timestamp_desc",
            "timestamp",
            "data_type",
            "cited",
            "bundle_id",
        } <= set(e)
        assert e["datetime"].endswith("Z") and e["bundle_verdict"] == "unsigned"
        assert all(not isinstance(v, dict | list) for v in e.values())  # flat fields
    alert = next(e for e in events if e["data_type"] == "ir:alert")
    assert alert["timestamp"] == 1741943523512000 and alert["rule"] == "Terminal shell in container"
    assert alert["time_exact"] == "2025-03-14T09:12:03.512000000Z"
    assert alert["precision"] == "1us" and alert["clock"] == "alert-sender"
