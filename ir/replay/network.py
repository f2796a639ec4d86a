"""The network view: each socket with its owning process and its direction (listen, inbound,
outbound, local), and whether a listener was declared in the pod spec (or the image)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ir.records import ProcessRecord, SocketRecord
from ir.replay.evidence import Cited, Evidence, as_list, dig

MAX_SOCKETS = 200_000
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_WILDCARD = {"0.0.0.0", "::", "*", ""}
_SOCKET_FD = re.compile(r"socket:\[(\d+)\]")


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
    direction: str  # listen | inbound | outbound | local | unknown | unix | other
    process: str | None
    flags: list[str] = field(default_factory=list)  # undeclared-listener, outbound
    owner_container: str | None = None  # where the owning process was seen (a pod shares one netns)

    @property
    def record(self) -> SocketRecord:
        return self.cited.record

    def to_dict(self) -> dict[str, Any]:
        doc = self.record.to_dict()
        doc.update(
            container=self.cited.container,
            direction=self.direction,
            owner=self.process,
            flags=self.flags,
            cited=self.cited.citation,
        )
        return doc


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
    """Every socket (of one container, or all), classified. Small: a socket table is bounded."""
    declared = declared_ports(ev)
    rows: list[ConnectionRow] = []
    for name in [container] if container else ev.containers() or [None]:  # type: ignore[list-item]
        rows.extend(_container_rows(ev, name, declared))
    return rows


def _container_rows(ev: Evidence, container: str | None, declared: Declared) -> list[ConnectionRow]:
    sockets: list[Cited[SocketRecord]] = []
    for cited in ev.records(SocketRecord, container):
        if len(sockets) >= MAX_SOCKETS:
            ev.problem(f"{cited.artifact}: more than {MAX_SOCKETS} sockets; the rest is not shown")
            break
        sockets.append(cited)
    owners = _owners_by_inode(ev)
    local_addrs = (
        {normal_addr(s.record.local_addr) for s in sockets}
        | _LOOPBACK
        | _interface_addrs(ev, container)
    )
    listeners: dict[tuple[str, int], set[str]] = {}
    for s in sockets:
        r = s.record
        if r.listening and r.local_port is not None and not r.proto.startswith("unix"):
            listeners.setdefault((family(r.proto), r.local_port), set()).add(
                normal_addr(r.local_addr)
            )

    ends = {
        (family(s.record.proto), normal_addr(s.record.local_addr), s.record.local_port)
        for s in sockets
        if not s.record.listening and s.record.local_port is not None
    }

    def is_local_listener(fam: str, addr: str | None, port: int | None) -> bool:
        bound = listeners.get((fam, port)) if port is not None else None
        if not bound:
            return False
        a = normal_addr(addr)
        return a in local_addrs and (a in bound or bool(bound & _WILDCARD))

    rows = []
    for s in sockets:
        r = s.record
        fam = family(r.proto)
        flags: list[str] = []
        if r.proto.startswith("unix"):
            direction = "unix"
        elif r.listening:
            direction = "listen"
            if not declared.covers(fam, r.local_port):
                flags.append("undeclared-listener")
        elif r.remote_port and is_local_listener(fam, r.remote_addr, r.remote_port):
            direction = "local"
        elif r.local_port is not None and (fam, r.local_port) in listeners:
            direction = "local" if normal_addr(r.remote_addr) in local_addrs else "inbound"
        elif r.remote_port and (fam, normal_addr(r.remote_addr), r.remote_port) in ends:
            # both ends are sockets of this network namespace (a listener may have closed after
            # accepting, as `nc -l` does): a local connection, whichever end connected
            direction = "local"
        elif r.remote_port and r.local_port is not None and _ephemeral(r.local_port):
            # no listener on this end's port and a port from the kernel's ephemeral range: this
            # end connected out
            direction = "outbound"
            if (r.state or "").upper() == "ESTABLISHED":
                flags.append("outbound")
        elif r.remote_port:
            # no listener here, and a fixed local port: an accepted connection whose listener is
            # gone, or a client that bound its port; ir cannot tell
            direction = "unknown"
        else:
            direction = "other"
        owner, owner_container = None, None
        if r.inode is not None and r.inode in owners:
            owner, owner_container = owners[r.inode]
        if r.pid is not None:
            owner = f"{r.pid} {r.process}" if r.process else str(r.pid)
        rows.append(ConnectionRow(s, direction, owner, flags, owner_container))
    return rows


#: Linux's default net.ipv4.ip_local_port_range: ports the kernel picks for outgoing connections.
EPHEMERAL_PORTS = range(32768, 61000)


def _ephemeral(port: int) -> bool:
    return port in EPHEMERAL_PORTS


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
