"""ir.bundle.pipeline: the heap settings the streaming stages run with.

A page fault count, not a time: on glibc the count is the same on a busy and a quiet machine.
The work is what verify's decompressor does -- chunks of about a MiB, of varying sizes,
allocated, written and freed -- in a fresh interpreter, with and without steady_heap()."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from ir.bundle.pipeline import steady_heap

CHURN = """
import json, resource, sys
from ir.bundle.pipeline import steady_heap
if sys.argv[1] == "steady":
    steady_heap()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
kept = []
for i in range(600):
    chunk = bytearray(1024 * 1024 + (i * 4099) % 300_000)  # zeroed: every page is touched
    kept.append(bytes(chunk))
    if len(kept) > 4:  # a queue a few chunks deep, as between the stages
        kept.pop(0)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return int(json.loads(out.stdout))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's")
def test_steady_heap_reuses_freed_chunks() -> None:
    default, steady = _faults("default"), _faults("steady")
    # ~1.3 GiB of chunks: glibc's default thresholds fault most of it in afresh; steady_heap
    # keeps reusing the few MiB freed a moment before.
    assert steady * 4 < default, (default, steady)
    assert steady < 20_000, steady


def test_steady_heap_is_idempotent() -> None:
    steady_heap()
    steady_heap()
