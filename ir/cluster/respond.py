"""Quarantine, replace and release a suspect pod. Every change goes through ops.Operator.

Quarantine: a NetworkPolicy that selects only a per-incident label and denies all ingress and
egress, then that label on the pod (policy first, so a labelled pod is never left unprotected),
then a read-back check that the policy exists and selects exactly that pod.

Replace: ir.cluster.replace.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from ir.clock import rfc3339, utcnow
from ir.cluster.kube import ApiError
from ir.cluster.ops import MERGE_PATCH, Operator, Request, check_namespace
from ir.cluster.probe import Probe, confirm_refused, remove_probe, start_probe
from ir.cluster.resolve import PodTarget, pod_path, resolve_pod
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
