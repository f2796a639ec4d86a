"""The metadata collector (ir/collect/metadata.py) on the test bed's Docker engine: the container
as the runtime describes it, its image (and so the image digest) and the engine, every request
in the manifest's actions; given only a host pid (no runtime API), a note says so."""

from __future__ import annotations

import pytest

from tests.collectors.conftest import BACKENDS, CaptureOf, running

pytestmark = pytest.mark.docker
RUNNING = running()


@pytest.mark.parametrize("backend", BACKENDS)
def test_inspect_image_and_engine(backend: str, capture_of: CaptureOf) -> None:
    with capture_of("metadata", RUNNING, backend) as got:
        c = got.container
        assert c is not None
        assert [e.name for e in got.result.collectors] == ["metadata", "capture-info"]
        got.ok("metadata")
        assert got.bundle.json("inspect.json")["Id"] == c.id
        assert got.bundle.entry("inspect.json").meta == {"id": c.id, "name": c.name}
        image = got.bundle.entry("image.json")
        assert image.kind == "image-inspect" and image.meta["image_id"] == c.attrs["Image"]
        assert got.bundle.json("image.json")["inspect"]["Id"] == c.attrs["Image"]
        assert got.bundle.entry("engine.json").kind == "engine-info"
        sources = got.bundle.json("capture.json")["sources"]
        assert sources == {"metadata": {"backend": backend, "runtime_api": True}}
        actions = [a.action for a in got.bundle.manifest.actions]
        assert {"docker.inspect-container", "docker.inspect-image"} <= set(actions)


def test_a_host_pid_alone_gives_no_inspect_and_says_so(capture_of: CaptureOf) -> None:
    with capture_of("metadata", RUNNING, pid_only=True) as got:
        assert got.container is not None
        notes = got.ok("metadata").notes
        assert any("no runtime API" in note for note in notes), notes
        names = {a.name for a in got.bundle.manifest.artifacts}
        assert got.bundle.name("inspect.json") not in names
        init_pid = got.container.attrs["State"]["Pid"]
        assert got.bundle.json("engine.json")["node"]["init_pid"] == init_pid
