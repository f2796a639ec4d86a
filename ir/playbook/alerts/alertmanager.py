"""Prometheus Alertmanager webhook notifications (payload version "4").

Shape: {"version": "4", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
"commonLabels", "commonAnnotations", "externalURL", "alerts": [{"status": "firing"|"resolved",
"labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}]}.

Every alert of the group becomes one Alert; resolved alerts are returned with status "resolved"
(the caller ignores them). Target labels follow kube-state-metrics/cAdvisor (`namespace`, `pod`,
`container`, `node`) and Falcosidekick's Alertmanager output (`k8s_ns_name`, `k8s_pod_name`,
`container_id`, `rule`, `priority`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ir.playbook.alerts.model import (
    Alert,
    AlertError,
    as_text,
    normalize_priority,
    parse_alert_time,
)

SOURCE = "alertmanager"
MAX_ALERTS = 1000

_NAMESPACE_LABELS = ("namespace", "k8s_ns_name", "exported_namespace")
_POD_LABELS = ("pod", "k8s_pod_name", "exported_pod")
_CONTAINER_LABELS = ("container", "container_name", "k8s_container_name")
_NODE_LABELS = ("node", "kubernetes_node", "hostname")
_GROUP_FIELDS = (
    "receiver",
    "status",
    "groupKey",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "version",
    "truncatedAlerts",
)


def detect(document: dict[str, Any]) -> bool:
    return "alerts" in document and ("groupKey" in document or "receiver" in document)


def parse(document: dict[str, Any]) -> list[Alert]:
    """Every alert of the group (resolved ones included, marked). Raises AlertError on an
    unsupported version or mistyped fields."""
    version = document.get("version")
    if version != "4":
        raise AlertError(
            f'alertmanager: unsupported webhook payload version {str(version)[:16]!r} (expected "4")'
        )
    alerts = document.get("alerts")
    if not isinstance(alerts, list):
        raise AlertError("alertmanager: 'alerts' must be a list")
    if len(alerts) > MAX_ALERTS:
        raise AlertError(
            f"alertmanager: {len(alerts)} alerts in one group; the limit is {MAX_ALERTS}"
        )
    envelope = {k: document[k] for k in _GROUP_FIELDS if k in document}
    common = document.get("commonLabels") or {}
    if not isinstance(common, dict):
        raise AlertError("alertmanager: 'commonLabels' must be an object")
    truncated = document.get("truncatedAlerts", 0)
    group_notes = (
        (f"{truncated} alert(s) of this group were truncated by Alertmanager",)
        if (isinstance(truncated, int) and not isinstance(truncated, bool) and truncated > 0)
        else ()
    )
    return [_parse_one(index, alert, envelope, group_notes) for index, alert in enumerate(alerts)]


def _parse_one(index: int, alert: Any, envelope: dict[str, Any], notes: tuple[str, ...]) -> Alert:
    where = f"alertmanager: alerts[{index}]"
    if not isinstance(alert, dict):
        raise AlertError(f"{where} must be an object")
    labels = alert.get("labels")
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise AlertError(f"{where}.labels must be an object of strings")
    annotations = alert.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise AlertError(f"{where}.annotations must be an object")
    status = alert.get("status")
    if status not in ("firing", "resolved"):
        raise AlertError(f"{where}.status must be 'firing' or 'resolved'")
    # Falcosidekick's Alertmanager output sets `rule`, not `alertname`.
    rule = as_text(labels.get("alertname"), limit=512) or as_text(labels.get("rule"), limit=512)
    if rule is None:
        raise AlertError(f"{where}: no 'alertname' (or 'rule') label")
    when, when_text = parse_alert_time(alert.get("startsAt"), f"{where}.startsAt")
    severity = (
        as_text(labels.get("severity"), limit=64) or as_text(labels.get("priority"), limit=64) or ""
    )
    # Falcosidekick maps Falco priorities coarsely onto `severity`; its `priority` label is exact.
    priority = normalize_priority(labels.get("priority")) or normalize_priority(severity)
    fingerprint = as_text(alert.get("fingerprint"), limit=128) or _fingerprint(labels)
    tags_label = labels.get("tags", "")
    summary = (
        as_text(annotations.get("summary"), limit=4096)
        or as_text(annotations.get("description"), limit=4096)
        or ""
    )
    return Alert(
        source=SOURCE,
        rule=rule,
        priority=priority,
        priority_original=severity,
        time=when,
        time_original=when_text,
        alert_id=f"{fingerprint}@{when_text}",
        status=status,
        tags=tuple(t for t in tags_label.split(",") if t),
        summary=summary,
        namespace=_first(labels, _NAMESPACE_LABELS),
        pod=_first(labels, _POD_LABELS),
        container=_first(labels, _CONTAINER_LABELS),
        container_id=as_text(labels.get("container_id"), limit=256),
        node=_first(labels, _NODE_LABELS),
        raw=alert,
        envelope=envelope,
        notes=notes,
        cluster=as_text(labels.get("cluster"), limit=100),  # the usual external label
    )


def _first(labels: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = as_text(labels.get(name), limit=512)
        if value:
            return value
    return None


def _fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager always sends `fingerprint`; older senders may not: derive one from labels."""
    text = "\xff".join(f"{k}\xfe{labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
