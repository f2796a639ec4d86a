"""The Kubernetes test bed itself: a real control plane and a real node (kubelet, containerd, CNI
bridge, kube-router; tests/testbed/node.py).

Proves that what later tests rely on holds: Deployments are scheduled and run as containerd
containers, the kubelet serves logs and exec through the apiserver, the ReplicaSet controller
replaces deleted pods and releases pods whose labels stop matching, NetworkPolicies are enforced
(traffic refused, then allowed again), and RBAC denies an unprivileged user.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures_k8s import NODE, wait_for
from tests.k8s_helpers import (
    OK_SERVER,
    bare_pod,
    create,
    kubectl_exec,
    wait_ready,
    wait_traffic,
)
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import NODE_IP, RealNode

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
            s.ready and (s.container_id or "").startswith("containerd://")
            for s in p.status.container_statuses
        )
    ]


def create_deployment(kube: Any, namespace: str, name: str, replicas: int = 2) -> None:
    from tests.k8s_helpers import deployment

    doc = deployment(
        name,
        "echo started; exec sleep 3600",
        replicas=replicas,
        env=[{"name": "ROLE", "value": "web"}],
    )
    kubernetes.client.AppsV1Api(kube).create_namespaced_deployment(namespace, doc)


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
    kube: Any, control_plane: ControlPlane, node: RealNode, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(kube)
    create_deployment(kube, namespace, "web")
    pods = wait_for(
        "2 running pods",
        lambda: (p := running_pods(core, namespace, "app=web")) and len(p) == 2 and p,
        90,
    )
    listed = node.ctr("containers", "list", "-q").stdout.split()
    for pod in pods:
        assert pod.spec.node_name == NODE  # bound by kube-scheduler, not by the test
        assert pod.status.pod_ip.startswith("10.213.0.") and pod.status.host_ip == NODE_IP
        status = pod.status.container_statuses[0]
        cid = status.container_id.removeprefix("containerd://")
        assert cid in listed  # a real containerd container on the node
        info = node.ctr("containers", "info", cid).stdout
        assert "ROLE=web" in info and "io.kubernetes.cri.sandbox-name" in info
        # logs come from the kubelet through the apiserver
        logs = core.read_namespaced_pod_log(pod.metadata.name, namespace)
        assert "started" in logs
        conditions = {c.type: c.status for c in pod.status.conditions}
        assert all(
            conditions[t] == "True"
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        )
    done = kubectl_exec(control_plane, namespace, pods[0].metadata.name, ["cat", "/etc/motd"])
    assert done.returncode == 0 and "ir test bed image" in done.stdout, done.stderr


def test_deleted_pod_is_replaced(kube: Any, node: RealNode, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube)
    create_deployment(kube, namespace, "api")
    pods = wait_for(
        "2 running pods",
        lambda: (p := running_pods(core, namespace, "app=api")) and len(p) == 2 and p,
        90,
    )
    victim = pods[0]
    victim_cid = victim.status.container_statuses[0].container_id.removeprefix("containerd://")
    core.delete_namespaced_pod(victim.metadata.name, namespace)  # graceful, as kubectl does

    def replaced() -> bool:
        now = running_pods(core, namespace, "app=api")
        return len(now) == 2 and victim.metadata.uid not in {p.metadata.uid for p in now}

    wait_for("a replacement pod", replaced, 90)

    def gone() -> bool:
        try:
            core.read_namespaced_pod(victim.metadata.name, namespace)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for("the deleted pod to be finalized", gone)
    wait_for(
        "containerd to remove the container",
        lambda: victim_cid not in node.ctr("containers", "list", "-q").stdout.split(),
    )


def test_relabelled_pod_is_orphaned_and_replaced(kube: Any, node: RealNode, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube)
    create_deployment(kube, namespace, "db")
    pods = wait_for(
        "2 running pods",
        lambda: (p := running_pods(core, namespace, "app=db")) and len(p) == 2 and p,
        90,
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
    wait_for("a replacement pod", lambda: len(running_pods(core, namespace, "app=db")) == 2, 90)
    still = running_pods(core, namespace, "app=db-quarantined")
    assert [p.metadata.uid for p in still] == [suspect.metadata.uid]


def test_network_policy_is_enforced(
    control_plane: ControlPlane, node: RealNode, namespace: str
) -> None:
    """kube-router enforces NetworkPolicies: a deny-all policy on a server pod refuses a client
    pod's connection and the server's own egress; deleting the policy lets both through again."""
    cp, ns = control_plane, namespace
    create(cp, ns, bare_pod("server", OK_SERVER.format(port=8080), {"role": "server"}))
    create(cp, ns, bare_pod("client", OK_SERVER.format(port=8080), {"role": "client"}))
    server = wait_ready(cp, ns, "server")
    client = wait_ready(cp, ns, "client")
    server_ip, client_ip = server["status"]["podIP"], client["status"]["podIP"]
    wait_traffic(cp, ns, "client", server_ip, 8080, allowed=True)
    wait_traffic(cp, ns, "server", client_ip, 8080, allowed=True)
    create(
        cp,
        ns,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny-server"},
            "spec": {
                "podSelector": {"matchLabels": {"role": "server"}},
                "policyTypes": ["Ingress", "Egress"],
            },
        },
    )
    refused_in = wait_traffic(cp, ns, "client", server_ip, 8080, allowed=False)
    wait_traffic(cp, ns, "server", client_ip, 8080, allowed=False)
    cp.api("DELETE", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/deny-server")
    wait_traffic(cp, ns, "client", server_ip, 8080, allowed=True)
    wait_traffic(cp, ns, "server", client_ip, 8080, allowed=True)
    print(f"\ndeny-all -> connection refused after {refused_in:.2f} s")
