"""The Kubernetes test bed itself: a real control plane plus the node stand-in.

Proves that what later tests rely on holds: Deployments get real Docker
containers, the ReplicaSet controller replaces deleted pods and releases
pods whose labels stop matching, and RBAC denies an unprivileged user.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
import pytest

from tests.fixtures_k8s import NODE, wait_for
from tests.testbed.k8s import ControlPlane
from tests.testbed.node_standin import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    NodeStandIn,
)

kubernetes = pytest.importorskip("kubernetes")
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.k8s


def running_pods(core: Any, namespace: str, selector: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [
        p
        for p in pods
        if p.status.phase == "Running"
        and not p.metadata.deletion_timestamp
        and p.status.container_statuses
        and all(
            s.ready and (s.container_id or "").startswith("docker://")
            for s in p.status.container_statuses
        )
    ]


def create_deployment(kube: Any, namespace: str, name: str, replicas: int = 2) -> None:
    labels = {"app": name}
    kubernetes.client.AppsV1Api(kube).create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.example/web:1.0",
                                "command": ["sh", "-c", "echo started; exec sleep 3600"],
                                "env": [{"name": "ROLE", "value": "web"}],
                            }
                        ],
                    },
                },
            },
        },
    )


def test_limited_user_is_forbidden_and_admin_is_not(control_plane: ControlPlane) -> None:
    assert control_plane.api("GET", "/api/v1/pods")["kind"] == "PodList"
    limited = kubernetes.config.new_client_from_config(
        config_file=str(control_plane.kubeconfig_for("limited"))
    )
    with pytest.raises(ApiException) as denied:
        kubernetes.client.CoreV1Api(limited).list_pod_for_all_namespaces()
    assert denied.value.status == 403
    viewer = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(
            config_file=str(control_plane.kubeconfig_for("viewer"))
        )
    )
    viewer.list_namespaced_pod("default")
    with pytest.raises(ApiException) as denied:
        viewer.delete_namespaced_pod("nothing", "default")
    assert denied.value.status == 403


def test_deployment_runs_real_containers(
    kube: Any, node: NodeStandIn, namespace: str, docker_engine: tuple[docker.DockerClient, str]
) -> None:
    client, image = docker_engine
    core = kubernetes.client.CoreV1Api(kube)
    create_deployment(kube, namespace, "web")
    pods = wait_for(
        "2 running pods",
        lambda: (p := running_pods(core, namespace, "app=web")) and len(p) == 2 and p,
    )
    for pod in pods:
        assert pod.spec.node_name == NODE
        assert pod.status.pod_ip and pod.status.host_ip == "127.0.0.1"
        status = pod.status.container_statuses[0]
        assert status.image_id.startswith("docker-pullable://registry.example/web@sha256:")
        container = client.containers.get(status.container_id.removeprefix("docker://"))
        assert container.status == "running"
        assert container.labels[LABEL_POD_NAME] == pod.metadata.name
        assert container.labels[LABEL_POD_NAMESPACE] == namespace
        assert container.labels[LABEL_POD_UID] == pod.metadata.uid
        assert container.labels[LABEL_CONTAINER_NAME] == "web"
        assert container.name == f"k8s_web_{pod.metadata.name}_{namespace}_{pod.metadata.uid}_0"
        assert container.image.id == client.images.get(image).id
        assert "ROLE=web" in container.attrs["Config"]["Env"]
        assert b"started" in container.logs()
        conditions = {c.type: c.status for c in pod.status.conditions}
        assert all(
            conditions[t] == "True"
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        )
    assert not node.errors


def test_deleted_pod_is_replaced(
    kube: Any, node: NodeStandIn, namespace: str, docker_engine: tuple[docker.DockerClient, str]
) -> None:
    client, _ = docker_engine
    core = kubernetes.client.CoreV1Api(kube)
    create_deployment(kube, namespace, "api")
    pods = wait_for(
        "2 running pods",
        lambda: (p := running_pods(core, namespace, "app=api")) and len(p) == 2 and p,
    )
    victim = pods[0]
    victim_cid = victim.status.container_statuses[0].container_id.removeprefix("docker://")
    core.delete_namespaced_pod(victim.metadata.name, namespace)  # graceful, as kubectl does

    def replaced() -> bool:
        now = running_pods(core, namespace, "app=api")
        return len(now) == 2 and victim.metadata.uid not in {p.metadata.uid for p in now}

    wait_for("a replacement pod", replaced)

    def gone() -> bool:
        try:
            core.read_namespaced_pod(victim.metadata.name, namespace)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for("the deleted pod to be finalized", gone)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(victim_cid)


def test_relabelled_pod_is_orphaned_and_replaced(
    kube: Any, node: NodeStandIn, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(kube)
    create_deployment(kube, namespace, "db")
    pods = wait_for(
        "2 running pods",
        lambda: (p := running_pods(core, namespace, "app=db")) and len(p) == 2 and p,
    )
    suspect = pods[0]
    assert [o.kind for o in suspect.metadata.owner_references] == ["ReplicaSet"]
    core.patch_namespaced_pod(
        suspect.metadata.name, namespace, {"metadata": {"labels": {"app": "db-quarantined"}}}
    )

    def orphaned() -> Any:
        pod = core.read_namespaced_pod(suspect.metadata.name, namespace)
        return not pod.metadata.owner_references and pod

    released = wait_for("the ReplicaSet to release the pod", orphaned)
    assert released.status.phase == "Running"
    wait_for("a replacement pod", lambda: len(running_pods(core, namespace, "app=db")) == 2)
    still = running_pods(core, namespace, "app=db-quarantined")
    assert [p.metadata.uid for p in still] == [suspect.metadata.uid]
