"""Prometheus Alertmanager webhook notifications (payload version "4").

Shape: {"version": "4", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
"commonLabels", "commonAnnotations", "externalURL", "alerts": [{"status": "firing"|"resolved",
"labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}]}.

Every alert of the group becomes one Alert; resolved alerts are returned with status "resolved"
(the caller ignores them). Target labels follow kube-state-metrics/cAdvisor (`namespace`, `pod`,
`container`, `node`).

An alert Falcosidekick's Alertmanager output sent (labels `source="falco"` and `rule`; see
falcosecurity/falcosidekick outputs/alertmanager.go) is read as the Falco event it carries: the
rule from `rule`, the priority from `priority` (Falco's; `severity` is Falcosidekick's coarse
mapping), the event time from `evt_time` (Falco's evt.time in epoch nanoseconds; `startsAt` is
only when Alertmanager received the alert, as Falcosidekick sends none), the target from
`k8s_ns_name`, `k8s_pod_name`, `container_name`, `container_id` (`host`: a host event, no
container and no pod) and the node from `k8s_node_name` only (`hostname` is Falco's, which may be
the Falco pod's name). Details and fallbacks: docs/alerts.md.

May import ir.playbook.alerts.model and ir.playbook.alerts.falco only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ir.playbook.alerts.falco import HOST_CONTAINER_ID, falco_node
from ir.playbook.alerts.model import (
    Alert,
    AlertError,
    AlertTime,
    as_text,
    normalize_priority,
    parse_alert_time_exact,
    time_from_epoch_ns,
)

SOURCE = "alertmanager"
MAX_ALERTS = 1000

_NAMESPACE_LABELS = ("namespace", "k8s_ns_name", "exported_namespace")
_POD_LABELS = ("pod", "k8s_pod_name", "exported_pod")
_CONTAINER_LABELS = ("container", "container_name", "k8s_container_name")
_NODE_LABELS = ("node", "kubernetes_node", "hostname")
# Falcosidekick writes each Falco output field as a label, dots (and any character outside
# [a-zA-Z0-9_]) replaced by "_": k8s.ns.name → k8s_ns_name.
_SIDEKICK_NAMESPACE_LABELS = ("k8s_ns_name", "k8smeta_ns_name")
_SIDEKICK_POD_LABELS = ("k8s_pod_name", "k8smeta_pod_name")
_SIDEKICK_NODE_LABEL = "k8s_node_name"
# Falco's time fields: in JSON output each is the event time in epoch nanoseconds
# (falcosecurity/libs sinsp_filtercheck_gen_event.cpp extract_as_js), which Falcosidekick writes as
# a label of decimal digits. Falco puts evt.time (or evt.time.iso8601 with time_format_iso_8601)
# in every event's output fields.
_SIDEKICK_TIME_LABELS = (
    "evt_time",
    "evt_time_iso8601",
    "evt_rawtime",
    "evt_datetime",
    "evt_time_s",
    "evt_datetime_s",
)
# epoch nanoseconds of a real event: 1973 (17 digits) to 2286 (19 digits); a shorter number is
# some other unit or no time at all, and is not guessed at
_NS_DIGITS = re.compile(r"^\d{17,19}$")
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
    starts = parse_alert_time_exact(alert.get("startsAt"), f"{where}.startsAt")
    fingerprint = as_text(alert.get("fingerprint"), limit=128) or _fingerprint(labels)
    tags_label = labels.get("tags", "")
    reading = (
        _from_falcosidekick(labels, annotations, starts)
        if is_falcosidekick(labels)
        else _from_labels(labels, annotations, starts)
    )
    if reading.rule is None:
        raise AlertError(f"{where}: no 'alertname' (or 'rule') label")
    return Alert(
        source=SOURCE,
        rule=reading.rule,
        priority=normalize_priority(reading.priority),
        priority_original=reading.priority or "",
        time=reading.when.utc,
        time_original=reading.when.original,
        alert_id=f"{fingerprint}@{starts.original}",
        status=status,
        tags=tuple(t for t in tags_label.split(",") if t),
        summary=reading.summary,
        namespace=reading.namespace,
        pod=reading.pod,
        container=reading.container,
        container_id=reading.container_id,
        node=reading.node,
        raw=alert,
        envelope=envelope,
        notes=notes + tuple(reading.notes),
        cluster=as_text(labels.get("cluster"), limit=100),  # the usual external label
        time_ns=reading.when.ns,
        time_precision=reading.when.precision,
        host=reading.host,
    )


@dataclass
class _Reading:
    """What one alert's labels say, before it becomes an Alert."""

    rule: str | None
    priority: str | None  # the word as the sender wrote it
    when: AlertTime
    summary: str
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    container_id: str | None = None
    node: str | None = None
    host: str | None = None
    notes: list[str] = field(default_factory=list)


def is_falcosidekick(labels: dict[str, str]) -> bool:
    """Labels Falcosidekick's Alertmanager output sets on every alert: source="falco" and the
    Falco rule (falcosecurity/falcosidekick outputs/alertmanager.go newAlertmanagerPayload)."""
    return labels.get("source") == "falco" and bool(labels.get("rule"))


def _from_labels(
    labels: dict[str, str], annotations: dict[str, Any], starts: AlertTime
) -> _Reading:
    """An alert of a Prometheus rule (or any other sender): labels as kube-state-metrics names
    them, the time is `startsAt`."""
    notes: list[str] = []
    container_id = as_text(labels.get("container_id"), limit=256)
    if container_id == HOST_CONTAINER_ID:
        container_id = None
        notes.append("container_id 'host' is no container id: ignored")
    return _Reading(
        rule=as_text(labels.get("alertname"), limit=512) or as_text(labels.get("rule"), limit=512),
        priority=as_text(labels.get("severity"), limit=64)
        or as_text(labels.get("priority"), limit=64),
        when=starts,
        summary=_summary(annotations, ("summary", "description")),
        namespace=_first(labels, _NAMESPACE_LABELS),
        pod=_first(labels, _POD_LABELS),
        container=_first(labels, _CONTAINER_LABELS),
        container_id=container_id,
        node=_first(labels, _NODE_LABELS),
        notes=notes,
    )


def _from_falcosidekick(
    labels: dict[str, str], annotations: dict[str, Any], starts: AlertTime
) -> _Reading:
    """A Falco event Falcosidekick forwarded: Falco's own rule, priority, time and target, read
    from the labels Falcosidekick made of the event."""
    notes = [
        "sent by Falcosidekick (labels source=falco, rule): rule, priority, event time and target "
        "read from the Falco event's labels"
    ]
    priority = as_text(labels.get("priority"), limit=64)
    severity = as_text(labels.get("severity"), limit=64)
    if priority is None:
        priority = severity
        notes.append(
            f"no 'priority' label: priority from Falcosidekick's coarse severity {severity!r}"
        )
    when = _falco_event_time(labels)
    if when is None:
        when = starts
        notes.append(
            "no Falco event time label (evt_time): the time is startsAt, when Alertmanager "
            "received the alert, not when the event happened"
        )
    event_source = as_text(labels.get("eventsource"), limit=64)
    namespace = _first(labels, _SIDEKICK_NAMESPACE_LABELS)
    pod = _first(labels, _SIDEKICK_POD_LABELS)
    if event_source == "k8s_audit" and labels.get("ka_target_resource") == "pods":
        # as the Falco parser reads ka.target.*: the pod an audit event acted on
        pod = pod or as_text(labels.get("ka_target_name"), limit=512)
        namespace = namespace or as_text(labels.get("ka_target_namespace"), limit=512)
    container = as_text(labels.get("container_name"), limit=512)
    container_id = as_text(labels.get("container_id"), limit=256)
    if container_id == HOST_CONTAINER_ID:
        container_id = container = pod = namespace = None
        notes.append("event on the host (container_id 'host'): no container, no pod")
    host = as_text(labels.get("hostname"), limit=512)
    node, node_notes = falco_node(
        event_source,
        as_text(labels.get(_SIDEKICK_NODE_LABEL), limit=512),
        host,
        _SIDEKICK_NODE_LABEL,
        "hostname",
    )
    notes.extend(node_notes)
    return _Reading(
        rule=as_text(labels.get("rule"), limit=512),
        priority=priority,
        when=when,
        # Falcosidekick puts the Falco output in description/info and only the rule in summary
        summary=_summary(annotations, ("description", "info", "summary")),
        namespace=namespace,
        pod=pod,
        container=container if container != "<NA>" else None,
        container_id=container_id,
        node=node,
        host=host,
        notes=notes,
    )


def _falco_event_time(labels: dict[str, str]) -> AlertTime | None:
    """The Falco event time from Falcosidekick's labels: epoch nanoseconds, exact."""
    for name in _SIDEKICK_TIME_LABELS:
        text = labels.get(name)
        if isinstance(text, str) and _NS_DIGITS.match(text):
            return time_from_epoch_ns(int(text), text, "ns")
    return None


def _summary(annotations: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        text = as_text(annotations.get(name), limit=4096)
        if text:
            return text
    return ""


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
