"""A stolen ir token, tried on the real apiserver: every escalation is refused by the apiserver
itself (RBAC and the ValidatingAdmissionPolicies of deploy/kustomize/base/admission.yaml), not by
ir's code, while what ir's steps need is still admitted.

The shipped identities, RBAC and policies are applied from the repo's manifests
(tests/testbed/deploy.py). The worst case is the ir-serve token acting as ir-responder (what
ir serve does with --as, so everything ir-responder may do); the ir-serve token alone and the node
collector's token are tried too. Writes that should be admitted are sent as server-side dry runs
(dryRun=All: admission runs, nothing is stored), so the positive controls change nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest

from ir.cluster.collector import CollectorSettings, collector_manifest
from ir.cluster.kube import connect
from ir.cluster.probe import probe_pod
from ir.cluster.resolve import resolve_pod
from ir.cluster.respond import deny_all_policy
from tests.fixtures_k8s import IMAGE, wait_for
from tests.resilience.faults import repo_path
from tests.test_capture_pod import deploy_web, ready_pods
from tests.testbed.deploy import RESPONDER, Identity, install_shipped
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import NODE_NAME

pytestmark = [pytest.mark.k8s]

MERGE = "application/merge-patch+json"
NP = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
PODS = "/api/v1/namespaces/{ns}/pods"
COLLECTORS = "ir-collectors"
RUNS = "/apis/ir.forensics/v1/namespaces/ir-system/irruns"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/ir-system/leases"


@dataclass
class Scene:
    """The objects the attempts aim at: a workload pod, a quarantined one, a policy that is not
    ir's, a running collector pod, the node."""

    cp: ControlPlane
    ns: str
    pod: dict[str, Any]
    quarantined: str
    collector: str
    collector_image: str
    kube: Any
    identities: dict[str, Identity] = field(default_factory=dict)

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])


@pytest.fixture(scope="module")
def scene(control_plane: ControlPlane, collector_image: str, node: Any) -> Iterator[Scene]:
    cp = control_plane
    kube = connect(str(cp.kubeconfig))  # an administrator's view, to build ir's own objects
    install_shipped(cp, collector_image=collector_image, probe_image=IMAGE)
    ns = f"esc-{uuid.uuid4().hex[:6]}"
    cp.api(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    )
    deploy_web(cp, ns, replicas=2)
    pods = wait_for(
        "2 ready web pods", lambda: (lambda p: p if len(p) == 2 else None)(ready_pods(cp, ns)), 120
    )
    target, other = pods
    # an administrator quarantines one pod as ir would (so lifting it can be tried)
    _merge(
        cp,
        f"/api/v1/namespaces/{ns}/pods/{other['metadata']['name']}",
        {"metadata": {"labels": {"ir.forensics/quarantine": "qtest"}}},
    )
    cp.api(
        "POST",
        NP.format(ns=ns),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "app-owned"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    )
    settings = CollectorSettings(collector_image, namespace=COLLECTORS)
    resolved = resolve_pod(kube, ns, target["metadata"]["name"])
    collector = collector_manifest(
        f"ir-esc-{uuid.uuid4().hex[:6]}", resolved, "containerd", settings, 600
    )
    cp.api("POST", PODS.format(ns=COLLECTORS), collector)  # as an administrator
    name = collector["metadata"]["name"]
    wait_for(
        "the collector pod running",
        lambda: (
            cp.api("GET", PODS.format(ns=COLLECTORS) + "/" + name)["status"].get("phase")
            == "Running"
        ),
        90,
    )
    s = Scene(cp, ns, target, other["metadata"]["name"], name, collector_image, kube)
    s.identities = {
        "responder": Identity.of(cp, "ir-system", "ir-serve", act_as=RESPONDER),
        "serve": Identity.of(cp, "ir-system", "ir-serve"),
        "collector": Identity.of(cp, COLLECTORS, "ir-node-collector"),
    }
    yield s
    for run in cp.api("GET", RUNS)["items"]:  # the runs the escalations were tried on
        if run["spec"].get("acceptedBy") == "replica/1":
            cp.api("DELETE", f"{RUNS}/{run['metadata']['name']}")
    # the collector tests count the collector pods on the node: leave none behind
    cp.api("DELETE", PODS.format(ns=COLLECTORS) + f"/{name}?gracePeriodSeconds=0")
    cp.api("DELETE", f"/api/v1/namespaces/{ns}")
    wait_for(
        "the scene's collector pod gone",
        lambda: (
            name
            not in [
                p["metadata"]["name"] for p in cp.api("GET", PODS.format(ns=COLLECTORS))["items"]
            ]
        ),
        60,
    )


def _merge(cp: ControlPlane, path: str, body: Any) -> None:
    Identity(cp, "admin", cp.tokens["admin"]).request("PATCH", path, body, content_type=MERGE)


def _dry(path: str) -> str:
    return path + ("&" if "?" in path else "?") + "dryRun=All"


def _exec(ns: str, pod: str, command: list[str]) -> str:
    query = [("command", c) for c in command] + [("stdout", "true")]
    return f"/api/v1/namespaces/{ns}/pods/{pod}/exec?{urlencode(query)}"


def _quarantine_policy(s: Scene, ns: str, **spec: Any) -> dict[str, Any]:
    target = resolve_pod(s.kube, s.ns, s.pod_name)
    doc = deny_all_policy("ir-quarantine-qx1", "qx1", target, "test", ())
    doc["metadata"]["namespace"] = ns
    doc["spec"].update(spec)
    return doc


def _probe(s: Scene, ns: str, **changes: Any) -> dict[str, Any]:
    target = resolve_pod(s.kube, s.ns, s.pod_name)
    doc = probe_pod(f"ir-probe-{uuid.uuid4().hex[:5]}", target, IMAGE, "10.0.0.1", 8080)
    doc["metadata"]["namespace"] = ns
    for key, value in changes.items():
        doc["spec"][key] = value
    return doc


def _collector(s: Scene, **changes: Any) -> dict[str, Any]:
    target = resolve_pod(s.kube, s.ns, s.pod_name)
    doc = collector_manifest(
        f"ir-c-{uuid.uuid4().hex[:5]}",
        target,
        "containerd",
        CollectorSettings(s.collector_image, namespace=COLLECTORS),
        600,
    )
    for key, value in changes.items():
        key_path = key.split(".")
        node = doc
        for part in key_path[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        node[key_path[-1]] = value
    return doc


def _run(s: Scene, target: str = "", name: str = "") -> dict[str, Any]:
    """An IrRun as ir serve records one (ir.cluster.runs), aimed at `target`."""
    return {
        "apiVersion": "ir.forensics/v1",
        "kind": "IrRun",
        "metadata": {"name": name or "run-" + uuid.uuid4().hex + "0" * 8},
        "spec": {
            "runId": uuid.uuid4().hex,
            "playbook": "shell-in-container",
            "target": target or f"pod/{s.ns}/{s.pod_name}",
            "alert": {"source": "falco"},
            "acceptedAt": 1.0,
            "acceptedBy": "replica/1",
        },
    }


def _stored_run(s: Scene, phase: str) -> str:
    """The path of a run (created by an administrator) in `phase`: Running or Succeeded."""
    admin = Identity(s.cp, "admin", s.cp.tokens["admin"])
    doc = _run(s)
    status, text = admin.request("POST", RUNS, doc)
    assert status == 201, text
    path = f"{RUNS}/{doc['metadata']['name']}"
    status, text = admin.request(
        "PATCH", path + "/status", {"status": {"phase": phase, "attempt": 1}}, content_type=MERGE
    )
    assert status == 200, text
    return path


#: the one form of a node capture the exec policy admits (ir.cluster.nodecapture)
WHOLE_NODE = [
    "ir", "capture", "container", "--whole-node", "--name", "node-x", "--store", "/work/ab12",
    "--case", "C-1", "-o", "json", "--collectors", "metadata,processes,network",
]  # fmt: skip

# (what is tried, identity, request builder, the words the refusal must carry)
Attempt = tuple[str, str, Callable[[Scene], tuple[str, str, Any, str]], str]
POD = "/api/v1/namespaces/{ns}/pods/{pod}"
ESCALATIONS: list[Attempt] = [
    (
        "change a pod's image (code execution in any pod)",
        "responder",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.pod_name),
            {"spec": {"containers": [{"name": "web", "image": "evil:latest"}]}},
            "application/strategic-merge-patch+json",
        ),
        "may not change a pod's spec",
    ),
    (
        "add a label that is not ir's (join a Service or a looser policy)",
        "responder",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.pod_name),
            {"metadata": {"labels": {"role": "admin"}}},
            MERGE,
        ),
        "only labels under ir.forensics/",
    ),
    (
        "drop the labels of a pod that is not quarantined",
        "responder",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.pod_name),
            {"metadata": {"labels": {"app": None}}},
            MERGE,
        ),
        "only once the pod is quarantined",
    ),
    (
        "lift a quarantine (remove the quarantine label)",
        "responder",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.quarantined),
            {"metadata": {"labels": {"ir.forensics/quarantine": None}}},
            MERGE,
        ),
        "may not lift a quarantine",
    ),
    (
        "change a pod's annotations that are not ir's",
        "responder",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.pod_name),
            {"metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "x"}}},
            MERGE,
        ),
        "only annotations under ir.forensics/",
    ),
    (
        "act in kube-system (an ir-shaped quarantine policy)",
        "responder",
        lambda s: (
            "POST",
            NP.format(ns="kube-system"),
            _quarantine_policy(s, "kube-system"),
            "application/json",
        ),
        "protected namespace kube-system",
    ),
    (
        "act in ir-system (ir's own namespace)",
        "responder",
        lambda s: ("POST", PODS.format(ns="ir-system"), _probe(s, "ir-system"), "application/json"),
        "protected namespace ir-system",
    ),
    (
        "create a NetworkPolicy that is not ir's",
        "responder",
        lambda s: (
            "POST",
            NP.format(ns=s.ns),
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "allow-all"},
                "spec": {"podSelector": {}, "ingress": [{}]},
            },
            "application/json",
        ),
        "named ir-quarantine-",
    ),
    (
        "an ir-named policy that admits all ingress",
        "responder",
        lambda s: (
            "POST",
            NP.format(ns=s.ns),
            _quarantine_policy(s, s.ns, ingress=[{}]),
            "application/json",
        ),
        "admits no ingress",
    ),
    (
        "an ir-named policy that lets everything out",
        "responder",
        lambda s: (
            "POST",
            NP.format(ns=s.ns),
            _quarantine_policy(s, s.ns, egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]),
            "application/json",
        ),
        "named CIDRs",
    ),
    (
        "delete a NetworkPolicy ir did not create",
        "responder",
        lambda s: ("DELETE", NP.format(ns=s.ns) + "/app-owned", None, "application/json"),
        'cannot delete resource "networkpolicies"',
    ),
    (
        "create a privileged pod in a workload namespace",
        "responder",
        lambda s: (
            "POST",
            PODS.format(ns=s.ns),
            _collector(s, **{"metadata.namespace": s.ns}),
            "application/json",
        ),
        "only its enforcement probe pod",
    ),
    (
        "a probe-shaped pod that mounts a service-account token",
        "responder",
        lambda s: (
            "POST",
            PODS.format(ns=s.ns),
            _probe(s, s.ns, automountServiceAccountToken=True),
            "application/json",
        ),
        "only its enforcement probe pod",
    ),
    (
        "a collector pod that mounts the node's root",
        "responder",
        lambda s: (
            "POST",
            PODS.format(ns=COLLECTORS),
            _collector(s, **{"spec.volumes.1.hostPath.path": "/"}),
            "application/json",
        ),
        "admits only ir's node collector pod",
    ),
    (
        "a collector pod running another image",
        "responder",
        lambda s: (
            "POST",
            PODS.format(ns=COLLECTORS),
            _collector(s, **{"spec.containers.0.image": "evil:latest"}),
            "application/json",
        ),
        "admits only ir's node collector pod",
    ),
    (
        "a collector pod aimed at a kube-system pod",
        "responder",
        lambda s: (
            "POST",
            PODS.format(ns=COLLECTORS),
            _collector(
                s,
                **{
                    "metadata.annotations": {
                        "ir.forensics/collects": "kube-system/coredns (0f0f0f0f-0000-0000-0000-000000000000)"
                    }
                },
            ),
            "application/json",
        ),
        "admits only ir's node collector pod",
    ),
    (
        "a shell in ir's privileged collector (root on the node)",
        "responder",
        lambda s: (
            "POST",
            _exec(COLLECTORS, s.collector, ["sh", "-c", "id"]),
            None,
            "application/json",
        ),
        "exec only its collector commands",
    ),
    (
        "ir's capture of the node's root filesystem from the collector",
        "responder",
        lambda s: (
            "POST",
            _exec(
                COLLECTORS, s.collector, ["ir", "capture", "container", "--pid", "1", "--root-walk"]
            ),
            None,
            "application/json",
        ),
        "exec only its collector commands",
    ),
    (
        "ir's node capture with the node's files (--whole-node, filesystem)",
        "responder",
        lambda s: (
            "POST",
            _exec(COLLECTORS, s.collector, [*WHOLE_NODE[:-1], "metadata,filesystem"]),
            None,
            "application/json",
        ),
        "exec only its collector commands",
    ),
    (
        "ir's node capture with environment values kept",
        "responder",
        lambda s: (
            "POST",
            _exec(COLLECTORS, s.collector, [*WHOLE_NODE, "--include-env"]),
            None,
            "application/json",
        ),
        "exec only its collector commands",
    ),
    (
        "exec into a workload pod",
        "responder",
        lambda s: ("POST", _exec(s.ns, s.pod_name, ["sh"]), None, "application/json"),
        'cannot create resource "pods/exec"',
    ),
    (
        "an ephemeral (debug) container in a workload pod",
        "responder",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.pod_name) + "/ephemeralcontainers",
            {"spec": {"ephemeralContainers": [{"name": "x", "image": IMAGE}]}},
            "application/strategic-merge-patch+json",
        ),
        'cannot patch resource "pods/ephemeralcontainers"',
    ),
    (
        "delete a pod that is not ir's",
        "responder",
        lambda s: ("DELETE", POD.format(ns=s.ns, pod=s.pod_name), None, "application/json"),
        "only its own collector and probe pods",
    ),
    (
        "label a node (attract workloads to it)",
        "responder",
        lambda s: (
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}",
            {"metadata": {"labels": {"node-role.kubernetes.io/secure": "true"}}},
            MERGE,
        ),
        "only node labels and annotations under ir.forensics/",
    ),
    (
        "taint a node",
        "responder",
        lambda s: (
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}",
            {"spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}},
            MERGE,
        ),
        "no node spec field but unschedulable",
    ),
    (
        "delete a node",
        "responder",
        lambda s: ("DELETE", f"/api/v1/nodes/{NODE_NAME}", None, "application/json"),
        'cannot delete resource "nodes"',
    ),
    (
        "read a Secret",
        "responder",
        lambda s: ("GET", f"/api/v1/namespaces/{s.ns}/secrets", None, "application/json"),
        'cannot list resource "secrets"',
    ),
    (
        "bind itself cluster-admin",
        "responder",
        lambda s: (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "own"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "ir-responder", "namespace": "ir-system"}
                ],
            },
            "application/json",
        ),
        'cannot create resource "clusterrolebindings"',
    ),
    (
        "mint a token for another service account",
        "responder",
        lambda s: (
            "POST",
            "/api/v1/namespaces/kube-system/serviceaccounts/default/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
            "application/json",
        ),
        'cannot create resource "serviceaccounts/token"',
    ),
    (
        "ir-serve's own token: read pods",
        "serve",
        lambda s: ("GET", PODS.format(ns=s.ns), None, "application/json"),
        'cannot list resource "pods"',
    ),
    (
        "ir-serve's own token: act as kube-system's controller account",
        "serve",
        lambda s: (
            "GET",
            "/api/v1/namespaces/kube-system/pods",
            None,
            "impersonate:system:serviceaccount:kube-system:replicaset-controller",
        ),
        "cannot impersonate",
    ),
    (
        "ir-serve's own token: record a run aimed at kube-system",
        "serve",
        lambda s: ("POST", RUNS, _run(s, "pod/kube-system/etcd-0"), "application/json"),
        "names a playbook and a target outside the protected namespaces",
    ),
    (
        "ir-serve's own token: a run object not named as ir names them",
        "serve",
        lambda s: ("POST", RUNS, _run(s, name="my-run"), "application/json"),
        "an ir run is named run-<40 hex>",
    ),
    (
        "ir-serve's own token: change an accepted run's target",
        "serve",
        lambda s: (
            "PATCH",
            _stored_run(s, "Running"),
            {"spec": {"target": "pod/shop/other"}},
            MERGE,
        ),
        'cannot patch resource "irruns"',
    ),
    (
        "ir-serve's own token: delete an open run (its alert would be lost)",
        "serve",
        lambda s: ("DELETE", _stored_run(s, "Running"), None, "application/json"),
        "an ir run is deleted only once finished",
    ),
    (
        "ir-serve's own token: reopen a finished run (to run it again)",
        "serve",
        lambda s: (
            "PATCH",
            _stored_run(s, "Succeeded") + "/status",
            {"status": {"phase": "Pending"}},
            MERGE,
        ),
        "a finished ir run is never reopened or changed",
    ),
    (
        "ir-serve's own token: a Lease in ir-system that is not a rate limit",
        "serve",
        lambda s: (
            "POST",
            LEASES,
            {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"}},
            "application/json",
        ),
        "ir may not write in protected namespace ir-system",
    ),
    (
        "ir-serve as ir-responder: record a run",
        "responder",
        lambda s: ("POST", RUNS, _run(s), "application/json"),
        'cannot create resource "irruns"',
    ),
    (
        "the collector's token: create a pod",
        "collector",
        lambda s: ("POST", PODS.format(ns=COLLECTORS), _collector(s), "application/json"),
        'cannot create resource "pods"',
    ),
    (
        "the collector's token: label a pod",
        "collector",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.pod_name),
            {"metadata": {"labels": {"ir.forensics/x": "y"}}},
            MERGE,
        ),
        'cannot patch resource "pods"',
    ),
    (
        "the collector's token: exec into the collector",
        "collector",
        lambda s: (
            "POST",
            _exec(COLLECTORS, s.collector, ["ir", "collector", "send", "/work/x"]),
            None,
            "application/json",
        ),
        'cannot create resource "pods/exec"',
    ),
    (
        "the collector's token: read a Secret",
        "collector",
        lambda s: (
            "GET",
            f"/api/v1/namespaces/{COLLECTORS}/secrets/ir-store",
            None,
            "application/json",
        ),
        'cannot get resource "secrets"',
    ),
]


def _send(s: Scene, who: str, method: str, path: str, body: Any, ctype: str) -> tuple[int, str]:
    identity = s.identities[who]
    if ctype.startswith("impersonate:"):
        identity = Identity(s.cp, identity.user, identity.token, ctype.split(":", 1)[1])
        ctype = "application/json"
    if method != "GET" and "/exec?" not in path:
        path = _dry(path)  # nothing is stored even if a refusal failed
    return identity.request(method, path, body, content_type=ctype)


@pytest.mark.parametrize(
    ("what", "who", "build", "says"), ESCALATIONS, ids=[a[0] for a in ESCALATIONS]
)
def test_escalation_is_refused_by_the_apiserver(
    scene: Scene,
    what: str,
    who: str,
    build: Callable[[Scene], tuple[str, str, Any, str]],
    says: str,
) -> None:
    method, path, body, ctype = build(scene)
    status, message = _send(scene, who, method, path, body, ctype)
    print(f"\n{who}: {what}: {status} {message[:300]}")
    assert status in (403, 422), (status, message)
    assert says in message, message


# What ir's own steps send: admitted (server-side dry runs; exec past admission reaches the
# kubelet, which wants a stream upgrade: 400).
ADMITTED: list[tuple[str, Callable[[Scene], tuple[str, str, Any, str]], tuple[int, ...]]] = [
    (
        "quarantine policy",
        lambda s: ("POST", NP.format(ns=s.ns), _quarantine_policy(s, s.ns), "application/json"),
        (201,),
    ),
    (
        "quarantine policy with cluster DNS",
        lambda s: (
            "POST",
            NP.format(ns=s.ns),
            deny_all_policy(
                "ir-quarantine-qd1",
                "qd1",
                resolve_pod(s.kube, s.ns, s.pod_name),
                "t",
                (),
                allow_dns=True,
            ),
            "application/json",
        ),
        (201,),
    ),
    (
        "quarantine label and annotation",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.pod_name),
            {
                "metadata": {
                    "labels": {"ir.forensics/quarantine": "q1"},
                    "annotations": {"ir.forensics/quarantine-info": "{}"},
                }
            },
            MERGE,
        ),
        (200,),
    ),
    (
        "replace: drop the selector labels of a quarantined pod",
        lambda s: (
            "PATCH",
            POD.format(ns=s.ns, pod=s.quarantined),
            {
                "metadata": {
                    "labels": {"app": None},
                    "annotations": {"ir.forensics/original-labels": "{}"},
                }
            },
            MERGE,
        ),
        (200,),
    ),
    (
        "cordon",
        lambda s: ("PATCH", f"/api/v1/nodes/{NODE_NAME}", {"spec": {"unschedulable": True}}, MERGE),
        (200,),
    ),
    (
        "annotate a node",
        lambda s: (
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}",
            {"metadata": {"annotations": {"ir.forensics/suspected-compromise": "x"}}},
            MERGE,
        ),
        (200,),
    ),
    (
        "probe pod",
        lambda s: ("POST", PODS.format(ns=s.ns), _probe(s, s.ns), "application/json"),
        (201,),
    ),
    (
        "collector pod",
        lambda s: ("POST", PODS.format(ns=COLLECTORS), _collector(s), "application/json"),
        (201,),
    ),
    (
        "exec a node capture (its fixed form)",
        lambda s: ("POST", _exec(COLLECTORS, s.collector, WHOLE_NODE), None, "application/json"),
        (400,),
    ),
    (
        "exec ir collector send",
        lambda s: (
            "POST",
            _exec(COLLECTORS, s.collector, ["ir", "collector", "send", "/work/x"]),
            None,
            "application/json",
        ),
        (400,),
    ),
]


# What ir serve's own identity records (durable runs, docs/serve-runs.md): admitted.
RECORDED: list[tuple[str, Callable[[Scene], tuple[str, str, Any, str]], tuple[int, ...]]] = [
    ("a run", lambda s: ("POST", RUNS, _run(s), "application/json"), (201,)),
    (
        "a claim on an open run",
        lambda s: (
            "PATCH",
            _stored_run(s, "Running") + "/status",
            {"status": {"attempt": 2, "claim": {"holder": "r/2", "renewed": 2.0}}},
            MERGE,
        ),
        (200,),
    ),
    (
        "a rate-limit Lease",
        lambda s: (
            "POST",
            LEASES,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "ir-rate-" + uuid.uuid4().hex},
            },
            "application/json",
        ),
        (201,),
    ),
    (
        "deleting a finished run",
        lambda s: ("DELETE", _stored_run(s, "Succeeded"), None, "application/json"),
        (200,),
    ),
]


@pytest.mark.parametrize(("what", "build", "statuses"), RECORDED, ids=[a[0] for a in RECORDED])
def test_what_ir_serve_records_is_admitted(
    scene: Scene,
    what: str,
    build: Callable[[Scene], tuple[str, str, Any, str]],
    statuses: tuple[int, ...],
) -> None:
    method, path, body, ctype = build(scene)
    status, message = _send(scene, "serve", method, path, body, ctype)
    assert status in statuses, (status, message[:500])


@pytest.mark.parametrize(("what", "build", "statuses"), ADMITTED, ids=[a[0] for a in ADMITTED])
def test_what_ir_needs_is_admitted(
    scene: Scene,
    what: str,
    build: Callable[[Scene], tuple[str, str, Any, str]],
    statuses: tuple[int, ...],
) -> None:
    method, path, body, ctype = build(scene)
    status, message = _send(scene, "responder", method, path, body, ctype)
    assert status in statuses, (status, message[:500])


def test_uncordon_is_refused_after_a_cordon(scene: Scene) -> None:
    """The responder cordons for real (admitted), cannot uncordon (refused); an administrator
    does."""
    responder = scene.identities["responder"]
    node = f"/api/v1/nodes/{NODE_NAME}"
    status, message = responder.request(
        "PATCH", node, {"spec": {"unschedulable": True}}, content_type=MERGE
    )
    assert status == 200, message
    try:
        status, message = responder.request(
            "PATCH", node, {"spec": {"unschedulable": False}}, content_type=MERGE
        )
        assert status == 403 and "never uncordon" in message, (status, message)
    finally:
        _merge(scene.cp, node, {"spec": {"unschedulable": None}})
    assert not json.loads(json.dumps(scene.cp.api("GET", node)))["spec"].get("unschedulable")


def _readme_can_i() -> dict[tuple[str, str], dict[tuple[str, tuple[str, ...]], set[str]]]:
    """deploy/README.md's `kubectl auth can-i --list` blocks: (user, namespace) -> rows."""
    text = repo_path("deploy", "README.md").read_text()
    blocks: dict[tuple[str, str], dict[tuple[str, tuple[str, ...]], set[str]]] = {}
    rows: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for line in text.splitlines():
        head = re.match(r"\$ kubectl auth can-i --list --as=(\S+) -n (\S+)$", line)
        if head:
            rows = blocks.setdefault((head.group(1), head.group(2)), {})
            continue
        cells = re.split(r"\s{2,}", line.strip())
        if head is None and rows is not None and len(cells) == 4 and cells[0] != "Resources":
            names = tuple(cells[2].strip("[]").split()) if cells[2] != "[]" else ()
            rows.setdefault((cells[0], names), set()).update(cells[3].strip("[]").split())
    return blocks


def test_can_i_list_in_deploy_readme_matches_the_apiserver(scene: Scene) -> None:
    """Each account's rules as the apiserver resolves them (a SelfSubjectRulesReview with its
    own token: what `kubectl auth can-i --list` asks) are the table deploy/README.md shows."""
    blocks = _readme_can_i()
    assert len(blocks) == 5, sorted(blocks)
    for (user, ns), expected in blocks.items():
        account_ns, account = user.split(":")[2:]
        identity = Identity.of(scene.cp, account_ns, account)
        status, text = identity.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": ns},
            },
        )
        assert status == 201, text
        served: dict[tuple[str, tuple[str, ...]], set[str]] = {}
        for rule in json.loads(text)["status"]["resourceRules"]:
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    name = resource if not group else f"{resource}.{group}"
                    key = (name, tuple(rule.get("resourceNames") or ()))
                    served.setdefault(key, set()).update(rule["verbs"])
        assert served == expected, (user, ns, served, expected)
