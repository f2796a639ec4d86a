"""`ir replay BUNDLE net` (ir/replay/network.py): each connection's direction and owner, from
the listeners of its network namespace and the pairs both of whose ends are captured; the
direction rule on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.reader import BundleReader
from ir.records import SocketRecord
from ir.replay.evidence import Evidence
from ir.replay.findings import find_all
from ir.replay.network import Namespace, connection_rows, socket_direction
from tests.replay_fixtures import (
    SAMPLE,
    BundleSpec,
    ContainerSpec,
    build_bundle,
    ir,
)
from tests.views import column


def test_net_directions_and_owners(
    evidence: Evidence, bundles: dict[str, Path], cache: Path
) -> None:
    rows = {
        (r.record.local_port, r.record.remote_port): r for r in connection_rows(evidence, "web")
    }
    assert rows[(31337, 0)].direction == "listen" and rows[(31337, 0)].flags == [
        "undeclared-listener"
    ]
    assert rows[(80, 0)].flags == [] and rows[(9090, 0)].flags == []  # declared in the pod spec
    assert rows[(80, 51234)].direction == "inbound"
    assert (
        rows[(40112, 4444)].direction == "outbound"
        and rows[(40112, 4444)].process == "5133 .kworker"
        and rows[(40112, 4444)].basis == "no listener on port 40112; an ephemeral port"
    )
    # the agent's probe of nginx over loopback: both ends here, the listener on 80 decides
    probe, served = rows[(45678, 80)], rows[(80, 45678)]
    assert (probe.direction, served.direction) == ("outbound", "inbound")
    assert probe.peer_here and served.peer_here
    assert probe.basis == "connected to a listener of this network namespace (port 80)"
    assert probe.flags == []  # a call to a declared port of the pod is the workload's own
    out = ir("replay", bundles["bad"], "net", "--direction", "outbound", cache=cache).out
    assert "203.0.113.7:4444" in out and "10.244.0.5" not in out
    local = ir("replay", bundles["bad"], "net", "--direction", "local", "-o", "json", cache=cache)
    assert {(c["local_port"], c["direction"]) for c in json.loads(local.out)["connections"]} == {
        (45678, "outbound"),
        (80, "inbound"),
    }


def test_sample_direction_from_listeners_and_pairs(sample: Path, cache: Path) -> None:
    """`nc -l -p 4444` closed its listener after accepting: its end is inbound (its peer's port
    is the kernel's, its own the listener's), the busybox client's end outbound; findings list
    only the client."""
    net = json.loads(ir("replay", sample, "net", "-o", "json", cache=cache).out)["connections"]
    by_port = {c["local_port"]: c for c in net}
    addr, port, peer = SAMPLE["accepted"]
    accepted = by_port[port]
    assert (accepted["local_addr"], accepted["remote_port"]) == (addr, peer)
    assert (
        accepted["direction"] == "inbound"
        and accepted["peer_here"]
        and accepted["owner"] == "9121 nc"
    )
    client = by_port[SAMPLE["connected"][1]]
    assert client["direction"] == "outbound" and client["flags"] == ["outbound"]
    assert by_port[SAMPLE["listener"]]["direction"] == "listen"
    assert all(c["netns"] == "net:[4026532401]" for c in net)
    found = find_all_of(sample)
    assert [(f["detail"]["local_port"], f["detail"]["remote_port"]) for f in found["outbound"]] == [
        (50778, 4444)
    ]
    summary = ir("replay", sample, "summary", cache=cache).out
    outbound = summary.split("Outbound connections (1)")[1].split("[high]")[0]
    assert "127.0.0.1:50778 -> 127.0.0.1:4444" in outbound and ":4444 -> " not in outbound
    table = ir("replay", sample, "net", cache=cache).out
    assert column(table, "direction") == ["outbound", "listen", "inbound"]


def find_all_of(path: Path) -> dict[str, list[dict[str, Any]]]:
    with BundleReader.open(path) as reader:
        found = find_all(Evidence(reader, display="s"))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for f in found.items:
        grouped.setdefault(f.kind, []).append(f.to_dict())
    return grouped


# -- direction: the rule on its own ------------------------------------------------------------------


def _ns(*sockets: SocketRecord, complete: bool = True) -> Namespace:
    ns = Namespace(complete=complete)
    for s in sockets:
        ns.add(s)
    return ns


def _conn(proto: str, addr: str, port: int, raddr: str, rport: int) -> SocketRecord:
    return SocketRecord(proto, addr, port, raddr, rport, "ESTABLISHED")


def _listen(proto: str, addr: str, port: int) -> SocketRecord:
    return SocketRecord(proto, addr, port, "::" if ":" in addr else "0.0.0.0", 0, "LISTEN")


@pytest.mark.parametrize(
    "listener, sock, expected",
    [
        # a wildcard listener: 0.0.0.0 takes IPv4, :: takes every address (v4-mapped too)
        (
            _listen("tcp", "0.0.0.0", 8080),
            _conn("tcp", "10.0.0.2", 8080, "10.0.0.9", 51000),
            "inbound",
        ),
        (
            _listen("tcp6", "::", 8080),
            _conn("tcp6", "::ffff:10.0.0.2", 8080, "::ffff:10.0.0.9", 51000),
            "inbound",
        ),
        (_listen("tcp6", "::", 8080), _conn("tcp6", "fd00::2", 8080, "fd00::9", 51000), "inbound"),
        (
            _listen("tcp", "0.0.0.0", 8080),
            _conn("tcp6", "fd00::2", 8080, "fd00::9", 51000),
            "unknown",
        ),
        # v4-mapped: the same address written either way
        (
            _listen("tcp6", "::ffff:127.0.0.1", 8080),
            _conn("tcp", "127.0.0.1", 8080, "127.0.0.1", 51000),
            "inbound",
        ),
        (
            _listen("tcp", "127.0.0.1", 8080),
            _conn("tcp6", "::ffff:127.0.0.1", 8080, "::ffff:127.0.0.1", 51000),
            "inbound",
        ),
        # a listener on another address of the namespace did not accept it
        (
            _listen("tcp", "127.0.0.1", 8080),
            _conn("tcp", "10.0.0.2", 8080, "10.0.0.9", 51000),
            "unknown",
        ),
        # no listener: the kernel's port says it connected; a fixed port cannot tell
        (
            _listen("tcp", "0.0.0.0", 80),
            _conn("tcp", "10.0.0.2", 51000, "203.0.113.7", 443),
            "outbound",
        ),
        (
            _listen("tcp", "0.0.0.0", 80),
            _conn("tcp", "10.0.0.2", 4444, "203.0.113.7", 51000),
            "unknown",
        ),
    ],
)
def test_direction_rule(listener: SocketRecord, sock: SocketRecord, expected: str) -> None:
    assert socket_direction(sock, _ns(listener, sock))[0] == expected


def test_direction_without_listener_data_is_unknown() -> None:
    sock = _conn("tcp", "10.0.0.2", 51000, "203.0.113.7", 443)
    direction, basis, _ = socket_direction(sock, _ns(sock, complete=False))
    assert direction == "unknown" and "incomplete" in basis
    served = _conn("tcp", "10.0.0.2", 80, "10.0.0.9", 51000)  # a listener seen still counts
    assert (
        socket_direction(served, _ns(_listen("tcp", "0.0.0.0", 80), served, complete=False))[0]
        == "inbound"
    )
    probe = _conn("tcp", "127.0.0.1", 51000, "127.0.0.1", 80)  # so does one connected to it
    listener = _listen("tcp", "0.0.0.0", 80)
    assert socket_direction(probe, _ns(listener, probe, complete=False))[0] == "outbound"


def test_direction_same_port_other_network_namespace(tmp_path: Path, cache: Path) -> None:
    """A listener on 8080 in one network namespace says nothing of a socket on 8080 in another;
    containers sharing a namespace (a pod) share its listeners, whichever table lists them."""

    def container(netns: str, *sockets: SocketRecord) -> ContainerSpec:
        return ContainerSpec(
            sockets=list(sockets), network={"netns": netns, "interfaces": [], "routes": []}
        )

    spec = BundleSpec(
        bundle_id="0a0a0a0a-0000-4000-8000-000000000002",
        case_id="N",
        target={"kind": "pod", "name": "p"},
        containers={
            "server": container("net:[1]", _listen("tcp", "0.0.0.0", 8080)),
            "sidecar": container("net:[1]", _conn("tcp", "10.0.0.2", 8080, "10.0.0.9", 51000)),
            "other": container("net:[2]", _conn("tcp", "10.0.0.3", 8080, "10.0.0.9", 51001)),
        },
    )
    path = build_bundle(tmp_path, spec).path
    net = json.loads(ir("replay", path, "net", "-o", "json", cache=cache).out)["connections"]
    by = {c["container"]: c for c in net if c["state"] == "ESTABLISHED"}
    assert by["sidecar"]["direction"] == "inbound" and by["sidecar"]["netns"] == "net:[1]"
    assert by["other"]["direction"] == "unknown" and by["other"]["netns"] == "net:[2]"
