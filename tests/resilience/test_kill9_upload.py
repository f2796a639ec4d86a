"""`kill -9` of ir while it uploads to S3 (SeaweedFS): during `ir bundle push`, and during a
capture that streams its bundle to S3 as it is written.

The promises: the local bundle is never altered or removed by an interrupted upload; S3 never
holds an object at the bundle's key that is not the whole, confirmed bundle; rerunning the push
finishes the job, reusing the parts S3 kept, and the result verifies from s3://; an interrupted
capture leaves its `.tar.partial` in the spool, reported incomplete and left alone by push.

Kill points come from a fixed seed (deterministic across runs); IR_RESILIENCE_LONG=1 tries more.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ir.bundle import layout
from tests.resilience.faults import LONG, IrProcess, ir_env, run_ir
from tests.testbed.s3 import SeaweedFS

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
SIZE_MIB = 160
POINTS = 6 if LONG else 3


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def synthetic_capture(store: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A capture of SIZE_MIB of incompressible artifacts into STORE, in its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.testbed.s3", "capture", store, str(SIZE_MIB)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finished_capture(store: str, env: dict[str, str]) -> dict[str, Any]:
    """synthetic_capture run to its end (exit 0): its JSON result."""
    capture = synthetic_capture(store, env)
    out, err = capture.communicate(timeout=600)
    assert capture.returncode == 0, err.decode()
    return dict(json.loads(out))


def parts_in_flight(seaweedfs: SeaweedFS, bucket: str) -> int:
    """Parts S3 holds for the bucket's unfinished multipart uploads."""
    s3 = seaweedfs.client()
    total = 0
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        listed = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        total += len(listed.get("Parts", []))
    return total


def objects(seaweedfs: SeaweedFS, bucket: str) -> list[str]:
    listed = seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_kill9_during_push_then_push_again(
    seaweedfs: SeaweedFS, plain_bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """`ir bundle push` of a sealed bundle killed with SIGKILL at seeded points once S3 holds
    some of its parts: after each kill the local bundle is byte-identical and verifies, and S3
    holds no object at the bundle's key; the next push reuses the parts S3 kept, and the last one
    completes: the object verifies from s3:// with the same root digest."""
    bundle = Path(finished_capture(str(tmp_path / "local"), ir_env(**s3_env))["location"])
    before = sha256_of(bundle)
    env = ir_env(**s3_env)
    store = f"s3://{plain_bucket}/pushed"
    rng = random.Random(9)
    held: list[int] = []
    for point in range(POINTS):
        push = IrProcess(["bundle", "push", str(bundle), "--store", store], env)
        wanted = 1 + point + rng.randrange(3)  # parts S3 must hold before the kill
        deadline = time.monotonic() + 120
        while push.running() and time.monotonic() < deadline:
            if parts_in_flight(seaweedfs, plain_bucket) >= wanted:
                break
            time.sleep(0.01)
        push.kill9()
        killed = push.finish(timeout=60)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert sha256_of(bundle) == before, "the local bundle changed under an interrupted push"
        assert not [k for k in objects(seaweedfs, plain_bucket) if k.endswith(".tar")], (
            "a bundle object appeared before the upload was confirmed"
        )
        held.append(parts_in_flight(seaweedfs, plain_bucket))
    local = run_ir(["bundle", "verify", str(bundle), "-o", "json"], env)
    assert local.returncode == 0, local.stdout + local.stderr
    done = run_ir(["bundle", "push", str(bundle), "--store", store, "-o", "json"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    [row] = json.loads(done.stdout)
    assert row["status"] == "uploaded" and row["parts_reused"] >= 1, (row, held)
    print(f"\nparts held after each kill: {held}; the last push reused {row['parts_reused']}")
    assert bundle.exists() and sha256_of(bundle) == before  # outside the spool: kept
    verified = run_ir(["bundle", "verify", row["location"], "-o", "json"], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["root_digest"] == json.loads(local.stdout)["root_digest"]


@pytest.mark.parametrize("when", ["before-seal", "after-seal"])
def test_kill9_during_capture_streaming_to_s3(
    when: str,
    seaweedfs: SeaweedFS,
    plain_bucket: str,
    s3_env: dict[str, str],
    spool_dir: Path,
) -> None:
    """A capture streaming its bundle to S3 killed with SIGKILL, at one of two points:
    before-seal (48 MiB into the bundle): the spool keeps the `.tar.partial` (verify:
    incomplete, exit 1; push: left alone, exit 1, not deleted) and a new capture into the same
    store completes; after-seal (the sealed `.tar` is in the spool, its upload still running):
    the spooled bundle verifies and `ir bundle push` completes the upload, reusing what S3 holds,
    and removes the spooled copy only then. In both, S3 holds no bundle object before the
    upload is confirmed."""
    env = ir_env(**s3_env)
    store = f"s3://{plain_bucket}/streamed"
    capture = synthetic_capture(store, env)
    deadline = time.monotonic() + 120
    while capture.poll() is None and time.monotonic() < deadline:
        if when == "before-seal" and any(
            p.stat().st_size >= 48 * MiB for p in spool_dir.rglob(f"*{layout.PARTIAL_SUFFIX}")
        ):
            break
        if when == "after-seal" and list(spool_dir.rglob(f"*{layout.BUNDLE_SUFFIX}")):
            break
        time.sleep(0.005)
    capture.send_signal(signal.SIGKILL)
    capture.wait(timeout=60)
    assert capture.returncode == -signal.SIGKILL, "the capture ended before the kill"
    assert not [k for k in objects(seaweedfs, plain_bucket) if k.endswith(".tar")]
    if when == "after-seal":
        [sealed] = spool_dir.rglob(f"*{layout.BUNDLE_SUFFIX}")
        local = run_ir(["bundle", "verify", str(sealed), "-o", "json"], env)
        assert local.returncode == 0, local.stdout + local.stderr
        pushed = run_ir(["bundle", "push", "-o", "json"], env)  # the spool, bound to its store
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        [row] = json.loads(pushed.stdout)
        assert row["status"] == "uploaded", row
        assert not sealed.exists()  # removed only once S3 confirmed it
        verified = run_ir(["bundle", "verify", row["location"], "-o", "json"], env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        root = json.loads(local.stdout)["root_digest"]
        assert json.loads(verified.stdout)["root_digest"] == root
        print(f"\nafter-seal kill: push reused {row['parts_reused']} parts")
        return
    partial = sorted(spool_dir.rglob(f"*{layout.PARTIAL_SUFFIX}"))
    assert len(partial) == 1, sorted(spool_dir.rglob("*"))
    size = partial[0].stat().st_size
    verify = run_ir(["bundle", "verify", str(partial[0])], env)
    assert verify.returncode == 1 and "Traceback" not in verify.stderr, verify.stderr
    assert "incomplete" in (verify.stdout + verify.stderr).lower()
    push = run_ir(["bundle", "push", "--store", store], env)
    assert push.returncode == 1 and "Traceback" not in push.stderr, push.stdout + push.stderr
    assert partial[0].exists() and partial[0].stat().st_size == size  # left alone, not deleted
    result = finished_capture(store, env)
    assert result["confirmed"]
    verified = run_ir(["bundle", "verify", result["location"]], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert partial[0].exists()  # the interrupted one is still there for the record
