#!/usr/bin/env python3
"""Run ir in this process and say, as the last line on stderr, the CPU seconds each of its
threads used (JSON: {thread: seconds}; zstd's worker threads, which Python does not name, as
"zstd workers"). Sampled from /proc/self/task every 20 ms, so a thread that lives less than
that may be missed.

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


def _sample() -> None:
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
        _seen[tid] = (name, max(cpu, _seen.get(tid, ("", 0.0))[1]))


def _loop() -> None:
    while True:
        _sample()
        time.sleep(0.02)


def _report() -> None:
    _sample()
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
