"""Faults under `ir capture container` (run as a subprocess, as a responder runs it): the Docker
daemon killed in the middle of the filesystem stage, and the target container killed or deleted
in the middle of it.

The promises: the capture ends (no hang) with a sealed bundle that says it is partial and why, or
a one-line error; never a bundle that looks complete and is not; every file content the bundle
holds is exactly what the container held (hashes known beforehand); the engine comes back and
capturing works again.

The daemon is killed on a second, private engine (faults.PrivateEngine): the shared engine of the
test bed serves other tests, possibly other sessions, and must stay up.
"""

from __future__ import annotations

import fcntl
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from ir.bundle.reader import BundleReader
from tests.resilience.faults import (
    LONG,
    IrProcess,
    IrRun,
    PrivateEngine,
    StoreCheck,
    check_store,
    ir_env,
    wait_for_partial,
)
from tests.testbed.docker import DockerBed

pytestmark = pytest.mark.docker

FILES, FILE_SIZE = 20, 2 * 1024 * 1024


def big_diff(directory: str) -> str:
    """FILES random files DIRECTORY/f1..fN, their hashes printed, then idle. Under a new directory
    (`/data`) the Docker backend streams them all in one archive request; directly in a directory
    of the image (`/tmp`) it asks for each file apart, so a fault can land between two of them."""
    return (
        f"mkdir -p {directory}; i=1; while [ $i -le {FILES} ]; do head -c {FILE_SIZE} /dev/urandom > "
        f"{directory}/f$i; i=$((i+1)); done; sha256sum {directory}/f*; echo ready; "
        "exec sleep 100000"
    )


BIG_DIFF = big_diff("/data")
FAULT_AT = 12 * 1024 * 1024  # bundle bytes written when the fault strikes: in the filesystem stage
# For the engine crash, one 48 MiB file streamed for long enough that the crash always lands in
# the middle of a file's stream (between two files the engine dies at a stat, another path).
CRASH_DIFF = (
    "mkdir /data; head -c 50331648 /dev/urandom > /data/f0; i=1; while [ $i -le 10 ]; do "
    "head -c 102400 /dev/urandom > /data/f$i; i=$((i+1)); done; sha256sum /data/*; echo ready; "
    "exec sleep 100000"
)
CRASH_FILES = 11
PRIVATE_BASE = Path("/tmp/ir-testbed-faults")


def expected_hashes(container: Any, count: int = FILES, directory: str = "/data") -> dict[str, str]:
    """DIRECTORY/fN -> sha256, as printed by the container itself before it said ready."""
    out: dict[str, str] = {}
    for line in container.logs(stdout=True, stderr=False).decode().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith(f"{directory}/f"):
            out[parts[1]] = parts[0]
    assert len(out) == count, out
    return out


@dataclass
class Captured:
    """What a faulted capture left: the ir run, the store check and the bundle's documents."""

    run: IrRun
    store: StoreCheck
    manifest: Any = None
    records: list[dict[str, Any]] | None = None  # fs-changes.jsonl, None if absent
    tar_members: set[str] | None = None
    capture_info: dict[str, Any] | None = None

    def collector(self, name: str) -> Any:
        return next(c for c in self.manifest.collectors if c.name == name)


def read_back(run: IrRun, store: Path, name: str) -> Captured:
    import io
    import tarfile

    result = Captured(run, check_store(store))
    if not result.store.sealed:
        return result
    (path,) = result.store.sealed
    with BundleReader.open(path) as reader:
        result.manifest = reader.manifest
        names = {a.name for a in reader.manifest.artifacts}
        scope = f"containers/{name}"
        if f"{scope}/fs-changes.jsonl" in names:
            result.records = list(reader.iter_records(f"{scope}/fs-changes.jsonl"))
        if f"{scope}/fs-files.tar" in names:
            data = b"".join(reader.iter_artifact(f"{scope}/fs-files.tar"))
            result.tar_members = set()
            with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
                try:  # a tar cut by the fault ends early: keep the members before the cut
                    for member in tar:
                        result.tar_members.add("/" + member.name)
                except tarfile.ReadError:
                    pass
        if f"{scope}/capture.json" in names:
            result.capture_info = reader.read_json(f"{scope}/capture.json")
    return result


def assert_contents_exact(captured: Captured, hashes: dict[str, str]) -> int:
    """Every captured file is byte-exact, or flagged as changed while read; every listed file
    that was not captured says why. Returns how many were captured exactly."""
    exact = 0
    for record in captured.records or []:
        if record["path"] not in hashes:
            continue
        if record["captured"] and not record["changed_while_read"]:
            assert record["sha256"] == hashes[record["path"]], record
            exact += 1
        elif not record["captured"]:
            assert record["skipped"], record
        else:
            assert record["note"], record
    return exact


def assert_never_looks_complete(captured: Captured) -> None:
    run = captured.run
    assert "Traceback" not in run.stderr, run.stderr
    if captured.store.sealed:
        assert run.returncode == 1, (run.returncode, run.stderr)
        assert captured.manifest.outcome in ("partial", "interrupted"), captured.manifest.outcome
        assert json.loads(run.stdout)["outcome"] == captured.manifest.outcome
    else:  # no sealed bundle: a one-line error and the explicit remains
        run.assert_clean_error()
        assert captured.store.partial


# -- the Docker daemon dies mid-capture --------------------------------------------------------


@pytest.fixture(scope="module")
def private_engine() -> Iterator[PrivateEngine]:
    """The private engine, one session at a time (a lock file), stopped at the end."""
    PRIVATE_BASE.mkdir(exist_ok=True)
    with open(PRIVATE_BASE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        engine = PrivateEngine(PRIVATE_BASE)
        engine.start()
        try:
            yield engine
        finally:
            engine.start()  # whatever a test did, leave it clean: up, no containers, then stopped
            client = docker.DockerClient(base_url=engine.host, version="auto", timeout=60)
            for c in client.containers.list(all=True):
                c.remove(force=True, v=True)
            client.close()
            engine.stop()


def crash_engine_during_capture(
    engine: PrivateEngine, backend: str, tmp_path: Path
) -> tuple[Captured, dict[str, str]]:
    bed = engine.start()
    client = bed.client()
    try:
        name = f"crash-{backend}-{uuid.uuid4().hex[:6]}"
        container = client.containers.run(
            bed.image, ["sh", "-c", CRASH_DIFF], name=name, detach=True
        )
        _wait_ready(container)
        hashes = expected_hashes(container, CRASH_FILES)
        store = tmp_path / "evidence"
        proc = IrProcess(
            [
                "capture",
                "container",
                container.name,
                "--store",
                str(store),
                "--backend",
                backend,
                "--case",
                "CRASH",
                "-o",
                "json",
            ],
            ir_env(DOCKER_HOST=bed.host),
        )
        assert wait_for_partial(store, FAULT_AT, proc), proc.finish().stderr
        proc.pause()  # the crash lands here, in the middle of /data/f0's stream, not later
        try:
            engine.kill()
        finally:
            proc.resume()
        run = proc.finish(timeout=180)
    finally:
        client.close()
    bed = engine.start()  # back up for the next test (containers of the crashed engine are stopped)
    return read_back(run, store, name), hashes


def _wait_ready(container: Any, timeout: float = 60) -> None:
    from tests.fixtures_docker import wait_for_log

    wait_for_log(container, "ready", timeout)


@pytest.fixture(scope="module")
def engine_crash(
    private_engine: PrivateEngine, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Captured, dict[str, str]]:
    return crash_engine_during_capture(private_engine, "docker", tmp_path_factory.mktemp("crash"))


def test_docker_daemon_killed_mid_capture_gives_a_partial_bundle(
    engine_crash: tuple[Captured, dict[str, str]],
    private_engine: PrivateEngine,
    docker_bed: DockerBed,
    tmp_path: Path,
) -> None:
    """dockerd SIGKILLed while the Docker-API backend streams the filesystem diff: ir ends
    within the timeout with a sealed bundle marked partial (exit 1) whose filesystem and logs
    collectors carry the connection error; each file content it holds matches the container's
    own sha256sum. After the engine restarts, a new capture is complete; the shared engine of
    the test bed was never touched."""
    captured, hashes = engine_crash
    assert_never_looks_complete(captured)
    assert captured.store.sealed, captured.run.stderr
    fs = captured.collector("filesystem")
    fs_errors = [
        a.error for a in captured.manifest.artifacts if a.collector == "filesystem" and a.error
    ]
    assert fs.status in ("partial", "failed") and (fs.error or fs_errors), fs
    assert captured.collector("logs").status in ("partial", "failed")
    assert captured.tar_members, "files captured before the crash must be kept"
    assert captured.run.seconds < 120

    # The engine is back: capturing works again.
    bed = private_engine.start()
    client = bed.client()
    try:
        c = client.containers.run(
            bed.image,
            ["sh", "-c", "echo x > /tmp/x; echo ready; exec sleep 1000"],
            name=f"after-crash-{uuid.uuid4().hex[:6]}",
            detach=True,
        )
        _wait_ready(c)
        after = IrProcess(
            [
                "capture",
                "container",
                c.name,
                "--store",
                str(tmp_path),
                "-o",
                "json",
                "--backend",
                "docker",
            ],
            ir_env(DOCKER_HOST=bed.host),
        ).finish(120)
        assert after.returncode == 0, after.stderr
        assert json.loads(after.stdout)["outcome"] == "complete"
    finally:
        client.close()
    assert docker_bed.client().ping()


def test_docker_daemon_killed_mid_capture_keeps_the_file_listing(
    engine_crash: tuple[Captured, dict[str, str]],
) -> None:
    """The listing (fs-changes.jsonl) is in the bundle: every file captured before the crash
    with its exact hash, and the file whose stream the crash cut says so."""
    captured, hashes = engine_crash
    assert captured.records is not None
    assert_contents_exact(captured, hashes)
    cut = next(r for r in captured.records if r["path"] == "/data/f0")
    assert not cut["captured"] or cut["changed_while_read"], cut


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="IR_RESILIENCE_LONG=1: a second engine crash (+12 s restart)")
def test_docker_daemon_killed_during_node_backend_capture(
    private_engine: PrivateEngine, tmp_path: Path
) -> None:
    """The node backend reads the overlay itself: dockerd dying costs only the logs (partial),
    the whole filesystem diff is captured, byte-exact."""
    captured, hashes = crash_engine_during_capture(private_engine, "node", tmp_path)
    assert_never_looks_complete(captured)
    assert captured.collector("filesystem").status == "ok"
    assert captured.collector("logs").status in ("partial", "failed")
    assert assert_contents_exact(captured, hashes) == CRASH_FILES


# -- the target container exits or is deleted mid-capture --------------------------------------


def strike_during_capture(store: Path, proc: IrProcess, container: Any, fault: str) -> None:
    """Wait until the capture is FAULT_AT bytes into the filesystem stage, freeze ir, kill or
    force-delete the container, thaw ir, and wait for the fault to have struck."""
    assert wait_for_partial(store, FAULT_AT, proc), proc.finish().stderr
    failures: list[BaseException] = []

    def strike() -> None:
        try:
            if fault == "killed":
                container.kill()
                container.wait(timeout=60)
            else:
                container.remove(force=True)
        except BaseException as exc:  # noqa: BLE001 -- reported below
            failures.append(exc)

    # ir is frozen while the fault strikes, so it lands here whatever the speed of the capture.
    # The engine may hold a container's lock while it sets up or streams an archive, so the
    # fault may wait for ir: ir is thawed after 2 s whether the fault has struck or not.
    striker = threading.Thread(target=strike)
    proc.pause()
    try:
        striker.start()
        striker.join(timeout=2)
    finally:
        proc.resume()
    striker.join(timeout=120)
    assert not striker.is_alive() and not failures, failures


def assert_files_after_fault(captured: Captured, hashes: dict[str, str], fault: str) -> None:
    """What was read before the fault is byte-exact; a killed container's files are all exact
    (the filesystem outlives the process); a listing that misses files says it is partial."""
    assert captured.records is not None
    exact = assert_contents_exact(captured, hashes)
    assert exact >= FAULT_AT // FILE_SIZE - 2
    if fault == "killed":
        assert exact == FILES
    listed = {r["path"] for r in captured.records if r["path"] in hashes}
    fs_entry = next(a for a in captured.manifest.artifacts if a.name.endswith("fs-changes.jsonl"))
    if len(listed) < FILES:
        assert fs_entry.status == "partial" and fs_entry.error, fs_entry


def capture_in_background(container: Any, backend: str, store: Path, host: str) -> IrProcess:
    argv = ["capture", "container", container.name, "--store", str(store)]
    return IrProcess([*argv, "--backend", backend, "-o", "json"], ir_env(DOCKER_HOST=host))


@pytest.mark.parametrize("backend", ["docker", "node"])
@pytest.mark.parametrize("fault", ["killed", "deleted"])
def test_target_container_gone_mid_capture(
    fault: str, backend: str, make_container: Any, docker_bed: DockerBed, tmp_path: Path
) -> None:
    """The container is killed (exits) or force-deleted while its filesystem is being read, file
    by file (the files lie in /tmp, a directory of the image, so the Docker backend asks for each
    one apart and the fault lands between two): a sealed bundle, outcome partial (exit 1),
    capture.json says it exited during the capture (state at the end: exited / gone); whatever
    content was captured is byte-exact; every file that could not be read is listed with the
    reason, or the listing itself is marked partial."""
    container = make_container(
        ["sh", "-c", big_diff("/tmp")], ready="ready", prefix=f"gone-{fault}"
    )
    hashes = expected_hashes(container, directory="/tmp")
    store = tmp_path / "evidence"
    proc = capture_in_background(container, backend, store, docker_bed.host)
    strike_during_capture(store, proc, container, fault)
    captured = read_back(proc.finish(timeout=120), store, container.name)
    assert_never_looks_complete(captured)
    assert captured.manifest.outcome == "partial"
    info = captured.capture_info
    assert info is not None and info["exited_during_capture"] is True, info
    assert info["state_at_end"]["status"] in (
        ("exited",) if fault == "killed" else ("gone", "removing")
    )
    assert any("exited during the capture" in n for n in captured.collector("capture-info").notes)
    assert_files_after_fault(captured, hashes, fault)


@pytest.mark.parametrize("fault", ["killed", "deleted"])
def test_container_gone_while_docker_streams_a_subtree(
    fault: str, make_container: Any, docker_bed: DockerBed, tmp_path: Path
) -> None:
    """The files lie under a new directory, which the Docker backend streams in one archive
    request. A delete asked for in the middle of the stream does not cut it (the engine's tar
    reads on), but the files vanish under it: ir's look after each file finds it gone and flags
    it "deleted while read", content kept. The engine's kill and removal race with ir's last
    stages (a delete can leave the container running but marked for removal when ir last
    looks; CI saw it: capture.json then says so from the engine's own refusals, `removal_seen`),
    so the report must be true to what ir saw rather than to one ordering:
    what was read before the fault is byte-exact, every other file is exact or flagged with a
    note, and capture.json says the container exited during the capture exactly when its state
    at the end differs from the start (then the outcome is partial, exit 1)."""
    container = make_container(["sh", "-c", BIG_DIFF], ready="ready", prefix=f"tree-{fault}")
    hashes = expected_hashes(container)
    store = tmp_path / "evidence"
    proc = capture_in_background(container, "docker", store, docker_bed.host)
    strike_during_capture(store, proc, container, fault)
    run = proc.finish(timeout=120)
    captured = read_back(run, store, container.name)
    assert "Traceback" not in run.stderr, run.stderr
    assert len(captured.store.sealed) == 1, (run.returncode, run.stderr)
    assert_files_after_fault(captured, hashes, fault)
    info = captured.capture_info
    assert info is not None, captured.manifest.artifacts
    start, end = info["state_at_start"], info["state_at_end"]
    still_there = end["status"] == "running" and end["pid"] == start["pid"]
    assert info["exited_during_capture"] is (not still_there), info
    if info["exited_during_capture"]:
        assert captured.manifest.outcome == "partial" and run.returncode == 1
        assert end["status"] in (("exited",) if fault == "killed" else ("gone", "removing", "dead"))
    elif info["removal_seen"]:  # running at the last look, but the engine said it was going
        assert fault == "deleted" and "removal" in info["removal_seen"], info
        assert captured.manifest.outcome == "partial" and run.returncode == 1
        assert any("being removed" in n for n in captured.collector("capture-info").notes)
    else:  # ir's last look came first: the fault struck after it
        assert run.returncode in (0, 1), run.stderr
        assert json.loads(run.stdout)["outcome"] == captured.manifest.outcome
