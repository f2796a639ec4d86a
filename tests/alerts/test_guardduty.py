"""GuardDuty (ir/playbook/alerts/guardduty.py): findings of the wrong shape refused, a Runtime
Monitoring finding on a plain EC2 host names no node, and the finding's time field and
precision."""

from __future__ import annotations

import json

import pytest

from ir.playbook.alerts import (
    AlertError,
    load_alert_file,
    parse_document,
)
from tests.alerts import SAMPLES


def test_guardduty_shape_errors() -> None:
    event = json.loads((SAMPLES / "guardduty-eventbridge-node.json").read_text())
    wrong = dict(event, **{"detail-type": "GuardDuty Malware Protection Object Scan Result"})
    with pytest.raises(AlertError, match="expected 'GuardDuty Finding'"):
        parse_document(wrong)
    for bad_severity in (11, -1, "high", True, None):
        detail = dict(event["detail"], severity=bad_severity)
        with pytest.raises(AlertError, match="severity"):
            parse_document(dict(event, detail=detail))
    detail = dict(event["detail"], resource=[1])
    with pytest.raises(AlertError, match="'resource' must be an object"):
        parse_document(dict(event, detail=detail))
    with pytest.raises(AlertError, match="not a falco alert"):
        parse_document(event, "falco")


def test_guardduty_ec2_runtime_finding_names_no_node() -> None:
    """A Runtime Monitoring finding on an EC2 host outside any EKS cluster: no node target, a note
    saying why, and the node playbook (cordon) does not match it; the EKS node finding does, and
    names its cluster."""
    from ir.playbook.loader import load_playbooks_strict
    from ir.playbook.match import match_alert

    [ec2] = load_alert_file(SAMPLES / "guardduty-eventbridge-ec2-runtime.json")
    assert ec2.node is None and any("not a Kubernetes finding" in n for n in ec2.notes)
    [eks] = load_alert_file(SAMPLES / "guardduty-eventbridge-node.json")
    assert eks.node and "eks-cluster:prod-eu" in eks.tags
    books = load_playbooks_strict(sorted((SAMPLES.parent.parent / "playbooks").glob("*.yaml")))
    assert "guardduty-eks-node" not in [
        r.playbook.name for r in match_alert(books, ec2) if r.matched
    ]
    assert "guardduty-eks-node" in [r.playbook.name for r in match_alert(books, eks) if r.matched]


def test_guardduty_time_field_and_precision() -> None:
    [gd] = load_alert_file(SAMPLES / "guardduty-eventbridge-reverse-shell.json")
    assert gd.time_original == gd.raw["service"]["eventLastSeen"] and gd.time_precision == "ms"
    event = json.loads((SAMPLES / "guardduty-eventbridge-reverse-shell.json").read_text())
    del event["detail"]["service"]["eventLastSeen"]
    [updated] = parse_document(event)
    assert updated.time_original == event["detail"]["updatedAt"]
    assert any("the time is the finding's updatedAt" in note for note in updated.notes)
