"""Least privilege on the real apiserver: the responder's ClusterRole ir ships
(deploy/kustomize/base/rbac.yaml, `ir-responder`) bound to a fresh ServiceAccount whose token `ir`
uses (a subprocess, as in a cluster).

The promises: with exactly those rules `ir capture pod` (Kubernetes context + containers),
quarantine and replace work; lifting a quarantine (`ir release`, a person's act) needs the one
rule the responder lacks, NetworkPolicy delete; the role grants nothing beyond what the playbooks
need (checked with SubjectAccessReviews); with any one needed permission removed, the failure
names the verb and the resource that were refused. What the admission policies add on top (which
objects, which changes) is tests/resilience/test_admission.py.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures_k8s import wait_for
from tests.k8s_helpers import web_pods
from tests.resilience.faults import IrRun, ir_env, repo_path, run_ir
from tests.test_capture_pod import POLICY_API
from tests.testbed.deploy import Identity
from tests.testbed.docker import DockerBed
from tests.testbed.k8s import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

SHIPPED = repo_path("deploy", "kustomize", "base", "rbac.yaml")
RBAC_API = "/apis/rbac.authorization.k8s.io/v1"
Rules = list[dict[str, Any]]


def shipped_rules() -> Rules:
    for doc in yaml.safe_load_all(SHIPPED.read_text()):
        if doc and doc.get("kind") == "ClusterRole" and doc["metadata"]["name"] == "ir-responder":
            return list(doc["rules"])
    raise AssertionError(f"no ClusterRole ir-responder in {SHIPPED}")


def needed_rules() -> Rules:
    """The shipped rules plus `get` on (cluster)roles, which the capture's RBAC context reads
    (k8s/rbac.json fetches each bound role by name) and deploy/ does not grant yet: see
    test_shipped_role_alone_gives_a_complete_capture."""
    return [
        *shipped_rules(),
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "clusterroles"],
            "verbs": ["get"],
        },
    ]


#: what a person lifting a quarantine needs beyond the responder's rules (`ir release`)
RELEASE_RULE = {
    "apiGroups": ["networking.k8s.io"],
    "resources": ["networkpolicies"],
    "verbs": ["delete"],
}


def person_rules() -> Rules:
    return [*needed_rules(), RELEASE_RULE]


def without(rules: Rules, group: str, resource: str, verb: str) -> Rules:
    """The rules minus one verb on one resource (the rest of that rule kept)."""
    out = copy.deepcopy(rules)
    hit = False
    for rule in out:
        if (
            group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and verb in rule["verbs"]
        ):
            hit = True
            others = [r for r in rule["resources"] if r != resource]
            if others:  # split: the other resources keep the verb
                out.append({**rule, "resources": others})
            rule["resources"] = [resource]
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    assert hit, f"the shipped role has no {verb} on {group or 'core'}/{resource}"
    return [r for r in out if r["verbs"]]


class Grant:
    """A ServiceAccount in the test namespace bound to a ClusterRole whose rules can be swapped;
    `kubeconfig` authenticates with the account's token."""

    def __init__(self, cp: ControlPlane, namespace: str, workdir: Path) -> None:
        self.cp, self.namespace = cp, namespace
        self.name = f"ir-least-{uuid.uuid4().hex[:8]}"
        cp.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ir"}},
        )
        identity = Identity.of(cp, namespace, "ir")
        self.user = identity.user
        self.kubeconfig = identity.kubeconfig(workdir / "kubeconfig-ir-sa", namespace)
        self.rules: Rules = []
        cp.api("POST", f"{RBAC_API}/clusterroles", self._role([]))
        cp.api(
            "POST",
            f"{RBAC_API}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": self.name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.name,
                },
                "subjects": [{"kind": "ServiceAccount", "name": "ir", "namespace": namespace}],
            },
        )

    def _role(self, rules: Rules) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": self.name},
            "rules": rules,
        }

    def set(self, rules: Rules) -> None:
        """Replace the role's rules and wait until the authorizer applies them."""
        current = self.cp.api("GET", f"{RBAC_API}/clusterroles/{self.name}")
        doc = self._role(rules)
        doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self.cp.api("PUT", f"{RBAC_API}/clusterroles/{self.name}", doc)
        self.rules = rules
        for rule in rules:  # every granted verb visible to the authorizer
            for verb in rule["verbs"]:
                group, resource = rule["apiGroups"][0], rule["resources"][0]
                wait_for(
                    f"{verb} {resource} granted",
                    functools.partial(self.can, verb, group, resource),
                    30,
                )

    def can(self, verb: str, group: str, resource: str, subresource: str = "") -> bool:
        attrs = {"namespace": self.namespace, "verb": verb, "group": group, "resource": resource}
        if subresource:
            attrs["subresource"] = subresource
        review = self.cp.api(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": self.user,
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{self.namespace}",
                        "system:authenticated",
                    ],
                    "resourceAttributes": attrs,
                },
            },
        )
        return bool(review["status"].get("allowed"))

    def delete(self) -> None:
        for kind in ("clusterrolebindings", "clusterroles"):
            with contextlib.suppress(Exception):  # best-effort clean-up
                self.cp.api("DELETE", f"{RBAC_API}/{kind}/{self.name}")


@pytest.fixture
def grant(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Grant]:
    g = Grant(control_plane, namespace, tmp_path)
    yield g
    g.delete()


@pytest.fixture
def web(
    control_plane: ControlPlane, node: Any, namespace: str
) -> Callable[[int], list[dict[str, Any]]]:
    def deploy(replicas: int) -> list[dict[str, Any]]:
        return web_pods(control_plane, namespace, replicas=replicas)

    return deploy


def ir_as(grant: Grant, bed: DockerBed, *args: str) -> IrRun:
    return run_ir(list(args), ir_env(KUBECONFIG=str(grant.kubeconfig), DOCKER_HOST=bed.host))


def test_shipped_role_alone_gives_a_complete_capture(
    control_plane: ControlPlane, docker_bed: DockerBed, grant: Grant, web: Any, tmp_path: Path
) -> None:
    """The shipped rules, unchanged: every Kubernetes context artifact of `ir capture pod` is ok."""
    grant.set(shipped_rules())
    name = web(1)[0]["metadata"]["name"]
    done = ir_as(
        grant,
        docker_bed,
        "capture",
        "pod",
        name,
        "-n",
        grant.namespace,
        "--store",
        str(tmp_path),
        "--no-quarantine",
        "--no-replace",
        "-o",
        "json",
    )
    show = json.loads(
        run_ir(["bundle", "show", done.json()["bundle"]["location"], "-o", "json"], ir_env()).stdout
    )
    assert [
        (a["name"], a["error"]) for a in show["manifest"]["artifacts"] if a["status"] != "ok"
    ] == []


def test_least_privilege_is_enough_for_capture_quarantine_replace_release(
    control_plane: ControlPlane, docker_bed: DockerBed, grant: Grant, web: Any, tmp_path: Path
) -> None:
    """With the shipped rules (+ `get` on roles, see needed_rules): `ir capture pod` is complete
    (every Kubernetes context artifact ok), quarantine verifies, the replacement becomes ready;
    `ir release` is refused naming "delete networkpolicies" (the responder may not lift a
    quarantine) until a person's rule adds it, then removes the quarantine and, with --delete,
    the suspect."""
    ns = grant.namespace
    grant.set(needed_rules())
    name = web(1)[0]["metadata"]["name"]
    store = tmp_path / "evidence"
    done = ir_as(
        grant,
        docker_bed,
        "capture",
        "pod",
        name,
        "-n",
        ns,
        "--store",
        str(store),
        "-o",
        "json",
        "--replace-timeout",
        "60",
    )
    doc = done.json()
    bundle = doc["bundle"]["location"]
    show = json.loads(run_ir(["bundle", "show", bundle, "-o", "json"], ir_env()).stdout)
    failed = [(a["name"], a["error"]) for a in show["manifest"]["artifacts"] if a["status"] != "ok"]
    assert not failed, failed
    assert done.returncode == 0, done.stderr + done.stdout
    assert (
        doc["bundle"]["outcome"] == "complete"
        and doc["quarantine"]["policy_verified"]
        and doc["replace"]["ready"]
    )

    refused = ir_as(grant, docker_bed, "release", "pod", name, "-n", ns, "--evidence", bundle)
    assert refused.returncode == 4
    assert "permission denied: cannot delete networkpolicies" in refused.assert_clean_error()
    grant.set(person_rules())
    released = ir_as(grant, docker_bed, "release", "pod", name, "-n", ns, "--evidence", bundle)
    assert released.returncode == 0, released.stderr
    assert control_plane.api("GET", POLICY_API.format(ns=ns))["items"] == []
    deleted = ir_as(
        grant, docker_bed, "release", "pod", name, "-n", ns, "--delete", "--evidence", bundle
    )
    assert deleted.returncode == 0, deleted.stderr
    wait_for(
        "the suspect pod deleted",
        lambda: (
            not [
                p
                for p in control_plane.api("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
                if p["metadata"]["name"] == name
            ]
        ),
    )


def test_responder_role_is_enough_for_every_pod_of_a_workload(
    control_plane: ControlPlane, docker_bed: DockerBed, grant: Grant, web: Any, tmp_path: Path
) -> None:
    """`ir capture pod deployment/web --all` with the responder's rules (+ `get` on roles, as
    above): the Deployment read (get), its pods listed by its selector (list), their ReplicaSet
    read (get) to check they are its own; each pod complete and quarantined. No new verb."""
    grant.set(needed_rules())
    pods = web(2)
    done = ir_as(
        grant,
        docker_bed,
        "capture",
        "pod",
        "deployment/web",
        "--all",
        "-n",
        grant.namespace,
        "--store",
        str(tmp_path),
        "--no-replace",
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    doc = done.json()
    assert sorted(p["target"]["name"] for p in doc["pods"]) == sorted(
        p["metadata"]["name"] for p in pods
    )
    for pod in doc["pods"]:
        assert pod["bundle"]["outcome"] == "complete" and pod["quarantine"]["policy_verified"]
    assert doc["index"]["confirmed"]


# verb, API group, resource, subresource: what ir must never be able to do with the shipped role
FORBIDDEN = [
    ("get", "", "secrets", ""),
    ("list", "", "secrets", ""),
    ("create", "", "pods", "exec"),
    ("patch", "", "pods", "ephemeralcontainers"),
    ("update", "", "pods", "status"),
    ("delete", "networking.k8s.io", "networkpolicies", ""),
    ("patch", "networking.k8s.io", "networkpolicies", ""),
    ("patch", "", "nodes", "status"),
    ("create", "", "pods", "attach"),
    ("create", "", "pods", "portforward"),
    ("update", "", "pods", ""),
    ("patch", "apps", "deployments", ""),
    ("delete", "apps", "deployments", ""),
    ("delete", "", "nodes", ""),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("impersonate", "", "serviceaccounts", ""),
    ("create", "", "serviceaccounts", "token"),
    ("get", "", "configmaps", ""),
    ("delete", "", "namespaces", ""),
    ("create", "batch", "jobs", ""),
    ("create", "", "serviceaccounts", ""),
    ("update", "networking.k8s.io", "networkpolicies", ""),
]


def test_shipped_role_grants_nothing_more(grant: Grant) -> None:
    """SubjectAccessReviews for the shipped rules: no secrets, no exec/attach/port-forward outside
    the collector namespace (its Role, not bound here), no ephemeral containers, no status
    writes, no policy deletion or change, no workload or RBAC changes. (Pod create/delete and
    pod/node patch are granted: test_admission.py shows what the admission policies let through.)"""
    grant.set(shipped_rules())
    allowed = [
        f"{v} {g or 'core'}/{r}{'/' + s if s else ''}"
        for v, g, r, s in FORBIDDEN
        if grant.can(v, g, r, s)
    ]
    assert not allowed, allowed
    assert grant.can("patch", "", "pods") and grant.can(
        "create", "networking.k8s.io", "networkpolicies"
    )


# (removed verb, group, resource), the command, what the refusal must say
MISSING = [
    (
        ("create", "networking.k8s.io", "networkpolicies"),
        "quarantine",
        4,
        "permission denied: cannot create networkpolicies in namespace",
    ),
    (("patch", "", "pods"), "quarantine", 4, "quarantine INCOMPLETE"),
    (("get", "", "pods"), "capture", 4, "permission denied: cannot get pods"),
    (("list", "", "events"), "capture", 5, "permission denied: cannot list events"),
    (
        ("delete", "networking.k8s.io", "networkpolicies"),
        "release",
        4,
        "permission denied: cannot delete networkpolicies",
    ),
]


@pytest.mark.parametrize(
    ("removed", "command", "code", "says"), MISSING, ids=[f"{m[0][0]}-{m[0][2]}" for m in MISSING]
)
def test_missing_permission_names_verb_and_resource(
    removed: tuple[str, str, str],
    command: str,
    code: int,
    says: str,
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    grant: Grant,
    web: Any,
    tmp_path: Path,
) -> None:
    """One permission of the needed rules (shipped + get roles) removed: the command fails with its exit code and the
    refusal names the verb and the resource (for a context read during a capture, the failed
    artifact says it, the capture is partial and the gate stays closed)."""
    verb, group, resource = removed
    ns = grant.namespace
    name = web(1)[0]["metadata"]["name"]
    rules = person_rules() if command == "release" else needed_rules()
    if command == "release":  # quarantined first, with everything granted
        grant.set(rules)
        assert ir_as(grant, docker_bed, "quarantine", "pod", name, "-n", ns).returncode == 0
    grant.set(without(rules, group, resource, verb))
    wait_for("the permission gone", lambda: not grant.can(verb, group, resource), 30)
    if command == "capture":
        done = ir_as(
            grant,
            docker_bed,
            "capture",
            "pod",
            name,
            "-n",
            ns,
            "--store",
            str(tmp_path),
            "-o",
            "json",
        )
    else:
        done = ir_as(grant, docker_bed, command, "pod", name, "-n", ns)
    assert done.returncode == code, done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    if code == 5:  # the capture ran; the refused read is in the bundle's record of it
        doc = done.json()
        assert doc["gate"]["open"] is False and doc["bundle"]["outcome"] == "partial", doc["gate"]
        show = json.loads(
            run_ir(["bundle", "show", doc["bundle"]["location"], "-o", "json"], ir_env()).stdout
        )
        errors = " ".join(a["error"] or "" for a in show["manifest"]["artifacts"])
        assert says in errors, errors
        assert control_plane.api("GET", POLICY_API.format(ns=ns))["items"] == []  # nothing was done
    else:
        line = done.assert_clean_error()
        assert says in line and (verb in line and resource in line), line
