"""Containers of a Kubernetes node's CRI runtime (containerd, CRI-O), read from the node itself.

What a kubelet's runtime leaves on its node is enough to find a container and read it without
asking the runtime for anything and without entering the container:

* the runtime's **task state** names the container's init pid and holds its OCI spec
  (``config.json``: process, mounts, annotations naming the pod, namespace, container and image):
  containerd keeps it in ``/run/containerd/io.containerd.runtime.v2.task/k8s.io/ID/`` (``init.pid``),
  CRI-O in ``/run/containers/storage/overlay-containers/ID/userdata/`` (``pidfile``);
* the kubelet's **log files**, ``/var/log/pods/NS_POD_UID/CONTAINER/N.log`` in the CRI log format
  (``TIME STREAM P|F TEXT``), one file per instance (N is the restart count), are the logs.

Everything is read under a **node root**: ``/`` when ir runs on the node, the collector pod's host
mount (``/host``), or any path where the node's filesystem is visible. /proc is the host's (the
collector runs with hostPID). Exited containers have no task state: ir says so rather than guess.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ir.clock import from_epoch, parse_timestamp, rfc3339
from ir.errors import Unsupported, UsageError
from ir.runtime.base import ActionLog, ContainerState
from ir.runtime.procfs import CLK_TCK, PROC, boot_time, start_ticks

_ID = re.compile(r"^[0-9a-f]{12,64}$")
_CRI_LINE = re.compile(rb"^(\S+) (stdout|stderr) ([PF]) ?(.*)$", re.S)
READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class CriLayout:
    """Where one CRI runtime keeps a container's task state, relative to the node root."""

    runtime: str
    task_dir: str  # with {id}
    pid_file: str  # name inside task_dir
    annotation_prefix: str


#: The runtimes ir knows, by the scheme of the pod status' containerID. One entry each.
LAYOUTS: dict[str, CriLayout] = {
    "containerd": CriLayout(
        "containerd",
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}",
        "init.pid",
        "io.kubernetes.cri.",
    ),
    "cri-o": CriLayout(
        "cri-o",
        "run/containers/storage/overlay-containers/{id}/userdata",
        "pidfile",
        "io.kubernetes.cri-o.",
    ),
}
POD_LOGS = "var/log/pods"


class CriContainer:
    """A CRI runtime's container on this node: its pid, OCI spec and kubelet logs."""

    def __init__(
        self,
        runtime: str,
        container_id: str,
        *,
        node_root: str = "/",
        proc: str = PROC,
        actions: ActionLog | None = None,
        pod: dict[str, str] | None = None,
    ) -> None:
        layout = LAYOUTS.get(runtime)
        if layout is None:
            raise Unsupported(
                f"runtime {runtime!r}: ir reads {', '.join(sorted(LAYOUTS))} node state"
            )
        if not _ID.match(container_id):
            raise UsageError(f"invalid container id {container_id!r}")
        self.layout = layout
        self.id = container_id
        self.node_root = node_root
        self.proc = proc
        self.actions = actions or ActionLog()
        self.first_inspect: dict[str, Any] = {}
        self.task_dir = os.path.join(node_root, layout.task_dir.format(id=container_id))
        self.spec = self._read_spec()
        ann = (self.spec or {}).get("annotations") or {}
        p = layout.annotation_prefix
        hints = pod or {}
        self.name = hints.get("container") or ann.get(f"{p}container-name") or container_id[:12]
        self.image = hints.get("image") or ann.get(f"{p}image-name")
        self.pod_namespace = hints.get("namespace") or ann.get(f"{p}sandbox-namespace")
        self.pod_name = hints.get("pod") or ann.get(f"{p}sandbox-name")
        self.pod_uid = hints.get("uid") or ann.get(f"{p}sandbox-uid")
        self.pid = self._read_pid()
        self.init_ticks = start_ticks(self.pid, proc) if self.pid else None
        self.actions.record(
            f"{layout.runtime}.read-task-state",
            outcome="ok" if self.spec is not None else "missing",
            dir=self.task_dir,
            pid=self.pid,
        )

    # -- what the node holds -----------------------------------------------------------------

    def _read_spec(self) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self.task_dir, "config.json"), "rb") as fh:
                doc = json.loads(fh.read(16 * 1024 * 1024))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _read_pid(self) -> int | None:
        try:
            with open(os.path.join(self.task_dir, self.layout.pid_file), "rb") as fh:
                text = fh.read(32).decode("ascii", "replace").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and int(text) > 0 else None

    def found(self) -> bool:
        return self.spec is not None or self.pid is not None

    def alive(self) -> bool:
        return self.pid is not None and start_ticks(self.pid, self.proc) == self.init_ticks

    # -- the runtime interface the node backend uses -------------------------------------------

    def state(self) -> ContainerState:
        if self.pid is None:
            return ContainerState("gone" if not self.found() else "exited")
        if not self.alive():
            return ContainerState("exited", pid=self.pid)
        return ContainerState("running", pid=self.pid, started_at=self.started_at())

    def inspect(self) -> dict[str, Any] | None:
        if self.spec is None:
            return None
        return {
            "runtime": self.layout.runtime,
            "id": self.id,
            "task_dir": self.task_dir,
            "init_pid": self.pid,
            "oci_spec": self.spec,
        }

    def image_details(self) -> dict[str, Any] | None:
        return {"name": self.image} if self.image else None

    def engine_details(self) -> dict[str, Any] | None:
        return {"runtime": self.layout.runtime, "node_root": self.node_root}

    def started_at(self) -> str | None:
        """When the init process started: its start ticks (read at attach) after boot."""
        if self.init_ticks is None or not self.alive():
            return None
        try:
            return rfc3339(from_epoch(boot_time(self.proc) + self.init_ticks / CLK_TCK))
        except (OSError, RuntimeError):
            return None

    def _log_dir(self) -> str | None:
        if not (self.pod_namespace and self.pod_name and self.pod_uid and self.name):
            return None
        return os.path.join(
            self.node_root,
            POD_LOGS,
            f"{self.pod_namespace}_{self.pod_name}_{self.pod_uid}",
            self.name,
        )

    def log_files(self) -> list[tuple[int, str]]:
        """(instance number, path) of the kubelet's log files of this container, oldest first."""
        d = self._log_dir()
        if d is None:
            return []
        try:
            names = os.listdir(d)
        except OSError:
            return []
        files = []
        for n in names:
            stem = n.split(".log", 1)[0]
            if n.endswith(".log") and stem.isdigit():
                files.append((int(stem), os.path.join(d, n)))
        return sorted(files)

    def logs(self) -> CriLogs:
        files = self.log_files()
        if not files:
            raise Unsupported(
                f"no kubelet log files for this container under {self._log_dir() or POD_LOGS}"
            )
        return CriLogs(self, files)

    def previous_logs_note(self) -> str | None:
        if len(self.log_files()) > 1:
            return None
        return "no previous instance: the kubelet keeps one log file for this container"

    def previous_until(self) -> str | None:
        files = self.log_files()
        if len(files) < 2:
            return None
        first = _first_time(files[-1][1])
        return first

    def removal_seen(self) -> str | None:
        return None

    def close(self) -> None:
        return None


class CriLogs:
    """LogSource over the kubelet's CRI log files: frames are "TIME TEXT\\n" like Docker's
    timestamped logs, partial (P) lines joined with the rest of their line."""

    def __init__(self, container: CriContainer, files: list[tuple[int, str]]) -> None:
        self.container = container
        self.files = files
        self.tty = False
        self.description: dict[str, Any] = {
            "source": "kubelet-log-files",
            "format": "cri",
            "files": [p for _, p in files],
        }

    def frames(
        self, *, since: str | None, until: str | None, tail: int | None
    ) -> Iterator[tuple[str, bytes]]:
        lo = float(since) if since else None
        hi = float(until) if until else None
        lines = self._lines(lo, hi)
        if tail is not None:
            from collections import deque

            lines = iter(deque(lines, maxlen=tail))
        yield from lines

    def _lines(self, lo: float | None, hi: float | None) -> Iterator[tuple[str, bytes]]:
        self.container.actions.record(
            "kubelet.read-log-files", files=len(self.files), dir=os.path.dirname(self.files[0][1])
        )
        for _, path in self.files:
            pending: dict[str, tuple[bytes, bytes]] = {}
            with open(path, "rb") as fh:
                for raw in fh:
                    m = _CRI_LINE.match(raw.rstrip(b"\n"))
                    if not m:
                        continue
                    when, stream, tag, text = (
                        m.group(1),
                        m.group(2).decode(),
                        m.group(3),
                        m.group(4),
                    )
                    first, acc = pending.pop(stream, (when, b""))
                    acc += text
                    if tag == b"P":
                        pending[stream] = (first, acc)
                        continue
                    t = _epoch(first)
                    if (lo is not None and t is not None and t < lo) or (
                        hi is not None and t is not None and t >= hi
                    ):
                        continue
                    yield stream, first + b" " + acc + b"\n"
            for stream, (first, acc) in pending.items():  # a last line without its end
                yield stream, first + b" " + acc + b"\n"


def _epoch(stamp: bytes) -> float | None:
    try:
        return parse_timestamp(stamp.decode("ascii", "replace")).utc.timestamp()
    except ValueError:
        return None


def _first_time(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            m = _CRI_LINE.match(fh.readline().rstrip(b"\n"))
    except OSError:
        return None
    return m.group(1).decode("ascii", "replace") if m else None


def node_has_runtime_state(runtime: str, node_root: str = "/") -> bool:
    """Whether this node root shows the runtime's task state (ir is on that node, or has its
    host mounts)."""
    layout = LAYOUTS.get(runtime)
    if layout is None:
        return False
    return os.path.isdir(os.path.join(node_root, os.path.dirname(layout.task_dir.format(id="x"))))
