"""Resolve a pod to what ir needs: its containers (init, app, ephemeral) with runtime ids, its node,
and its owner chain (ReplicaSet -> Deployment, StatefulSet, DaemonSet, Job -> CronJob, bare pod)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ir.cluster.kube import ApiError, Kube
from ir.errors import ClusterError, UsageError
from ir.playbook.k8snames import is_dns1123_label, is_dns1123_subdomain

# kind -> API path prefix for namespaced owners
OWNER_PATHS = {
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
    "CronJob": "/apis/batch/v1/namespaces/{ns}/cronjobs/{name}",
    "ReplicationController": "/api/v1/namespaces/{ns}/replicationcontrollers/{name}",
}


def check_name(kind: str, value: str) -> str:
    """Names from operators and alerts are validated before any request is built (the same
    full-match rules as the alerts' names: ir.playbook.k8snames)."""
    valid = is_dns1123_label if kind == "namespace" else is_dns1123_subdomain
    if not valid(value):
        raise UsageError(f"invalid {kind} name {value!r}: must be a DNS-1123 name")
    return value


@dataclass
class ContainerRef:
    name: str
    kind: str  # init | app | ephemeral
    image: str | None
    image_id: str | None
    container_id: str | None  # as in the pod status, e.g. docker://3f2a...
    state: str  # running | terminated | waiting | unknown
    started_at: str | None = None
    restart_count: int = 0
    ports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def runtime(self) -> str | None:
        return (
            self.container_id.split("://", 1)[0]
            if self.container_id and "://" in self.container_id
            else None
        )

    @property
    def runtime_id(self) -> str | None:
        return (
            self.container_id.split("://", 1)[1]
            if self.container_id and "://" in self.container_id
            else None
        )


@dataclass
class PodTarget:
    namespace: str
    name: str
    pod: dict[str, Any]
    containers: list[ContainerRef]
    owners: list[dict[str, Any]]  # owner objects as served, nearest first

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def collects(self) -> str:
        """What a node collector for this pod says it collects (its annotation)."""
        return f"{self.namespace}/{self.name} ({self.uid})"

    @property
    def node(self) -> str | None:
        return self.pod.get("spec", {}).get("nodeName")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.pod.get("metadata", {}).get("labels") or {})

    @property
    def controller(self) -> dict[str, Any] | None:
        """The direct controlling owner reference (ownerReferences[].controller), if any."""
        return controller_of(self.pod)

    @property
    def top_owner_kind(self) -> str:
        return str(self.owners[-1].get("kind")) if self.owners else "Pod"

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "pod",
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "node": self.node,
            "pod_ip": self.pod.get("status", {}).get("podIP"),
            "owners": [f"{o.get('kind')}/{o.get('metadata', {}).get('name')}" for o in self.owners],
            "containers": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "image": c.image,
                    "image_id": c.image_id,
                    "container_id": c.container_id,
                    "state": c.state,
                }
                for c in self.containers
            ],
        }


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def resolve_pod(kube: Kube, namespace: str, name: str) -> PodTarget:
    check_name("namespace", namespace)
    check_name("pod", name)
    try:
        pod = kube.get(pod_path(namespace, name))
    except ApiError as exc:
        if exc.not_found:  # a Kubernetes 404 (kube.py names any other server's answer)
            raise ClusterError(_not_found(kube, namespace, name)) from None
        raise
    return PodTarget(namespace, name, pod, containers_of(pod), owner_chain(kube, namespace, pod))


def _not_found(kube: Kube, namespace: str, name: str) -> str:
    """Which is missing, the pod or its namespace: the namespace is read (one GET) to tell; when
    that read is not allowed or fails, only what is known is said."""
    try:
        kube.get(f"/api/v1/namespaces/{namespace}")
    except ApiError as exc:
        if exc.not_found:
            return f"namespace {namespace} does not exist (looking for pod {name})"
        why = "forbidden" if exc.status == 403 else exc.message
        return f"pod {namespace}/{name} not found (namespace could not be checked: {why})"
    return f"pod {namespace}/{name} not found"


#: Waiting reasons of a container whose image cannot run on its node (it will not start by itself).
IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


def image_problem(pod: dict[str, Any], container: str | None = None) -> str | None:
    """ "node N: REASON: message" when a container of this pod (one ir started: a collector, a
    probe, or the debug container `container`) waits on an image that cannot run there; None
    otherwise."""
    status = pod.get("status") or {}
    for key in ("containerStatuses", "ephemeralContainerStatuses"):
        for s in status.get(key) or []:
            if container is not None and s.get("name") != container:
                continue
            waiting = (s.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_ERRORS:
                node = (pod.get("spec") or {}).get("nodeName")
                detail = f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
                return f"node {node}: {detail}"
    return None


def containers_of(pod: dict[str, Any]) -> list[ContainerRef]:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    result = []
    for kind, spec_key, status_key in (
        ("init", "initContainers", "initContainerStatuses"),
        ("app", "containers", "containerStatuses"),
        ("ephemeral", "ephemeralContainers", "ephemeralContainerStatuses"),
    ):
        statuses = {s.get("name"): s for s in status.get(status_key) or []}
        for c in spec.get(spec_key) or []:
            st = statuses.get(c.get("name"), {})
            state_doc = st.get("state") or {}
            state = next(iter(state_doc), "unknown")
            result.append(
                ContainerRef(
                    name=c.get("name"),
                    kind=kind,
                    image=c.get("image"),
                    image_id=st.get("imageID") or None,
                    container_id=st.get("containerID") or None,
                    state=state,
                    started_at=(state_doc.get(state) or {}).get("startedAt"),
                    restart_count=int(st.get("restartCount") or 0),
                    ports=list(c.get("ports") or []),
                )
            )
    return result


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """An object's controlling owner reference (ownerReferences[].controller), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_chain(
    kube: Kube, namespace: str, obj: dict[str, Any], depth: int = 0
) -> list[dict[str, Any]]:
    """The controlling owners, nearest first, as served. Unknown kinds are listed by reference."""
    if depth > 5:
        return []
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        template = OWNER_PATHS.get(ref.get("kind"))
        if template is None:
            return [
                {
                    "kind": ref.get("kind"),
                    "metadata": {"name": ref.get("name"), "uid": ref.get("uid")},
                    "note": "owner kind not resolved by ir",
                }
            ]
        owner = kube.get_optional(
            template.format(ns=namespace, name=check_name("owner", ref.get("name", "")))
        )
        if owner is None:
            return [
                {
                    "kind": ref.get("kind"),
                    "metadata": {"name": ref.get("name"), "uid": ref.get("uid")},
                    "note": "owner not found (deleted?)",
                }
            ]
        return [owner, *owner_chain(kube, namespace, owner, depth + 1)]
    return []
