"""The node backend: ir runs as root on the container's host and reads the kernel's view directly.

Runtime-agnostic at its core: given the container's init pid (from Docker's API, from the CRI
runtime's task state on the node -- containerd, CRI-O: `ir.runtime.cri_node` -- or `--pid`),
processes and sockets come from /proc, and the filesystem diff from the overlay upperdir of
/proc/PID/mountinfo. The runtime record provides metadata and logs (Docker's API; the kubelet's
log files on CRI nodes); the node view never execs or asks the runtime to read files.

`node_root` is where the node's filesystem is visible: `/` on the node itself, the collector
pod's host mount, or `/proc/PID/root` of a process in the node's mount namespace. Paths the
kernel reports for the node (overlay upper and lower directories) are read under it."""

from __future__ import annotations

import os
import platform
import re
from typing import TYPE_CHECKING, Any

from ir.errors import IrError, Unsupported, UsageError
from ir.runtime.base import ActionLog, ContainerHandle, ContainerState, LogSource
from ir.runtime.cri_node import CriContainer
from ir.runtime.overlay import OverlayDiff, OverlayMount, _split_lower, root_overlay
from ir.runtime.procfs import (
    CLK_TCK,
    MAX_SMALL_FILE,
    PROC,
    ProcfsNetwork,
    ProcfsProcesses,
    boot_time,
    node_anchor_pid,
    ns_link,
    parse_passwd,
    read_file_in_root,
    read_text,
    start_ticks,
)
from ir.runtime.rootwalk import RootWalk

if TYPE_CHECKING:  # the Docker SDK is imported only by a capture that uses Docker
    from ir.runtime.docker_backend import DockerContainer


_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")


class NodeContainer(ContainerHandle):
    """A container seen from its node: /proc and the overlay upperdir (+ the runtime's API for
    metadata and logs when there is one)."""

    backend = "node"

    def __init__(
        self,
        *,
        pid: int | None,
        runtime: DockerContainer | CriContainer | None = None,
        name: str | None = None,
        proc: str = PROC,
        actions: ActionLog | None = None,
        node_root: str = "/",
        root_walk: bool = False,
        whole_node: bool = False,
    ) -> None:
        """`root_walk`: without a reachable overlay upperdir, list the files changed since the
        container started through /proc/PID/root instead (ir.runtime.rootwalk: not a diff).
        `whole_node`: the node itself (`pid` a process in its namespaces, procfs.node_anchor_pid):
        every process, the node's sockets; no filesystem (it is no container's diff)."""
        self.whole_node = whole_node
        if os.geteuid() != 0:
            raise UsageError(
                "the node backend reads the host's /proc and overlay directories: run ir as root"
            )
        self.proc = proc
        self.node_root = node_root
        self.root_walk = root_walk
        self.runtime = runtime
        self.actions = runtime.actions if runtime else (actions or ActionLog())
        self.decisions: dict[str, Any] = {}
        self.pid = pid
        self.init_ticks = start_ticks(pid, proc) if pid else None
        if pid and self.init_ticks is None:
            raise UsageError(f"no process {pid} in {proc}")
        if runtime is not None:
            self.id, self.name, self.image = runtime.id, runtime.name, runtime.image
        else:
            assert pid is not None
            m = _CONTAINER_ID.search(read_text(f"{proc}/{pid}/cgroup"))
            self.id = m.group(1) if m else f"pid-{pid}"
            self.name = name or (self.id[:12] if m else f"pid-{pid}")
            self.image = None
        self.actions.record("node.attach", pid=pid, proc=proc, container=self.id)
        self._mount: OverlayMount | None = None

    # -- state -----------------------------------------------------------------------------

    def init_alive(self) -> bool:
        return self.pid is not None and start_ticks(self.pid, self.proc) == self.init_ticks

    def state(self) -> ContainerState:
        if self.runtime is not None:
            return self.runtime.state()
        return ContainerState("running" if self.init_alive() else "gone", pid=self.pid)

    # -- metadata --------------------------------------------------------------------------

    def inspect(self) -> dict[str, Any] | None:
        return self.runtime.inspect() if self.runtime else None

    def image_details(self) -> dict[str, Any] | None:
        return self.runtime.image_details() if self.runtime else None

    def engine_details(self) -> dict[str, Any] | None:
        node: dict[str, Any] = {
            "kernel": platform.release(),
            "hostname": platform.node(),
            "proc": self.proc,
        }
        if self.pid and self.init_alive():
            base = f"{self.proc}/{self.pid}"
            node["init_pid"] = self.pid
            node["cgroup"] = _quiet_text(f"{base}/cgroup")
            node["namespaces"] = {
                ns: ns_link(self.pid, ns, self.proc)
                for ns in ("pid", "net", "mnt", "uts", "ipc", "user", "cgroup")
            }
            node["host_namespaces"] = {
                ns: ns_link("self", ns, self.proc) for ns in ("pid", "net", "mnt", "user")
            }
            node["root_mount"] = [
                line for line in _quiet_text(f"{base}/mountinfo").splitlines() if " / / " in line
            ]
            self.actions.record(
                "procfs.read-node-facts", pid=self.pid, reads="cgroup,ns/*,mountinfo"
            )
        details: dict[str, Any] = {"node": node}
        if self.runtime is not None:
            details.update(self.runtime.engine_details() or {})
        return details

    # -- sources ---------------------------------------------------------------------------

    def overlay(self) -> OverlayMount:
        """The container's overlay: from /proc/PID/mountinfo while it runs, else from the
        runtime's record of its layers (Docker keeps them until the container is removed)."""
        if self._mount is not None:
            return self._mount
        mount: OverlayMount | None = None
        why = ""
        if self.pid and self.init_alive():
            try:
                mount = root_overlay(self.pid, self.proc)
                self.actions.record("procfs.read-mountinfo", pid=self.pid, upperdir=mount.upperdir)
            except (LookupError, OSError) as exc:
                why = str(exc)
        # The layer paths do not change while the container exists: the first inspect will do.
        graph = (self.runtime.first_inspect.get("GraphDriver") or {}) if self.runtime else {}
        data = graph.get("Data") or {}
        if mount is None and data.get("UpperDir"):
            mount = OverlayMount(
                data["UpperDir"],
                _split_lower(data.get("LowerDir", "")),
                data.get("WorkDir"),
                "runtime",
            )
        if mount is None:
            raise Unsupported(
                f"no overlay upperdir for this container ({why or 'not running, no runtime record'})"
            )
        if data.get("UpperDir") and os.path.realpath(data["UpperDir"]) != os.path.realpath(
            mount.upperdir
        ):
            self.decisions["upperdir_mismatch"] = {
                "mountinfo": mount.upperdir,
                "runtime": data["UpperDir"],
            }
        if any(not os.path.isabs(p) for p in mount.lowerdirs) and data.get("LowerDir"):
            mount.lowerdirs = _split_lower(
                data["LowerDir"]
            )  # relative short links: use the runtime's
        if self.node_root not in ("", "/"):
            mount = OverlayMount(
                _under(self.node_root, mount.upperdir),
                [_under(self.node_root, p) for p in mount.lowerdirs],
                _under(self.node_root, mount.workdir) if mount.workdir else None,
                mount.source,
            )
        if not os.path.isdir(mount.upperdir):
            raise Unsupported(
                f"the upperdir {mount.upperdir} is not visible from this mount namespace"
            )
        self._mount = mount
        return mount

    def fs_diff(self) -> OverlayDiff | RootWalk:
        try:
            return OverlayDiff(self.overlay())
        except Unsupported as exc:
            if not (self.root_walk and self.pid and self.init_alive()):
                raise
            why = str(exc)
        assert self.pid is not None and self.init_ticks is not None
        # btime has whole seconds: one second of slack lists a little more, never less
        since = boot_time(self.proc) + self.init_ticks / CLK_TCK - 1.0
        self.decisions["filesystem"] = f"root walk, not a diff ({why})"
        self.actions.record("procfs.walk-root", pid=self.pid, since=since, why=why)
        return RootWalk(f"{self.proc}/{self.pid}/root", since)

    def processes(self) -> ProcfsProcesses:
        self._need_running("processes")
        assert self.pid is not None
        return ProcfsProcesses(
            self.pid,
            users=self._users,
            actions=self.actions,
            proc=self.proc,
            whole_node=self.whole_node,
        )

    def network(self) -> ProcfsNetwork:
        self._need_running("sockets")
        assert self.pid is not None
        return ProcfsNetwork(self.pid, actions=self.actions, proc=self.proc)

    def logs(self) -> LogSource:
        if self.runtime is None:
            raise Unsupported("logs are kept by the runtime; the node backend was given only a pid")
        return self.runtime.logs()

    def previous_logs_note(self) -> str | None:
        return self.runtime.previous_logs_note() if self.runtime else "no runtime: no logs"

    def started_at(self) -> str | None:
        return self.runtime.started_at() if self.runtime else None

    def previous_until(self) -> str | None:
        return self.runtime.previous_until() if self.runtime else None

    def read_file(self, path: str, limit: int = MAX_SMALL_FILE) -> bytes | None:
        """Through /proc/PID/root while running, else from the overlay layers (upper first);
        every component opened O_NOFOLLOW, so a planted link cannot lead onto the host."""
        if self.pid and self.init_alive():
            self.actions.count(
                "procfs.read-container-file",
                note="small files via /proc/PID/root, no links followed",
            )
            return read_file_in_root(f"{self.proc}/{self.pid}/root", path, limit)
        try:
            mount = self.overlay()
        except Unsupported:
            return None
        for layer in [mount.upperdir, *mount.lowerdirs]:
            data = read_file_in_root(layer, path, limit)
            if data is not None:
                return data
        return None

    def _users(self) -> dict[int, str]:
        try:
            return parse_passwd(self.read_file("/etc/passwd"))
        except (OSError, ValueError, IrError):
            return {}

    def _need_running(self, what: str) -> None:
        if not self.pid:
            raise Unsupported(f"the container is not running: no {what}")
        if not self.init_alive():
            raise Unsupported(f"the container's init (pid {self.pid}) is gone: no {what}")

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()


def _under(root: str, path: str) -> str:
    """`path` of the node, as seen from where ir runs (`root` is the node's /)."""
    return os.path.join(root, path.lstrip("/"))


def _quiet_text(path: str) -> str:
    try:
        return read_text(path)
    except OSError:
        return ""


def open_node(
    *,
    runtime: DockerContainer | CriContainer | None = None,
    pid: int | None = None,
    name: str | None = None,
    proc: str = PROC,
    node_root: str = "/",
    root_walk: bool = False,
    whole_node: bool = False,
) -> NodeContainer:
    """Attach to a container from the node: its pid from the runtime (running) or `pid`;
    `whole_node`: to the node itself, through the process procfs.node_anchor_pid finds."""
    if whole_node:
        pid = node_anchor_pid(proc)
    elif pid is None and runtime is not None:
        pid = runtime.state().pid
    return NodeContainer(
        pid=pid,
        runtime=runtime,
        name=name,
        proc=proc,
        node_root=node_root,
        root_walk=root_walk,
        whole_node=whole_node,
    )
