"""The network collector (ir/collect/network.py) on the test bed's Docker engine: the sockets of
the container's network namespace with their owning pid, and its interfaces, routes, hosts file
as the container sees them; a container not running when the capture started has no sockets."""

from __future__ import annotations

import pytest

from tests.collectors.conftest import BACKENDS, CaptureOf, running

pytestmark = pytest.mark.docker
LISTENER = running("nc -ll -p 8080 -e /bin/cat &")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_listener_with_its_pid_and_the_interfaces(backend: str, capture_of: CaptureOf) -> None:
    with capture_of("network", LISTENER, backend) as got:
        assert any("listening" in note for note in got.ok("network").notes)
        sockets = got.bundle.records("sockets.jsonl")
        listeners = [s for s in sockets if s["state"] == "LISTEN" and s["local_port"] == 8080]
        assert len(listeners) == 1 and listeners[0]["pid"], sockets
        network = got.bundle.json("network.json")
        assert any(i["name"] == "eth0" and i["addresses"] for i in network["interfaces"])
        assert network["routes"] and "localhost" in network["hosts"]
        assert network["netns"] == got.bundle.entry("sockets.jsonl").meta["netns"]


def test_an_exited_container_is_skipped_with_the_reason(capture_of: CaptureOf) -> None:
    assert "no sockets" in capture_of.skipped_on_exit("network")
