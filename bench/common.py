"""Shared helpers of the benchmarks: timing with peak RSS, medians and percentiles, the machine
description, and the synthetic "container diff" data set (mixed log-like text and random bytes).

Nothing here starts servers; the benchmarks use the test bed (tests/testbed/) for that.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
TIME = "/usr/bin/time"


# -- statistics ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


# -- running commands ------------------------------------------------------------------------


@dataclass
class Timed:
    seconds: float
    rss_mib: float  # peak RSS of the command (the largest process of it), from GNU time
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float = float("nan")  # user + system CPU seconds of the command and its children


def compile_ir() -> None:
    """Compile ir's bytecode, as `pip install` does: ir is measured as a user runs it. Where
    PYTHONDONTWRITEBYTECODE is set (this machine's environment sets it) and ir is run from its
    source tree, every command would otherwise compile every module it imports first: ~0.15 s a
    command here. Up-to-date files are skipped."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", str(REPO / "ir")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def ensure_gnu_time() -> None:
    """Debian's `time` package gives /usr/bin/time -f %M (peak RSS); install it if missing."""
    if os.access(TIME, os.X_OK):
        return
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "time"],
        check=False,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if not os.access(TIME, os.X_OK):
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "time"],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def timed(
    argv: Sequence[str] | str,
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    ok_codes: Sequence[int] = (0,),
    timeout: float = 1800,
) -> Timed:
    """Run a command (argv list, or a shell string) under GNU time; wall seconds and peak RSS.

    GNU time reports the peak RSS of the largest single process it waited for (for a shell
    pipeline: the largest of its members)."""
    cmd = list(argv) if not isinstance(argv, str) else ["sh", "-c", argv]
    started = time.perf_counter()
    run = subprocess.run(
        [TIME, "-f", "\nir-bench-maxrss-kib=%M %U %S", *cmd],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    elapsed = time.perf_counter() - started
    stderr, _, tail = run.stderr.rpartition("ir-bench-maxrss-kib=")
    try:
        rss = int(tail.split()[0]) / 1024
        cpu = float(tail.split()[1]) + float(tail.split()[2])
    except (IndexError, ValueError):
        rss, cpu, stderr = float("nan"), float("nan"), run.stderr
    if check and run.returncode not in ok_codes:
        raise SystemExit(
            f"command failed ({run.returncode}): {cmd}\n{run.stdout[-3000:]}\n{stderr[-3000:]}"
        )
    return Timed(elapsed, rss, run.returncode, run.stdout, stderr, cpu)


# -- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "zstd": _version(["zstd", "--version"]),
        "gzip": _version(["gzip", "--version"]),
    }


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "missing"
    return (out.splitlines() or [""])[0].strip()


def write_json(path: str | None, document: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(document, indent=2) + "\n")


# -- synthetic container diff ----------------------------------------------------------------

_METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH"]
_PATHS = [
    "/api/v1/items",
    "/api/v1/users",
    "/healthz",
    "/api/v2/orders",
    "/static/app.js",
    "/login",
    "/api/v1/search",
    "/metrics",
    "/api/v1/carts",
    "/admin/reports",
]
_AGENTS = [
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
    "kube-probe/1.35",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
]
_LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
_WORDS = [
    "request",
    "handled",
    "cache",
    "miss",
    "retry",
    "upstream",
    "timeout",
    "connection",
    "reset",
    "user",
    "session",
    "token",
    "refresh",
    "queue",
    "depth",
    "worker",
    "started",
    "stopped",
    "payload",
    "parsed",
    "invalid",
    "checksum",
    "order",
    "shipped",
    "payment",
    "declined",
    "inventory",
    "reserved",
]


def text_pool(size: int, seed: int = 7) -> bytes:
    """`size` bytes of varied log-like text: access logs, JSON logs, klog and syslog lines with
    increasing timestamps, random ids, addresses, sizes and durations (compresses like real logs,
    about 4-6x with zstd -3; not one repeated line)."""
    rng = random.Random(seed)
    at = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
    out: list[bytes] = []
    total = 0
    while total < size:
        at += timedelta(microseconds=rng.randrange(200, 90_000))
        kind = rng.randrange(4)
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        path = f"{rng.choice(_PATHS)}/{rng.randrange(100000)}"
        if kind == 0:
            line = (
                f'{ip} - - [{at.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "{rng.choice(_METHODS)} {path} '
                f'HTTP/1.1" {rng.choice((200, 200, 200, 201, 204, 301, 404, 500))} {rng.randrange(80, 90000)} '
                f'"-" "{rng.choice(_AGENTS)}"\n'
            )
        elif kind == 1:
            line = (
                f'{{"ts":"{at.isoformat().replace("+00:00", "Z")}","level":"{rng.choice(_LEVELS).lower()}",'
                f'"msg":"{" ".join(rng.sample(_WORDS, 4))}","path":"{path}","ms":{rng.random() * 900:.3f},'
                f'"trace_id":"{rng.getrandbits(64):016x}","user":{rng.randrange(10**6)}}}\n'
            )
        elif kind == 2:
            line = (
                f"{rng.choice('IWE')}{at.strftime('%m%d %H:%M:%S.%f')} {rng.randrange(1, 40):>7} "
                f"{rng.choice(('worker.go', 'server.go', 'cache.go'))}:{rng.randrange(30, 900)}] "
                f"{' '.join(rng.sample(_WORDS, 5))} id={rng.getrandbits(32):08x}\n"
            )
        else:
            line = (
                f"{at.strftime('%b %d %H:%M:%S')} web-{rng.randrange(40)} app[{rng.randrange(1, 65000)}]: "
                f"{rng.choice(_LEVELS)} {' '.join(rng.sample(_WORDS, 6))} bytes={rng.randrange(10**7)}\n"
            )
        data = line.encode()
        out.append(data)
        total += len(data)
    return b"".join(out)[:size]


@dataclass
class DataSet:
    files: int
    bytes: int
    text_bytes: int
    random_bytes: int


def fill_tree(root: Path, total: int, *, seed: int = 1, pool_mib: int = 32) -> DataSet:
    """Write about `total` bytes of mixed files below `root` (created): half log-like text, half
    random; sizes from 512 B to 24 MiB (many small files, a few big ones), in a few directories.

    Files are slices of a text pool and a random pool at random offsets; `pool_mib` is far above
    the compressors' windows (zstd -3: 2 MiB, gzip: 32 KiB), so nothing compresses better than
    the pools themselves would."""
    rng = random.Random(seed)
    pool = max(8, min(pool_mib, total // MiB + 8)) * MiB
    texts = text_pool(pool, seed)
    noise = os.urandom(pool)
    sizes = [512, 2048, 8192, 32768, 131072, 1 * MiB, 4 * MiB, 12 * MiB, 24 * MiB]
    weights = [30, 25, 18, 10, 7, 5, 3, 1.5, 0.5]
    dirs = [
        "var/log/app",
        "var/lib/app/cache",
        "tmp/.x",
        "opt/app/data",
        "home/app/uploads",
        "usr/local/share/blobs",
    ]
    written = files = text_bytes = random_bytes = 0
    n = 0
    while written < total:
        want = rng.choices(sizes, weights)[0]
        size = min(total - written, max(1, int(want * rng.uniform(0.5, 1.5))))
        compressible = rng.random() < 0.5 if size < MiB else (n % 2 == 0)
        src = texts if compressible else noise
        start = rng.randrange(0, len(src) - size) if size < len(src) else 0
        directory = root / dirs[n % len(dirs)] / f"d{n // 200:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        suffix = ".log" if compressible else ".bin"
        with open(directory / f"f{n:06d}{suffix}", "wb") as fh:
            left = size
            while left > 0:
                piece = src[start : start + min(left, len(src) - start)]
                fh.write(piece)
                left -= len(piece)
                start = 0
        written += size
        files += 1
        n += 1
        if compressible:
            text_bytes += size
        else:
            random_bytes += size
    return DataSet(files, written, text_bytes, random_bytes)


MIXED_BLOB_MIB = 200


def toolchains() -> list[Path]:
    """The real software trees of this machine the mixed corpus copies: every JDK under
    /usr/lib/jvm (not the links to them) and the Go toolchain's GOROOT."""
    found = sorted(p for p in Path("/usr/lib/jvm").glob("*") if p.is_dir() and not p.is_symlink())
    go = shutil.which("go")
    if go is not None:
        root = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True).stdout
        if root.strip():
            found.append(Path(root.strip()))
    return found


def mixed_tree(root: Path, *, seed: int = 1) -> DataSet:
    """The "mixed" corpus of issue 17: real software trees copied in (the JDKs and the Go
    toolchain here: ~800 MiB in ~17,000 files: class libraries, jars, binaries, sources, many
    small files) plus one incompressible blob of MIXED_BLOB_MIB MiB."""
    trees = toolchains()
    if not any("jvm" in str(t) for t in trees) or not any("jvm" not in str(t) for t in trees):
        raise SystemExit(
            "the mixed corpus copies a JDK (/usr/lib/jvm/*) and the Go toolchain (`go env "
            f"GOROOT`); found {[str(t) for t in trees]}: install openjdk-17-jdk-headless and Go"
        )
    for n, tree in enumerate(trees):
        dest = root / "opt" / f"{n:02d}-{tree.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(tree), str(dest)], check=True)
    blob = root / "var" / "cache" / "blob.bin"
    blob.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(blob, "wb") as fh:
        for _ in range(MIXED_BLOB_MIB):
            fh.write(rng.randbytes(MiB))
    files = total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            total += st.st_size
    blob_bytes = MIXED_BLOB_MIB * MiB
    return DataSet(files, total, total - blob_bytes, blob_bytes)


def du_bytes(path: Path) -> int:
    out = subprocess.run(
        ["du", "-sb", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[0])


def need(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
