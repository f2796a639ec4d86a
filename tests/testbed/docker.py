"""The test bed's private Docker engine, started by ``scripts/testbed-docker`` (idempotent).

``ensure_docker()`` returns at once when the engine already answers and the local image exists;
otherwise it runs the script (which installs, starts and builds what is missing). The engine
lives under ``$IR_TESTBED_DIR/docker`` (default /tmp/ir-testbed/docker) and outlives the tests.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "testbed-docker"
IMAGE = "ir-testbed/busybox:latest"


@dataclass(frozen=True)
class DockerBed:
    host: str  # DOCKER_HOST URL: unix:///.../docker.sock
    socket: Path
    image: str  # the local busybox image (nothing is ever pulled)
    state_dir: Path

    def client(self) -> docker.DockerClient:
        """A new high-level client of the test engine (close it when done)."""
        return docker.DockerClient(base_url=self.host, version="auto", timeout=120)

    def api(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.host, version="auto", timeout=120)

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (the `ir` CLI) that should talk to the test engine."""
        return {**os.environ, "DOCKER_HOST": self.host}


def state_dir() -> Path:
    return Path(os.environ.get("IR_TESTBED_DIR", "/tmp/ir-testbed")) / "docker"


def _ready(host: str, image: str) -> bool:
    try:
        client = docker.DockerClient(base_url=host, version="auto", timeout=5)
    except docker.errors.DockerException:
        return False
    try:
        client.ping()
        client.images.get(image)
        return True
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()


def ensure_docker(timeout: float = 900) -> DockerBed:
    """The running test engine; starts it (and installs packages) if needed. Raises
    RuntimeError with the script's output when it cannot."""
    sdir = state_dir()
    sock = sdir / "docker.sock"
    host = f"unix://{sock}"
    if not _ready(host, IMAGE):
        proc = subprocess.run(
            [str(SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{SCRIPT} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        for line in proc.stdout.splitlines():
            if line.startswith("DOCKER_HOST="):
                host = line.split("=", 1)[1]
                sock = Path(host.removeprefix("unix://"))
        if not _ready(host, IMAGE):
            raise RuntimeError(
                f"the test engine at {host} does not answer after {SCRIPT}:\n{proc.stderr}"
            )
    return DockerBed(host=host, socket=sock, image=IMAGE, state_dir=sdir)


if __name__ == "__main__":
    bed = ensure_docker()
    print(f"DOCKER_HOST={bed.host}")
    print(f"IR_TESTBED_IMAGE={bed.image}")
