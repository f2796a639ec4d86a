"""Bundle writer and verifier throughput against the machine's limits, measured side by side.

    python bench/bundle_bench.py [--size-mib 1024] [--runs 3]

Data: a file of mixed content (half random, half text-like), written once. Cases, each run
`--runs` times, medians reported with ratios computed in the same run:
  limit-compress  zstd -3 -T2 -c FILE > /dev/null          (the raw compression limit)
  ir-write        BundleWriter.add_file(FILE) + seal       (hash + compress + write + fsync)
  limit-decomp    zstd -dc STORED > /dev/null              (the raw decompression limit)
  ir-verify       verify_bundle(bundle)                    (read + 2 hashes + decompress)
Peak RSS of the ir cases is measured in a fresh subprocess each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
mode, src, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
t = time.perf_counter()
if mode == "write":
    from ir.bundle.writer import BundleWriter
    w = BundleWriter(out, case_id="BENCH", target={"kind": "sample"}, operator="bench", host={},
                     tool={"name": "ir", "version": "bench"})
    with src.open("rb") as fh:
        w.add_file("data.bin", fh, kind="blob", media_type="application/octet-stream", collector="bench")
    sealed = w.seal()
    result = str(sealed.path)
else:
    from ir.bundle.reader import BundleReader
    from ir.bundle.verify import verify_bundle
    with BundleReader.open(src) as r:
        result = verify_bundle(r).verdict
elapsed = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))  # not ru_maxrss: inherited
print(json.dumps({"seconds": elapsed, "rss_mib": hwm / 1024, "result": result}))
"""


def make_data(path: Path, size_mib: int) -> None:
    block = os.urandom(1 << 20)
    text = b"".join(
        b"2026-11-25T14:%02d:%02d.123Z GET /api/v1/items/%d 200 1532 curl/8.5\n"
        % (i % 60, i % 60, i)
        for i in range(20000)
    )[: 1 << 20]
    with path.open("wb") as fh:
        for i in range(size_mib):
            fh.write(block if i % 2 else text)


def timed(cmd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True)
    return time.perf_counter() - t


def child(mode: str, src: Path, out: Path) -> dict[str, float | str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(src), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ir-bench-"))
    data = work / "data.bin"
    make_data(data, args.size_mib)
    subprocess.run(f"cat {data} > /dev/null", shell=True, check=True)  # warm the page cache
    rows: dict[str, list[float]] = {
        "limit-compress": [],
        "ir-write": [],
        "limit-decomp": [],
        "ir-verify": [],
    }
    rss: dict[str, float] = {"ir-write": 0.0, "ir-verify": 0.0}
    for run in range(args.runs):
        rows["limit-compress"].append(timed(f"zstd -3 -T2 -q -c {data} > /dev/null"))
        out = work / f"run{run}"
        res = child("write", data, out)
        rows["ir-write"].append(float(res["seconds"]))
        rss["ir-write"] = max(rss["ir-write"], float(res["rss_mib"]))
        bundle = Path(str(res["result"]))
        stored = work / "stored.zst"
        subprocess.run(
            f"tar -xOf {bundle} artifacts/data.bin.zst > {stored}", shell=True, check=True
        )
        rows["limit-decomp"].append(timed(f"zstd -dcq {stored} > /dev/null"))
        res = child("verify", bundle, out)
        # written without a signing key: intact and unsigned is the best verdict it can get
        assert res["result"] == "unsigned", res
        rows["ir-verify"].append(float(res["seconds"]))
        rss["ir-verify"] = max(rss["ir-verify"], float(res["rss_mib"]))
        bundle.unlink()
    mib = args.size_mib
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"data: {mib} MiB (half random, half log text), runs: {args.runs}, cores: {os.cpu_count()}"
    )
    print(f"{'case':16} {'median s':>9} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for k, v in med.items():
        print(f"{k:16} {v:9.2f} {mib / v:8.1f} {rss.get(k, float('nan')):13.1f}")
    print(
        f"ratio ir-write / limit-compress throughput: {med['limit-compress'] / med['ir-write']:.2f}"
    )
    print(
        f"ratio ir-verify / limit-decomp throughput:  {med['limit-decomp'] / med['ir-verify']:.2f}"
    )
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
