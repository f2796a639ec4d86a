"""Kubernetes fixtures: one real control plane per session (etcd, kube-apiserver,
kube-controller-manager built from Go modules), the test-only node stand-in running pods as real
containers on the test Docker engine, and a fresh namespace per test."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.testbed.docker import DockerBed
from tests.testbed.k8s import ControlPlane, start_control_plane
from tests.testbed.node_standin import NodeStandIn

NODE = "standin-node-1"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with start_control_plane(tmp_path_factory.mktemp("k8s")) as cp:
        yield cp


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Any:
    """A kubernetes-client ApiClient for the admin (for test set-up, not for ir itself)."""
    import kubernetes

    return kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def docker_engine(docker_bed: DockerBed) -> tuple[Any, str]:
    """(client, local busybox image) of the test Docker engine."""
    return docker_bed.client(), docker_bed.image


@pytest.fixture(scope="session")
def node(kube: Any, docker_engine: tuple[Any, str]) -> Iterator[NodeStandIn]:
    client, image = docker_engine
    with NodeStandIn(kube, client, NODE, lambda _name: image) as standin:
        yield standin


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.api(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    yield name
    # best-effort clean-up; the control plane goes at session end
    with contextlib.suppress(Exception):
        control_plane.api("DELETE", f"/api/v1/namespaces/{name}")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)
