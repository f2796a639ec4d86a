#!/usr/bin/env python3
"""Run ir in this process and say, as the last line on stderr, the CPU seconds each of its
threads used (JSON: {thread: seconds}; zstd's worker threads, which Python does not name, as
"zstd workers"). Sampled from /proc/self/task every 20 ms, so a thread that lives less than
that may be missed. Before it, a timeline: the cores each kind of thread kept busy in every
half second (where the run is one thread's work, and where every core is).

    python bench/threadtimes.py capture container C --store DIR
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
_seen: dict[str, tuple[str, float]] = {}
_names: dict[str, str] = {}


BUCKET = 0.5  # seconds a timeline row covers
_started = time.monotonic()
_timeline: dict[int, dict[str, float]] = {}  # bucket -> thread name -> CPU seconds in it


def _sample() -> None:
    bucket = _timeline.setdefault(int((time.monotonic() - _started) / BUCKET), {})
    named = {str(t.native_id): t.name for t in threading.enumerate()}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        name = named.get(tid) or _names.get(tid) or "zstd workers"
        _names[tid] = name
        before = _seen.get(tid, ("", 0.0))[1]
        _seen[tid] = (name, max(cpu, before))
        bucket[name] = bucket.get(name, 0.0) + max(cpu - before, 0.0)


def _loop() -> None:
    while True:
        _sample()
        time.sleep(0.02)


def _report() -> None:
    _sample()
    for n, row in sorted(_timeline.items()):
        busy = {k: v / BUCKET for k, v in row.items() if k != "ir-threadtimes" and v > 0}
        parts = " ".join(f"{k}={v:.2f}" for k, v in sorted(busy.items()))
        sys.stderr.write(f"timeline {n * BUCKET:6.1f}s cores {sum(busy.values()):4.2f}  {parts}\n")
    total: dict[str, float] = {}
    for name, cpu in _seen.values():
        if name == "ir-threadtimes":
            continue
        total[name] = round(total.get(name, 0.0) + cpu, 2)
    ordered = dict(sorted(total.items(), key=lambda kv: -kv[1]))
    sys.stderr.write("\n" + json.dumps(ordered) + "\n")


def main() -> None:
    threading.Thread(target=_loop, name="ir-threadtimes", daemon=True).start()
    sys.argv = ["ir", *sys.argv[1:]]
    try:
        runpy.run_module("ir.cli.main", run_name="__main__")
    finally:
        _report()


if __name__ == "__main__":
    main()
