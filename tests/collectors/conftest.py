"""Fixtures of the collectors' tests: `capture_of`, one container collector's capture of a
throw-away container of the test bed's Docker engine (tests/fixtures_docker.py); `ir_kube`, ir's
own client of the test bed's real apiserver (tests/fixtures_k8s.py), for the Kubernetes
collectors (tests/collectors/capture.py's `pod_capture`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ir.cluster.kube import Kube, connect
from ir.collect.base import CaptureOptions
from ir.runtime import open_container
from tests.collectors.capture import Captured, container_capture
from tests.fixtures_docker import MakeContainer
from tests.testbed.docker import DockerBed
from tests.testbed.k8s import ControlPlane

BACKENDS = ["docker", "node"]


def running(*first: str) -> list[str]:
    """A container's command: the shell lines `first`, then "up" printed, then running on."""
    return ["sh", "-c", "\n".join([*first, "echo up", "while :; do sleep 1; done"])]


@dataclass
class CaptureOf:
    """capture_of(collector, command, backend): start a container running `command` (ready when
    it prints `ready`; `exited`: once it has exited), capture it with the one collector through
    `backend` (`pid_only`: the node backend given only its init's host pid, no runtime API), and
    yield what was captured, with the container."""

    make_container: MakeContainer
    docker_bed: DockerBed
    tmp_path: Path

    @contextmanager
    def __call__(
        self,
        collector: str,
        command: list[str],
        backend: str = "docker",
        *,
        ready: str = "up",
        exited: bool = False,
        pid_only: bool = False,
        options: CaptureOptions | None = None,
    ) -> Iterator[Captured]:
        c = self.make_container(command, ready=ready)
        if exited:
            c.wait(timeout=20)
        c.reload()
        handle = (
            open_container(None, pid=c.attrs["State"]["Pid"])
            if pid_only
            else open_container(c.name, backend=backend, docker_host=self.docker_bed.host)
        )
        with container_capture(handle, collector, self.tmp_path, options) as got:
            got.container = c
            yield got

    def skipped_on_exit(self, collector: str) -> str:
        """Why the collector was skipped on a container that had exited before the capture
        (it fails the test when it was not skipped, or the capture not complete)."""
        with self(collector, ["echo", "up"], exited=True) as got:
            entry = got.entry(collector)
            assert entry.status == "skipped" and entry.error, entry
            assert got.result.sealed.manifest.outcome == "complete"
            return entry.error


@pytest.fixture
def capture_of(make_container: MakeContainer, docker_bed: DockerBed, tmp_path: Path) -> CaptureOf:
    return CaptureOf(make_container, docker_bed, tmp_path)


@pytest.fixture
def ir_kube(control_plane: ControlPlane) -> Kube:
    """ir's own client of the test bed's apiserver, connected as `ir capture pod` connects (a
    kubeconfig): the administrator's."""
    return connect(str(control_plane.kubeconfig))
