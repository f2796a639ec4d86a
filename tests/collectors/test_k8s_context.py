"""The Kubernetes context collector (ir/cluster/context.py, `k8s-context`) on the test bed's real
cluster: of a Deployment's pod on the real node, with a ConfigMap and Secrets referenced, its own
service account, RBAC, a Service and a NetworkPolicy, the pod as served, its owners, images, the
names of the ConfigMaps and Secrets it references, its events, node, service account, the RBAC,
Services and NetworkPolicies that concern it -- and, read as the test bed's `viewer` (ClusterRole
`view`, which may not read nodes or RBAC objects), one read refused costs only its own artifact,
with the apiserver's own refusal recorded."""

from __future__ import annotations

import contextlib
import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.cluster.context import PodAsk
from ir.cluster.kube import Kube, connect
from tests.collectors.capture import pod_capture
from tests.fixtures_k8s import NODE, wait_for
from tests.k8s_helpers import create, deployment, ready_pods
from tests.testbed.deploy import RBAC, apply
from tests.testbed.k8s import ControlPlane

pytestmark = [pytest.mark.k8s]

CONTEXT = [
    "k8s/pod.json",
    "k8s/owners.json",
    "k8s/images.json",
    "k8s/references.json",
    "k8s/events.json",
    "k8s/node.json",
    "k8s/serviceaccount.json",
    "k8s/rbac.json",
    "k8s/services.json",
    "k8s/networkpolicies.json",
]
ONLY_CONTEXT = PodAsk(collectors=("kubernetes",), api_logs=False)
# what ClusterRole `view` may not read of what the collector reads: nodes, and RBAC objects
REFUSED = {"k8s/node.json", "k8s/rbac.json"}


def _in(ns: str, kind: str, name: str, **rest: Any) -> dict[str, Any]:
    api = "rbac.authorization.k8s.io/v1" if kind in ("Role", "RoleBinding") else "v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns}, **rest}


def _binding(kind: str, name: str, role: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.split("/")[0],
                    "name": role.split("/")[1]},
        "subjects": [subject],
    }  # fmt: skip


@pytest.fixture
def web(control_plane: ControlPlane, namespace: str) -> Iterator[dict[str, Any]]:
    """A Deployment `web` (one replica, service account `web`) whose pod references ConfigMap
    `web-config` (a volume and an env key), Secret `web-env` (envFrom) and Secret `registry-pull`
    (imagePullSecrets); RoleBinding `web-read` grants `web` Role `config-reader`, RoleBinding
    `ops` a user (not the pod's); ClusterRoleBinding `<ns>-web` grants `web` ClusterRole `view`
    (removed after: it is not in the namespace); Services `web` (selecting the pod) and `db`
    (not), NetworkPolicy `web-ingress`. Yields the pod as served once Ready and Started."""
    cp, ns = control_plane, namespace
    sa = {"kind": "ServiceAccount", "name": "web", "namespace": ns}
    for doc in (
        _in(ns, "ConfigMap", "web-config", data={"m": "prod"}),
        _in(ns, "Secret", "web-env", stringData={"TOKEN": "s3cr3t"}),
        _in(ns, "Secret", "registry-pull", type="kubernetes.io/dockerconfigjson",
            stringData={".dockerconfigjson": '{"auths": {}}'}),
        _in(ns, "ServiceAccount", "web"),
        _in(ns, "Role", "config-reader", rules=[
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
        {**_binding("RoleBinding", "web-read", "Role/config-reader", sa),
         "metadata": {"name": "web-read", "namespace": ns}},
        {**_binding("RoleBinding", "ops", "Role/config-reader",
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ops"}),
         "metadata": {"name": "ops", "namespace": ns}},
    ):  # fmt: skip
        apply(cp, doc)
    web = deployment("web", "echo ready; exec sleep 3600", replicas=1, labels={"app": "web"})
    spec = web["spec"]["template"]["spec"]
    spec["serviceAccountName"] = "web"
    spec["imagePullSecrets"] = [{"name": "registry-pull"}]
    spec["volumes"] = [{"name": "config", "configMap": {"name": "web-config"}}]
    (c,) = spec["containers"]
    c["envFrom"] = [{"secretRef": {"name": "web-env"}}]
    c["env"] = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "m"}}}
    ]
    c["volumeMounts"] = [{"name": "config", "mountPath": "/config"}]
    create(cp, ns, web)
    for name, app in (("web", "web"), ("db", "db")):
        create(cp, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                        "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}})  # fmt: skip
    create(cp, ns, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-ingress"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
    })  # fmt: skip
    cluster_binding = _binding("ClusterRoleBinding", f"{ns}-web", "ClusterRole/view", sa)
    apply(cp, cluster_binding)
    try:
        (pod,) = wait_for("the web pod Ready", lambda: ready_pods(cp, ns, "app=web"), 90)
        uid = pod["metadata"]["uid"]
        events = f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.uid%3D{uid}"
        wait_for(  # the kubelet posts its events on its own time
            "the pod's Started event",
            lambda: any(e["reason"] == "Started" for e in cp.api("GET", events)["items"]),
        )
        yield pod
    finally:
        with contextlib.suppress(Exception):
            cp.api("DELETE", f"{RBAC}/clusterrolebindings/{ns}-web")


def test_the_pods_context_at_the_top_of_the_bundle(
    ir_kube: Kube, web: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    ns, name, uid = namespace, web["metadata"]["name"], web["metadata"]["uid"]
    with pod_capture(ir_kube, ns, name, tmp_path, ONLY_CONTEXT) as reader:
        m = reader.manifest
        (entry,) = m.collectors
        assert (entry.name, entry.status, entry.container) == ("k8s-context", "ok", None)
        assert [a.name for a in m.artifacts] == entry.artifacts == CONTEXT
        pod = reader.read_json("k8s/pod.json")
        assert pod["metadata"]["uid"] == uid == m.target["uid"]
        assert pod["metadata"]["resourceVersion"] and pod["spec"]["nodeName"] == NODE
        owners = reader.read_json("k8s/owners.json")
        assert [o["kind"] for o in owners] == ["ReplicaSet", "Deployment"]
        assert owners[0]["metadata"]["uid"] == web["metadata"]["ownerReferences"][0]["uid"]
        (image,) = reader.read_json("k8s/images.json")
        (served,) = pod["status"]["containerStatuses"]
        assert (image["container"], image["kind"]) == ("web", "app")
        assert (image["image_id"], image["container_id"]) == (
            served["imageID"],
            served["containerID"],
        )
        assert "sha256:" in image["image_id"]
        assert reader.read_json("k8s/references.json") == {
            "configmaps": ["kube-root-ca.crt", "web-config"],
            "secrets": ["registry-pull", "web-env"],
        }
        assert b"s3cr3t" not in b"".join(
            b"".join(reader.iter_artifact(a)) for a in CONTEXT
        )  # names only
        events = reader.read_json("k8s/events.json")
        assert {e["involvedObject"]["uid"] for e in events} == {uid}
        assert {"Scheduled", "Started"} <= {e["reason"] for e in events}
        assert reader.read_json("k8s/node.json")["metadata"]["name"] == NODE
        account = reader.read_json("k8s/serviceaccount.json")
        assert (account["metadata"]["name"], account["metadata"]["namespace"]) == ("web", ns)
        rbac = reader.read_json("k8s/rbac.json")
        assert rbac["service_account"] == f"{ns}/web"
        assert [b["metadata"]["name"] for b in rbac["role_bindings"]] == ["web-read"]
        crbs = [b["metadata"]["name"] for b in rbac["cluster_role_bindings"]]
        # the test bed's own binding of the user `viewer` is not the pod's; the defaults that
        # bind every service account (system:serviceaccounts, system:authenticated) are
        assert f"{ns}-web" in crbs and "ir-testbed-viewer" not in crbs
        roles = {(r["kind"], r["metadata"]["name"]) for r in rbac["roles"]}
        assert {("Role", "config-reader"), ("ClusterRole", "view")} <= roles
        assert [s["metadata"]["name"] for s in reader.read_json("k8s/services.json")] == ["web"]
        policies = reader.read_json("k8s/networkpolicies.json")
        assert [p["metadata"]["name"] for p in policies] == ["web-ingress"]
        assert [(a.action, a.target, a.detail) for a in m.actions] == [
            ("k8s-get", f"pod {ns}/{name}", {"path": f"/api/v1/namespaces/{ns}/pods/{name}"})
        ]


def _refusal(cp: ControlPlane, path: str) -> str:
    """The apiserver's own answer to `viewer` reading `path`: its Status message (a 403)."""
    try:
        cp.api("GET", path, user="viewer")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403, exc
        return str(json.loads(exc.read())["message"])
    raise AssertionError(f"viewer may read {path}")


def test_a_refused_read_costs_only_its_artifact(
    control_plane: ControlPlane, web: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    """ir connected as `viewer`: of what the collector reads, `view` refuses the node and the
    RBAC objects (the first RBAC read, the namespace's RoleBindings); each costs its own artifact
    only, with the apiserver's refusal recorded on it, and the rest is whole -- the references
    too, though `view` may not read Secrets: the collector takes their names from the pod."""
    cp, ns, name = control_plane, namespace, web["metadata"]["name"]
    refused = {
        "k8s/node.json": _refusal(cp, f"/api/v1/nodes/{NODE}"),
        "k8s/rbac.json": _refusal(cp, f"{RBAC}/namespaces/{ns}/rolebindings"),
    }
    _refusal(cp, f"/api/v1/namespaces/{ns}/secrets/web-env")
    viewer = connect(str(cp.kubeconfig_for("viewer")))
    with pod_capture(viewer, ns, name, tmp_path, ONLY_CONTEXT) as reader:
        (entry,) = reader.manifest.collectors
        print(f"\nviewer's refusals: {json.dumps(refused, indent=1)}")
        assert entry.status == "partial" and refused["k8s/node.json"] in (entry.error or "")
        assert entry.artifacts == CONTEXT
        assert len(entry.notes) == 2
        for note, (artifact, message) in zip(entry.notes, refused.items(), strict=True):
            assert note.startswith(f"{artifact}: permission denied: ") and message in note
            failed = reader.entry(artifact)
            assert failed.status == "failed" and message in (failed.error or "")
            assert reader.read_json(artifact) is None
        others = [a for a in reader.manifest.artifacts if a.name not in REFUSED]
        assert [a.name for a in others] == [n for n in CONTEXT if n not in REFUSED]
        assert all(a.status == "ok" for a in others)
        assert reader.read_json("k8s/references.json")["secrets"] == ["registry-pull", "web-env"]
        assert [s["metadata"]["name"] for s in reader.read_json("k8s/services.json")] == ["web"]
