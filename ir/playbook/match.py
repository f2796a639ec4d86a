"""Which playbooks an alert fires, and why (or why not); and the one place where the names an
alert claims become a validated `Target`.

Decisions: "match" (the playbook fires and its target is valid), "no-match" (the trigger does not
apply), "refused" (the trigger applies but the target is invalid, or in a protected namespace).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from ir.playbook.alerts import Alert, Target, priority_rank
from ir.playbook.k8snames import (
    PROTECTED_NAMESPACES,
    is_dns1123_label,
    is_dns1123_subdomain,
    split_container_id,
)
from ir.playbook.pointer import resolve_pointer
from ir.playbook.spec import Playbook

MATCH, NO_MATCH, REFUSED = "match", "no-match", "refused"


class TargetRefused(Exception):
    """The alert's target must not be acted on; the message says why (safe to print)."""


@dataclass
class MatchResult:
    playbook: Playbook
    decision: str  # match | no-match | refused
    reasons: list[str] = field(default_factory=list)
    target: Target | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return self.decision == MATCH

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook.name,
            "decision": self.decision,
            "reasons": self.reasons,
            "notes": self.notes,
            "target": self.target.to_dict() if self.target else None,
        }


def _show(value: Any) -> str:
    """A value from an untrusted alert, safe to print or log: quoted, escaped, cut at 80."""
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:80]) + ("…" if len(text) > 80 else "")


def evaluate(
    playbook: Playbook, alert: Alert, protected_namespaces: Iterable[str] = PROTECTED_NAMESPACES
) -> MatchResult:
    """Does `playbook` fire on `alert`? Never raises on hostile alert content."""
    trig = playbook.trigger
    result = MatchResult(playbook, NO_MATCH)
    why = result.reasons
    if alert.status != "firing":
        why.append(f"alert is {alert.status}: only firing alerts trigger playbooks")
        return result
    if trig.sources and alert.source not in trig.sources:
        why.append(f"source {alert.source} not in {list(trig.sources)}")
        return result
    if trig.rules or trig.rule_patterns:
        if alert.rule in trig.rules:
            why.append(f"rule {alert.rule!r} listed")
        else:
            pattern = next((p for p in trig.rule_patterns if p.search(alert.rule)), None)
            if pattern is None:
                why.append(f"rule {_show(alert.rule)} not listed and matches no rule_pattern")
                return result
            why.append(f"rule {alert.rule!r} matches pattern {pattern.pattern!r}")
    if trig.min_priority:
        if alert.priority_rank < priority_rank(trig.min_priority):
            why.append(
                f"priority {alert.priority or 'unknown'} ({_show(alert.priority_original)}) "
                f"below {trig.min_priority}"
            )
            return result
        why.append(f"priority {alert.priority} >= {trig.min_priority}")
    if trig.tags_all and not set(trig.tags_all) <= set(alert.tags):
        why.append(f"tags lack one of {list(trig.tags_all)}")
        return result
    if trig.tags_any:
        if not set(trig.tags_any) & set(alert.tags):
            why.append(f"tags have none of {list(trig.tags_any)}")
            return result
        why.append("tags match")
    for pointer, accepted in trig.fields:
        found, value = resolve_pointer(alert.raw, pointer)
        if not found or not any(_same(value, a) for a in accepted):
            why.append(
                f"field {pointer} is {_show(value) if found else 'absent'}, not one of {list(accepted)}"
            )
            return result
        why.append(f"field {pointer} = {_show(value)}")
    try:
        target, notes = resolve_target(playbook, alert, protected_namespaces)
    except TargetRefused as exc:
        result.decision = REFUSED
        why.append(str(exc))
        return result
    result.notes.extend(notes)
    if trig.targets and target.kind not in trig.targets:
        why.append(f"target is a {target.kind}, playbook acts on {list(trig.targets)}")
        return result
    ns = target.namespace
    allowed = ns is not None and any(fnmatchcase(ns, p) for p in trig.namespaces_allow)
    if trig.namespaces_allow and not allowed:
        why.append(
            f"namespace {ns or '(none)'} not in namespaces.allow {list(trig.namespaces_allow)}"
        )
        return result
    if ns is not None and any(fnmatchcase(ns, p) for p in trig.namespaces_deny):
        why.append(f"namespace {ns} matches namespaces.deny {list(trig.namespaces_deny)}")
        return result
    result.decision = MATCH
    result.target = target
    why.append(f"target {target.key}")
    return result


def _same(value: Any, accepted: Any) -> bool:
    # bool is an int in Python: compare types so `true` never equals 1
    return (
        type(value) is type(accepted)
        and value == accepted
        or (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and isinstance(accepted, (int, float))
            and not isinstance(accepted, bool)
            and value == accepted
        )
    )


def match_alert(
    playbooks: Sequence[Playbook],
    alert: Alert,
    protected_namespaces: Iterable[str] = PROTECTED_NAMESPACES,
) -> list[MatchResult]:
    """Every playbook's decision for `alert`, in playbook order."""
    protected = tuple(protected_namespaces)
    return [evaluate(p, alert, protected) for p in playbooks]


def select(results: Sequence[MatchResult]) -> MatchResult | None:
    """The playbook that runs: the first match in order (lowest `order`, then name)."""
    return next((r for r in results if r.matched), None)


def _absent(name: str, value: Any) -> bool:
    """Values sources use for "no such thing": Falco writes <NA> and container.id "host"."""
    return (
        value is None
        or value == ""
        or value == "<NA>"
        or (name == "container_id" and value == "host")
    )


def resolve_target(
    playbook: Playbook, alert: Alert, protected_namespaces: Iterable[str] = PROTECTED_NAMESPACES
) -> tuple[Target, list[str]]:
    """The validated Target of `alert` under `playbook` (its JSON Pointers, else the parser's
    fields), with notes. Raises TargetRefused when a name is invalid (DNS-1123), a pod has no
    namespace, or the namespace is protected and the playbook does not allow it."""
    claimed: dict[str, Any] = dict(alert.claimed_target())
    pointers = playbook.target_pointers.get(alert.source, {})
    for name, pointer in pointers.items():
        found, value = resolve_pointer(alert.raw, pointer)
        claimed[name] = None if not found or _absent(name, value) else value
    notes: list[str] = []

    def check(name: str, valid: bool) -> None:
        if claimed.get(name) is not None and not valid:
            raise TargetRefused(
                f"{name.replace('_', ' ')} {_show(claimed[name])} is not a valid "
                "Kubernetes name: nothing acted on"
            )

    namespace, pod = claimed["namespace"], claimed["pod"]
    check("namespace", is_dns1123_label(namespace))
    check("pod", is_dns1123_subdomain(pod))
    check("service_account", is_dns1123_subdomain(claimed["service_account"]))
    check("workload_name", is_dns1123_subdomain(claimed["workload_name"]))
    check("workload_kind", is_dns1123_label(claimed["workload_kind"]))
    has_principal = any(claimed[k] is not None for k in ("pod", "workload_name", "service_account"))
    if has_principal and namespace is None:
        raise TargetRefused(
            "the alert names a pod, workload or service account but no namespace: nothing acted on"
        )
    container = claimed["container"]
    if container is not None and not is_dns1123_label(container):
        if not has_principal:
            check("container", False)
        notes.append(f"container name {_show(container)} is not a valid name: ignored")
        container = None
    node = claimed["node"]
    if node is not None and not is_dns1123_subdomain(node):
        if not has_principal:
            check("node", False)
        notes.append(f"node name {_show(node)} is not a valid name: ignored")
        node = None
    container_id = runtime = None
    if claimed["container_id"] is not None:
        parsed = split_container_id(claimed["container_id"])
        if parsed is None:
            if not has_principal:
                check("container_id", False)
            notes.append(
                f"container id {_show(claimed['container_id'])} is not a container id: ignored"
            )
        else:
            container_id, runtime = parsed
    protected = set(protected_namespaces)
    if namespace in protected and not playbook.allow_protected_namespaces:
        raise TargetRefused(
            f"namespace {namespace} is protected (protected: {', '.join(sorted(protected))}); "
            "the playbook does not set allow_protected_namespaces: nothing acted on"
        )
    target = Target(
        source=alert.source,
        rule=alert.rule,
        priority=alert.priority,
        time=alert.time,
        alert_id=alert.alert_id,
        namespace=namespace,
        pod=pod,
        container=container,
        container_id=container_id,
        container_runtime=runtime,
        node=node,
        service_account=claimed["service_account"],
        workload_kind=claimed["workload_kind"],
        workload_name=claimed["workload_name"],
        tags=alert.tags,
        raw=alert.raw,
    )
    return target, notes
