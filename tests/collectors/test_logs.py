"""The logs collector (ir/collect/logs.py) on the test bed's Docker engine: stdout and stderr
kept apart, one record per line with the runtime's timestamp, `tail` bounding them; given only a
host pid there is no runtime that keeps logs, and the collector is skipped with the reason."""

from __future__ import annotations

import pytest

from ir.collect.base import CaptureOptions
from tests.collectors.conftest import BACKENDS, CaptureOf, running

pytestmark = pytest.mark.docker
TALKER = running("echo one", "echo two >&2")
COUNTER = running("for i in 1 2 3 4; do echo line-$i; done")


@pytest.mark.parametrize("backend", BACKENDS)
def test_streams_apart_with_their_times(backend: str, capture_of: CaptureOf) -> None:
    with capture_of("logs", TALKER, backend) as got:
        got.ok("logs")
        lines = got.bundle.records("logs-current.jsonl")
        assert {(x["stream"], x["message"]) for x in lines} == {
            ("stdout", "one"),
            ("stderr", "two"),
            ("stdout", "up"),
        }
        assert all(x["time"].endswith("Z") and x["instance"] == "current" for x in lines)
        assert got.bundle.entry("logs-current.jsonl").meta["tail"] is None


def test_tail_keeps_the_last_lines(capture_of: CaptureOf) -> None:
    with capture_of("logs", COUNTER, options=CaptureOptions(tail=2)) as got:
        lines = got.bundle.records("logs-current.jsonl")
        assert [x["message"] for x in lines] == ["line-4", "up"]


def test_a_host_pid_alone_has_no_logs(capture_of: CaptureOf) -> None:
    with capture_of("logs", TALKER, pid_only=True) as got:
        entry = got.entry("logs")
        assert entry.status == "skipped" and entry.error, entry
