"""What `kubectl apply -k deploy/kustomize/base` puts on a cluster, put on the test bed's: the
shipped namespaces, service accounts, RBAC and admission policies, read from the repo's own
manifests (the kustomization's resources, followed into ../node-collector), so the tests check
exactly what users apply. The ir serve workload itself (Deployment, Service, its NetworkPolicy)
is left out: the tests run ir as its identities instead.

Also: tokens for those service accounts (what a stolen token would be) and requests made with
them, optionally impersonating (what ir serve does with --as)."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.k8s import ControlPlane

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kustomize" / "base"
WORKLOAD = {"Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget"}
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
COLLECTION = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "Role": RBAC + "/namespaces/{ns}/roles",
    "RoleBinding": RBAC + "/namespaces/{ns}/rolebindings",
    "ClusterRole": RBAC + "/clusterroles",
    "ClusterRoleBinding": RBAC + "/clusterrolebindings",
    "ValidatingAdmissionPolicy": ADMISSION + "/validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": ADMISSION + "/validatingadmissionpolicybindings",
    "CustomResourceDefinition": CRDS,
}

SERVE = "system:serviceaccount:ir-system:ir-serve"
RESPONDER = "system:serviceaccount:ir-system:ir-responder"
COLLECTOR = "system:serviceaccount:ir-collectors:ir-node-collector"


def shipped_documents(directory: Path = BASE) -> list[dict[str, Any]]:
    """Every object of a kustomization, its resources in order (directories followed)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            docs += shipped_documents(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def path_of(doc: dict[str, Any]) -> str:
    ns = doc["metadata"].get("namespace", "")
    return COLLECTION[doc["kind"]].format(ns=ns) + "/" + doc["metadata"]["name"]


def apply(cp: ControlPlane, doc: dict[str, Any]) -> None:
    """Create, or replace what is there (kubectl apply's outcome for a whole object)."""
    collection = path_of(doc).rsplit("/", 1)[0]
    try:
        cp.api("POST", collection, doc)
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
        current = cp.api("GET", path_of(doc))
        doc = {**doc, "metadata": {**doc["metadata"]}}
        doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        cp.api("PUT", path_of(doc), doc)


def install_shipped(
    cp: ControlPlane, *, collector_image: str, probe_image: str, allow_pod_delete: bool = False
) -> list[dict[str, Any]]:
    """The shipped identities, RBAC and admission policies, with the test bed's images pinned in
    the ir-admission ConfigMap; returns what was applied. Waits until the policies are in force
    (they load asynchronously)."""
    applied = []
    # namespaces and CRDs first, as kustomize orders them for kubectl apply
    first = ("Namespace", "CustomResourceDefinition")
    for doc in sorted(shipped_documents(), key=lambda d: d["kind"] not in first):
        if doc["kind"] in WORKLOAD:
            continue
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "ir-admission":
            doc = json.loads(json.dumps(doc))
            doc["data"].update(
                collectorImage=collector_image,
                probeImage=probe_image,
                allowPodDelete="true" if allow_pod_delete else "false",
            )
        apply(cp, doc)
        applied.append(doc)
    deadline = time.monotonic() + 60
    _wait_established(cp, applied, deadline)
    serve = Identity.of(cp, "ir-system", "ir-serve", act_as=RESPONDER)
    while True:  # a server-side dry run the policies refuse: refused means in force
        status, _ = serve.request(
            "POST",
            "/apis/networking.k8s.io/v1/namespaces/kube-system/networkpolicies?dryRun=All",
            {"metadata": {"name": "probe-policies-loaded"}, "spec": {"podSelector": {}}},
        )
        if status in (403, 422) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return applied


def install_run_store(cp: ControlPlane) -> None:
    """Just what `ir serve --runs cluster` needs to record runs with an administrator's
    credentials: namespace ir-system and the IrRun CustomResourceDefinition, Established."""
    shipped = shipped_documents()
    docs = [d for d in shipped if d["kind"] == "CustomResourceDefinition"]
    namespace = next(
        d for d in shipped if d["kind"] == "Namespace" and d["metadata"]["name"] == "ir-system"
    )
    for doc in [namespace, *docs]:
        apply(cp, doc)
    _wait_established(cp, docs, time.monotonic() + 60)


def _wait_established(cp: ControlPlane, docs: list[dict[str, Any]], deadline: float) -> None:
    """Custom resources are served once their CRD is Established, and listed once the
    apiserver's storage for them is ready (until then it answers 429)."""
    for doc in docs:
        if doc["kind"] != "CustomResourceDefinition":
            continue
        while time.monotonic() < deadline:
            # status and its conditions are null for a moment after the CRD is created
            status = cp.api("GET", path_of(doc)).get("status") or {}
            conditions = status.get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            time.sleep(0.2)
        spec = doc["spec"]
        listing = f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}"
        while time.monotonic() < deadline:
            try:
                cp.api("GET", listing)
                break
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 429, 503):
                    raise
                time.sleep(0.2)


@dataclass
class Identity:
    """A service account's token (a stolen one, or ir's own), optionally acting as another."""

    cp: ControlPlane
    user: str
    token: str
    act_as: str | None = None

    @classmethod
    def of(
        cls, cp: ControlPlane, namespace: str, name: str, *, act_as: str | None = None
    ) -> Identity:
        minted = cp.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )
        return cls(
            cp, f"system:serviceaccount:{namespace}:{name}", minted["status"]["token"], act_as
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
    ) -> tuple[int, str]:
        """(HTTP status, the server's message or body text)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.cp.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", content_type)
        if self.act_as:
            request.add_header("Impersonate-User", self.act_as)
        context = ssl.create_default_context(cafile=str(self.cp.ca_file))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return answer.status, answer.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):  # not JSON: the text as it came
                text = json.loads(text).get("message", text)
            return exc.code, text

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig with this token (impersonation is ir's --as, not in the file)."""
        config = json.loads(self.cp.kubeconfig.read_text())
        config["users"] = [{"name": "sa", "user": {"token": self.token}}]
        config["contexts"][0]["context"].update(user="sa", namespace=namespace)
        path.write_text(json.dumps(config))
        return path
