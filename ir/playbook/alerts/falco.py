"""Falco events, as Falco's http_output or Falcosidekick's webhook output posts them.

Shape: {"uuid", "output", "priority": "Critical", "rule", "time": RFC 3339 (ns), "source":
"syscall"|"k8s_audit"|…, "tags": [...], "hostname", "output_fields": {"k8s.pod.name": …,
"k8s.ns.name": …, "container.id": …, "container.name": …, "proc.cmdline": …, …}}.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ir.playbook.alerts.model import (
    Alert,
    AlertError,
    as_text,
    normalize_priority,
    parse_alert_time,
)

SOURCE = "falco"

# Falco's own fields first, then the k8smeta plugin's (Falco >= 0.37 with the plugin).
_POD_FIELDS = ("k8s.pod.name", "k8smeta.pod.name")
_NS_FIELDS = ("k8s.ns.name", "k8smeta.ns.name")
# dockershim container names: k8s_<container>_<pod>_<namespace>_<pod uid>_<attempt>
_DOCKERSHIM_NAME = re.compile(r"^k8s_([^_]+)_([^_]+)_([^_]+)_[0-9a-f-]+_\d+$")


def detect(document: dict[str, Any]) -> bool:
    return (
        "rule" in document
        and "priority" in document
        and ("output_fields" in document or "output" in document)
    )


def parse(document: dict[str, Any]) -> list[Alert]:
    """One Falco event → one Alert. Raises AlertError on missing or mistyped required fields."""
    rule = as_text(document.get("rule"), limit=512)
    if rule is None:
        raise AlertError("falco: 'rule' must be a non-empty string")
    priority_text = document.get("priority")
    if not isinstance(priority_text, str):
        raise AlertError("falco: 'priority' must be a string")
    fields = document.get("output_fields", {})
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise AlertError("falco: 'output_fields' must be an object")
    time_value = document.get("time")
    if time_value is None:
        raise AlertError("falco: 'time' is missing")
    when, when_text = parse_alert_time(time_value, "falco: 'time'")
    tags = document.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AlertError("falco: 'tags' must be a list of strings")
    notes: list[str] = []

    namespace = _first(fields, _NS_FIELDS)
    pod = _first(fields, _POD_FIELDS)
    container = _first(fields, ("container.name",))
    if document.get("source") == "k8s_audit" and fields.get("ka.target.resource") == "pods":
        # k8s audit events name the pod acted on (exec, attach, create) in ka.target.*
        pod = pod or as_text(fields.get("ka.target.name"), limit=512)
        namespace = namespace or as_text(fields.get("ka.target.namespace"), limit=512)
    if container:
        shim = _DOCKERSHIM_NAME.match(container)
        if shim:
            container = shim.group(1)
            notes.append("container name taken from a dockershim name")
    container_id = _first(fields, ("container.id",))
    if container_id == "host":
        container_id, container = None, None
        notes.append("event on the host, not in a container")

    alert_id = as_text(document.get("uuid"), limit=128) or _content_id(document)
    return [
        Alert(
            source=SOURCE,
            rule=rule,
            priority=normalize_priority(priority_text),
            priority_original=priority_text[:64],
            time=when,
            time_original=when_text,
            alert_id=alert_id,
            tags=tuple(tags),
            summary=as_text(document.get("output"), limit=4096) or "",
            namespace=namespace,
            pod=pod,
            container=container,
            container_id=container_id,
            # k8s audit events come from a Falco that reads the audit log: its hostname is not the
            # node the pod runs on.
            node=None
            if document.get("source") == "k8s_audit"
            else as_text(document.get("hostname"), limit=512),
            raw=document,
            notes=tuple(notes),
        )
    ]


def _first(fields: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = as_text(fields.get(name), limit=512)
        if value and value != "<NA>":
            return value
    return None


def _content_id(document: dict[str, Any]) -> str:
    """Falco without Falcosidekick sends no uuid: identify the event by its content."""
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=True, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
