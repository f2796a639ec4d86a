#!/usr/bin/env python3
"""How long does a 1 GiB bundle take to open in `ir replay timeline`?

Builds (once, kept in --dir) a ~1 GiB bundle: a pod with many log lines (JSON, nginx, klog and
syslog lines, a few of them stamped only in their text) and a big fs-files.tar of incompressible
content with its fs-changes. Then times, each --runs times (medians printed):

  first       `ir replay B timeline` with an empty verdict cache: verify (hash every byte) + timeline
  cached      the same with the verdict cached (size+mtime unchanged): the timeline alone
  page, cold  `ir replay B timeline | head -50` with an empty cache: verify, then the first rows
  first page  the same with the verdict cached: how soon an investigator sees rows
  zstd all    `zstd -dc` of every stored artifact frame (the bytes verification must read)
  zstd logs   `zstd -dc` of the log artifacts' frames (the bytes the timeline must read)

and the ratios. Peak RSS of the replay runs shows memory stays bounded (no artifact is held).

  python bench/replay_bench.py [--dir /var/tmp/ir-bench] [--tar-mib 900] [--log-lines 2000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ir.bundle.reader import BundleReader  # noqa: E402
from ir.bundle.writer import BundleWriter  # noqa: E402
from ir.records import FileChange, LogLine  # noqa: E402

START = datetime(2025, 3, 14, 8, 0, tzinfo=UTC)


def log_chunks(lines: int, container: str) -> Iterator[bytes]:
    """JSON Lines of LogLine records, 1 ms apart, in batches (never all in memory)."""
    batch: list[bytes] = []
    for i in range(lines):
        at = START + timedelta(milliseconds=i)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        kind = i % 4
        if kind == 0:
            message = f'{{"level":"info","ts":{at.timestamp():.3f},"msg":"request done","path":"/api/v1/items/{i}","status":200,"ms":{i % 97}}}'
        elif kind == 1:
            message = f'10.244.0.{i % 250} - - [{at.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET /api/v1/items/{i} HTTP/1.1" 200 {i % 5000} "-" "client/1.0"'
        elif kind == 2:
            message = f"I{at.strftime('%m%d %H:%M:%S.%f')}       1 worker.go:88] processed item {i} in {i % 13}ms"
        else:
            message = f"{at.strftime('%b %d %H:%M:%S')} web app[1]: heartbeat {i}"
        record = LogLine(
            time=None if i % 1000 == 999 else stamp,
            stream="stdout",
            message=message,
            container=container,
        )
        batch.append(record.to_line())
        if len(batch) >= 10_000:
            yield b"".join(batch)
            batch.clear()
    if batch:
        yield b"".join(batch)


def build(directory: Path, tar_mib: int, log_lines: int) -> Path:
    existing = sorted(directory.glob("*.tar"))
    if existing:
        return existing[0]
    directory.mkdir(parents=True, exist_ok=True)
    writer = BundleWriter(
        directory,
        case_id="BENCH",
        target={"kind": "pod", "namespace": "bench", "name": "big"},
        operator="bench",
        host={"hostname": "bench"},
        tool={"name": "ir", "version": "bench"},
    )
    half = log_lines // 2
    for container in ("web", "sidecar"):
        writer.add_stream(
            f"containers/{container}/logs-current.jsonl",
            log_chunks(half, container),
            kind="logs",
            media_type=LogLine.media_type(),
            collector="logs",
            container=container,
            meta={"instance": "current"},
        )
    files = max(1, tar_mib // 4)
    size = tar_mib * 1024 * 1024 // files
    changes = b"".join(
        FileChange(
            path=f"/data/blob-{i:05d}.bin",
            change="added",
            size=size,
            mode="0644",
            mtime=(START + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            captured=True,
        ).to_line()
        for i in range(files)
    )
    writer.add_bytes(
        "containers/web/fs-changes.jsonl",
        changes,
        kind="fs-changes",
        media_type=FileChange.media_type(),
        collector="fs-diff",
        container="web",
    )

    def write_tar(sink: io.RawIOBase) -> None:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for i in range(files):
                info = tarfile.TarInfo(f"data/blob-{i:05d}.bin")
                info.size = size
                tar.addfile(info, io.BytesIO(os.urandom(size)))

    with writer.artifact(
        "containers/web/fs-files.tar",
        kind="fs-files",
        media_type="application/x-tar",
        collector="fs-diff",
        container="web",
    ) as sink:
        write_tar(sink)  # type: ignore[arg-type]
    return writer.seal().path


def frames_file(bundle: Path, out: Path, only_kind: str | None) -> int:
    """The stored zstd frames of the bundle's artifacts, concatenated (zstd -d reads them as one)."""
    total = 0
    with BundleReader.open(bundle) as reader, open(out, "wb") as fh:
        for entry in reader.manifest.artifacts:
            if only_kind is None or entry.kind == only_kind:
                for chunk in reader.stored_chunks(entry):
                    fh.write(chunk)
                total += entry.size
    return total


def timed(cmd: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(
        cmd, shell=True, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dir", default="/var/tmp/ir-replay-bench", help="where the bench bundle is built and kept"
    )
    parser.add_argument("--tar-mib", type=int, default=900)
    parser.add_argument("--log-lines", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    directory = Path(args.dir)
    started = time.monotonic()
    bundle = build(directory, args.tar_mib, args.log_lines)
    built = time.monotonic() - started
    size = bundle.stat().st_size
    with BundleReader.open(bundle) as reader:
        content = sum(a.size for a in reader.manifest.artifacts)
        log_bytes = sum(a.size for a in reader.manifest.artifacts if a.kind == "logs")
        lines = sum(1 for a in reader.manifest.artifacts if a.kind == "logs")
    print(
        f"bundle {bundle} : {size / 2**30:.2f} GiB on disk, {content / 2**30:.2f} GiB of content, "
        f"{log_bytes / 2**20:.0f} MiB of logs in {lines} artifacts ({'built' if built > 1 else 'reused'} in {built:.0f}s)"
    )
    ir = f"{sys.executable} -m ir.cli.main replay {bundle}"
    work = Path(tempfile.mkdtemp(prefix="ir-bench-"))
    env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"), PYTHONPATH=str(REPO))
    all_frames, log_frames = work / "all.zst", work / "logs.zst"
    frames_file(bundle, all_frames, None)
    frames_file(bundle, log_frames, "logs")
    results: dict[str, list[float]] = {
        k: [] for k in ("first", "cached", "page, cold", "first page", "zstd all", "zstd logs")
    }
    rows = 0
    try:
        for _ in range(args.runs):
            shutil.rmtree(work / "cache", ignore_errors=True)
            results["first"].append(timed(f"{ir} timeline -o csv > /dev/null", env))
            results["cached"].append(timed(f"{ir} timeline -o csv > /dev/null", env))
            results["first page"].append(timed(f"{ir} timeline | head -50 > /dev/null", env))
            shutil.rmtree(work / "cache", ignore_errors=True)
            results["page, cold"].append(timed(f"{ir} timeline | head -50 > /dev/null", env))
            results["zstd all"].append(timed(f"zstd -dc {all_frames} > /dev/null", env))
            results["zstd logs"].append(timed(f"zstd -dc {log_frames} > /dev/null", env))
        out = subprocess.run(
            f"{ir} timeline -o csv | wc -l", shell=True, env=env, capture_output=True, text=True
        )
        rows = int(out.stdout.strip() or 1) - 1
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"timeline rows: {rows}; runs: {args.runs}; medians:")
    for key, value in med.items():
        print(f"  {key:<11} {value:7.2f} s")
    print("ratios:")
    print(f"  first (verify + timeline) / zstd all : {med['first'] / med['zstd all']:.1f}x")
    print(f"  cached timeline / zstd logs          : {med['cached'] / med['zstd logs']:.1f}x")
    print(f"  first page / zstd all                : {med['first page'] / med['zstd all']:.2f}x")
    print(f"  first page, cold (verify) / zstd all : {med['page, cold'] / med['zstd all']:.2f}x")
    print(f"  verify share of the first run        : {(med['first'] - med['cached']):.2f} s")
    print(f"  timeline rows per second (cached)    : {rows / med['cached']:,.0f}")
    print(f"peak RSS of any child process: {peak:.0f} MiB")
    print(
        json.dumps(
            {
                "bundle_bytes": size,
                "content_bytes": content,
                "rows": rows,
                "medians_s": med,
                "peak_rss_mib": round(peak),
            }
        )
    )


if __name__ == "__main__":
    main()
