"""`ir replay BUNDLE logs`: containers and instances merged in time order, filtered, aligned."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.replay_fixtures import (
    MESSAGE_TIMES,
    ir,
)
from tests.views import assert_aligned, column


def test_logs_merge_containers_and_instances_in_time_order(
    bundles: dict[str, Path], cache: Path
) -> None:
    rows = [
        json.loads(line)
        for line in ir("replay", bundles["bad"], "logs", "-o", "jsonl", cache=cache).lines
    ]
    times = [r["time"] for r in rows]
    assert times == sorted(times)  # nine digits always: sortable as text
    assert [r["time_ns"] for r in rows] == sorted(r["time_ns"] for r in rows)
    assert {(r["container"], r["fields"]["instance"]) for r in rows} == {
        ("web", "current"),
        ("agent", "current"),
        ("agent", "previous"),
    }
    web_only = ir(
        "replay",
        bundles["bad"],
        "logs",
        "--container",
        "web",
        "--since",
        "2025-03-14T09:12:00Z",
        cache=cache,
    )
    assert column(web_only.out, "container") == ["web"] * 4
    assert set(column(web_only.out, "instance/stream")) == {"current/stdout", "current/stderr"}
    assert set(column(web_only.out, "time from")) == {"runtime"}
    assert_aligned(web_only.out)
    previous = ir(
        "replay", bundles["bad"], "logs", "--instance", "previous", "-o", "csv", cache=cache
    )
    assert len(list(csv.DictReader(io.StringIO(previous.out)))) == len(MESSAGE_TIMES) + 1
    text = ir("replay", bundles["bad"], "logs", "--instance", "previous", cache=cache).out
    assert column(text, "time from") == ["application"] * len(MESSAGE_TIMES) + ["none"]
    assert "2025-03-14T08:20:00.500Z" in column(
        text, "time (UTC)"
    )  # the digits it was written with
    assert_aligned(text)
