"""The tables of /proc/net parsed: TCP/UDP (v4, v6) and unix sockets as `SocketRecord`s, the
addresses in them, and the local IPv4 addresses of fib_trie with the interface each is routed
through. Text in, records out: nothing here opens a file.

Part of `ir.runtime.procfs`. May import ir.records, ir.errors and ir.clock only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from ir.records import SocketRecord

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
    return (ipv4(addr) if len(addr) == 8 else _ipv6_words(addr)), int(port, 16)


def ipv4(hexaddr: str) -> str:
    value = int(hexaddr, 16).to_bytes(4, "little")
    return ".".join(str(b) for b in value)


def ipv6(hexaddr: str) -> str:
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


def fib_local_addresses(text: str) -> list[str]:
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


def iface_for(addr: str, routes: list[dict[str, Any]]) -> str | None:
    ip = ipaddress.IPv4Address(addr)
    best: tuple[int, str] | None = None
    for route in routes:
        if route["family"] != "inet" or route["gateway"] != "0.0.0.0":
            continue
        net = ipaddress.IPv4Network(f"{route['destination']}/{route['prefixlen']}", strict=False)
        if ip in net and route["prefixlen"] > 0 and (best is None or route["prefixlen"] > best[0]):
            best = (route["prefixlen"], route["iface"])
    return best[1] if best else None
