#!/usr/bin/env python3
"""Capture throughput of `ir capture container` on a real Docker engine, against the limit of the
machine and the pipeline a responder would type by hand; then verify and replay of the bundles
against `zstd -d` of the same stored bytes.

    python bench/capture_bench.py                       # mixed tree, 100 MiB and 2 GiB diffs
    python bench/capture_bench.py --sizes mixed --runs 5 --backends node
    python bench/capture_bench.py --s3                  # also capture to SeaweedFS (test bed)

Data: for each corpus, a container of the test bed's busybox image (tests/testbed/docker.py)
whose writable layer gets its files written straight into its overlay upperdir before it starts
(`docker inspect` GraphDriver.Data.UpperDir):
  mixed   real software trees copied in -- every JDK under /usr/lib/jvm and the Go toolchain
          (~800 MiB in ~17,000 files) -- plus a 200 MiB random blob (bench/common.py:mixed_tree)
  N       N MiB: half varied log-like text (~3.8x with zstd -3), half random bytes, 512 B to
          24 MiB per file, many small files (bench/common.py:fill_tree)

Cases, each run --runs times in a rotating order, medians printed with ratios measured in the
same run (the machine is shared: absolute times alone mean little). The page cache is warm for all.
  limit       tar -C UPPERDIR -c . | zstd -3 -T2 -o OUT            (read, compress, write a file)
  hand        docker export C | gzip > FILE                       (what a responder types)
  ir-node     ir capture container C --backend node  --store DIR  (all collectors)
  ir-docker   ir capture container C --backend docker --store DIR (Engine API only)
  ir-startup  ir capture container --help                         (interpreter + its imports: fixed cost)
  ir-node-s3  ir capture container C --backend node --store s3:// (--s3: SeaweedFS)
  hand-s3     docker export C | gzip | boto3 upload_fileobj       (--s3)
ir runs with --max-file-size 1G --max-diff-size 64G so the whole diff is captured (the defaults,
64M and 1G, would skip part of the 2 GiB set). MiB/s are of the data set's bytes for every case.
Peak RSS and CPU seconds (user + system, children included) come from GNU time. Every case
writes into the same work directory; before each one the previous outputs are deleted and the
machine left --settle seconds (this VM hands freed memory back to its host: the first write
into it costs several times a later one, so every case starts from the same state).

Verify and replay (the first run's ir-node bundle of each size):
  zstd-d      zstd -dc STORED > /dev/null, STORED = `tar -xOf B --wildcards 'artifacts/*'`
  verify      ir bundle verify B
  timeline    ir replay B timeline -o csv > /dev/null, empty verdict cache (verify + timeline)
  timeline-c  the same with the verdict cached (the timeline alone)
MiB/s there are of the bundle's content (decompressed) bytes.

Floors, from the same run: how fast ir could be at best with the format's three SHA-256 digests
(each file, the tar stream, the stored bytes), the interpreter's start-up (ir-startup) and the
Python ir spends per file beyond tar's own work (bench/filecost.py, one thread, on the same tree)
added to the limit's CPU -- spread over every core, and over as many as the limit keeps busy.

--profile DIR: one extra py-spy run of each ir capture case; prints the functions where the
samples land and writes DIR/<case>-<size>.svg (flame graph) and .txt; and one run under
bench/threadtimes.py: CPU seconds per thread of ir (main, hashers, writer, zstd workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO,
    MiB,
    compile_ir,
    ensure_gnu_time,
    fill_tree,
    machine,
    median,
    mixed_tree,
    need,
    timed,
    write_json,
)

DATA_VERSION = "1"
IR = [sys.executable, "-m", "ir.cli.main"]
IR_LIMITS = ["--max-file-size", "1G", "--max-diff-size", "64G"]
HAND_S3 = r"""
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
s3.upload_fileobj(sys.stdin.buffer, sys.argv[1], sys.argv[2])
"""


# -- the data --------------------------------------------------------------------------------


def docker_cli(env: dict[str, str], *args: str, check: bool = True) -> str:
    run = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=False)
    if check and run.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed: {run.stderr.strip()}")
    return run.stdout.strip()


def corpus_label(corpus: str) -> str:
    return "mixed" if corpus == "mixed" else f"{corpus}m"


def prepare(env: dict[str, str], image: str, corpus: str, seed: int, work: Path) -> dict[str, Any]:
    """A running container of the test image with the corpus written into its upperdir (reused
    when a container of the same data version, corpus and seed is already there)."""
    name = f"ir-bench-capture-{corpus_label(corpus)}"
    tag = f"v{DATA_VERSION}-{corpus}-{seed}"
    info_file = work / f"{name}.json"
    found = docker_cli(
        env,
        "ps",
        "-a",
        "--filter",
        f"name=^{name}$",
        "--format",
        '{{.ID}} {{.State}} {{.Label "ir-bench-data"}}',
    )
    if found:
        cid, state, label = (found.split() + ["", ""])[:3]
        if state == "running" and label == tag and info_file.exists():
            info = json.loads(info_file.read_text())
            if info.get("id") == cid:
                print(f"reusing {name} ({corpus} data set)", file=sys.stderr)
                return dict(info)
        docker_cli(env, "rm", "-f", "-v", name)
    cid = docker_cli(
        env,
        "create",
        "--name",
        name,
        "--label",
        f"ir-bench-data={tag}",
        "--label",
        "ir-bench=1",
        image,
        "sh",
        "-c",
        'for i in $(seq 1 500); do echo "bench line $i"; done; exec sleep 1000000',
    )
    upper = Path(docker_cli(env, "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", cid))
    started = time.perf_counter()
    if corpus == "mixed":
        data = mixed_tree(upper, seed=seed)
    else:
        data = fill_tree(upper, int(corpus) * MiB, seed=seed)
    docker_cli(env, "start", cid)
    info = {
        "name": name,
        "id": cid,
        "upperdir": str(upper),
        "files": data.files,
        "bytes": data.bytes,
        "text_bytes": data.text_bytes,
        "random_bytes": data.random_bytes,
        "corpus": corpus,
    }
    info_file.write_text(json.dumps(info))
    print(
        f"made {name}: {data.files} files, {data.bytes / MiB:.0f} MiB "
        f"({data.text_bytes / MiB:.0f} text, {data.random_bytes / MiB:.0f} random) in "
        f"{time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return info


# -- the cases -------------------------------------------------------------------------------


def ir_capture(
    name: str, backend: str, store: str, env: dict[str, str]
) -> tuple[float, float, dict[str, Any], float]:
    res = timed(
        [
            *IR,
            "capture",
            "container",
            name,
            "--backend",
            backend,
            "--store",
            store,
            "--case",
            "bench",
            "--operator",
            "bench",
            *IR_LIMITS,
            "-o",
            "json",
        ],
        env=env,
    )
    doc = json.loads(res.stdout)
    if doc.get("outcome") != "complete":
        raise SystemExit(
            f"capture {backend} -> {store}: outcome {doc.get('outcome')}: {res.stderr[-2000:]}"
        )
    return res.seconds, res.rss_mib, doc, res.cpu_s


def run_size(
    args: argparse.Namespace, env: dict[str, str], image: str, corpus: str, work: Path, s3: Any
) -> dict[str, Any]:
    info = prepare(env, image, corpus, args.seed, work)
    name, upper, data_bytes = info["name"], info["upperdir"], int(info["bytes"])
    size = corpus_label(corpus)
    size_mib = data_bytes // MiB
    subprocess.run(f"tar -C {upper} -c . > /dev/null", shell=True, check=True)  # warm the cache
    runs = args.runs
    slow_runs = runs if size_mib <= args.large_mib else min(runs, args.large_slow_runs)
    slow = {"hand-s3"}  # minutes per run on the large set: fewer runs there
    cases: list[str] = ["limit", "ir-startup"] if args.no_hand else ["limit", "hand", "ir-startup"]
    if "node" in args.backends:
        cases.append("ir-node")
    if "docker" in args.backends and size_mib <= args.docker_max_mib:
        cases.append("ir-docker")  # the Engine API path: ~5 MiB/s, minutes per GiB
    if s3 is not None:
        cases.append("ir-node-s3")
        if slow_runs > 0:
            cases.append("hand-s3")
    seconds: dict[str, list[float]] = {c: [] for c in cases}
    rss: dict[str, list[float]] = {c: [] for c in cases}
    cpu: dict[str, list[float]] = {c: [] for c in cases}
    sizes: dict[str, int] = {}
    keep: dict[str, Any] = {}
    for run in range(runs):
        order = cases[run % len(cases) :] + cases[: run % len(cases)]
        for case in order:
            if case in slow and run >= slow_runs:
                continue
            out = work / f"out-{size}-{case}"
            for old in work.glob("out-*"):
                shutil.rmtree(old, ignore_errors=True)
            out.mkdir(parents=True)
            time.sleep(args.settle)
            if case == "limit":
                res = timed(f"tar -C {upper} -c . | zstd -3 -T2 -q -o {out}/limit.zst", env=env)
                seconds[case].append(res.seconds)
                cpu[case].append(res.cpu_s)
                sizes[case] = (out / "limit.zst").stat().st_size
            elif case == "ir-startup":  # the fixed cost of every capture: interpreter + imports
                res = timed([*IR, "capture", "container", "--help"], env=env)
                seconds[case].append(res.seconds)
                rss[case].append(res.rss_mib)
            elif case == "hand":
                res = timed(f"docker export {name} | gzip > {out}/hand.tar.gz", env=env)
                seconds[case].append(res.seconds)
                sizes[case] = (out / "hand.tar.gz").stat().st_size
            elif case == "hand-s3":
                bucket = s3.create_bucket(f"hand-{size}-{run}")
                res = timed(
                    f"docker export {name} | gzip | {sys.executable} -c '{HAND_S3}' {bucket} hand.tar.gz",
                    env=env,
                )
                seconds[case].append(res.seconds)
            else:
                backend = "docker" if case == "ir-docker" else "node"
                if case == "ir-node-s3":
                    bucket = s3.create_bucket(f"ir-{size}-{run}")
                    store = f"s3://{bucket}/evidence"
                else:
                    store = str(out / "store")
                secs, peak, doc, cpu_s = ir_capture(name, backend, store, env)
                seconds[case].append(secs)
                rss[case].append(peak)
                cpu[case].append(cpu_s)
                sizes[case] = int(doc.get("size") or 0)
                if case == "ir-node" and run == 0:
                    keep_dir = work / f"bundle-{size}"
                    shutil.rmtree(keep_dir, ignore_errors=True)
                    keep_dir.mkdir()
                    bundle = Path(doc["bundle"])
                    shutil.move(str(bundle), keep_dir / bundle.name)
                    keep = {
                        "bundle": str(keep_dir / bundle.name),
                        "content_bytes": sum(int(a.get("size") or 0) for a in doc["artifacts"]),
                    }
            shutil.rmtree(out, ignore_errors=True)
            print(f"  {size} run {run + 1}: {case:<10} {seconds[case][-1]:7.2f}s", file=sys.stderr)
    med = {c: median(v) for c, v in seconds.items()}
    result: dict[str, Any] = {
        "corpus": corpus,
        "size_mib": size_mib,
        "files": info["files"],
        "random_bytes": info["random_bytes"],
        "data_bytes": data_bytes,
        "runs": runs,
        "cases": {
            c: {
                "median_s": round(med[c], 3),
                "mib_s": round(data_bytes / MiB / med[c], 1),
                "runs_s": [round(x, 3) for x in seconds[c]],
                "peak_rss_mib": round(max(rss[c]), 1) if rss[c] else None,
                "cpu_s": round(median(cpu[c]), 2) if cpu[c] else None,
                "output_bytes": sizes.get(c),
            }
            for c in cases
        },
    }
    ratios: dict[str, float] = {}
    for case in ("ir-node", "ir-docker", "ir-node-s3"):
        if case in med:
            ratios[f"{case}/limit"] = round(med["limit"] / med[case], 3)
            if "hand" in med:
                ratios[f"{case}/hand"] = round(med["hand"] / med[case], 3)
    if "ir-node-s3" in med and "hand-s3" in med:
        ratios["ir-node-s3/hand-s3"] = round(med["hand-s3"] / med["ir-node-s3"], 3)
    result["ratios"] = ratios
    if "ir-node" in med and cpu["limit"]:
        result["floor"] = capture_floor(
            median(cpu["limit"]),
            med["limit"],
            data_bytes,
            sizes.get("ir-node") or 0,
            startup_s=med.get("ir-startup", 0.0),
            per_file=file_cost(upper, env),
        )
        ratios["ir-node/floor"] = round(result["floor"]["seconds"] / med["ir-node"], 3)
    if keep and not args.no_verify:
        result["verify"] = verify_cases(
            Path(keep["bundle"]),
            int(keep["content_bytes"]),
            runs,
            work,
            env,
            startup_s=med.get("ir-startup", 0.0),
        )
    if args.profile:
        result["profile"] = profile(args, name, size, env, work)
    return result


def sha256_rate() -> float:
    """Bytes per second of hashlib's SHA-256 on this machine, now (1 MiB pieces, one thread)."""
    import hashlib

    piece = os.urandom(MiB)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(256):
        digest.update(piece)
    return 256 * MiB / (time.perf_counter() - started)


def file_cost(upper: str, env: dict[str, str]) -> dict[str, Any]:
    """ir's per-file work on the tree against tar's (bench/filecost.py, the best of 2 runs)."""
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "filecost.py"), upper],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(run.stdout))


def capture_floor(
    limit_cpu: float,
    limit_s: float,
    data_bytes: int,
    stored_bytes: int,
    *,
    startup_s: float = 0.0,
    per_file: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fastest ir could be on this machine, from the same run. Its CPU: the limit's own (read,
    compress, write), plus the SHA-256 the format needs -- each file's content, the tar stream's
    content, the stored bytes: about twice the data plus the bundle -- plus what ir's Python does
    per file beyond tar's own work (`per_file`, bench/filecost.py; its per-file digest is in the
    SHA-256 term already). The interpreter's start-up (`startup_s`, one core) comes first; the
    rest spread over every core (`seconds`), or over as many as the limit itself keeps busy
    (`seconds_at_limit_cores`: what ir can reach if it parallelises exactly as well as
    tar | zstd -T2). Never faster than the limit."""
    rate = sha256_rate()
    hashed = 2 * data_bytes + stored_bytes
    cores = os.cpu_count() or 1
    extra = 0.0
    if per_file:
        own = per_file["ir_cpu_s"] - per_file["hashed_bytes"] / rate - per_file["tar_cpu_s"]
        extra = max(0.0, own)
    cpu = limit_cpu + hashed / rate + extra
    limit_cores = limit_cpu / limit_s if limit_s else cores
    seconds = max(limit_s, startup_s + (cpu - startup_s) / cores)
    at_limit_cores = max(limit_s, startup_s + (cpu - startup_s) / limit_cores)
    return {
        "seconds": round(seconds, 3),
        "seconds_at_limit_cores": round(at_limit_cores, 3),
        "sha256_mib_s": round(rate / MiB, 1),
        "hashed_bytes": hashed,
        "hash_cpu_s": round(hashed / rate, 3),
        "limit_cpu_s": round(limit_cpu, 3),
        "limit_cores": round(limit_cores, 2),
        "startup_s": round(startup_s, 3),
        "per_file": per_file,
        "per_file_extra_cpu_s": round(extra, 3),
        "cpu_s": round(cpu, 3),
        "cores": cores,
        "ratio_to_limit": round(limit_s / seconds, 3),
        "ratio_to_limit_at_limit_cores": round(limit_s / at_limit_cores, 3),
    }


def verify_floor(
    zstd_s: float, content: int, stored: int, startup_s: float = 0.0
) -> dict[str, Any]:
    """The fastest verify could be with the same checks: the interpreter's start-up
    (`startup_s`, ir-startup of the same run), then decompression (zstd -d's own time, one
    thread: a zstd frame decompresses in order) with the SHA-256 of the content and of the
    stored bytes spread over every core beside it."""
    rate = sha256_rate()
    cores = os.cpu_count() or 1
    seconds = startup_s + max(zstd_s, (zstd_s + (content + stored) / rate) / cores)
    return {
        "seconds": round(seconds, 3),
        "startup_s": round(startup_s, 3),
        "sha256_mib_s": round(rate / MiB, 1),
        "ratio_to_zstd_d": round(zstd_s / seconds, 3),
    }


def verify_cases(
    bundle: Path,
    content: int,
    runs: int,
    work: Path,
    env: dict[str, str],
    *,
    startup_s: float = 0.0,
) -> dict[str, Any]:
    stored = work / "stored.zst"
    subprocess.run(
        f"tar -xOf {bundle} --wildcards 'artifacts/*' > {stored}", shell=True, check=True
    )
    cache = work / "xdg-cache"
    venv = {**env, "XDG_CACHE_HOME": str(cache)}
    seconds: dict[str, list[float]] = {"zstd-d": [], "verify": [], "timeline": [], "timeline-c": []}
    rss: dict[str, list[float]] = {k: [] for k in seconds}
    replay = _has_replay()
    for run in range(runs):
        order = list(seconds)
        order = order[run % 2 * 2 :] + order[: run % 2 * 2]  # zstd-d/verify first or second
        for case in order:
            if case.startswith("timeline") and not replay:
                continue
            if case == "zstd-d":
                res = timed(f"zstd -dcq {stored} > /dev/null", env=venv)
            elif case == "verify":
                res = timed(
                    [*IR, "bundle", "verify", str(bundle), "--allow-unsigned", "-o", "json"],
                    env=venv,
                )
            elif case == "timeline":
                shutil.rmtree(cache, ignore_errors=True)
                res = timed(f"{' '.join(IR)} replay {bundle} timeline -o csv > /dev/null", env=venv)
            else:
                res = timed(f"{' '.join(IR)} replay {bundle} timeline -o csv > /dev/null", env=venv)
            seconds[case].append(res.seconds)
            rss[case].append(res.rss_mib)
    stored.unlink()
    med = {c: median(v) for c, v in seconds.items() if v}
    out: dict[str, Any] = {
        "bundle_bytes": bundle.stat().st_size,
        "content_bytes": content,
        "cases": {
            c: {
                "median_s": round(m, 3),
                "mib_s": round(content / MiB / m, 1),
                "runs_s": [round(x, 3) for x in seconds[c]],
                "peak_rss_mib": round(max(rss[c]), 1),
            }
            for c, m in med.items()
        },
        "ratios": {"verify/zstd-d": round(med["zstd-d"] / med["verify"], 3)},
    }
    out["floor"] = verify_floor(med["zstd-d"], content, bundle.stat().st_size, startup_s)
    out["ratios"]["verify/floor"] = round(out["floor"]["seconds"] / med["verify"], 3)
    if "timeline" in med:
        out["ratios"]["timeline/zstd-d"] = round(med["zstd-d"] / med["timeline"], 3)
        out["ratios"]["timeline-cached/zstd-d"] = round(med["zstd-d"] / med["timeline-c"], 3)
    return out


def _has_replay() -> bool:
    run = subprocess.run([*IR, "replay", "--help"], capture_output=True, check=False)
    return run.returncode == 0


def profile(
    args: argparse.Namespace, name: str, size: str, env: dict[str, str], work: Path
) -> dict[str, Any]:
    """One py-spy run per ir case: where the samples land (own time per function, all threads)."""
    if shutil.which("py-spy") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    outdir = Path(args.profile)
    outdir.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    for backend in args.backends:
        raw = outdir / f"ir-{backend}-{size}.raw"
        store = work / "profile-store"
        shutil.rmtree(store, ignore_errors=True)
        cmd = [
            *IR,
            "capture",
            "container",
            name,
            "--backend",
            backend,
            "--store",
            str(store),
            *IR_LIMITS,
            "-o",
            "json",
        ]
        subprocess.run(
            [
                "py-spy",
                "record",
                "--threads",
                "--idle",
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(raw),
                "--",
                *cmd,
            ],
            env=env,
            capture_output=True,
            check=True,
        )
        subprocess.run(
            [
                "py-spy",
                "record",
                "--threads",
                "-r",
                "100",
                "-o",
                str(raw.with_suffix(".svg")),
                "--",
                *cmd,
            ],
            env=env,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(store, ignore_errors=True)
        top = summarize_raw(raw)
        raw.with_suffix(".txt").write_text(
            "\n".join(f"{n:6d} {share:5.1f}% {where}" for where, n, share in top) + "\n"
        )
        found[backend] = [{"where": w, "samples": n, "share": s} for w, n, s in top[:12]]
        shutil.rmtree(store, ignore_errors=True)
        time.sleep(args.settle)
        tt = timed(
            [sys.executable, str(REPO / "bench" / "threadtimes.py"), *cmd[len(IR) :]], env=env
        )
        lines = tt.stderr.strip().splitlines()
        found[f"{backend}-threads"] = json.loads(lines[-1])
        raw.with_name(f"{backend}-timeline.txt").write_text(
            "".join(line + "\n" for line in lines if line.startswith("timeline "))
        )
        shutil.rmtree(store, ignore_errors=True)
    return found


def summarize_raw(raw: Path, limit: int = 25) -> list[tuple[str, int, float]]:
    """Leaf functions (thread: function) by samples, idle waits kept apart."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(": ")[-1] if ": " in frames[0] else "thread"
        leaf = frames[-1]
        if leaf.startswith("Condition.wait") and len(frames) > 3:
            leaf = "waiting in " + " <- ".join(f.split(" (")[0] for f in frames[-4:-1][::-1])
        key = f"{thread}: {leaf}"
        counts[key] = counts.get(key, 0) + int(n)
        total += int(n)
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return [(k, v, 100.0 * v / max(total, 1)) for k, v in ordered]


# -- report ----------------------------------------------------------------------------------


def report(results: list[dict[str, Any]]) -> None:
    for res in results:
        what = (
            "mixed tree (JDKs + Go toolchain + random blob)" if res["corpus"] == "mixed" else "diff"
        )
        print(
            f"\n== {what} of {res['size_mib']} MiB ({res['random_bytes'] / MiB:.0f} MiB random), "
            f"{res['files']} files; {res['runs']} run(s); medians"
        )
        print(
            f"{'case':<12} {'seconds':>8} {'MiB/s':>8} {'CPU s':>6} {'peak RSS MiB':>13} "
            f"{'output MiB':>11}"
        )
        for case, c in res["cases"].items():
            peak = f"{c['peak_rss_mib']:.0f}" if c["peak_rss_mib"] else "-"
            outb = f"{c['output_bytes'] / MiB:.0f}" if c.get("output_bytes") else "-"
            cpu = (
                f"{c['cpu_s']:.2f}" if c.get("cpu_s") == c.get("cpu_s") and c.get("cpu_s") else "-"
            )
            print(
                f"{case:<12} {c['median_s']:8.2f} {c['mib_s']:8.1f} {cpu:>6} {peak:>13} {outb:>11}"
            )
        for k, v in res["ratios"].items():
            print(f"  throughput {k:<22} {v:.2f}x")
        floor = res.get("floor")
        if floor:
            print(
                f"  floor (start-up {floor.get('startup_s', 0)} s, then the limit's "
                f"{floor['limit_cpu_s']} CPU-s + SHA-256 of {floor['hashed_bytes'] / MiB:.0f} MiB "
                f"at {floor['sha256_mib_s']} MiB/s = {floor['hash_cpu_s']} CPU-s + ir's per-file "
                f"Python beyond tar's {floor.get('per_file_extra_cpu_s', 0)} CPU-s, over "
                f"{floor['cores']} cores): {floor['seconds']} s = "
                f"{floor['ratio_to_limit']:.2f}x the limit at best; over the "
                f"{floor.get('limit_cores', '-')} cores the limit keeps busy: "
                f"{floor.get('seconds_at_limit_cores', '-')} s = "
                f"{floor.get('ratio_to_limit_at_limit_cores', 0):.2f}x"
            )
            pf = floor.get("per_file")
            if pf:
                print(
                    f"  per file ({pf['entries']} entries, bench/filecost.py): ir {pf['ir_cpu_s']} "
                    f"CPU-s in one thread (reads and per-file SHA-256 included), tar "
                    f"{pf['tar_cpu_s']} CPU-s"
                )
        ver = res.get("verify")
        if ver:
            print(
                f"-- verify/replay of the ir-node bundle ({ver['bundle_bytes'] / MiB:.0f} MiB stored, "
                f"{ver['content_bytes'] / MiB:.0f} MiB content)"
            )
            for case, c in ver["cases"].items():
                print(
                    f"{case:<12} {c['median_s']:8.2f} {c['mib_s']:8.1f} {c['peak_rss_mib']:13.0f}"
                )
            for k, v in ver["ratios"].items():
                print(f"  throughput {k:<22} {v:.2f}x")
            vf = ver.get("floor")
            if vf:
                print(
                    f"  floor (start-up {vf.get('startup_s', 0)} s, then zstd -d + SHA-256 of "
                    f"content and stored bytes at {vf['sha256_mib_s']} MiB/s, over every core): "
                    f"{vf['seconds']} s = {vf['ratio_to_zstd_d']:.2f}x zstd -d at best"
                )
        for backend, top in (res.get("profile") or {}).items():
            if backend.endswith("-threads"):
                print(f"-- CPU seconds per thread, ir capture --backend {backend[:-8]}")
                for thread, secs in top.items():
                    print(f"  {secs:6.2f} {thread}")
                continue
            print(
                f"-- profile, ir capture --backend {backend} (share of samples, all threads, idle included)"
            )
            for row in top:
                print(f"  {row['share']:5.1f}% {row['where']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="mixed,100,2048",
        help="corpora, comma-separated: mixed (software trees + random blob) or a size in MiB",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds between deleting the last outputs and the next case",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="node,docker", help="ir backends: node,docker")
    parser.add_argument(
        "--large-mib",
        type=int,
        default=512,
        help="sizes above this are 'large': the slow case (hand-s3: gzip on one core, then "
        "an upload) runs --large-slow-runs times",
    )
    parser.add_argument("--large-slow-runs", type=int, default=1)
    parser.add_argument(
        "--docker-max-mib",
        type=int,
        default=512,
        help="the docker backend runs on corpora up to this size only (it reads through the "
        "Engine API's archive endpoint: minutes per GiB)",
    )
    parser.add_argument(
        "--s3", action="store_true", help="also capture to SeaweedFS (tests/testbed/s3.py)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip verify/replay")
    parser.add_argument(
        "--no-hand", action="store_true", help="skip the hand pipeline (quick before/after runs)"
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy profile of each ir case into DIR")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--work", default="/var/tmp/ir-capture-bench", help="work directory (bundles, outputs)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the containers and work directory"
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON too")
    args = parser.parse_args()
    args.backends = [b for b in args.backends.split(",") if b]
    ensure_gnu_time()
    compile_ir()
    need("zstd", "zstd")
    need("gzip", "gzip")
    from tests.testbed.docker import ensure_docker

    bed = ensure_docker()
    # an outer PYTHONPATH goes first: PYTHONPATH=/scratch/copy measures a patched ir (before/after)
    env = {
        **bed.env(),
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)])),
        "IR_OPERATOR": "bench",
    }
    env.pop("IR_STORE", None)
    env.pop("IR_SIGNING_KEY", None)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    s3 = None
    results: list[dict[str, Any]] = []
    try:
        if args.s3:
            from tests.testbed.s3 import SeaweedFS

            s3 = SeaweedFS(work / "seaweedfs").start()
            env.update(s3.env())
            env["IR_SPOOL_DIR"] = str(work / "spool")
        for corpus in [s for s in args.sizes.split(",") if s]:
            results.append(run_size(args, env, bed.image, corpus, work, s3))
    finally:
        if s3 is not None:
            s3.stop()
        if not args.keep:
            for corpus in [s for s in args.sizes.split(",") if s]:
                docker_cli(
                    env, "rm", "-f", "-v", f"ir-bench-capture-{corpus_label(corpus)}", check=False
                )
            shutil.rmtree(work, ignore_errors=True)
    doc = {
        "bench": "capture",
        "machine": machine(),
        "command": " ".join(sys.argv),
        "results": results,
    }
    report(results)
    write_json(args.json, doc)


if __name__ == "__main__":
    main()
