"""`ir capture container` against the real test engine, with both backends: the planted facts of
the sample compromised container, hostile filesystem content, a container exiting mid-capture,
and per-collector failure isolation."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import Container

from ir.bundle.layout import safe_component
from ir.bundle.reader import BundleReader
from ir.bundle.verify import verify_bundle
from ir.collect.base import to_epoch_text
from ir.collect.container import CaptureOptions, capture_container
from ir.collect.filesystem import DiffStats, write_diff
from ir.collect.session import CaptureRequest, CaptureSession
from ir.errors import UsageError
from ir.records import encode_path
from ir.runtime import open_container
from ir.runtime.base import FsEntry
from ir.runtime.docker_backend import open_docker
from ir.runtime.overlay import OverlayDiff, OverlayMount, parse_mountinfo
from ir.runtime.procfs import parse_inet_sockets, parse_unix_sockets
from ir.store.local import LocalStore
from tests.testbed.docker import DockerBed

pytestmark = pytest.mark.docker
BACKENDS = ["docker", "node"]


# -- helpers -----------------------------------------------------------------------------------


def run_ir(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run the `ir` CLI in-process with `-o json`; (exit code, parsed output)."""
    from ir.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([*args, "-o", "json"])
    out = capsys.readouterr().out
    return int(exited.value.code or 0), json.loads(out)


def capture(
    capsys: pytest.CaptureFixture[str], store: Path, ref: str, backend: str, *extra: str
) -> tuple[int, dict[str, Any]]:
    return run_ir(
        capsys,
        "capture",
        "container",
        ref,
        "--store",
        str(store),
        "--case",
        "T",
        "--backend",
        backend,
        *extra,
    )


class Bundle:
    """Test-side reading of one bundle, per container scope."""

    def __init__(self, path: str, container: str) -> None:
        self.reader = BundleReader.open(path)
        self.scope = f"containers/{safe_component(container)}"
        self.manifest = self.reader.manifest

    def name(self, artifact: str) -> str:
        return f"{self.scope}/{artifact}"

    def records(self, artifact: str) -> list[dict[str, Any]]:
        return list(self.reader.iter_records(self.name(artifact)))

    def json(self, artifact: str) -> Any:
        return self.reader.read_json(self.name(artifact))

    def entry(self, artifact: str) -> Any:
        return self.reader.entry(self.name(artifact))

    def tar_members(self, artifact: str) -> dict[bytes, tuple[tarfile.TarInfo, bytes]]:
        data = b"".join(self.reader.iter_artifact(self.name(artifact)))
        out = {}
        with tarfile.open(
            fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape"
        ) as tar:
            for member in tar:
                fh = tar.extractfile(member) if member.isreg() else None
                out[member.name.encode("utf-8", "surrogateescape")] = (
                    member,
                    fh.read() if fh else b"",
                )
        return out

    def collector(self, name: str) -> Any:
        return next(c for c in self.manifest.collectors if c.name == name)

    def all_bytes(self) -> Iterator[bytes]:
        for entry in self.manifest.artifacts:
            yield b"".join(self.reader.iter_artifact(entry))

    def close(self) -> None:
        self.reader.close()


def file_record(records: list[dict[str, Any]], raw_path: bytes) -> dict[str, Any]:
    text, _ = encode_path(raw_path)
    for record in records:
        if record["path"] == text:
            return record
    raise AssertionError(f"no record for {raw_path!r} in {[r['path'] for r in records]}")


# -- the sample compromised container -----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_compromised_sample_every_fact_in_its_artifact(
    backend: str,
    compromised_container: Container,
    compromised_expected: dict[str, Any],
    docker_bed: DockerBed,
    docker_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exp = compromised_expected
    diff_before = sorted((c["Path"], c["Kind"]) for c in compromised_container.diff())
    code, summary = capture(capsys, tmp_path, compromised_container.name, backend)
    assert code == 0, summary
    assert summary["outcome"] == "complete"
    assert {c["name"]: c["status"] for c in summary["collectors"]} == {
        "metadata": "ok",
        "network": "ok",
        "processes": "ok",
        "filesystem": "ok",
        "logs": "ok",
        "capture-info": "ok",
    }
    b = Bundle(summary["bundle"], compromised_container.name)
    try:
        assert verify_bundle(b.reader).intact
        assert b.manifest.labels["backend"] == backend
        info = b.json("capture.json")
        assert info["backend"] == backend and info["exited_during_capture"] is False

        # the dropped file: listed with its hash, and its content in the tar
        changes = b.records("fs-changes.jsonl")
        dropped = file_record(changes, exp["dropped_file"]["path"].encode())
        content = exp["dropped_file"]["content"].encode()
        assert dropped["change"] == "added" and dropped["type"] == "file"
        assert (
            dropped["captured"] is True and dropped["sha256"] == hashlib.sha256(content).hexdigest()
        )
        assert dropped["mode"] == exp["dropped_file"]["mode"] and dropped["executable"] is True
        members = b.tar_members("fs-files.tar")
        assert members[exp["dropped_file"]["path"].lstrip("/").encode()][1] == content
        # the deletion
        assert file_record(changes, exp["deleted_file"].encode())["change"] == "deleted"
        # the deleted binary was in /tmp/.x (deleted again: not in the diff as a file)
        assert not any(
            r["path"] == exp["deleted_binary"]["exe"] and r["change"] != "deleted" for r in changes
        )

        # the process from a deleted binary, hashed through /proc/PID/exe
        procs = b.records("processes.jsonl")
        bad = [p for p in procs if p["cmdline"] == exp["deleted_binary"]["argv"]]
        assert len(bad) == 1, procs
        bad_proc = bad[0]
        busybox_sha = hashlib.sha256(
            Path("/bin/busybox").read_bytes()
        ).hexdigest()  # what the image holds
        assert bad_proc["exe_deleted"] is True
        assert bad_proc["exe"].startswith(exp["deleted_binary"]["exe"])
        assert bad_proc["exe_sha256"] == busybox_sha
        assert bad_proc["start_time"].endswith("Z") and bad_proc["user"] == "root"
        assert (
            all(v == "<redacted>" for v in bad_proc["env"].values()) and "PATH" in bad_proc["env"]
        )
        assert not [p for p in procs if p["exe_deleted"] and p is not bad_proc]
        exes = b.tar_members("deleted-exes.tar")
        assert hashlib.sha256(exes[busybox_sha.encode()][1]).hexdigest() == busybox_sha

        # the listener and the connection, with their pids
        socks = b.records("sockets.jsonl")
        listener_proc = next(
            p for p in procs if p["cmdline"][:2] == [exp["listener"]["argv0"], "-ll"]
        )
        listeners = [
            s
            for s in socks
            if s["state"] == "LISTEN" and s["local_port"] == exp["listener"]["port"]
        ]
        assert [s["pid"] for s in listeners] == [listener_proc["pid"]]
        conn = exp["connection"]
        outbound = [
            s
            for s in socks
            if s["remote_port"] == conn["remote_port"] and s["state"] == conn["state"]
        ]
        assert len(outbound) == 1 and outbound[0]["remote_addr"] == conn["remote_addr"]
        assert outbound[0]["pid"] == bad_proc["pid"] and outbound[0]["proto"] == conn["proto"]
        network = b.json("network.json")
        assert any(i["name"] == "eth0" and i["addresses"] for i in network["interfaces"])
        assert network["routes"] and "localhost" in network["hosts"]

        # logs: stdout and stderr apart, with timestamps
        logs = b.records("logs-current.jsonl")
        assert {(x["stream"], x["message"]) for x in logs} >= {
            ("stdout", exp["ready_line"]),
            ("stderr", exp["stderr_line"]),
        }
        assert all(x["time"] and x["time"].endswith("Z") for x in logs)

        # metadata and what ir did
        assert b.json("inspect.json")["Id"] == compromised_container.id
        assert b.json("image.json")["inspect"]["Id"] == compromised_container.attrs["Image"]
        actions = [a.action for a in b.manifest.actions]
        assert "docker.inspect-container" in actions and "docker.logs" in actions
        assert not [a for a in actions if "exec" in a], "no exec without --allow-exec"
        if backend == "docker":
            assert {"docker.diff", "docker.archive-stat", "docker.archive-get"} <= set(actions)
        else:
            assert "procfs.read-mountinfo" in actions and "docker.diff" not in actions
    finally:
        b.close()
    # the capture changed nothing in the container
    compromised_container.reload()
    assert compromised_container.status == "running"
    assert sorted((c["Path"], c["Kind"]) for c in compromised_container.diff()) == diff_before


def test_docker_top_fallback_without_local_proc(
    compromised_container: Container, docker_bed: DockerBed, compromised_expected: dict[str, Any]
) -> None:
    handle = open_docker(compromised_container.name, docker_host=docker_bed.host, use_procfs=False)
    try:
        procs = list(handle.processes().processes(include_env=False, hash_limit=1 << 30))
        assert {p.source for p in procs} == {"docker-top"}
        assert any(p.cmdline == compromised_expected["deleted_binary"]["argv"] for p in procs)
        with pytest.raises(Exception, match="allow-exec"):
            handle.network()
    finally:
        handle.close()


def test_engine_refusal_for_a_container_being_removed_is_remembered(
    compromised_container: Container, docker_bed: DockerBed
) -> None:
    """The engine's words for a container marked for removal reach `removal_seen()` (and so
    capture.json); other refusals do not. The refusal itself is raised by hand here: the window
    in which a running container is already marked for removal lasts milliseconds and cannot be
    opened on demand (test_container_gone_while_docker_streams_a_subtree meets it by chance)."""
    import docker.errors

    from ir.errors import ClusterError

    handle = open_docker(compromised_container.name, docker_host=docker_bed.host)
    try:

        def refuse(text: str) -> Any:
            def fn() -> Any:
                raise docker.errors.APIError("409 Client Error", explanation=text)

            return fn

        with pytest.raises(ClusterError):
            handle.runtime._call("docker.top", refuse("container is not running"))
        assert handle.removal_seen() is None
        words = "can not get logs from container which is dead or marked for removal"
        with pytest.raises(ClusterError, match="marked for removal"):
            handle.runtime._call("docker.logs", refuse(words))
        assert handle.removal_seen() == f"docker.logs: {words}"
    finally:
        handle.close()


def test_allow_exec_reads_sockets_inside_and_is_recorded(
    make_container: Any, docker_bed: DockerBed
) -> None:
    c = make_container(
        ["sh", "-c", "nc -ll -p 8080 -e /bin/cat & echo up; while :; do sleep 1; done"], ready="up"
    )
    time.sleep(0.3)
    handle = open_docker(c.name, docker_host=docker_bed.host, use_procfs=False, allow_exec=True)
    try:
        net = handle.network()
        assert net.description["source"] == "docker-exec"
        socks = list(net.sockets())
    finally:
        handle.close()
    assert any(s.state == "LISTEN" and s.local_port == 8080 for s in socks)
    execs = [a for a in handle.actions.drain() if a.action.startswith("docker.exec")]
    assert execs and all(a.detail["cmd"][0] == "cat" for a in execs)


def test_pid_only_node_capture(
    compromised_container: Container,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    compromised_expected: dict[str, Any],
) -> None:
    """Runtime-agnostic entry: only the host pid of the init (as on a containerd/CRI-O node)."""
    compromised_container.reload()
    pid = compromised_container.attrs["State"]["Pid"]
    code, summary = run_ir(
        capsys, "capture", "container", "--pid", str(pid), "--store", str(tmp_path)
    )
    status = {c["name"]: c["status"] for c in summary["collectors"]}
    assert (
        status["logs"] == "skipped" and status["processes"] == "ok" and status["filesystem"] == "ok"
    )
    assert code == 0, summary  # skipped is not a failure
    b = Bundle(summary["bundle"], compromised_container.id[:12])
    try:
        assert b.manifest.target["id"] == compromised_container.id
        assert any(r["exe_deleted"] for r in b.records("processes.jsonl"))
        paths = {r["path"] for r in b.records("fs-changes.jsonl")}
        assert compromised_expected["dropped_file"]["path"] in paths
        assert b.json("engine.json")["node"]["init_pid"] == pid
    finally:
        b.close()


# -- hostile content -----------------------------------------------------------------------------

HOSTILE_SCRIPT = r"""
set -e
mkdir -p /tmp/h/...
cd /tmp/h
echo dots > ..hidden; echo dots > a..b; echo inside > .../inside
echo nl > "$(printf 'new\nline')"
echo bad > "$(printf 'bad\377name')"
mkfifo fifo
mknod char c 1 3
truncate -s 2G sparse
ln -s /etc/shadow shadow-link
ln -s SECRET secret-link
ln -s / rootlink
printf 'x%.0s' $(seq 1 200000) > big
(i=0; while [ $i -lt 100000 ]; do echo 0123456789 >> /tmp/h/growing; i=$((i+1)); done) &
echo hostile-ready
while :; do sleep 3600; done
"""


@pytest.fixture(scope="module")
def host_secret() -> Iterator[tuple[str, bytes]]:
    """A file on the HOST that a container symlink points at: if ir ever followed a container
    link on the host, this content would end up in the bundle."""
    marker = f"IR-HOST-SECRET-{uuid.uuid4().hex}".encode()
    path = Path(f"/tmp/ir-host-secret-{uuid.uuid4().hex[:8]}")
    path.write_bytes(marker + b"\n")
    yield str(path), marker
    path.unlink()


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_content_bounded_and_contained(
    backend: str,
    make_container: Any,
    host_secret: tuple[str, bytes],
    docker_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_path, marker = host_secret
    c = make_container(
        ["sh", "-c", HOSTILE_SCRIPT.replace("SECRET", secret_path)],
        ready="hostile-ready",
        prefix="ir-hostile",
    )
    time.sleep(0.5)  # let the growing file grow
    t0 = time.monotonic()
    code, summary = capture(
        capsys,
        tmp_path,
        c.name,
        backend,
        "--max-file-size",
        "100k",
        "--collectors",
        "metadata,filesystem",
    )
    elapsed = time.monotonic() - t0
    assert elapsed < 60, f"capture took {elapsed:.1f}s"
    assert code == 0, summary
    b = Bundle(summary["bundle"], c.name)
    try:
        changes = b.records("fs-changes.jsonl")
        members = b.tar_members("fs-files.tar")
        h = b"/tmp/h/"
        for name in (b"..hidden", b"a..b", b".../inside", b"new\nline"):
            rec = file_record(changes, h + name)
            assert rec["captured"] is True, rec
            assert (h + name).lstrip(b"/") in members
        bad = [r for r in changes if r["path"].startswith("/tmp/h/bad")]
        assert len(bad) == 1
        if backend == "node":  # exact bytes kept, in the record and in the tar
            assert bad[0]["path_b64"] and bad[0]["captured"]
            assert b"tmp/h/bad\xffname" in members
        else:  # the Docker API cannot address a name that is not UTF-8: listed, with the reason
            assert "UTF-8" in (bad[0]["skipped"] or "")
        fifo = file_record(changes, h + b"fifo")
        assert fifo["type"] == "fifo" and "never opened" in fifo["skipped"] and not fifo["captured"]
        char = file_record(changes, h + b"char")
        assert (
            char["type"] == "char" and "never opened" in char["skipped"] and char["rdev"] == "1:3"
        )
        sparse = file_record(changes, h + b"sparse")
        assert (
            sparse["size"] == 2 << 30
            and not sparse["captured"]
            and "max-file-size" in sparse["skipped"]
        )
        if backend == "node":
            assert sparse["sparse"] is True
        else:  # one archive stream for the added /tmp/h, dropped at the sparse file (its 2 GiB
            # of zeros are not pulled through the API); the names after it are read path by path
            fs = next(c for c in summary["collectors"] if c["name"] == "filesystem")
            assert any("stopped at '/tmp/h/sparse'" in n for n in fs["notes"]), fs["notes"]
        big = file_record(changes, h + b"big")
        assert big["size"] == 200000 and "max-file-size" in big["skipped"]
        for link, target in (
            (b"shadow-link", "/etc/shadow"),
            (b"secret-link", secret_path),
            (b"rootlink", "/"),
        ):
            rec = file_record(changes, h + link)
            assert rec["type"] == "symlink" and rec["link_target"] == target and rec["captured"]
            member = members[(h + link).lstrip(b"/")][0]
            assert member.issym() and member.linkname == target
        growing = file_record(changes, h + b"growing")  # appended to while captured: whatever
        assert growing["captured"] or growing["skipped"]  # the race gives, it is recorded
        # nothing from outside the container
        shadow = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else b""
        for data in b.all_bytes():
            assert marker not in data
            assert not (shadow and shadow.strip() in data)
    finally:
        b.close()


def test_file_changing_while_read_is_flagged(tmp_path: Path) -> None:
    """The overlay reader on a real directory: a file appended to between open and end of read."""
    upper = tmp_path / "diff"
    upper.mkdir()
    (upper / "log").write_bytes(b"a" * 10_000)

    class Racing(OverlayDiff):
        def open(self, entry: FsEntry) -> Any:
            content = super().open(entry)
            with open(upper / "log", "ab") as fh:  # the container writes while ir reads
                fh.write(b"b" * 5_000)
            return content

    source = Racing(OverlayMount(str(upper), [], None, "test"))
    records, sink = io.BytesIO(), io.BytesIO()
    stats = DiffStats()
    write_diff(sink, source, records, stats, max_file=1 << 20, max_total=1 << 30)
    (record,) = [json.loads(line) for line in records.getvalue().splitlines()]
    assert (
        record["captured"]
        and record["changed_while_read"]
        and "changed while read" in record["note"]
    )
    assert record["size"] == 10_000  # what was declared at open is what the tar holds
    assert stats.changed_while_read == 1


# -- the container exits in the middle of the capture --------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_container_exiting_mid_capture_gives_partial_bundle(
    backend: str,
    make_container: Any,
    docker_bed: DockerBed,
    tmp_path: Path,
) -> None:
    c = make_container(
        ["sh", "-c", "echo up; echo gone-soon > /tmp/mark; while :; do sleep 1; done"], ready="up"
    )
    handle = open_container(c.name, backend=backend, docker_host=docker_bed.host)

    def progress(step: str) -> None:
        if step.startswith("processes"):  # the container dies between network and processes
            c.kill()
            c.wait(timeout=20)

    try:
        with CaptureSession(
            LocalStore(tmp_path), CaptureRequest(case_id="T", target=handle.target())
        ) as session:
            capture_container(session, handle, CaptureOptions(), progress=progress)
            result = session.finish()
    finally:
        handle.close()
    assert result.exit_code == 1
    m = result.sealed.manifest
    assert m.outcome == "partial"
    b = Bundle(str(result.sealed.path), c.name)
    try:
        assert b.entry("sockets.jsonl").status == "ok"
        procs = b.entry("processes.jsonl")
        assert procs.status == "partial" and "exited during capture" in procs.error
        info = b.json("capture.json")
        assert info["exited_during_capture"] is True and info["state_at_end"]["status"] == "exited"
        assert b.entry("capture.json").status == "partial"
        assert (
            b.collector("capture-info").notes
            and "exited during the capture" in b.collector("capture-info").notes[0]
        )
        # what does not depend on the running container is still there
        assert b.collector("filesystem").status == "ok" and b.collector("logs").status == "ok"
        assert "/tmp/mark" in {r["path"] for r in b.records("fs-changes.jsonl")}
    finally:
        b.close()


def _capture_lib(handle: Any, tmp_path: Path, options: CaptureOptions | None = None) -> Any:
    try:
        with CaptureSession(
            LocalStore(tmp_path), CaptureRequest(case_id="T", target=handle.target())
        ) as session:
            capture_container(session, handle, options or CaptureOptions())
            return session.finish()
    finally:
        handle.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stopped_container_filesystem_and_logs(
    backend: str, make_container: Any, docker_bed: DockerBed, tmp_path: Path
) -> None:
    c = make_container(["sh", "-c", "echo evidence > /tmp/left-behind; echo bye"], ready="bye")
    c.wait(timeout=20)
    result = _capture_lib(
        open_container(c.name, backend=backend, docker_host=docker_bed.host), tmp_path
    )
    status = {e.name: e.status for e in result.collectors}
    assert status["processes"] == status["network"] == "skipped"
    assert status["filesystem"] == status["logs"] == status["metadata"] == "ok"
    assert result.sealed.manifest.outcome == "complete"
    b = Bundle(str(result.sealed.path), c.name)
    try:
        rec = file_record(b.records("fs-changes.jsonl"), b"/tmp/left-behind")
        assert rec["captured"] and rec["sha256"] == hashlib.sha256(b"evidence\n").hexdigest()
        assert [x["message"] for x in b.records("logs-current.jsonl")] == ["bye"]
    finally:
        b.close()


def test_logs_previous_instance_since_and_tail(
    make_container: Any, docker_bed: DockerBed, tmp_path: Path
) -> None:
    script = (
        "echo run-$(cat /proc/uptime); echo err-line >&2; "
        "if [ ! -f /tmp/once ]; then touch /tmp/once; exit 1; fi; echo second-up; sleep 1000"
    )
    c = make_container(
        ["sh", "-c", script], restart_policy={"Name": "on-failure", "MaximumRetryCount": 3}
    )
    deadline = time.monotonic() + 30
    while b"second-up" not in c.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    c.reload()
    assert c.attrs["RestartCount"] == 1
    result = _capture_lib(
        open_container(c.name, backend="docker", docker_host=docker_bed.host), tmp_path
    )
    b = Bundle(str(result.sealed.path), c.name)
    try:
        prev = b.records("logs-previous.jsonl")
        cur = b.records("logs-current.jsonl")
        assert [(x["stream"], x["message"][:4]) for x in prev] in (
            [("stdout", "run-"), ("stderr", "err-")],
            [("stderr", "err-"), ("stdout", "run-")],
        )
        assert {x["instance"] for x in prev} == {"previous"} and {x["instance"] for x in cur} == {
            "current"
        }
        assert sorted(x["message"][:4] for x in cur) == ["err-", "run-", "seco"]
    finally:
        b.close()
    tail = _capture_lib(
        open_container(c.name, backend="docker", docker_host=docker_bed.host),
        tmp_path / "t",
        CaptureOptions(tail=1, since="1h"),
    )
    b = Bundle(str(tail.sealed.path), c.name)
    try:
        assert (
            len(b.records("logs-current.jsonl")) == 1 and len(b.records("logs-previous.jsonl")) == 1
        )
    finally:
        b.close()


def test_one_failing_collector_does_not_stop_the_capture(
    make_container: Any, docker_bed: DockerBed, tmp_path: Path
) -> None:
    c = make_container(
        ["sh", "-c", "echo up; echo data > /tmp/f; while :; do sleep 1; done"], ready="up"
    )
    handle = open_container(c.name, backend="auto", docker_host=docker_bed.host)

    def broken() -> Any:
        raise RuntimeError("boom")

    handle.network = broken  # type: ignore[method-assign]
    try:
        with CaptureSession(
            LocalStore(tmp_path), CaptureRequest(case_id="T", target=handle.target())
        ) as session:
            entries = capture_container(session, handle, CaptureOptions())
            result = session.finish()
    finally:
        handle.close()
    status = {e.name: (e.status, e.error) for e in entries}
    assert status["network"] == ("failed", "RuntimeError: boom")
    assert all(s == "ok" for n, (s, _) in status.items() if n != "network"), status
    assert result.sealed.manifest.outcome == "partial" and result.exit_code == 1


def test_unknown_collector_and_container_are_usage_errors(
    docker_bed: DockerBed, docker_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ir.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["capture", "container", "no-such-container-xyz", "--store", str(tmp_path)])
    assert exited.value.code == 2
    with pytest.raises(UsageError):
        from ir.collect.registry import container_collectors

        container_collectors(["metadata", "nope"])


# -- parsers on real-shaped text ------------------------------------------------------------------


def test_proc_net_parsing() -> None:
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:BA5E 0100007F:115C 01 00000000:00000000 00:00000000 00000000     0        0 88777 1 0\n"
    )
    tcp6 = (
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000000000000:7A69 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 88768 1 0\n"
        "   1: 0000000000000000FFFF00000100007F:115C 0000000000000000FFFF00000100007F:BA5E 01 00000000:00000000 00:00000000 00000000  1000        0 88770 1 0\n"
    )
    (conn,) = parse_inet_sockets(tcp, "tcp")
    assert (
        conn.local_addr,
        conn.local_port,
        conn.remote_addr,
        conn.remote_port,
        conn.state,
        conn.inode,
    ) == ("127.0.0.1", 47710, "127.0.0.1", 4444, "ESTABLISHED", 88777)
    listen, mapped = parse_inet_sockets(tcp6, "tcp6")
    assert (listen.local_addr, listen.local_port, listen.state, listen.listening) == (
        "::",
        31337,
        "LISTEN",
        True,
    )
    assert (mapped.local_addr, mapped.remote_port, mapped.uid) == ("::ffff:127.0.0.1", 47710, 1000)
    unix = (
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/app.sock\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03 12346\n"
    )
    a, b = parse_unix_sockets(unix)
    assert (a.state, a.path, a.inode) == ("LISTEN", "/run/app.sock", 12345)
    assert (b.state, b.path) == ("CONNECTED", None)


def test_mountinfo_overlay_parsing() -> None:
    line = (
        "74 49 0:39 / / rw,relatime master:3 - overlay overlay rw,lowerdir=/d/l/A:/d/l/B,"
        "upperdir=/d/with\\040space/diff,workdir=/d/x/work\n"
    )
    (mount,) = parse_mountinfo(line)
    assert mount.fstype == "overlay" and mount.mount_point == "/"
    assert mount.super_options["upperdir"] == "/d/with\\040space/diff"


def test_time_options() -> None:
    assert to_epoch_text("2026-11-25T14:35:05.850123456Z").endswith(".850123456")
    assert to_epoch_text("1700000000") == "1700000000.000000000"
    assert abs(float(to_epoch_text("10m")) - (time.time() - 600)) < 5
    with pytest.raises(UsageError):
        to_epoch_text("not a time")


def test_env_values_only_with_include_env(
    compromised_container: Container, docker_bed: DockerBed
) -> None:
    handle = open_container(compromised_container.name, backend="node", docker_host=docker_bed.host)
    try:
        procs = list(handle.processes().processes(include_env=True, hash_limit=1 << 30))
    finally:
        handle.close()
    assert any(p.env and p.env.get("PATH", "").startswith("/") for p in procs)


def test_root_walk_lists_changes_since_the_start_and_follows_no_link(tmp_path: Path) -> None:
    """ir inside the pod (no overlay upperdir): the root walk lists what changed since the
    container started, by ctime; links are recorded, never followed; it says it is no diff."""
    import os

    from ir.runtime.rootwalk import NOT_A_DIFF, RootWalk

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "old.conf").write_text("from the image")
    (root / "etc" / "untouched").write_text("from the image")
    since = time.time()
    time.sleep(0.05)  # ctimes come from the kernel's coarse clock
    (root / "tmp").mkdir()
    (root / "tmp" / "dropped").write_bytes(b"planted")
    os.symlink("/etc/shadow", root / "tmp" / "link")
    os.chmod(root / "etc" / "old.conf", 0o600)
    walk = RootWalk(str(root), since)
    found, read = {}, b""
    for entry in walk.entries():  # an entry opens only while the walk is at it
        found[entry.path] = entry
        if entry.path == b"/tmp/dropped":
            content = walk.open(entry)
            read = content.read(100)
            content.close()
    assert set(found) == {b"/tmp", b"/tmp/dropped", b"/tmp/link", b"/etc/old.conf"}
    assert found[b"/tmp/link"].link_target == b"/etc/shadow" and read == b"planted"
    assert walk.truncated == NOT_A_DIFF and walk.description["diff"] is False
