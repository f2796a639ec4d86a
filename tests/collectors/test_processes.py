"""The processes collector (ir/collect/processes.py) on the test bed's Docker engine: every
process of the container with its pid, command line and executable's SHA-256; a container that
was not running when the capture started has none, and the collector says why."""

from __future__ import annotations

import re

import pytest

from tests.collectors.conftest import BACKENDS, CaptureOf, running

pytestmark = pytest.mark.docker
SLEEPER = running("sleep 4242 &")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_process_with_its_executable_hash(backend: str, capture_of: CaptureOf) -> None:
    with capture_of("processes", SLEEPER, backend) as got:
        assert any("process(es)" in note for note in got.ok("processes").notes)
        procs = got.bundle.records("processes.jsonl")
        (sleeper,) = [p for p in procs if p["cmdline"] == ["sleep", "4242"]]
        assert re.fullmatch("[0-9a-f]{64}", sleeper["exe_sha256"]) and not sleeper["exe_deleted"]
        assert sleeper["user"] == "root" and sleeper["start_time"].endswith("Z")
        assert any(p["cmdline"][:2] == ["sh", "-c"] for p in procs)
        assert "processes" in got.bundle.json("capture.json")["sources"]


def test_an_exited_container_is_skipped_with_the_reason(capture_of: CaptureOf) -> None:
    assert "no processes" in capture_of.skipped_on_exit("processes")
