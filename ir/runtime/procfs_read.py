"""The host's /proc at its lowest level: bounded reads of its files, the pids it shows, namespace
identities, one process's stat and status, the kernel's boot time and clock ticks, and which
processes are a container's (by pid namespace, or by cgroup when it shares the host's). Nothing
here writes or signals; a process that vanishes while it is read raises `ProcessGone`.

Part of `ir.runtime.procfs`. Imports nothing of ir (the runtime room may import ir.records,
ir.errors and ir.clock only).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = "/proc"
_MAX_PROC_TEXT = 4 * 1024 * 1024  # cmdline/environ/net files are bounded by the kernel; be safe
GONE = (FileNotFoundError, ProcessLookupError)  # a process that exited, as /proc reports it


class ProcessGone(Exception):
    """The process exited while it was being read."""


# -- small readers -------------------------------------------------------------------------


def read_bytes(path: str, limit: int = _MAX_PROC_TEXT) -> bytes:
    with open(path, "rb", buffering=0) as fh:
        data = fh.read(limit + 1)
    return data[:limit]


def read_text(path: str, limit: int = _MAX_PROC_TEXT) -> str:
    return read_bytes(path, limit).decode("utf-8", "backslashreplace")


def list_pids(proc: str = PROC) -> list[int]:
    return sorted(int(name) for name in os.listdir(proc) if name.isdigit())


#: the daemons that run in a Kubernetes node's own namespaces, whatever its init is
RUNTIME_DAEMONS = ("containerd", "crio", "dockerd", "kubelet")


def node_anchor_pid(proc: str = PROC) -> int:
    """A process in the node's own namespaces (mount, network), seen with the host's pids: the
    container runtime daemon (or the kubelet), lowest pid first. ir's node capture reads the
    node's sockets through it and its root for the node's users. Raises ProcessGone when none."""
    for pid in list_pids(proc):
        try:
            comm = read_text(f"{proc}/{pid}/comm", 64).strip()
        except OSError:
            continue
        if comm in RUNTIME_DAEMONS:
            return pid
    raise ProcessGone(
        f"no {'/'.join(RUNTIME_DAEMONS)} process in {proc}: not the host's pids (hostPID)?"
    )


def ns_link(pid: int | str, ns: str, proc: str = PROC) -> str | None:
    """`net:[4026531840]`-style identity of a process's namespace, or None if unreadable."""
    try:
        return os.readlink(f"{proc}/{pid}/ns/{ns}")
    except OSError:
        return None


def boot_time(proc: str = PROC) -> float:
    """When the kernel booted, in epoch seconds: the real-time clock minus CLOCK_BOOTTIME (to the
    microsecond; every container on the host shares the kernel, so this is the right boot for
    any /proc it shows), else /proc/stat's btime (whole seconds, rounded down: process starts
    computed from it read up to 1 s early)."""
    try:
        return time.clock_gettime(time.CLOCK_REALTIME) - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        pass
    for line in read_text(f"{proc}/stat").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    start_ticks: int
    threads: int


def read_stat(pid: int, proc: str = PROC) -> ProcStat:
    raw = read_bytes(f"{proc}/{pid}/stat")
    # comm may contain spaces and parentheses: it ends at the LAST ')'.
    open_paren, close_paren = raw.index(b"("), raw.rindex(b")")
    comm = raw[open_paren + 1 : close_paren].decode("utf-8", "backslashreplace")
    rest = raw[close_paren + 2 :].split()
    return ProcStat(pid, comm, rest[0].decode(), int(rest[1]), int(rest[19]), int(rest[17]))


def read_status(pid: int, proc: str = PROC) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in read_text(f"{proc}/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def start_ticks(pid: int, proc: str = PROC) -> int | None:
    try:
        return read_stat(pid, proc).start_ticks
    except (OSError, ValueError, IndexError):
        return None


# -- which processes are the container's ---------------------------------------------------


def container_pids(init_pid: int, *, proc: str = PROC) -> list[int]:
    """Host pids of the container whose init is `init_pid`: every process in its pid namespace,
    or (when it shares the host's pid namespace) every process in exactly its cgroups."""
    init_ns = ns_link(init_pid, "pid", proc)
    if init_ns is None:
        raise ProcessGone(f"pid {init_pid} is gone")
    own_ns = ns_link("self", "pid", proc)
    pids: list[int] = []
    if init_ns != own_ns:
        for pid in list_pids(proc):
            if ns_link(pid, "pid", proc) == init_ns:
                pids.append(pid)
        return pids
    try:
        init_cgroup = read_bytes(f"{proc}/{init_pid}/cgroup")
    except GONE:
        raise ProcessGone(f"pid {init_pid} is gone") from None
    for pid in list_pids(proc):
        try:
            if read_bytes(f"{proc}/{pid}/cgroup") == init_cgroup:
                pids.append(pid)
        except OSError:
            continue
    return pids


def pid_in_container(pid: int, container_id: str, proc: str = PROC) -> bool:
    """Does host pid `pid` belong to the container with this id (by its cgroup paths)?"""
    try:
        return container_id in read_text(f"{proc}/{pid}/cgroup")
    except OSError:
        return False


def proc_exists(pid: int, proc: str = PROC) -> bool:
    return Path(f"{proc}/{pid}").exists()
