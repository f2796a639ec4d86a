"""The network view: each socket with its owning process, its direction and why, and whether a
listener was declared in the pod spec (or the image).

Direction (`socket_direction`), per network namespace (the containers of a pod share one: their
tables are read together):
- listen: a listening socket (TCP LISTEN, unconnected UDP);
- inbound: a connected socket whose local port has a listener in the same network namespace, on
  a compatible address (the same address, a wildcard -- 0.0.0.0 covers IPv4 and v4-mapped
  addresses, :: covers every address -- or the v4-mapped form of the same IPv4 address): it was
  accepted by that listener;
- outbound: a connected socket with no such listener whose remote end is a listener of this
  namespace (it connected to it); or, when the namespace's listeners are all known (its socket
  table was read whole): its peer end is a socket of this namespace and neither has a listener
  (the listener closed after accepting, as `nc -l` does), and its port is from the kernel's
  ephemeral range while the peer's is not (the kernel picked its port to connect; the peer's
  port is then the one a listener had, so the peer is inbound); or its port is from the
  ephemeral range and its peer is elsewhere;
- unknown: ir cannot tell: no listener data (the socket table is partial or missing), or no
  listener and a fixed local port (an accepted connection whose listener is gone, or a client
  that bound its port: both happen), or a pair where both or neither port is ephemeral.
`basis` says which rule decided, in words; `peer_here` that the other end is a socket of the same
namespace. Older bundles are classified the same way: every input is in every bundle (the socket
table, the namespace in the artifact's meta or network.json); network.json's `socket_tables`
(written since ir records which /proc/net tables it read) only sharpens "read whole".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ir.records import ProcessRecord, SocketRecord
from ir.replay.evidence import Cited, Evidence, as_list, dig

MAX_SOCKETS = 200_000
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_SOCKET_FD = re.compile(r"socket:\[(\d+)\]")
#: Linux's default net.ipv4.ip_local_port_range: the ports the kernel picks for a connect() that
#: did not bind first. (Per network namespace and tunable; ir cannot read the container's value
#: from the host, so a namespace that changed it may be misread: the basis says "ephemeral".)
EPHEMERAL_PORTS = range(32768, 61000)

#: the columns of the connections table (the `net` page and the HTML report)
NET_COLUMNS = (
    "container",
    "proto",
    "local",
    "remote",
    "state",
    "direction",
    "process",
    "flags",
    "direction from",
)


@dataclass
class Declared:
    """Ports a workload says it listens on: (family, port) pairs, and where that was read."""

    ports: set[tuple[str, int]] = field(default_factory=set)
    basis: str = "none"  # "pod spec containerPorts" | "image ExposedPorts" | "none"

    def covers(self, family: str, port: int | None) -> bool:
        return port is not None and (family, port) in self.ports


@dataclass
class ConnectionRow:
    cited: Cited[SocketRecord]
    direction: str  # listen | inbound | outbound | unknown | unix | other
    process: str | None
    flags: list[str] = field(default_factory=list)  # undeclared-listener, outbound
    owner_container: str | None = None  # where the owning process was seen (a pod shares one netns)
    basis: str = ""  # why this direction, in words
    peer_here: bool = False  # the other end is a socket of the same network namespace
    netns: str | None = None  # the namespace's id as captured (None: unknown)

    @property
    def record(self) -> SocketRecord:
        return self.cited.record

    def to_dict(self) -> dict[str, Any]:
        doc = self.record.to_dict()
        doc.update(
            container=self.cited.container,
            direction=self.direction,
            direction_basis=self.basis,
            peer_here=self.peer_here,
            netns=self.netns,
            owner=self.process,
            flags=self.flags,
            cited=self.cited.citation,
        )
        return doc


@dataclass
class Namespace:
    """What the direction rule knows of one network namespace: its listeners, the endpoints of
    its connected sockets, its own addresses, and whether its listeners are all known."""

    listeners: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    ends: set[tuple[str, str, int]] = field(default_factory=set)
    addresses: set[str] = field(default_factory=lambda: set(_LOOPBACK))
    complete: bool = False

    def add(self, r: SocketRecord) -> None:
        if r.proto.startswith("unix") or r.local_port is None:
            return
        fam, addr = family(r.proto), normal_addr(r.local_addr)
        if addr and not _wildcard(addr):
            self.addresses.add(addr)
        if r.listening:
            self.listeners.setdefault((fam, r.local_port), set()).add(addr)
        elif r.remote_port:
            self.ends.add((fam, addr, r.local_port))

    def listener_for(self, fam: str, addr: str | None, port: int | None) -> bool:
        """Does a listener of this namespace take connections to addr:port?"""
        bound = self.listeners.get((fam, port)) if port is not None else None
        a = normal_addr(addr)
        return bool(bound) and any(_covers(b, a) for b in bound or ())


def _wildcard(addr: str) -> bool:
    return addr in ("0.0.0.0", "::", "*", "")


def _covers(bound: str, addr: str) -> bool:
    """Does a listener bound to `bound` accept connections to `addr` (both normalised)?"""
    if bound == addr or bound in ("::", "*", ""):
        return True  # the same address; `::` is dual-stack: v6 and v4-mapped
    return bound == "0.0.0.0" and ":" not in addr  # IPv4 wildcard: IPv4 (and v4-mapped) only


def socket_direction(r: SocketRecord, ns: Namespace) -> tuple[str, str, bool]:
    """(direction, basis, peer_here) of one socket of namespace `ns` (see the module's rule)."""
    if r.proto.startswith("unix"):
        return "unix", "unix socket", False
    if r.listening:
        return "listen", "listening socket", False
    if not r.remote_port or r.local_port is None:
        return "other", "not connected", False
    fam, port, rport = family(r.proto), r.local_port, r.remote_port
    peer_here = (fam, normal_addr(r.remote_addr), rport) in ns.ends
    if ns.listener_for(fam, r.local_addr, port):
        return "inbound", f"a listener on port {port} in this network namespace", peer_here
    if normal_addr(r.remote_addr) in ns.addresses and ns.listener_for(fam, r.remote_addr, rport):
        return (
            "outbound",
            f"connected to a listener of this network namespace (port {rport})",
            peer_here,
        )
    if not ns.complete:
        return (
            "unknown",
            f"no listener on port {port} seen, but the socket table is incomplete",
            peer_here,
        )
    mine, theirs = port in EPHEMERAL_PORTS, rport in EPHEMERAL_PORTS
    if peer_here:
        if mine and not theirs:
            return (
                "outbound",
                f"no listener on either end (closed after accepting); port {port} is ephemeral, "
                f"the peer's {rport} is not",
                True,
            )
        if theirs and not mine:
            return (
                "inbound",
                f"no listener on either end (closed after accepting); the peer's port {rport} is "
                f"ephemeral, {port} is not",
                True,
            )
        return "unknown", "both ends here, no listener on either, ports alike", True
    if mine:
        return "outbound", f"no listener on port {port}; an ephemeral port", False
    return (
        "unknown",
        f"no listener on port {port} now and not an ephemeral port (a listener that closed "
        "after accepting, or a client that bound its port)",
        False,
    )


def family(proto: str) -> str:
    return (
        "udp"
        if proto.lower().startswith("udp")
        else "tcp"
        if proto.lower().startswith("tcp")
        else proto.lower()
    )


def normal_addr(addr: str | None) -> str:
    text = (addr or "").strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text[7:] if text.startswith("::ffff:") else text


def endpoint(addr: str | None, port: int | None) -> str:
    if addr is None and port is None:
        return "-"
    a = addr or "*"
    return f"[{a}]:{port}" if ":" in a else f"{a}:{port}"


def declared_ports(ev: Evidence) -> Declared:
    """containerPorts of every container of the pod spec (a pod shares one network namespace);
    without a pod, the images' ExposedPorts; else nothing to compare with."""
    pod = ev.pod()
    if pod is not None:
        declared = Declared(basis="pod spec containerPorts")
        spec = dig(pod, "spec")
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for container in as_list(dig(spec, key)):
                for port in as_list(dig(container, "ports")):
                    number = dig(port, "containerPort")
                    if isinstance(number, int):
                        proto = str(dig(port, "protocol") or "TCP").lower()
                        declared.ports.add((proto, number))
        return declared
    declared = Declared()
    for container in ev.containers():
        exposed = dig(ev.inspect(container), "Config", "ExposedPorts")
        if isinstance(exposed, dict):
            declared.basis = "image ExposedPorts (no pod spec in the bundle)"
            for key in exposed:
                number, _, proto = str(key).partition("/")
                if number.isdigit():
                    declared.ports.add(((proto or "tcp").lower(), int(number)))
    return declared


def connection_rows(ev: Evidence, container: str | None = None) -> list[ConnectionRow]:
    """Every socket (of one container, or all), classified. Small: a socket table is bounded.
    Listeners are looked up in every table of the same network namespace."""
    declared = declared_ports(ev)
    tables = _socket_tables(ev)
    namespaces: dict[str, Namespace] = {}
    for name, (key, complete, sockets) in tables.items():
        ns = namespaces.setdefault(key, Namespace())
        ns.complete = ns.complete or complete
        ns.addresses |= _interface_addrs(ev, name)
        for s in sockets:
            ns.add(s.record)
    owners = _owners_by_inode(ev)
    rows: list[ConnectionRow] = []
    for name, (key, _, sockets) in tables.items():
        if container is not None and name != container:
            continue
        ns = namespaces[key]
        netns = None if key.startswith("container:") else key
        for s in sockets:
            r = s.record
            direction, basis, peer_here = socket_direction(r, ns)
            flags: list[str] = []
            if direction == "listen" and not declared.covers(family(r.proto), r.local_port):
                flags.append("undeclared-listener")
            if (
                direction == "outbound"
                and (r.state or "").upper() == "ESTABLISHED"
                # within the namespace, a call to a declared port is the workload's own (a
                # sidecar to its app); to any other port it is a finding like a remote one
                and not (peer_here and declared.covers(family(r.proto), r.remote_port))
            ):
                flags.append("outbound")
            owner, owner_container = None, None
            if r.inode is not None and r.inode in owners:
                owner, owner_container = owners[r.inode]
            if r.pid is not None:
                owner = f"{r.pid} {r.process}" if r.process else str(r.pid)
            rows.append(
                ConnectionRow(s, direction, owner, flags, owner_container, basis, peer_here, netns)
            )
    return rows


def _socket_tables(ev: Evidence) -> dict[str | None, tuple[str, bool, list[Cited[SocketRecord]]]]:
    """Per container: (its network namespace's key, whether its table holds every listener of
    the namespace, its sockets). The key is the namespace id recorded at capture (sockets meta or
    network.json); without one, the container's own (assumed alone in its namespace)."""
    tables: dict[str | None, tuple[str, bool, list[Cited[SocketRecord]]]] = {}
    names: list[str | None] = list(ev.containers()) or [None]
    for name in names:
        entries = ev.artifacts(SocketRecord.KIND, name)
        if not entries:
            continue
        sockets = ev.records_upto(SocketRecord, name, MAX_SOCKETS, "sockets")
        network = ev.document("network", None, name) if name is not None else None
        doc = network[1] if network and isinstance(network[1], dict) else {}
        netns = next(
            (str(e.meta["netns"]) for e in entries if isinstance(e.meta.get("netns"), str)),
            None,
        ) or (doc.get("netns") if isinstance(doc.get("netns"), str) else None)
        complete = all(e.status == "ok" for e in entries) and _tables_whole(doc)
        tables[name] = (netns or f"container:{name}", complete, sockets)
    return tables


def _tables_whole(network: dict[str, Any]) -> bool:
    """network.json's `socket_tables` ({"tcp": "read", "tcp6": "unreadable: ...", ...}), when
    the bundle has it: were the TCP and UDP tables all read (or absent)? Older bundles: the
    artifact's status alone says (a table that could not be read was skipped silently then)."""
    tables = network.get("socket_tables")
    if not isinstance(tables, dict):
        return True
    # "absent": the namespace has no such table (IPv6 disabled): nothing to miss there
    return all(tables.get(t) in ("read", "absent") for t in ("tcp", "tcp6", "udp", "udp6"))


def _owners_by_inode(ev: Evidence) -> dict[int, tuple[str, str | None]]:
    """Socket inode -> ("pid name", container), from every container's open file descriptors:
    the containers of a pod share a network namespace, so a socket listed under one container may
    belong to a process of another."""
    owners: dict[int, tuple[str, str | None]] = {}
    for cited in ev.records(ProcessRecord):
        r: ProcessRecord = cited.record
        for fd in r.fds[:100_000]:
            m = _SOCKET_FD.search(fd)
            if m:
                owners.setdefault(
                    int(m.group(1)), (f"{r.pid} {r.name or ''}".strip(), cited.container)
                )
    return owners


def _interface_addrs(ev: Evidence, container: str | None) -> set[str]:
    found = ev.document("network", None, container)
    addrs: set[str] = set()
    if not found:
        return addrs
    for iface in as_list(dig(found[1], "interfaces")):
        for key in ("addresses", "addrs", "address"):
            for value in as_list(dig(iface, key)) if key != "address" else [dig(iface, key)]:
                text = value.get("address") if isinstance(value, dict) else value
                if isinstance(text, str):
                    addrs.add(normal_addr(text.split("/")[0]))
    return addrs
