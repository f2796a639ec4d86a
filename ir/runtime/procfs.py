"""The host's /proc, read as root on the node: a container's processes (found by pid namespace or
cgroup), their executables, descriptors and environment; sockets of the container's network
namespace with their owning pids; interfaces and routes. Nothing here writes or signals.

Every per-process read tolerates the process vanishing (a capture races the container).

This module holds the collectors' sources over /proc (`ProcfsProcesses`, `ProcfsNetwork`); what
they read with is beside it: `ir.runtime.procfs_read` (bounded reads, pids, namespaces, stat,
boot time, which processes are the container's), `ir.runtime.procfs_reader` (`ProcfsReader`: one
process, a network namespace's sockets, interfaces and routes), `ir.runtime.procfs_net` (the
/proc/net tables parsed) and `ir.runtime.rootfile` (files inside a root, never following links).
The names other modules import from here stay importable from here (`__all__`).
May import ir.records, ir.errors and ir.clock only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from ir.records import ProcessRecord, SocketRecord
from ir.runtime.base import ActionLog
from ir.runtime.procfs_net import parse_inet_sockets, parse_unix_sockets
from ir.runtime.procfs_read import (
    CLK_TCK,
    PROC,
    ProcessGone,
    boot_time,
    container_pids,
    list_pids,
    node_anchor_pid,
    ns_link,
    pid_in_container,
    read_text,
    start_ticks,
)
from ir.runtime.procfs_reader import ProcfsReader, parse_passwd
from ir.runtime.rootfile import MAX_SMALL_FILE, read_file_in_root

__all__ = [
    "CLK_TCK",
    "MAX_SMALL_FILE",
    "PROC",
    "ProcessGone",
    "ProcfsNetwork",
    "ProcfsProcesses",
    "ProcfsReader",
    "boot_time",
    "node_anchor_pid",
    "ns_link",
    "parse_inet_sockets",
    "parse_passwd",
    "parse_unix_sockets",
    "pid_in_container",
    "read_file_in_root",
    "read_text",
    "start_ticks",
]


# -- sources for the collectors --------------------------------------------------------------


class ProcfsProcesses:
    """ProcessSource over the host /proc: every process of the container whose init is
    `init_pid` (`whole_node`: every process /proc shows, the node's). The init's start time
    guards against pid reuse after the container exits."""

    def __init__(
        self,
        init_pid: int,
        *,
        users: Any,
        actions: ActionLog,
        proc: str = PROC,
        whole_node: bool = False,
    ) -> None:
        self.init_pid = init_pid
        self.whole_node = whole_node
        self.proc = proc
        self.init_ticks = start_ticks(init_pid, proc)
        self._users = users  # callable -> dict[int, str] (the container's /etc/passwd)
        self.actions = actions
        self.reader = ProcfsReader(proc)
        self.description: dict[str, Any] = {"source": "procfs", "proc": proc, "init_pid": init_pid}

    def init_alive(self) -> bool:
        return (
            self.init_ticks is not None and start_ticks(self.init_pid, self.proc) == self.init_ticks
        )

    def processes(self, *, include_env: bool, hash_limit: int) -> Iterator[ProcessRecord]:
        if not self.init_alive():
            raise ProcessGone(f"the container's init (pid {self.init_pid}) is gone")
        pids = (
            list_pids(self.proc)
            if self.whole_node
            else container_pids(self.init_pid, proc=self.proc)
        )
        self.actions.record(
            "procfs.read-processes",
            proc=self.proc,
            init_pid=self.init_pid,
            pids=len(pids),
            reads="stat,status,cmdline,cwd,exe,fd,environ",
        )
        users = self._users()
        for pid in pids:
            try:
                yield self.reader.process(
                    pid, users=users, include_env=include_env, hash_limit=hash_limit
                )
            except ProcessGone:
                continue

    def open_exe(self, pid: int) -> IO[bytes]:
        return open(f"{self.proc}/{pid}/exe", "rb", buffering=0)  # noqa: SIM115 -- caller closes


class ProcfsNetwork:
    """NetworkSource over /proc/INIT/net of the container's network namespace."""

    def __init__(self, init_pid: int, *, actions: ActionLog, proc: str = PROC) -> None:
        self.init_pid = init_pid
        self.proc = proc
        self.actions = actions
        self.reader = ProcfsReader(proc)
        self.netns = ns_link(init_pid, "net", proc)
        self.description: dict[str, Any] = {
            "source": "procfs",
            "proc": proc,
            "init_pid": init_pid,
            "netns": self.netns,
        }
        self.tables: dict[str, str] = {}  # /proc/net table -> read | absent | unreadable: why

    def sockets(self) -> Iterator[SocketRecord]:
        pids = self.reader.netns_pids(self.init_pid)
        self.actions.record(
            "procfs.read-sockets",
            init_pid=self.init_pid,
            netns=self.netns,
            reads="net/{tcp,tcp6,udp,udp6,unix}",
            owner_scan_pids=len(pids),
        )
        owners = self.reader.socket_owners(pids)
        yield from self.reader.sockets(self.init_pid, owners, self.tables)

    def interfaces(self) -> list[dict[str, Any]]:
        self.actions.record(
            "procfs.read-interfaces",
            init_pid=self.init_pid,
            reads="net/{dev,fib_trie,if_inet6,route,ipv6_route}",
        )
        return self.reader.interfaces(self.init_pid)

    def routes(self) -> list[dict[str, Any]]:
        return self.reader.routes(self.init_pid)
