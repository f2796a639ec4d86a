"""Capture-to-S3 throughput against the machine's limits, on the test bed's SeaweedFS.

    python bench/s3_upload.py [--size-mib 1024] [--runs 3]

Data: incompressible synthetic artifacts (4 of SIZE/4, slices of a random pool: the worst case
for the upload, zstd cannot shrink them), the same bytes for every case. Each case runs `--runs`
times in a fresh process; medians are reported, with ratios:
  limit-zstd     zstd -3 -T2 -c RAW > /dev/null                  (raw compression limit)
  ir-local       capture to a local directory                    (hash + compress + write)
  ir-s3          capture streamed to SeaweedFS, until confirmed  (+ multipart upload, checksums)
  ir-push        `ir bundle push` of the sealed bundle           (upload only)
  boto3-upload   boto3 upload_file of the same file              (what the server takes)
MiB/s are of raw (uncompressed) bytes for the capture cases and of bundle bytes for uploads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.testbed.s3 import SeaweedFS, synthetic_chunks  # noqa: E402

MiB = 1024 * 1024
ARTIFACTS = 4


def write_raw(path: Path, size_mib: int) -> None:
    """The bytes the synthetic capture compresses, in the same order, as one file."""
    per = size_mib * MiB // ARTIFACTS
    with path.open("wb") as fh:
        for seed in range(ARTIFACTS):
            for chunk in synthetic_chunks(per, seed=seed):
                fh.write(chunk)


def child_capture(store: str, size_mib: int, env: dict[str, str]) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "tests.testbed.s3", "capture", store, str(size_mib), str(ARTIFACTS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise SystemExit(f"capture into {store} failed:\n{run.stdout}\n{run.stderr}")
    return dict(json.loads(run.stdout))


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak RSS KiB) of one command."""
    started = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kib=%M", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{run.stdout}\n{run.stderr}")
    return elapsed, int(run.stderr.rsplit("maxrss_kib=", 1)[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ir-s3-bench-"))
    server = SeaweedFS(work / "seaweedfs").start()
    results: dict[str, list[dict[str, float]]] = {}

    def add(case: str, seconds: float, nbytes: int, rss_kib: int = 0) -> None:
        results.setdefault(case, []).append(
            {"seconds": seconds, "mib_s": nbytes / MiB / seconds, "rss_mib": rss_kib / 1024}
        )

    try:
        env = {**os.environ, **server.env(), "IR_SPOOL_DIR": str(work / "spool")}
        raw = work / "raw.bin"
        write_raw(raw, args.size_mib)
        raw_bytes = raw.stat().st_size
        for run in range(args.runs):
            bucket = server.create_bucket(f"bench-{run}")
            seconds, _ = timed(["sh", "-c", f"zstd -q -3 -T2 -c {raw} > /dev/null"], env)
            add("limit-zstd", seconds, raw_bytes)

            local = child_capture(str(work / f"local-{run}"), args.size_mib, env)
            add("ir-local", local["seconds"], local["raw_bytes"], local["maxrss_kib"])
            bundle = next((work / f"local-{run}").glob("*/*.tar"))

            to_s3 = child_capture(f"s3://{bucket}/capture", args.size_mib, env)
            add("ir-s3", to_s3["seconds"], to_s3["raw_bytes"], to_s3["maxrss_kib"])
            results.setdefault("ir-s3-finish", []).append(
                {"seconds": to_s3["finish_seconds"], "mib_s": 0.0, "rss_mib": 0.0}
            )

            seconds, rss = timed(
                [
                    "ir",
                    "bundle",
                    "push",
                    str(bundle),
                    "--store",
                    f"s3://{bucket}/push",
                    "-o",
                    "json",
                ],
                env,
            )
            add("ir-push", seconds, bundle.stat().st_size, rss)

            client = server.client()
            started = time.perf_counter()
            client.upload_file(str(bundle), bucket, "boto3/bundle.tar")
            add("boto3-upload", time.perf_counter() - started, bundle.stat().st_size)
            shutil.rmtree(work / f"local-{run}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    med = {
        case: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for case, runs in results.items()
    }
    print(
        f"data: {args.size_mib} MiB incompressible, {ARTIFACTS} artifacts; {args.runs} run(s); medians"
    )
    print(f"{'case':<14} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for case, m in med.items():
        if case == "ir-s3-finish":
            print(
                f"{'  after seal':<14} {m['seconds']:>8.2f}   (time from seal to confirmed upload + records)"
            )
            continue
        rss = f"{m['rss_mib']:>13.0f}" if m["rss_mib"] else f"{'-':>13}"
        print(f"{case:<14} {m['seconds']:>8.2f} {m['mib_s']:>8.0f} {rss}")
    print("ratios:")
    print(
        f"  ir-s3 / limit-zstd throughput   {med['ir-s3']['mib_s'] / med['limit-zstd']['mib_s']:.2f}"
    )
    print(
        f"  ir-s3 / ir-local throughput     {med['ir-s3']['mib_s'] / med['ir-local']['mib_s']:.2f}"
    )
    print(
        f"  ir-push / boto3-upload          {med['ir-push']['mib_s'] / med['boto3-upload']['mib_s']:.2f}"
    )
    print(
        f"  ir-s3 - ir-local peak RSS       {med['ir-s3']['rss_mib'] - med['ir-local']['rss_mib']:+.0f} MiB"
    )


if __name__ == "__main__":
    main()
