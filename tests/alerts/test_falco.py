"""Falco (ir/playbook/alerts/falco.py): its event time kept to the nanosecond, Falcosidekick's
webhook output read as the Falco event it is, and what Falco's fields say of the target, read the
same directly and through Falcosidekick and Alertmanager (falco_node, the "host" container id):
a host event claims no container or pod, `hostname` is not the node, k8s.node.name is."""

from __future__ import annotations

import json
from typing import Any

from ir.playbook.alerts import (
    load_alert_file,
    parse_document,
)
from tests.alerts import SAMPLES, UPSTREAM, _upstream, _with_labels


def test_falco_time_is_kept_to_the_nanosecond() -> None:
    """Falco writes `time` with nine fractional digits (falco userspace/engine/formats.cpp); a
    datetime holds six. ir keeps the nanoseconds in time_ns and shows them."""
    [alert] = load_alert_file(UPSTREAM / "falco-docs-json-output-terminal-shell.json")
    assert alert.time_ns == 1_685_022_245_478_445_995
    assert alert.time_ns == alert.raw["output_fields"]["evt.time"], "the same instant as evt.time"
    assert alert.time.microsecond == 478445, "time (datetime) is kept for existing callers"
    assert alert.summary_dict()["time"] == "2023-05-25T13:44:05.478445995Z"
    assert alert.summary_dict()["time_precision"] == "ns"
    assert alert.to_dict()["time_original"] == "2023-05-25T13:44:05.478445995Z"
    assert json.loads(json.dumps(alert.summary_dict()))["time"].endswith(".478445995Z")


def test_host_marker_means_no_container_and_no_pod_on_both_paths() -> None:
    """container.id "host" (Falco) and its label container_id="host" (Falcosidekick →
    Alertmanager): the event is on the host, so no container, container id or pod is claimed."""
    from ir.playbook.match import resolve_target

    direct = load_alert_file(UPSTREAM / "falco-plugins-collector-host-event.json")[0]
    via = load_alert_file(UPSTREAM / "alertmanager-falcosidekick-host-event.json")[0]
    assert direct.raw["output_fields"]["container.id"] == "host"
    assert via.raw["labels"]["container_id"] == via.raw["labels"]["container_name"] == "host"
    book = _book_for_nodes()
    for alert in (direct, via):
        assert {k: v for k, v in alert.claimed_target().items() if v} == {}
        assert any("event on the host" in note for note in alert.notes)
        target, _ = resolve_target(book, alert)
        assert target.kind == "none" and target.container is None, "no container named 'host'"
    # a Falco pod/namespace field on a host event is not believed either
    doc = _upstream("falco-plugins-collector-host-event.json")
    doc["output_fields"].update({"k8s.pod.name": "web-1", "k8s.ns.name": "shop"})
    [odd] = parse_document(doc)
    assert (odd.namespace, odd.pod, odd.container, odd.container_id) == (None, None, None, None)


def test_hostname_is_not_taken_as_the_node() -> None:
    """Falco's docs show `hostname` as the Falco pod's name (falco-xczjd): without a field naming
    the node, no node is claimed; the hostname is kept as `host`, with a note."""
    for name in (
        "falco-docs-json-output-terminal-shell.json",
        "falcosidekick-webhook-terminal-shell.json",
        "alertmanager-falcosidekick-terminal-shell.json",
    ):
        [alert] = load_alert_file(UPSTREAM / name)
        assert alert.node is None and alert.host == "falco-xczjd"
        assert alert.summary_dict()["host"] == "falco-xczjd"
        assert "node" not in alert.summary_dict()["target"]
        assert any("not taken as the node" in note for note in alert.notes)


def test_k8s_node_name_is_the_node_when_present() -> None:
    from ir.playbook.match import resolve_target

    node = "ip-10-0-1-23.eu-west-1.compute.internal"
    doc = _upstream("falco-docs-json-output-terminal-shell.json")
    doc["output_fields"]["k8s.node.name"] = node
    [alert] = parse_document(doc)
    assert (alert.node, alert.host) == (node, "falco-xczjd")
    assert any("another name" in note for note in alert.notes)
    # through Falcosidekick and Alertmanager: the label k8s_node_name
    raw = load_alert_file(UPSTREAM / "alertmanager-falcosidekick-terminal-shell.json")[0].raw
    [via] = parse_document(_with_labels(raw, k8s_node_name=node))
    assert (via.node, via.host) == (node, "falco-xczjd")

    # a host event with the node named: the node is the target (node playbooks work on it)
    book = _book_for_nodes()
    host_doc = _upstream("falco-plugins-collector-host-event.json")
    host_doc["output_fields"]["k8s.node.name"] = node
    [host_event] = parse_document(host_doc)
    target, _ = resolve_target(book, host_event)
    assert (target.kind, target.key) == ("node", f"node/{node}")
    host_raw = load_alert_file(UPSTREAM / "alertmanager-falcosidekick-host-event.json")[0].raw
    [host_via] = parse_document(_with_labels(host_raw, k8s_node_name=node))
    assert resolve_target(book, host_via)[0].key == f"node/{node}"

    # the same hostname and node name: nothing to say about it
    doc["hostname"] = node
    [same] = parse_document(doc)
    assert same.node == node and not any("hostname" in note for note in same.notes)
    # a k8s_audit event is not about the node Falco runs on: k8s.node.name is not its node
    audit = json.loads((SAMPLES / "falco-k8s-audit-exec.json").read_text())
    audit["output_fields"]["k8s.node.name"] = node
    [audited] = parse_document(audit)
    assert audited.node is None and any("k8s_audit event" in n for n in audited.notes)


def _book_for_nodes() -> Any:
    from ir.playbook.loader import check_playbook_text

    text = (
        "apiVersion: ir/v1\nkind: Playbook\nname: node-test\ntrigger:\n  sources: [falco, "
        "alertmanager]\n  rule_patterns: ['.']\n  targets: [node, pod]\nsteps:\n"
        "  - action: capture\n"
    )
    book, problems = check_playbook_text(text, "node-test.yaml")
    assert book is not None, problems
    return book


def test_falcosidekick_webhook_fixture_is_the_falco_event_with_a_uuid() -> None:
    event = _upstream("falco-docs-json-output-terminal-shell.json")
    forwarded = _upstream("falcosidekick-webhook-terminal-shell.json")
    assert forwarded.pop("uuid")
    assert forwarded == event
