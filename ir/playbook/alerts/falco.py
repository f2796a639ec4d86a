"""Falco events, as Falco's http_output / JSON output writes them or Falcosidekick's webhook output
forwards them (the same object, plus Falcosidekick's `uuid`).

Shape: {"uuid", "output", "priority": "Critical", "rule", "time": RFC 3339 (ns), "source":
"syscall"|"k8s_audit"|…, "tags": [...], "hostname", "output_fields": {"k8s.pod.name": …,
"k8s.ns.name": …, "container.id": …, "container.name": …, "evt.time": <epoch ns>, …}}.

What each field becomes, and what happens when one is missing: docs/alerts.md. In short: the time
is `time`, kept to the nanosecond; the node is `output_fields["k8s.node.name"]` and never
`hostname` (FALCO_HOSTNAME or gethostname(), which may be the Falco pod's name); `container.id`
"host" means the event is on the host: no container, no pod.

May import ir.playbook.alerts.model only.
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
    parse_alert_time_exact,
)

SOURCE = "falco"

# Falco's own fields first, then the k8smeta plugin's (Falco >= 0.37 with the plugin).
_POD_FIELDS = ("k8s.pod.name", "k8smeta.pod.name")
_NS_FIELDS = ("k8s.ns.name", "k8smeta.ns.name")
# No Falco field names the node: an operator adds this one with append_output, e.g.
# `extra_fields: [{k8s.node.name: "${FALCO_K8S_NODE_NAME}"}]` (docs/alerts.md).
NODE_FIELD = "k8s.node.name"
# Event sources whose events happen on the node Falco runs on (a DaemonSet sees its node's
# syscalls); k8s_audit and other plugin sources are about something else.
NODE_SOURCES = ("syscall",)
# Falco's container.id for a process that is not in a container.
HOST_CONTAINER_ID = "host"
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
    when = parse_alert_time_exact(time_value, "falco: 'time'")
    tags = document.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AlertError("falco: 'tags' must be a list of strings")
    notes: list[str] = []
    if when.assumed_utc:
        notes.append("'time' has no UTC offset: UTC assumed")

    event_source = as_text(document.get("source"), limit=64)
    namespace = _first(fields, _NS_FIELDS)
    pod = _first(fields, _POD_FIELDS)
    container = _first(fields, ("container.name",))
    if event_source == "k8s_audit" and fields.get("ka.target.resource") == "pods":
        # k8s audit events name the pod acted on (exec, attach, create) in ka.target.*
        pod = pod or as_text(fields.get("ka.target.name"), limit=512)
        namespace = namespace or as_text(fields.get("ka.target.namespace"), limit=512)
    if container:
        shim = _DOCKERSHIM_NAME.match(container)
        if shim:
            container = shim.group(1)
            notes.append("container name taken from a dockershim name")
    container_id = _first(fields, ("container.id",))
    if container_id == HOST_CONTAINER_ID:
        container_id = container = pod = namespace = None
        notes.append("event on the host (container.id 'host'): no container, no pod")

    host = as_text(document.get("hostname"), limit=512)
    node, node_notes = falco_node(
        event_source, _first(fields, (NODE_FIELD,)), host, NODE_FIELD, "hostname"
    )
    notes.extend(node_notes)

    alert_id = as_text(document.get("uuid"), limit=128) or _content_id(document)
    return [
        Alert(
            source=SOURCE,
            rule=rule,
            priority=normalize_priority(priority_text),
            priority_original=priority_text[:64],
            time=when.utc,
            time_original=when.original,
            alert_id=alert_id,
            tags=tuple(tags),
            summary=as_text(document.get("output"), limit=4096) or "",
            namespace=namespace,
            pod=pod,
            container=container,
            container_id=container_id,
            node=node,
            raw=document,
            notes=tuple(notes),
            time_ns=when.ns,
            time_precision=when.precision,
            host=host,
        )
    ]


def falco_node(
    event_source: str | None,
    named_node: str | None,
    host: str | None,
    node_field: str,
    host_field: str,
) -> tuple[str | None, list[str]]:
    """The node of a Falco event and notes on how it was decided; shared with the Alertmanager
    parser (Falcosidekick's labels carry the same fields under other names).

    The node is `named_node` (k8s.node.name) for an event of a node source (syscall; a missing
    source counts as syscall, Falco's default). Falco's `hostname` is never taken as the node:
    it is FALCO_HOSTNAME, or gethostname() in the Falco container, which is the Falco pod's name
    unless FALCO_HOSTNAME is set (the Falco chart sets it to spec.nodeName; falco.yaml suggests
    the pod name)."""
    notes: list[str] = []
    of_node = event_source is None or event_source in NODE_SOURCES
    if named_node and not of_node:
        notes.append(
            f"{node_field} ignored: a {event_source} event does not happen on the node Falco "
            "runs on"
        )
        named_node = None
    if named_node:
        if host and host != named_node:
            notes.append(f"node from {node_field}; {host_field} {host!r} is another name")
        return named_node, notes
    if host and of_node:
        notes.append(
            f"no node named ({node_field} absent): {host_field} {host!r} is not taken as the "
            "node, it may be the Falco pod's name"
        )
    return None, notes


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
