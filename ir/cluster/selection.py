"""Which pods `ir capture pod` takes when it is not given one pod by name, the kubectl way:

* `-l/--selector SELECTOR`: every pod of the namespace (or of every namespace: `-A`) the label
  selector matches, the selector passed to the apiserver as it is (`app=web`,
  `tier in (front,back)`, `!canary`); or
* a workload `TYPE/NAME` (deployment, statefulset, daemonset, replicaset, job; kubectl's names
  and short names) with `--all`, as `kubectl logs --all-pods`: the pods its selector matches that
  it owns (ownerReferences: the pod's controller, through its ReplicaSet for a Deployment), so a
  pod that matches the selector but belongs to something else is left out, and said so.

The pods are listed once, at the start: a pod a controller starts while the run acts (a
replacement) is not captured. May import ir.cluster.kube, resolve and ir.errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ir.cluster.kube import ApiError, Kube
from ir.cluster.resolve import OWNER_PATHS, check_name, controller_of
from ir.errors import ClusterError, UsageError

#: Pods one run captures at most. A selector that matches more is more likely a mistake than an
#: incident (each pod gets a bundle, and a quarantine); the operator narrows it or splits the run.
MAX_PODS = 500
LIST_PAGE = 250  # pods per list request (the apiserver pages with `continue`)

#: kubectl's resource names and short names, for the workloads whose pods can be taken (--all).
WORKLOAD_KINDS: dict[str, str] = {
    **dict.fromkeys(("deployment", "deployments", "deploy"), "Deployment"),
    **dict.fromkeys(("statefulset", "statefulsets", "sts"), "StatefulSet"),
    **dict.fromkeys(("daemonset", "daemonsets", "ds"), "DaemonSet"),
    **dict.fromkeys(("replicaset", "replicasets", "rs"), "ReplicaSet"),
    **dict.fromkeys(("job", "jobs"), "Job"),
}
POD_NAMES = ("pod", "pods", "po")
#: The API group kubectl lets a resource name carry (`deployments.apps/web`).
GROUPS = {
    "Deployment": "apps",
    "StatefulSet": "apps",
    "DaemonSet": "apps",
    "ReplicaSet": "apps",
    "Job": "batch",
}


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment, StatefulSet, DaemonSet, ReplicaSet, Job
    name: str

    @property
    def ref(self) -> str:
        """kubectl's way of naming it: deployment/web."""
        return f"{self.kind.lower()}/{self.name}"


def parse_target(text: str) -> Workload | str:
    """NAME or TYPE/NAME as kubectl takes them: a Workload, or the name of one pod (`pod/NAME`
    and a bare NAME). Raises UsageError for a type that is neither."""
    if "/" not in text:
        return text
    kind, _, name = text.partition("/")
    resource, _, group = kind.lower().partition(".")
    if resource in POD_NAMES and group in ("", "v1"):
        return name
    found = WORKLOAD_KINDS.get(resource)
    if found is None or group not in ("", GROUPS[found]):
        known = "deployment, statefulset, daemonset, replicaset, job (or pod)"
        raise UsageError(f"{text}: ir captures the pods of a {known}, not of {kind!r}")
    if not name:
        raise UsageError(f"{text}: no name after the type")
    return Workload(found, check_name(found.lower(), name))


@dataclass
class Selection:
    """The pods one run takes, as the apiserver listed them, and why others were left out."""

    namespace: str | None  # None: every namespace (-A)
    selector: str  # the label selector the pods were listed with
    workload: dict[str, Any] | None = None  # kind, name, uid of an --all workload
    pods: list[dict[str, Any]] = field(default_factory=list)  # pod objects, by name
    skipped: list[dict[str, str]] = field(default_factory=list)  # name, uid, why

    def describe(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "selector": self.selector,
            "workload": self.workload,
            "matched": len(self.pods),
            "skipped": list(self.skipped),
        }

    @property
    def what(self) -> str:
        """One line naming what was selected: `deployment/web` or `selector app=web`."""
        if self.workload:
            return f"{self.workload['kind'].lower()}/{self.workload['name']}"
        return f"selector {self.selector}"


def select_pods(
    kube: Kube,
    namespace: str | None,
    *,
    selector: str | None = None,
    workload: Workload | None = None,
) -> Selection:
    """The pods a selector or a workload (--all) names in `namespace` (a selector: in every
    namespace when None). Raises UsageError for a selector the apiserver rejects or one that
    matches more than MAX_PODS, ClusterError (4) when the workload, the namespace or any
    matching pod is not there."""
    if namespace is not None:
        check_name("namespace", namespace)
    if workload is not None:
        if namespace is None:
            raise UsageError(f"{workload.ref}: a workload is in one namespace (-n), not all (-A)")
        owner = _workload(kube, namespace, workload)
        text = selector_text((owner.get("spec") or {}).get("selector"))
        meta = owner["metadata"]
        selection = Selection(
            namespace,
            text,
            {"kind": workload.kind, "name": workload.name, "uid": meta.get("uid")},
        )
        owned = _Owned(kube, namespace, workload.kind, str(meta.get("uid")))
        for pod in _list(kube, namespace, text):
            why = owned.why_not(pod)
            if why is None:
                selection.pods.append(pod)
            else:
                selection.skipped.append(
                    {
                        "name": str(pod["metadata"].get("name")),
                        "uid": str(pod["metadata"].get("uid")),
                        "why": why,
                    }
                )
    else:
        text = (selector or "").strip()
        if not text:
            raise UsageError("an empty selector would take every pod: name the pods to capture")
        selection = Selection(namespace, text, None, _list(kube, namespace, text))
    if not selection.pods:
        raise ClusterError(_nothing(kube, selection))
    selection.pods.sort(key=lambda p: (p["metadata"].get("namespace"), p["metadata"].get("name")))
    return selection


def selector_text(selector: dict[str, Any] | None) -> str:
    """A LabelSelector (matchLabels, matchExpressions) as the string an apiserver list takes."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": f"{key}",
                "DoesNotExist": f"!{key}",
            }.get(str(op), f"{key} {op} ({values})")
        )
    return ",".join(parts)


def _workload(kube: Kube, namespace: str, workload: Workload) -> dict[str, Any]:
    path = OWNER_PATHS[workload.kind].format(ns=namespace, name=workload.name)
    try:
        found: dict[str, Any] = kube.get(path)
    except ApiError as exc:
        if exc.not_found:
            raise ClusterError(
                f"{workload.ref} not found in namespace {namespace}"
                + _namespace_note(kube, namespace)
            ) from None
        raise
    return found


def _list(kube: Kube, namespace: str | None, selector: str) -> list[dict[str, Any]]:
    """The pods `selector` matches, page by page; at most MAX_PODS."""
    where = f"namespace {namespace}" if namespace else "all namespaces"
    path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    pods: list[dict[str, Any]] = []
    token = ""
    while True:
        query: dict[str, Any] = {"limit": LIST_PAGE}
        if selector:
            query["labelSelector"] = selector
        if token:
            query["continue"] = token
        try:
            page = kube.get(path, **query)
        except ApiError as exc:
            if exc.status == 400:
                raise UsageError(f"selector {selector!r}: {exc.message}") from None
            raise
        pods.extend(page.get("items") or [])
        if len(pods) > MAX_PODS:
            raise UsageError(
                f"selector {selector!r} matches more than {MAX_PODS} pods in {where}: narrow it "
                f"(one run captures at most {MAX_PODS})"
            )
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return pods


class _Owned:
    """Whether a listed pod belongs to the workload: its controller is the workload (by uid),
    or, for a Deployment, a ReplicaSet the Deployment controls (each read once)."""

    def __init__(self, kube: Kube, namespace: str, kind: str, uid: str) -> None:
        self.kube, self.namespace, self.kind, self.uid = kube, namespace, kind, uid
        self._replicasets: dict[str, str | None] = {}  # name -> its controller's uid

    def why_not(self, pod: dict[str, Any]) -> str | None:
        ref = controller_of(pod)
        if ref is None:
            return "matches the selector but has no controller"
        owner = f"{ref.get('kind')}/{ref.get('name')}"
        if self.kind != "Deployment":
            if ref.get("kind") == self.kind and ref.get("uid") == self.uid:
                return None
            return f"matches the selector but is controlled by {owner}"
        if ref.get("kind") != "ReplicaSet":
            return f"matches the selector but is controlled by {owner}"
        name = str(ref.get("name"))
        if name not in self._replicasets:
            path = OWNER_PATHS["ReplicaSet"].format(ns=self.namespace, name=check_name("rs", name))
            found = self.kube.get_optional(path)
            parent = controller_of(found) if found else None
            self._replicasets[name] = str(parent.get("uid")) if parent else None
        if self._replicasets[name] == self.uid:
            return None
        return f"matches the selector but its {owner} is not the deployment's"


def _nothing(kube: Kube, selection: Selection) -> str:
    """Why no pod was taken, in one line."""
    ns = selection.namespace
    if selection.workload:
        ref = f"{selection.workload['kind'].lower()}/{selection.workload['name']}"
        left = len(selection.skipped)
        return f"{ref} in namespace {ns} has no pods" + (
            f" ({left} matching its selector belong to something else)" if left else ""
        )
    if ns is None:
        return f"no pods in any namespace match selector {selection.selector!r}"
    return f"no pods in namespace {ns} match selector {selection.selector!r}" + _namespace_note(
        kube, ns
    )


def _namespace_note(kube: Kube, namespace: str) -> str:
    """`; namespace NS does not exist` when it does not (one GET); nothing when it does or the
    read is not allowed."""
    try:
        kube.get(f"/api/v1/namespaces/{namespace}")
    except ApiError as exc:
        if exc.not_found:
            return f" (namespace {namespace} does not exist)"
    return ""
