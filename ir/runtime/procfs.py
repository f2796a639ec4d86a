"""The host's /proc, read as root on the node: a container's processes (found by pid namespace or
cgroup), their executables, descriptors and environment; sockets of the container's network
namespace with their owning pids; interfaces and routes. Nothing here writes or signals.

Every per-process read tolerates the process vanishing (a capture races the container)."""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import re
import stat as statmod
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ir.clock import from_epoch, rfc3339
from ir.records import ProcessRecord, SocketRecord
from ir.runtime.base import ActionLog

PROC = "/proc"
READ_CHUNK = 1024 * 1024
REDACTED = "<redacted>"
_MAX_PROC_TEXT = 4 * 1024 * 1024  # cmdline/environ/net files are bounded by the kernel; be safe
MAX_SMALL_FILE = 1024 * 1024

TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
UNIX_STATES = {1: "UNCONNECTED", 2: "CONNECTING", 3: "CONNECTED", 4: "DISCONNECTING"}
UNIX_TYPES = {1: "stream", 2: "dgram", 5: "seqpacket"}
_SO_ACCEPTCON = 0x00010000
_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")
_GONE = (FileNotFoundError, ProcessLookupError)


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
    except _GONE:
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
        except _GONE:
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
            except _GONE:
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
        for addr in _fib_local_addresses(_quiet(lambda: read_text(f"{base}/fib_trie"), "")):
            iface = _iface_for(addr, routes) or ("lo" if addr.startswith("127.") else None)
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
                    {"family": "inet6", "address": _ipv6(parts[0]), "prefixlen": int(parts[2], 16)}
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
                    "destination": _ipv4(p[1]),
                    "gateway": _ipv4(p[2]),
                    "mask": _ipv4(p[7]),
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
                    "destination": _ipv6(p[0]),
                    "prefixlen": int(p[1], 16),
                    "gateway": _ipv6(p[4]),
                    "metric": int(p[5], 16),
                    "flags": int(p[8], 16),
                }
            )
        return out


# -- /proc/net parsing ---------------------------------------------------------------------


def parse_inet_sockets(text: str, proto: str) -> Iterator[SocketRecord]:
    """Rows of /proc/net/{tcp,tcp6,udp,udp6} as SocketRecords (owner pid not filled)."""
    for line in text.splitlines()[1:]:
        p = line.split()
        if len(p) < 10:
            continue
        local_addr, local_port = _endpoint(p[1])
        remote_addr, remote_port = _endpoint(p[2])
        code = int(p[3], 16)
        if proto.startswith("udp"):
            state = "UNCONN" if code == 7 else TCP_STATES.get(code, str(code))
        else:
            state = TCP_STATES.get(code, str(code))
        yield SocketRecord(
            proto=proto,
            local_addr=local_addr,
            local_port=local_port,
            remote_addr=remote_addr,
            remote_port=remote_port,
            state=state,
            inode=int(p[9]),
            uid=int(p[7]),
        )


def parse_unix_sockets(text: str) -> Iterator[SocketRecord]:
    for line in text.splitlines()[1:]:
        p = line.split(None, 7)
        if len(p) < 7:
            continue
        flags, kind, st = int(p[3], 16), int(p[4], 16), int(p[5], 16)
        path = p[7] if len(p) > 7 else None
        state = "LISTEN" if flags & _SO_ACCEPTCON else UNIX_STATES.get(st, str(st))
        yield SocketRecord(
            proto="unix",
            state=state,
            inode=int(p[6]),
            path=path,
            local_addr=UNIX_TYPES.get(kind, str(kind)),
        )


def _endpoint(text: str) -> tuple[str, int]:
    addr, _, port = text.partition(":")
    # /proc/net/tcp6 stores four host-order (little-endian) 32-bit words.
    return (_ipv4(addr) if len(addr) == 8 else _ipv6_words(addr)), int(port, 16)


def _ipv4(hexaddr: str) -> str:
    value = int(hexaddr, 16).to_bytes(4, "little")
    return ".".join(str(b) for b in value)


def _ipv6(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)  # if_inet6 and ipv6_route: network order
    if len(raw) != 16:
        return hexaddr
    return _v6_text(ipaddress.IPv6Address(raw))


def _ipv6_words(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return _v6_text(ipaddress.IPv6Address(words))


def _v6_text(addr: ipaddress.IPv6Address) -> str:
    mapped = addr.ipv4_mapped
    return f"::ffff:{mapped}" if mapped else str(addr)


def _fib_local_addresses(text: str) -> list[str]:
    """Local IPv4 addresses: the `/32 host LOCAL` leaves of /proc/net/fib_trie (deduplicated)."""
    found: list[str] = []
    last: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            last = stripped[4:].strip()
        elif "/32 host LOCAL" in stripped and last and last not in found:
            found.append(last)
    return found


def _iface_for(addr: str, routes: list[dict[str, Any]]) -> str | None:
    ip = ipaddress.IPv4Address(addr)
    best: tuple[int, str] | None = None
    for route in routes:
        if route["family"] != "inet" or route["gateway"] != "0.0.0.0":
            continue
        net = ipaddress.IPv4Network(f"{route['destination']}/{route['prefixlen']}", strict=False)
        if ip in net and route["prefixlen"] > 0 and (best is None or route["prefixlen"] > best[0]):
            best = (route["prefixlen"], route["iface"])
    return best[1] if best else None


def _own(record: SocketRecord, owners: dict[int, tuple[int, str]]) -> None:
    owner = owners.get(record.inode or -1)
    if owner:
        record.pid, record.process = owner


# -- files inside a root, never following links -------------------------------------------


def open_in_root(root: str, path: str) -> int:
    """Open `path` (absolute, inside the container) below the directory `root` (e.g.
    /proc/PID/root or an overlay layer) with every component opened O_NOFOLLOW: a symlink
    anywhere in the path fails the open (ELOOP/ENOTDIR) instead of leading outside the
    container. Returns a read-only fd of a regular file; raises OSError otherwise."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(errno.EINVAL, f"refusing path {path!r}")
    flags_dir = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        st = os.fstat(leaf)
        if not statmod.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{path!r} is not a regular file")
        return os.open(
            f"/proc/self/fd/{leaf}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        )
    finally:
        os.close(leaf)


def read_file_in_root(root: str, path: str, limit: int = MAX_SMALL_FILE) -> bytes | None:
    """A small regular file below `root` (see open_in_root); None if absent or not regular."""
    try:
        fd = open_in_root(root, path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EINVAL):
            return None
        raise
    with os.fdopen(fd, "rb", buffering=0) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return data


def stream_file(fh: IO[bytes], size_limit: int) -> Iterator[bytes]:
    copied = 0
    while copied < size_limit:
        chunk = fh.read(min(READ_CHUNK, size_limit - copied))
        if not chunk:
            break
        copied += len(chunk)
        yield chunk


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


def proc_exists(pid: int, proc: str = PROC) -> bool:
    return Path(f"{proc}/{pid}").exists()


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
