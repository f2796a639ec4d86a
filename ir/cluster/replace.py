"""Replace a suspect pod: take it out of its controller's selector (original labels saved in an
annotation), so the controller releases it and creates a clean replacement while the suspect
stays, isolated, for investigation; Services stop sending it traffic for the same reason. A bare
pod gets a copy started under a new name; a StatefulSet pod cannot be replaced while it is kept.
Every change goes through ops.Operator."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ir.clock import rfc3339, utcnow
from ir.cluster.ops import MERGE_PATCH, Operator, Request, check_namespace
from ir.cluster.resolve import OWNER_PATHS, PodTarget, controller_of, pod_path
from ir.cluster.respond import ANN_ORIGINAL_LABELS, ANN_REPLACED, LABEL_QUARANTINE
from ir.cluster.selectors import selector_keys, service_selects
from ir.errors import ClusterError


@dataclass
class ReplaceResult:
    strategy: str  # release-from-controller | clone-bare-pod | not-possible | already
    controller: str | None = None
    removed_labels: dict[str, str] = field(default_factory=dict)
    replacement: str | None = None
    ready: bool = False
    waited_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def replace_pod(
    op: Operator,
    target: PodTarget,
    *,
    timeout: float = 120.0,
    wait: bool = True,
    allow_protected: bool = False,
) -> ReplaceResult:
    """Take the suspect out of its controller and its Services so a clean pod replaces it."""
    check_namespace(target.namespace, allow_protected)
    meta = target.pod.get("metadata", {})
    if ANN_ORIGINAL_LABELS in (meta.get("annotations") or {}):
        op.note("replace", "skipped", why="pod was already taken out of its controller")
        result = ReplaceResult(
            "already", notes=["the pod was already released from its controller by ir"]
        )
        if wait and not op.dry_run:  # e.g. a run resumed after a crash: is a pod serving now?
            result.removed_labels = _released_labels(target)
            start = time.monotonic()
            result.ready, result.replacement = wait_for_replacement(op, target, result, timeout)
            result.waited_seconds = round(time.monotonic() - start, 2)
            result.notes.append(
                f"ready pod {result.replacement} carries the labels it had"
                if result.ready
                else f"no ready pod with the labels it had within {timeout:g}s"
            )
        return result
    ref = target.controller
    kind = ref.get("kind") if ref else None
    owner = target.owners[0] if target.owners else None
    services = _services_selecting(op, target)
    keys: set[str] = set()
    for svc in services:
        keys |= set((svc.get("spec", {}).get("selector") or {}).keys())
    if kind in ("ReplicaSet", "ReplicationController", "DaemonSet", "Job"):
        if owner is None or "spec" not in owner:
            raise ClusterError(
                f"cannot replace: owner {kind}/{ref.get('name') if ref else '?'} could not be read"
            )
        selector = owner["spec"].get("selector")
        if kind == "ReplicationController":
            selector = {"matchLabels": selector or {}}
        keys |= selector_keys(selector)
        result = ReplaceResult(
            "release-from-controller", f"{kind}/{ref.get('name') if ref else ''}"
        )
        if kind == "DaemonSet":
            result.notes.append(
                "DaemonSet: the replacement is created on the same node as the suspect"
            )
        if kind == "Job":
            result.notes.append(
                "Job: the Job controller starts a new pod only if the Job still needs one"
            )
    elif kind == "StatefulSet":
        op.note(
            "replace",
            "not-possible",
            why="StatefulSet pods keep their name; a replacement needs the suspect gone",
        )
        return ReplaceResult(
            "not-possible",
            f"StatefulSet/{ref.get('name') if ref else ''}",
            notes=[
                "StatefulSet: the replacement must take the suspect's name, so it cannot run while the suspect is kept. "
                "The pod stays quarantined; once the evidence is stored, `ir release pod --delete` lets the StatefulSet "
                "recreate it."
            ],
        )
    elif kind is None:
        result = ReplaceResult("clone-bare-pod")
        result.notes.append(
            "bare pod: a copy of its spec is started under a new name with the original labels"
        )
    else:
        op.note("replace", "not-possible", why=f"controller kind {kind} is not handled")
        return ReplaceResult(
            "not-possible",
            f"{kind}/{ref.get('name') if ref else ''}",
            notes=[f"pods controlled by {kind} are not replaced by ir; the pod stays quarantined"],
        )
    labels = target.labels
    removed = {k: labels[k] for k in sorted(keys) if k in labels}
    result.removed_labels = removed
    clone_name = None
    if result.strategy == "clone-bare-pod":
        clone = clone_pod(target)
        clone_name = clone["metadata"]["name"]
        op.apply(
            "create-replacement-pod",
            Request(
                "POST",
                f"/api/v1/namespaces/{target.namespace}/pods",
                clone,
                why="start a clean copy of the bare pod",
            ),
        )
        result.replacement = clone_name
    patch = {
        "metadata": {
            "labels": {k: None for k in removed},
            "annotations": {
                ANN_ORIGINAL_LABELS: json.dumps(labels, sort_keys=True),
                ANN_REPLACED: rfc3339(utcnow()),
            },
        }
    }
    # Every pod that could pass for the replacement now: a sibling replica already running is not
    # one (a replacement is a pod whose UID did not exist before ir acted).
    existing: set[str] = set()
    if wait and not op.dry_run:
        existing = _pod_uids(op, target.namespace, _selector_text(removed))
    op.apply(
        "release-from-controller",
        Request(
            "PATCH",
            pod_path(target.namespace, target.name),
            patch,
            content_type=MERGE_PATCH,
            why="remove the selecting labels so the controller replaces the pod and Services drop it",
            retry=True,
        ),
    )
    if wait and not op.dry_run:
        start = time.monotonic()
        result.ready, replacement = wait_for_replacement(
            op, target, result, timeout, existing=existing
        )
        result.replacement = result.replacement or replacement
        result.waited_seconds = round(time.monotonic() - start, 2)
    return result


def _services_selecting(op: Operator, target: PodTarget) -> list[dict[str, Any]]:
    items = op.kube.get(f"/api/v1/namespaces/{target.namespace}/services").get("items", [])
    return [s for s in items if service_selects(s, target.labels)]


def clone_pod(target: PodTarget) -> dict[str, Any]:
    meta = target.pod.get("metadata", {})
    spec = json.loads(json.dumps(target.pod.get("spec", {})))
    for key in ("nodeName",):
        spec.pop(key, None)
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != LABEL_QUARANTINE}
    suffix = uuid.uuid4().hex[:5]
    name = f"{target.name[:240]}-ir-{suffix}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": target.namespace,
            "labels": labels,
            "annotations": {"ir.forensics/replaces": f"{target.name} ({target.uid})"},
        },
        "spec": spec,
    }


def _released_labels(target: PodTarget) -> dict[str, str]:
    """The labels ir removed from a pod it released (its annotation of the original labels,
    less what it still carries)."""
    try:
        original = json.loads(
            (target.pod.get("metadata", {}).get("annotations") or {})[ANN_ORIGINAL_LABELS]
        )
    except (KeyError, TypeError, ValueError):
        return {}
    if not isinstance(original, dict):
        return {}
    return {
        str(k): str(v)
        for k, v in original.items()
        if k not in target.labels and not str(k).startswith("ir.forensics/")
    }


def _selector_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items() if k != "pod-template-hash")


def _pod_uids(op: Operator, ns: str, selector: str) -> set[str]:
    if not selector:
        return set()
    items = op.kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector).get("items", [])
    return {str(p["metadata"]["uid"]) for p in items}


def wait_for_replacement(
    op: Operator,
    target: PodTarget,
    result: ReplaceResult,
    timeout: float,
    *,
    existing: set[str] | None = None,
) -> tuple[bool, str | None]:
    """Wait until the suspect is released and a new pod -- one whose UID did not exist before
    ir acted (`existing`), Ready by its conditions -- serves in its place."""
    ns = target.namespace
    deadline = time.monotonic() + timeout
    original = json.loads(json.dumps(target.labels))
    selector = _selector_text(result.removed_labels)
    existing = existing or set()
    while time.monotonic() < deadline:
        suspect = op.kube.get_optional(pod_path(ns, target.name))
        released = suspect is not None and controller_of(suspect) is None
        candidates = (
            op.kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector).get("items", [])
            if selector
            else []
        )
        fresh = [
            p
            for p in candidates
            if p["metadata"]["uid"] != target.uid
            and p["metadata"]["uid"] not in existing
            and _ready(p)
        ]
        if result.replacement:
            fresh = [
                p for p in candidates if p["metadata"]["name"] == result.replacement and _ready(p)
            ]
        owner_ok = (
            _owner_available(op, target) if result.strategy == "release-from-controller" else True
        )
        if (released or result.strategy != "release-from-controller") and fresh and owner_ok:
            newest = max(fresh, key=lambda p: p["metadata"].get("creationTimestamp", ""))
            op.note("replacement-ready", "ok", why=f"pod {newest['metadata']['name']} is ready")
            return True, newest["metadata"]["name"]
        time.sleep(0.5)
    op.note(
        "replacement-ready",
        "timeout",
        why=f"no ready replacement within {timeout:.0f}s",
        labels=original,
    )
    return False, None


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _owner_available(op: Operator, target: PodTarget) -> bool:
    """The top owner (Deployment or ReplicaSet) reports all its replicas available again."""
    if not target.owners:
        return True
    top = target.owners[-1]
    kind, name = top.get("kind"), top.get("metadata", {}).get("name")
    template = OWNER_PATHS.get(str(kind))
    if template is None or kind not in ("Deployment", "ReplicaSet"):
        return True
    obj = op.kube.get_optional(template.format(ns=target.namespace, name=name))
    if obj is None:
        return False
    want = int(obj.get("spec", {}).get("replicas") or 0)
    return int(obj.get("status", {}).get("availableReplicas") or 0) >= want
