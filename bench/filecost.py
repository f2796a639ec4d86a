#!/usr/bin/env python3
"""ir's own work per file of a tree, against tar's: the part of a capture's CPU that neither
compression nor the format's digests explain.

    python bench/filecost.py UPPERDIR [--runs N]     # JSON on stdout, the best of N runs

ir: the filesystem collector's walk and tar writer in one thread (no read-ahead thread, so no
GIL hand-offs are counted), every file opened, read and hashed as a capture does, the records
and tar headers made; the tar stream goes nowhere (no zstd, no artifact or stored digest).
tar: `tar -C UPPERDIR -cf - .` into a pipe this process drains, its own CPU (wait4).

Both read every byte of the tree; ir's figure also holds the per-file SHA-256 of those bytes
(`hashed_bytes`), which capture_bench counts with the format's other digests. What is left,
ir_cpu_s - hashed/SHA-256 rate - tar_cpu_s, is the Python ir spends per file where tar spends C.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ir.collect.filesystem import DiffStats, write_diff  # noqa: E402
from ir.runtime.overlay import OverlayDiff, OverlayMount  # noqa: E402

UNLIMITED = 1 << 62


def ir_cpu(upper: str) -> tuple[float, DiffStats]:
    with tempfile.TemporaryDirectory(prefix="ir-filecost-") as lower:
        source = OverlayDiff(OverlayMount(upper, [lower], None, "filecost"))
        stats = DiffStats()
        with open(os.devnull, "wb") as null:  # buffered: a write call per 8 KiB at most
            started = time.process_time()
            write_diff(
                null, source, null, stats, max_file=UNLIMITED, max_total=UNLIMITED, ahead=False
            )
            return time.process_time() - started, stats


def tar_cpu(upper: str) -> float:
    tar = subprocess.Popen(["tar", "-C", upper, "-cf", "-", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    while tar.stdout.read(1 << 20):
        pass
    _pid, status, usage = os.wait4(tar.pid, 0)
    if status != 0:
        raise SystemExit(f"filecost: tar exited with status {status}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upper")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    runs = [ir_cpu(args.upper) for _ in range(args.runs)]
    best, stats = min(runs, key=lambda r: r[0])
    print(
        json.dumps(
            {
                "entries": stats.entries,
                "files": stats.files_captured,
                "hashed_bytes": stats.bytes_captured,
                "ir_cpu_s": round(best, 3),
                "tar_cpu_s": round(min(tar_cpu(args.upper) for _ in range(args.runs)), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
