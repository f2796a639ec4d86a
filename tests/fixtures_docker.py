"""Docker fixtures: the test bed's private engine (started once per session if needed), a factory
for throw-away containers, and the sample "compromised" container of samples/compromised/."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.testbed.docker import REPO_ROOT, DockerBed, ensure_docker

SAMPLE_DIR = REPO_ROOT / "samples" / "compromised"
MakeContainer = Callable[..., Container]


@pytest.fixture(scope="session")
def docker_bed() -> DockerBed:
    return ensure_docker()


@pytest.fixture(scope="session")
def docker_client(docker_bed: DockerBed) -> Iterator[docker.DockerClient]:
    client = docker_bed.client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_env(docker_bed: DockerBed) -> Iterator[None]:
    """DOCKER_HOST pointing at the test engine for in-process `ir` calls (session-wide)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKER_HOST", docker_bed.host)
    yield
    mp.undo()


def wait_for_log(container: Container, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text.encode() in container.logs(stdout=True, stderr=True):
            return
        container.reload()
        if container.status not in ("running", "created"):
            break
        time.sleep(0.1)
    raise AssertionError(
        f"{container.name} never printed {text!r}; logs:\n"
        + container.logs().decode(errors="replace")[-2000:]
    )


def _start(
    client: docker.DockerClient,
    image: str,
    command: Any,
    *,
    prefix: str,
    ready: str | None,
    **kw: Any,
) -> Container:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    container = client.containers.run(
        image, command, name=name, detach=True, labels={"ir-test": "1"}, **kw
    )
    if ready:
        wait_for_log(container, ready)
    return container


@pytest.fixture
def make_container(
    docker_client: docker.DockerClient, docker_bed: DockerBed
) -> Iterator[MakeContainer]:
    """Start a container of the test image: make_container(command, ready="text printed when set up",
    prefix="name-prefix", **docker_run_kwargs). All are removed at teardown."""
    made: list[Container] = []

    def make(
        command: Any, *, ready: str | None = None, prefix: str = "ir-test", **kw: Any
    ) -> Container:
        container = _start(
            docker_client, docker_bed.image, command, prefix=prefix, ready=ready, **kw
        )
        made.append(container)
        return container

    yield make
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


@pytest.fixture(scope="session")
def compromised_expected() -> dict[str, Any]:
    return json.loads((SAMPLE_DIR / "expected.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def compromised_container(
    docker_client: docker.DockerClient, docker_bed: DockerBed, compromised_expected: dict[str, Any]
) -> Iterator[Container]:
    """The sample compromised container, running and set up; shared read-only by the tests
    (a capture must not change it)."""
    container = _start(
        docker_client,
        docker_bed.image,
        compromised_expected["command"],
        prefix="ir-compromised",
        ready=compromised_expected["ready_line"],
        volumes={str(SAMPLE_DIR): {"bind": compromised_expected["mount"], "mode": "ro"}},
    )
    yield container
    container.remove(force=True, v=True)


def sample_dir() -> Path:
    return SAMPLE_DIR
