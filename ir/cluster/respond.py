"""Quarantine, replace and release a suspect pod. Every change goes through ops.Operator.

Quarantine: a NetworkPolicy that selects only a per-incident label and denies all ingress and
egress, then that label on the pod (policy first, so a labelled pod is never left unprotected),
then a read-back check that the policy exists and selects exactly that pod.

Replace: take the pod out of its controller's selector (original labels saved in an annotation),
so the controller releases it and creates a clean replacement while the suspect stays, isolated,
for investigation; Services stop sending it traffic for the same reason.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ir.clock import rfc3339, utcnow
from ir.cluster.kube import ApiError
from ir.cluster.ops import MERGE_PATCH, Operator, Request, check_namespace
from ir.cluster.probe import Probe, confirm_refused, remove_probe, start_probe
from ir.cluster.resolve import OWNER_PATHS, PodTarget, pod_path, resolve_pod
from ir.cluster.selectors import selector_keys, service_selects
from ir.errors import ClusterError, RefusedError

LABEL_QUARANTINE = "ir.forensics/quarantine"
ANN_QUARANTINE = "ir.forensics/quarantine-info"
ANN_ORIGINAL_LABELS = "ir.forensics/original-labels"
ANN_REPLACED = "ir.forensics/replaced"
POLICY_PREFIX = "ir-quarantine-"
ENFORCEMENT_WARNING = (
    "NetworkPolicy is enforced only by a network plugin that supports it (Calico, Cilium, ...); "
    "on some plugins connections established before the policy survive it. Consider --cordon and "
    "checking the node."
)


@dataclass
class QuarantineResult:
    quarantine_id: str
    policy: str
    already: bool = False
    policy_verified: bool = False  # the policy reads back and selects exactly this pod
    verified: bool = False  # enforcement proven by traffic (a probe refused after the policy)
    enforcement: str = "not checked"  # what ir saw of enforcement, in words
    enforcement_state: str = "not-verified"  # verified | not-verified | not-enforced
    cordoned: bool = False
    warnings: list[str] = field(default_factory=list)


def quarantine_pod(
    op: Operator,
    target: PodTarget,
    *,
    reason: str,
    case_id: str,
    actor: str,
    allow_egress_cidrs: tuple[str, ...] = (),
    allow_dns: bool = False,
    cordon: bool = False,
    allow_protected: bool = False,
    bundle: str | None = None,
    probe_image: str | None = None,
) -> QuarantineResult:
    """Isolate a pod with a deny-all NetworkPolicy. Idempotent: a quarantined pod keeps its policy.

    With `probe_image`, a probe pod connects to the suspect before and after the policy, so the
    result says whether the cluster enforces it (ir.cluster.probe); without, the result says
    "policy applied, enforcement not verified"."""
    ns = target.namespace
    check_namespace(ns, allow_protected)
    qid = (
        target.labels.get(LABEL_QUARANTINE)
        or _policy_left_for(op, target)
        or "q" + uuid.uuid4().hex[:12]
    )
    policy_name = POLICY_PREFIX + qid
    result = QuarantineResult(qid, policy_name, warnings=[ENFORCEMENT_WARNING])
    policy_path = f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
    existing = op.kube.get_optional(f"{policy_path}/{policy_name}")
    in_place = existing is not None and target.labels.get(LABEL_QUARANTINE) == qid
    probe: Probe | None = None
    if op.dry_run:
        result.enforcement = "dry run: nothing applied"
    elif not probe_image:
        result.enforcement = "policy applied, enforcement not verified (no probe image given)"
    elif in_place:
        result.enforcement = "policy was in place already; enforcement not probed again"
    else:
        started = start_probe(op, target, probe_image, qid)
        if isinstance(started, str):
            result.enforcement = f"policy applied, enforcement not verified: {started}"
        else:
            probe = started
    try:
        if existing is not None:
            result.already = True
            op.note("quarantine-policy", "skipped", why=f"policy {policy_name} exists already")
        else:
            op.apply(
                "create-quarantine-policy",
                Request(
                    "POST",
                    policy_path,
                    deny_all_policy(
                        policy_name, qid, target, reason, allow_egress_cidrs, allow_dns
                    ),
                    why="deny all ingress and egress of the suspect pod",
                    retry=False,
                ),
            )
        if in_place:
            op.note(
                "label-pod-quarantined", "skipped", why="pod already carries the quarantine label"
            )
            if not op.dry_run:
                verify_quarantine(op, target, qid, policy_name)
                result.policy_verified = True
            return result
        info = {
            "id": qid,
            "by": actor,
            "why": reason,
            "case": case_id,
            "when": rfc3339(utcnow()),
            "policy": policy_name,
            "bundle": bundle,
        }
        try:
            op.apply(
                "label-pod-quarantined",
                Request(
                    "PATCH",
                    pod_path(ns, target.name),
                    {
                        "metadata": {
                            "labels": {LABEL_QUARANTINE: qid},
                            "annotations": {ANN_QUARANTINE: json.dumps(info, sort_keys=True)},
                        }
                    },
                    content_type=MERGE_PATCH,
                    why="select the pod with the quarantine policy",
                    retry=True,
                ),
            )
        except (ApiError, RefusedError) as exc:
            raise ClusterError(
                f"quarantine INCOMPLETE: policy {policy_name} exists but labelling pod {ns}/{target.name} failed "
                f"({exc.message}); the pod is NOT isolated"
            ) from None
        if cordon and target.node:
            op.apply(
                "cordon-node",
                Request(
                    "PATCH",
                    f"/api/v1/nodes/{target.node}",
                    {"spec": {"unschedulable": True}},
                    content_type=MERGE_PATCH,
                    why="keep new pods off the suspect node",
                    retry=True,
                ),
            )
            result.cordoned = True
        if not op.dry_run:
            verify_quarantine(op, target, qid, policy_name)
            result.policy_verified = True
        if probe is not None:
            ok, text = confirm_refused(op, probe)
            result.verified = ok
            if ok:
                result.enforcement, result.enforcement_state = text, "verified"
            else:
                result.enforcement = f"policy applied, enforcement not verified: {text}"
                if probe.open:  # traffic flowed before and still does: the policy is not enforced
                    result.enforcement_state = "not-enforced"
        return result
    finally:
        # a failure between the probe's start and its check must not leave the probe running
        if probe is not None and not probe.removed:
            remove_probe(op, probe)


def _policy_left_for(op: Operator, target: PodTarget) -> str | None:
    """The quarantine id of a policy ir made for this very pod (by uid) in an earlier attempt that
    failed before the label (or whose answer was lost): reused, never a second policy."""
    policies = op.kube.get(
        f"/apis/networking.k8s.io/v1/namespaces/{target.namespace}/networkpolicies",
        labelSelector="app.kubernetes.io/managed-by=ir",
    ).get("items", [])
    for policy in policies:
        meta = policy.get("metadata", {})
        if (meta.get("annotations") or {}).get("ir.forensics/pod-uid") == target.uid:
            qid = (meta.get("labels") or {}).get(LABEL_QUARANTINE)
            if qid and meta.get("name") == POLICY_PREFIX + qid:
                op.note(
                    "quarantine-policy",
                    "reused",
                    why=f"policy {meta['name']} was left by an earlier attempt",
                )
                return str(qid)
    return None


def deny_all_policy(
    name: str,
    qid: str,
    target: PodTarget,
    reason: str,
    allow_egress_cidrs: tuple[str, ...],
    allow_dns: bool = False,
) -> dict[str, Any]:
    egress: list[dict[str, Any]] = []
    if allow_egress_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in allow_egress_cidrs]})
    if allow_dns:  # cluster DNS only (kube-dns pods in kube-system), port 53
        egress.append(
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        },
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        )
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {LABEL_QUARANTINE: qid}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": egress,
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/managed-by": "ir", LABEL_QUARANTINE: qid},
            "annotations": {
                "ir.forensics/reason": reason[:1000],
                "ir.forensics/pod": target.name,
                "ir.forensics/pod-uid": target.uid,
            },
        },
        "spec": spec,
    }


def verify_quarantine(op: Operator, target: PodTarget, qid: str, policy_name: str) -> None:
    """The policy exists, selects by our label, and the label selects exactly the suspect pod."""
    ns = target.namespace
    policy = op.kube.get_optional(
        f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{policy_name}"
    )
    if policy is None:
        raise ClusterError(
            f"quarantine check failed: policy {policy_name} not found after creation"
        )
    if (
        policy["spec"].get("podSelector") != {"matchLabels": {LABEL_QUARANTINE: qid}}
        or policy["spec"].get("ingress")
        or set(policy["spec"].get("policyTypes") or []) != {"Ingress", "Egress"}
    ):
        raise ClusterError(
            f"quarantine check failed: policy {policy_name} is not the deny-all policy ir wrote"
        )
    pods = op.kube.get(
        f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{LABEL_QUARANTINE}={qid}"
    ).get("items", [])
    uids = [p["metadata"]["uid"] for p in pods]
    if uids != [target.uid]:
        raise ClusterError(
            f"quarantine check failed: label {LABEL_QUARANTINE}={qid} selects {len(uids)} pod(s), expected only {target.name}"
        )
    op.note(
        "verify-quarantine", "ok", why=f"policy {policy_name} selects exactly pod {target.name}"
    )


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
        return ReplaceResult(
            "already", notes=["the pod was already released from its controller by ir"]
        )
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
        released = suspect is not None and not any(
            r.get("controller") for r in suspect.get("metadata", {}).get("ownerReferences") or []
        )
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


@dataclass
class ReleaseResult:
    policy_deleted: bool = False
    labels_removed: bool = False
    pod_deleted: bool = False
    uncordoned: bool = False
    notes: list[str] = field(default_factory=list)


def release_pod(
    op: Operator,
    namespace: str,
    name: str,
    *,
    delete: bool = False,
    evidence: str | None = None,
    uncordon: bool = False,
    allow_protected: bool = False,
) -> ReleaseResult:
    """Undo a quarantine (policy, label, annotation); optionally delete the suspect pod, which
    requires proof that its evidence is stored (`evidence`: a verified bundle of this pod)."""
    check_namespace(namespace, allow_protected)
    target = resolve_pod(op.kube, namespace, name)
    qid = target.labels.get(LABEL_QUARANTINE)
    result = ReleaseResult()
    if delete and not evidence:
        raise RefusedError(
            "refusing to delete the suspect pod without --evidence BUNDLE (a verified bundle of it)"
        )
    if qid:
        policy = f"{POLICY_PREFIX}{qid}"
        path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{policy}"
        if op.kube.get_optional(path) is not None:
            op.apply(
                "delete-quarantine-policy",
                Request("DELETE", path, why="end the quarantine", retry=True),
            )
            result.policy_deleted = True
        op.apply(
            "unlabel-pod",
            Request(
                "PATCH",
                pod_path(namespace, name),
                {
                    "metadata": {
                        "labels": {LABEL_QUARANTINE: None},
                        "annotations": {ANN_QUARANTINE: None},
                    }
                },
                content_type=MERGE_PATCH,
                why="end the quarantine",
                retry=True,
            ),
        )
        result.labels_removed = True
    else:
        result.notes.append("pod was not quarantined by ir")
        op.note("release", "skipped", why="no quarantine label on the pod")
    if uncordon and target.node:
        op.apply(
            "uncordon-node",
            Request(
                "PATCH",
                f"/api/v1/nodes/{target.node}",
                {"spec": {"unschedulable": False}},
                content_type=MERGE_PATCH,
                retry=True,
            ),
        )
        result.uncordoned = True
    if delete:
        op.apply(
            "delete-suspect-pod",
            Request("DELETE", pod_path(namespace, name), why=f"evidence stored in {evidence}"),
        )
        result.pod_deleted = True
    return result
