"""Kubernetes fixtures: one real cluster per session -- control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) and a real node (kubelet, containerd, CNI bridge,
kube-router), all built from Go modules by testbed/k8s/build.sh (tests/testbed/node.py) -- and a
fresh namespace per test."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.testbed.docker import DockerBed
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import BUSYBOX_IMAGE, NODE_NAME, RealNode, start_cluster

NODE = NODE_NAME
#: The image every test pod runs (made locally and imported into the node's containerd).
IMAGE = BUSYBOX_IMAGE


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    with start_cluster(tmp_path_factory.mktemp("k8s")) as node:
        print(f"\ntest bed cluster up: {node.timings}")
        # ir subprocesses of the tests run as ir on the node would: the node's filesystem (its
        # containerd state, kubelet logs, overlay layers) is where its mount namespace shows it.
        previous = os.environ.get("IR_NODE_ROOT")
        os.environ["IR_NODE_ROOT"] = node.host_root
        try:
            yield node
        finally:
            if previous is None:
                os.environ.pop("IR_NODE_ROOT", None)
            else:
                os.environ["IR_NODE_ROOT"] = previous


@pytest.fixture(scope="session")
def control_plane(cluster: RealNode) -> ControlPlane:
    return cluster.cp


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
def node(cluster: RealNode) -> RealNode:
    """The real node (kubelet + containerd); ir reads its filesystem at `node.host_root`."""
    return cluster


@pytest.fixture(scope="session")
def collector_image(node: RealNode) -> str:
    """ir's collector image, built (cached by content) and imported into the node, with the
    collector namespace, service account and RBAC."""
    from tests.testbed.collector import install_collector

    return install_collector(node)


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
