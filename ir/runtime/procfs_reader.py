"""`ProcfsReader`: one process of the host's /proc read whole (stat, status, cmdline, cwd, the
executable and its SHA-256 even when deleted from disk, descriptors, environment redacted unless
asked for), and the network namespace of a process: its sockets with their owning pids, its
interfaces with counters and addresses, its routes. Nothing here writes or signals; every
per-process read tolerates the process vanishing (a capture races the container).

Part of `ir.runtime.procfs`, which builds the collectors' sources on it. May import ir.records,
ir.errors and ir.clock only.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ir.clock import from_epoch, rfc3339
from ir.records import ProcessRecord, SocketRecord
from ir.runtime.base import ActionLog
from ir.runtime.procfs_net import (
    fib_local_addresses,
    iface_for,
    ipv4,
    ipv6,
    parse_inet_sockets,
    parse_unix_sockets,
)
from ir.runtime.procfs_read import (
    CLK_TCK,
    GONE,
    PROC,
    ProcessGone,
    boot_time,
    list_pids,
    ns_link,
    proc_exists,
    read_bytes,
    read_stat,
    read_status,
    read_text,
)
from ir.runtime.rootfile import READ_CHUNK

REDACTED = "<redacted>"
_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")


# -- one process ---------------------------------------------------------------------------


def parse_passwd(data: bytes | None) -> dict[int, str]:
    users: dict[int, str] = {}
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            users.setdefault(int(parts[2]), parts[0])
    return users


def split_nul(raw: bytes) -> list[str]:
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return [part.decode("utf-8", "backslashreplace") for part in raw.split(b"\0")] if raw else []


@dataclass
class ExeDigest:
    sha256: str | None
    deleted: bool
    error: str | None
    size: int | None


class ProcfsReader:
    """Reads processes, sockets and network facts from a /proc tree (the host's by default)."""

    def __init__(self, proc: str = PROC, actions: ActionLog | None = None) -> None:
        self.proc = proc
        self.actions = actions
        self._btime = boot_time(proc)
        self._exe_cache: dict[tuple[int, int, int, int], ExeDigest] = {}

    def start_time(self, ticks: int) -> str | None:
        return rfc3339(from_epoch(self._btime + ticks / CLK_TCK))

    def process(
        self,
        pid: int,
        *,
        users: dict[int, str],
        include_env: bool = False,
        hash_limit: int = 512 * 1024 * 1024,
    ) -> ProcessRecord:
        """One process record; raises ProcessGone if the process exited before its stat was read.
        Fields that cannot be read later (exited meanwhile, permission) stay empty."""
        base = f"{self.proc}/{pid}"
        try:
            st = read_stat(pid, self.proc)
            status = read_status(pid, self.proc)
        except GONE:
            raise ProcessGone(f"pid {pid} exited") from None
        uid = _first_int(status.get("Uid"))
        gid = _first_int(status.get("Gid"))
        nspid = status.get("NSpid", "").split()
        record = ProcessRecord(
            pid=pid,
            ppid=st.ppid,
            ns_pid=int(nspid[-1]) if nspid else None,
            uid=uid,
            user=users.get(uid) if uid is not None else None,
            gid=gid,
            name=st.comm,
            state=st.state,
            threads=st.threads,
            start_time=self.start_time(st.start_ticks),
            source="procfs",
        )
        record.cmdline = _quiet(lambda: split_nul(read_bytes(f"{base}/cmdline")), [])
        record.cwd = _quiet(lambda: _decode(os.readlink(f"{base}/cwd")), None)
        try:
            record.exe = _decode(os.readlink(f"{base}/exe"))
        except OSError as exc:
            record.exe_error = _why(exc, "no executable (kernel thread?)")
        if record.exe is not None:
            digest = self.exe_digest(pid, hash_limit)
            record.exe_sha256, record.exe_deleted, record.exe_error = (
                digest.sha256,
                digest.deleted,
                digest.error,
            )
            if record.exe.endswith(" (deleted)") and digest.error:
                record.exe_deleted = True
        record.fds = self.fds(pid)
        try:
            env = split_nul(read_bytes(f"{base}/environ"))
            pairs = [item.partition("=") for item in env]
            record.env = {k: (v if include_env else REDACTED) for k, _, v in pairs}
        except OSError:
            record.env = None
        return record

    def exe_digest(self, pid: int, limit: int) -> ExeDigest:
        """SHA-256 of /proc/PID/exe: the exact binary the process runs, even if deleted from disk."""
        try:
            fh = open(f"{self.proc}/{pid}/exe", "rb", buffering=0)  # noqa: SIM115 -- closed below
        except OSError as exc:
            return ExeDigest(None, False, _why(exc, "cannot open executable"), None)
        with fh:
            before = os.fstat(fh.fileno())
            deleted = before.st_nlink == 0
            key = (before.st_dev, before.st_ino, before.st_mtime_ns, before.st_size)
            cached = self._exe_cache.get(key)
            if cached is not None:
                return ExeDigest(cached.sha256, deleted, cached.error, cached.size)
            if before.st_size > limit:
                result = ExeDigest(
                    None,
                    deleted,
                    f"larger than the hash limit ({before.st_size} > {limit} bytes)",
                    before.st_size,
                )
            else:
                h = hashlib.sha256()
                while chunk := fh.read(READ_CHUNK):
                    h.update(chunk)
                result = ExeDigest(h.hexdigest(), deleted, None, before.st_size)
        self._exe_cache[key] = result
        return result

    def fds(self, pid: int) -> list[str]:
        base = f"{self.proc}/{pid}/fd"
        out: list[str] = []
        try:
            names = sorted(os.listdir(base), key=lambda n: int(n) if n.isdigit() else -1)
        except OSError:
            return out
        for name in names:
            try:
                out.append(f"{name} -> {_decode(os.readlink(f'{base}/{name}'))}")
            except OSError:
                continue
        return out

    # -- sockets ---------------------------------------------------------------------------

    def socket_owners(self, pids: Iterable[int]) -> dict[int, tuple[int, str]]:
        """socket inode -> (pid, process name) over the given processes' descriptors."""
        owners: dict[int, tuple[int, str]] = {}
        for pid in pids:
            base = f"{self.proc}/{pid}/fd"
            try:
                names = os.listdir(base)
                comm = read_stat(pid, self.proc).comm
            except (OSError, ValueError):
                continue
            for name in names:
                try:
                    m = _SOCKET_LINK.match(os.readlink(f"{base}/{name}"))
                except OSError:
                    continue
                if m:
                    owners.setdefault(int(m.group(1)), (pid, comm))
        return owners

    def netns_pids(self, init_pid: int) -> list[int]:
        """Every host process sharing the network namespace of `init_pid` (pod siblings too)."""
        target = ns_link(init_pid, "net", self.proc)
        if target is None:
            raise ProcessGone(f"pid {init_pid} is gone")
        return [pid for pid in list_pids(self.proc) if ns_link(pid, "net", self.proc) == target]

    def sockets(
        self,
        init_pid: int,
        owners: dict[int, tuple[int, str]],
        tables: dict[str, str] | None = None,
    ) -> Iterator[SocketRecord]:
        """TCP/UDP v4/v6 and unix sockets of the network namespace of `init_pid`. `tables`, when
        given, gets what became of each /proc/net table: "read", "absent" (the namespace has no
        such table: IPv6 disabled) or "unreadable: <why>" -- so a reader can tell "no listener"
        from "listeners not seen"."""
        base = f"{self.proc}/{init_pid}/net"
        seen = tables if tables is not None else {}
        for proto in ("tcp", "tcp6", "udp", "udp6", "unix"):
            try:
                text = read_text(f"{base}/{proto}", 256 * 1024 * 1024)
            except GONE:
                if not proc_exists(init_pid, self.proc):
                    raise ProcessGone(f"pid {init_pid} is gone") from None
                seen[proto] = "absent"
                continue
            except OSError as exc:
                seen[proto] = f"unreadable: {_why(exc, 'read failed')}"
                continue
            seen[proto] = "read"
            parsed = (
                parse_unix_sockets(text) if proto == "unix" else parse_inet_sockets(text, proto)
            )
            for record in parsed:
                _own(record, owners)
                yield record

    def interfaces(self, init_pid: int) -> list[dict[str, Any]]:
        """Interfaces of the namespace with counters and addresses (IPv4 from fib_trie,
        IPv6 from if_inet6)."""
        base = f"{self.proc}/{init_pid}/net"
        interfaces: dict[str, dict[str, Any]] = {}
        for line in read_text(f"{base}/dev").splitlines()[2:]:
            name, _, counters = line.partition(":")
            values = counters.split()
            if len(values) < 16:
                continue
            interfaces[name.strip()] = {
                "name": name.strip(),
                "rx_bytes": int(values[0]),
                "rx_packets": int(values[1]),
                "tx_bytes": int(values[8]),
                "tx_packets": int(values[9]),
                "addresses": [],
            }
        routes = self.routes(init_pid)
        for addr in fib_local_addresses(_quiet(lambda: read_text(f"{base}/fib_trie"), "")):
            iface = iface_for(addr, routes) or ("lo" if addr.startswith("127.") else None)
            if iface in interfaces:
                interfaces[iface]["addresses"].append({"family": "inet", "address": addr})
            else:
                interfaces.setdefault("?", {"name": "?", "addresses": []})["addresses"].append(
                    {"family": "inet", "address": addr}
                )
        for line in _quiet(lambda: read_text(f"{base}/if_inet6"), "").splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[5] in interfaces:
                interfaces[parts[5]]["addresses"].append(
                    {"family": "inet6", "address": ipv6(parts[0]), "prefixlen": int(parts[2], 16)}
                )
        return list(interfaces.values())

    def routes(self, init_pid: int) -> list[dict[str, Any]]:
        base = f"{self.proc}/{init_pid}/net"
        out: list[dict[str, Any]] = []
        for line in _quiet(lambda: read_text(f"{base}/route"), "").splitlines()[1:]:
            p = line.split()
            if len(p) < 8:
                continue
            out.append(
                {
                    "family": "inet",
                    "iface": p[0],
                    "destination": ipv4(p[1]),
                    "gateway": ipv4(p[2]),
                    "mask": ipv4(p[7]),
                    "prefixlen": bin(int(p[7], 16)).count("1"),
                    "flags": int(p[3], 16),
                    "metric": int(p[6]),
                }
            )
        for line in _quiet(lambda: read_text(f"{base}/ipv6_route"), "").splitlines():
            p = line.split()
            if len(p) < 10:
                continue
            out.append(
                {
                    "family": "inet6",
                    "iface": p[9],
                    "destination": ipv6(p[0]),
                    "prefixlen": int(p[1], 16),
                    "gateway": ipv6(p[4]),
                    "metric": int(p[5], 16),
                    "flags": int(p[8], 16),
                }
            )
        return out


def _own(record: SocketRecord, owners: dict[int, tuple[int, str]]) -> None:
    owner = owners.get(record.inode or -1)
    if owner:
        record.pid, record.process = owner


# -- helpers -------------------------------------------------------------------------------


def _first_int(value: str | None) -> int | None:
    if not value:
        return None
    head = value.split()[0]
    return int(head) if head.isdigit() else None


def _decode(text: str) -> str:
    """A path from os.readlink (surrogate-escaped) as safe text."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _why(exc: OSError, default: str) -> str:
    if isinstance(exc, ProcessLookupError | FileNotFoundError):
        return "process exited"
    if exc.errno == errno.ENOENT:
        return default
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _quiet(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except (OSError, ValueError):
        return default
