"""Alertmanager (ir/playbook/alerts/alertmanager.py): a Falco event sent by Falcosidekick through
Alertmanager reports the Falco event (its time from the evt_time label, not startsAt; Falco's
priority, not Falcosidekick's coarse severity), and the derived upstream fixtures are what
Falcosidekick and Alertmanager send, re-derived from the code they cite."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ir.playbook.alerts import (
    load_alert_file,
    parse_document,
)
from tests.alerts import UPSTREAM, _upstream, _with_labels


def test_falcosidekick_through_alertmanager_reports_the_falco_event() -> None:
    """Falcosidekick's Alertmanager output sends no startsAt (Alertmanager sets it when it receives
    the alert) and a coarse `severity`: the event time comes from the evt_time label, the priority
    from the priority label, and the alert says where each came from."""
    [direct] = load_alert_file(UPSTREAM / "falco-docs-json-output-terminal-shell.json")
    [via] = load_alert_file(UPSTREAM / "alertmanager-falcosidekick-terminal-shell.json")
    labels = via.raw["labels"]
    assert via.time_ns == direct.time_ns == int(labels["evt_time"])
    assert via.summary_dict()["time"] == direct.summary_dict()["time"]
    assert via.raw["startsAt"] == "2023-05-25T13:44:05.731250417Z" != via.summary_dict()["time"]
    assert via.time_original == labels["evt_time"]
    assert via.alert_id.endswith("@" + via.raw["startsAt"]), (
        "the alert instance: fingerprint@startsAt"
    )
    assert via.priority_original == direct.priority_original == "Critical" == labels["priority"]
    assert labels["severity"] == "critical", "Falcosidekick's coarse word, not the source's"
    assert (via.rule, via.tags, via.summary) == (direct.rule, direct.tags, direct.summary)
    assert any(note.startswith("sent by Falcosidekick") for note in via.notes)
    assert via.claimed_target() == direct.claimed_target()

    # Notice becomes severity "information": priority_original is still Falco's word
    [notice] = parse_document(_with_labels(via.raw, priority="Notice", severity="information"))
    assert (notice.priority, notice.priority_original) == ("notice", "Notice")
    # a Falcosidekick that sent no priority label: the severity, said so
    [coarse] = parse_document(_with_labels(via.raw, priority=None, severity="information"))
    assert (coarse.priority, coarse.priority_original) == ("informational", "information")
    assert any("no 'priority' label" in note for note in coarse.notes)


def test_falco_event_time_label_missing_or_unusable_falls_back_to_starts_at() -> None:
    raw = load_alert_file(UPSTREAM / "alertmanager-falcosidekick-terminal-shell.json")[0].raw
    # Falco before evt.time was a number in JSON (2020 docs: "evt.time":"18:50:03.391767411")
    # a number too short for epoch nanoseconds is not guessed at
    for value in (None, "18:50:03.391767411", "", "1685022245"):
        [alert] = parse_document(_with_labels(raw, evt_time=value))
        assert alert.time_original == raw["startsAt"]
        assert alert.summary_dict()["time"] == "2023-05-25T13:44:05.731250417Z"
        assert any("startsAt, when Alertmanager received the alert" in n for n in alert.notes)
    # Falco with time_format_iso_8601: the prefix field is evt.time.iso8601, also epoch ns in JSON
    [iso] = parse_document(_with_labels(raw, evt_time=None, evt_time_iso8601="1685022245478445995"))
    assert iso.time_ns == 1_685_022_245_478_445_995 and iso.time_precision == "ns"


# -- the derived fixtures follow the upstream code they cite -----------------------------------

# outputs/alertmanager.go defaultSeverityMap (falcosecurity/falcosidekick)
_SIDEKICK_SEVERITY = {
    "Debug": "information",
    "Informational": "information",
    "Notice": "information",
    "Warning": "warning",
    "Error": "warning",
    "Critical": "critical",
    "Alert": "critical",
    "Emergency": "critical",
}


def _sidekick_labels(event: dict[str, Any]) -> dict[str, str]:
    """newAlertmanagerPayload's labels for a Falco event (falcosecurity/falcosidekick
    outputs/alertmanager.go; default configuration, no n_drop fields)."""
    labels: dict[str, str] = {}
    for key, value in event["output_fields"].items():
        if isinstance(value, str):
            labels[_safe_label(key)] = value
        elif isinstance(value, int) and not isinstance(value, bool):  # json.Number
            labels[_safe_label(key)] = str(value)
    labels.update(source="falco", rule=event["rule"], alertname=event["rule"])
    labels.update(eventsource=event["source"], hostname=event["hostname"])
    labels.update(tags=",".join(sorted(event["tags"])), priority=event["priority"])
    labels["severity"] = _SIDEKICK_SEVERITY[event["priority"]]
    return labels


def _safe_label(name: str) -> str:
    """alertmanagerSafeLabel: unsafe characters to "_", "__" to "_", "_" trimmed."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name).replace("__", "_").strip("_")


def _fingerprint(labels: dict[str, str]) -> str:
    """prometheus/common model labelSetToFingerprint (FNV-1a 64), as Alertmanager prints it."""
    value = 14695981039346656037
    for name in sorted(labels):
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


@pytest.mark.parametrize(
    ("derived", "source"),
    [
        (
            "alertmanager-falcosidekick-terminal-shell.json",
            "falco-docs-json-output-terminal-shell.json",
        ),
        ("alertmanager-falcosidekick-host-event.json", "falco-plugins-collector-host-event.json"),
    ],
)
def test_alertmanager_fixtures_are_what_falcosidekick_and_alertmanager_send(
    derived: str, source: str
) -> None:
    # the FNV-1a implementation against prometheus/common model/signature_test.go
    assert _fingerprint({"name": "garland, briggs", "fear": "love is not enough"}) == (
        f"{5799056148416392346:016x}"
    )
    event, webhook = _upstream(source), _upstream(derived)
    [alert] = webhook["alerts"]
    assert alert["labels"] == _sidekick_labels(event) == webhook["commonLabels"]
    assert alert["annotations"] == {
        "info": event["output"],
        "description": event["output"],
        "summary": event["rule"],
    }
    assert alert["fingerprint"] == _fingerprint(alert["labels"])
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["generatorURL"] == ""
    # the route matching source="falco" under the root, grouping by alertname
    assert (
        webhook["groupKey"] == '{}/{source="falco"}:{alertname=' + json.dumps(event["rule"]) + "}"
    )
