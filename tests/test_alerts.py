"""Alert parsers on real-shaped samples (samples/alerts), on upstream payloads
(samples/alerts/upstream: what ir reports is what happened: times to the nanosecond, Falco's
priority and event time through Alertmanager, host events, hostname vs node), strict JSON, and
hostile input."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ir.clock import EPOCH
from ir.playbook.alerts import (
    Alert,
    AlertError,
    decode_json,
    load_alert_file,
    normalize_priority,
    parse_alerts,
    parse_document,
    priority_rank,
)
from ir.playbook.alerts.model import PRECISIONS, format_time_ns, parse_alert_time_exact
from tests.resilience import ATHERIS_REGRESSIONS
from tests.strategies import json_values

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "alerts"
# Payloads from the upstream projects' own repositories, or derived from them by their code
# (samples/alerts/README.md says which and how)
UPSTREAM = SAMPLES / "upstream"
NODE_1 = "ip-10-0-1-23.eu-west-1.compute.internal"
NODE_2 = "ip-10-0-2-41.eu-west-1.compute.internal"
NODE_3 = "ip-10-0-3-7.eu-west-1.compute.internal"
CONTAINERD_WEB = "containerd://3ad7b26ad9b4f1e0c8a7d6b5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5"

# file -> per alert: (source, rule, priority, status, namespace, pod, container, container_id, node)
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "falco-terminal-shell.json": [
        (
            "falco",
            "Terminal shell in container",
            "notice",
            "firing",
            "shop",
            "web-7f9c6d8b5-x2kqp",
            "nginx",
            "3ad7b26ad9b4",
            None,  # hostname is not taken as the node
        )
    ],
    "falco-reverse-shell.json": [
        (
            "falco",
            "Redirect STDOUT/STDIN to Network Connection in Container",
            "notice",
            "firing",
            "shop",
            "web-7f9c6d8b5-x2kqp",
            "nginx",
            "3ad7b26ad9b4",
            None,  # hostname is not taken as the node
        )
    ],
    "falco-crypto-miner.json": [
        (
            "falco",
            "Detect outbound connections to common miner pool ports",
            "critical",
            "firing",
            "batch",
            "report-worker-5d8f7c9b6-qm4zt",
            "worker",
            "9c41e07d2f6a",
            None,  # hostname is not taken as the node
        )
    ],
    "falco-drop-and-execute.json": [
        (
            "falco",
            "Drop and execute new binary in container",
            "critical",
            "firing",
            "batch",
            "report-worker-5d8f7c9b6-qm4zt",
            "worker",
            "9c41e07d2f6a",
            None,  # hostname is not taken as the node
        )
    ],
    "falco-write-below-binary-dir.json": [
        (
            "falco",
            "Write below binary dir",
            "error",
            "firing",
            "payments",
            "payments-api-0",
            "api",
            "51fe2c8a0b7d",
            None,  # hostname is not taken as the node
        )
    ],
    "falco-k8s-audit-exec.json": [
        (
            "falco",
            "Attach/Exec Pod",
            "notice",
            "firing",
            "shop",
            "checkout-6c9d7b8f4-lz2wp",
            None,
            None,
            None,
        )
    ],
    # a host event without k8s.node.name: nothing to act on (hostname is not the node)
    "falco-host-event.json": [
        ("falco", "Write below binary dir", "error", "firing", None, None, None, None, None)
    ],
    "alertmanager-falcosidekick-shell.json": [
        (
            "alertmanager",
            "Terminal shell in container",
            "notice",
            "firing",
            "shop",
            "web-7f9c6d8b5-x2kqp",
            "nginx",
            "3ad7b26ad9b4",
            None,  # hostname is not taken as the node
        )
    ],
    "alertmanager-group-mixed.json": [
        (
            "alertmanager",
            "ContainerCryptoMinerSuspected",
            "critical",
            "firing",
            "batch",
            "report-worker-5d8f7c9b6-qm4zt",
            "worker",
            None,
            NODE_2,
        ),
        (
            "alertmanager",
            "ContainerCryptoMinerSuspected",
            "critical",
            "firing",
            "batch",
            "report-worker-5d8f7c9b6-7hv9c",
            "worker",
            None,
            "ip-10-0-2-42.eu-west-1.compute.internal",
        ),
        (
            "alertmanager",
            "ContainerCryptoMinerSuspected",
            "critical",
            "resolved",
            "batch",
            "report-worker-5d8f7c9b6-ab12c",
            "worker",
            None,
            NODE_2,
        ),
    ],
    "alertmanager-resolved.json": [
        (
            "alertmanager",
            "ContainerCryptoMinerSuspected",
            "critical",
            "resolved",
            "batch",
            "report-worker-5d8f7c9b6-qm4zt",
            "worker",
            None,
            None,
        )
    ],
    "alertmanager-capture-request.json": [
        (
            "alertmanager",
            "KubePodUnexpectedOutboundTraffic",
            "warning",
            "firing",
            "shop",
            "cart-5b6c7d8e9f-k3j2h",
            "cart",
            None,
            None,
        )
    ],
    "guardduty-eventbridge-reverse-shell.json": [
        (
            "guardduty",
            "Execution:Runtime/ReverseShell",
            "critical",
            "firing",
            "shop",
            "web-7f9c6d8b5-x2kqp",
            "nginx",
            CONTAINERD_WEB,
            NODE_1,
        )
    ],
    "guardduty-finding-cryptominer.json": [
        (
            "guardduty",
            "Impact:Runtime/CryptoMinerExecuted",
            "critical",
            "firing",
            "batch",
            "report-worker-5d8f7c9b6-qm4zt",
            "worker",
            "containerd://9c41e07d2f6a8b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
            NODE_2,
        )
    ],
    "guardduty-getfindings-boto3.json": [
        (
            "guardduty",
            "Execution:Runtime/NewBinaryExecuted",
            "warning",
            "firing",
            "shop",
            "web-7f9c6d8b5-x2kqp",
            "nginx",
            CONTAINERD_WEB,
            NODE_1,
        )
    ],
    "guardduty-eventbridge-node.json": [
        (
            "guardduty",
            "DefenseEvasion:Runtime/KernelModuleLoaded",
            "warning",
            "firing",
            None,
            None,
            None,
            None,
            NODE_3,
        )
    ],
    # a GuardDuty Runtime finding on a plain EC2 host: no node of a cluster, nothing to cordon
    "guardduty-eventbridge-ec2-runtime.json": [
        (
            "guardduty",
            "DefenseEvasion:Runtime/KernelModuleLoaded",
            "warning",
            "firing",
            None,
            None,
            None,
            None,
            None,
        )
    ],
    "guardduty-eventbridge-exec-kube-system.json": [
        (
            "guardduty",
            "Execution:Kubernetes/ExecInKubeSystemPod",
            "warning",
            "firing",
            "kube-system",
            "coredns-5d78c9869d-8kfzq",
            "coredns",
            None,
            None,
        )
    ],
    "guardduty-eventbridge-serviceaccount.json": [
        (
            "guardduty",
            "CredentialAccess:Kubernetes/MaliciousIPCaller",
            "critical",
            "firing",
            "shop",
            None,
            None,
            None,
            None,
        )
    ],
    "guardduty-finding-privileged-deployment.json": [
        (
            "guardduty",
            "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
            "warning",
            "firing",
            "shop",
            None,
            "checkout",
            None,
            None,
        )
    ],
}


# file -> per alert: (source, rule, priority, priority_original, time as shown, time precision,
#                     namespace, pod, container, container_id, node, host)
UPSTREAM_EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    # Falco's JSON output example (falco.org docs): `hostname` is the Falco pod's name
    "falco-docs-json-output-terminal-shell.json": [
        (
            "falco",
            "Terminal shell in container",
            "critical",
            "Critical",
            "2023-05-25T13:44:05.478445995Z",
            "ns",
            "default",
            "kubecon",
            None,
            "ee97d9c4186f",
            None,
            "falco-xczjd",
        )
    ],
    # the same event as Falcosidekick's webhook output posts it (adds a uuid)
    "falcosidekick-webhook-terminal-shell.json": [
        (
            "falco",
            "Terminal shell in container",
            "critical",
            "Critical",
            "2023-05-25T13:44:05.478445995Z",
            "ns",
            "default",
            "kubecon",
            None,
            "ee97d9c4186f",
            None,
            "falco-xczjd",
        )
    ],
    # the same event through Falcosidekick's Alertmanager output and Alertmanager's webhook
    "alertmanager-falcosidekick-terminal-shell.json": [
        (
            "alertmanager",
            "Terminal shell in container",
            "critical",
            "Critical",
            "2023-05-25T13:44:05.478445995Z",
            "ns",
            "default",
            "kubecon",
            None,
            "ee97d9c4186f",
            None,
            "falco-xczjd",
        )
    ],
    # a host event (container.id "host") from falcosecurity/plugins' collector README
    "falco-plugins-collector-host-event.json": [
        (
            "falco",
            "Read sensitive file untrusted",
            "warning",
            "Warning",
            "2025-05-07T12:50:34.502309868Z",
            "ns",
            None,
            None,
            None,
            None,
            None,
            "x86",
        )
    ],
    # that host event through Falcosidekick and Alertmanager (label container_id="host")
    # the same alerts posted to a real Alertmanager (v0.28.1, built from its Go module) and its
    # webhook payload kept as it came (samples/alerts/README.md): the same facts
    "alertmanager-real-falcosidekick-terminal-shell.json": [
        (
            "alertmanager",
            "Terminal shell in container",
            "critical",
            "Critical",
            "2023-05-25T13:44:05.478445995Z",
            "ns",
            "default",
            "kubecon",
            None,
            "ee97d9c4186f",
            None,
            "falco-xczjd",
        )
    ],
    "alertmanager-real-falcosidekick-host-event.json": [
        (
            "alertmanager",
            "Read sensitive file untrusted",
            "warning",
            "Warning",
            "2025-05-07T12:50:34.502309868Z",
            "ns",
            None,
            None,
            None,
            None,
            None,
            "x86",
        )
    ],
    "alertmanager-falcosidekick-host-event.json": [
        (
            "alertmanager",
            "Read sensitive file untrusted",
            "warning",
            "Warning",
            "2025-05-07T12:50:34.502309868Z",
            "ns",
            None,
            None,
            None,
            None,
            None,
            "x86",
        )
    ],
}


def test_every_sample_is_covered() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_parses_to_normal_form(name: str) -> None:
    alerts = load_alert_file(SAMPLES / name)
    got = [
        (
            a.source,
            a.rule,
            a.priority,
            a.status,
            a.namespace,
            a.pod,
            a.container,
            a.container_id,
            a.node,
        )
        for a in alerts
    ]
    assert got == EXPECTED[name]
    for alert in alerts:
        assert alert.time.tzinfo is not None and alert.time.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert alert.alert_id and alert.raw, "raw alert kept for the bundle"
        _assert_time_consistent(alert)


def test_source_specific_details() -> None:
    falco = load_alert_file(SAMPLES / "falco-terminal-shell.json")[0]
    assert falco.alert_id == "1f0b4f5e-2a53-4b0c-9b7e-8f3d6d4b2c11"
    assert falco.time_original == "2024-06-03T13:50:25.826284565Z"
    assert falco.time.microsecond == 826284
    assert "mitre_execution" in falco.tags and falco.priority_original == "Notice"
    assert falco.raw["output_fields"]["proc.cmdline"] == "bash"

    group = load_alert_file(SAMPLES / "alertmanager-group-mixed.json")
    assert [a.alert_id.split("@")[0] for a in group] == [
        "a1c3e5f7092b4d6f",
        "b2d4f6a8103c5e7a",
        "c3e5a7b9214d6f8b",
    ]
    assert group[0].envelope["groupKey"].startswith("{}/{team=")
    assert group[0].raw["labels"]["pod"] == "report-worker-5d8f7c9b6-qm4zt", (
        "raw is the single alert"
    )

    via_sidekick = load_alert_file(SAMPLES / "alertmanager-falcosidekick-shell.json")[0]
    # Falcosidekick's severity label is coarse ("information"); its priority label is Falco's
    assert via_sidekick.priority == "notice" and via_sidekick.priority_original == "Notice"
    assert via_sidekick.raw["labels"]["severity"] == "information"
    # no evt_time label in this sample: the time is startsAt, and the alert says so
    assert via_sidekick.time_original == via_sidekick.raw["startsAt"]
    assert any("startsAt" in note for note in via_sidekick.notes)

    gd = load_alert_file(SAMPLES / "guardduty-eventbridge-reverse-shell.json")[0]
    assert (
        gd.envelope["detail-type"] == "GuardDuty Finding" and gd.envelope["region"] == "eu-west-1"
    )
    assert gd.raw["type"] == "Execution:Runtime/ReverseShell", "raw is the finding, unwrapped"
    assert gd.service_account == "web" and gd.priority_original == "8"
    assert "feature:RuntimeMonitoring" in gd.tags

    boto = load_alert_file(SAMPLES / "guardduty-getfindings-boto3.json")[0]
    assert "resource" in boto.raw and "Resource" not in boto.raw, "PascalCase read as camelCase"
    assert any("PascalCase" in note for note in boto.notes)

    sa = load_alert_file(SAMPLES / "guardduty-eventbridge-serviceaccount.json")[0]
    assert (sa.namespace, sa.service_account, sa.pod) == ("shop", "checkout", None)
    deployment = load_alert_file(SAMPLES / "guardduty-finding-privileged-deployment.json")[0]
    assert (deployment.workload_kind, deployment.workload_name, deployment.pod) == (
        "deployments",
        "checkout",
        None,
    )
    host = load_alert_file(SAMPLES / "falco-host-event.json")[0]
    assert any("host" in note for note in host.notes)


def _falco(**overrides: Any) -> dict[str, Any]:
    doc = json.loads((SAMPLES / "falco-terminal-shell.json").read_text())
    doc.update(overrides)
    return doc


def _am(**overrides: Any) -> dict[str, Any]:
    doc = json.loads((SAMPLES / "alertmanager-group-mixed.json").read_text())
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_falco(rule=""), "'rule' must be a non-empty string"),
        (_falco(rule=7), "'rule' must be a non-empty string"),
        (_falco(priority=3), "'priority' must be a string"),
        (_falco(output_fields=[1, 2]), "'output_fields' must be an object"),
        (_falco(time="yesterday-ish"), "'time'"),
        (_falco(time=None), "'time' is missing"),
        (_falco(tags="shell"), "'tags' must be a list of strings"),
        (_am(version="3"), "unsupported webhook payload version"),
        (_am(alerts={"a": 1}), "'alerts' must be a list"),
        (
            _am(
                alerts=[
                    {
                        "status": "firing",
                        "labels": {"alertname": 5},
                        "startsAt": "2024-06-04T03:15:00Z",
                    }
                ]
            ),
            "labels must be an object of strings",
        ),
        (
            _am(
                alerts=[
                    {
                        "status": "firing",
                        "labels": {"severity": "critical"},
                        "startsAt": "2024-06-04T03:15:00Z",
                    }
                ]
            ),
            "no 'alertname'",
        ),
        (
            _am(
                alerts=[
                    {
                        "status": "pending",
                        "labels": {"alertname": "X"},
                        "startsAt": "2024-06-04T03:15:00Z",
                    }
                ]
            ),
            "status must be",
        ),
        (
            _am(alerts=[{"status": "firing", "labels": {"alertname": "X"}, "startsAt": {"t": 1}}]),
            "startsAt",
        ),
    ],
)
def test_malformed_alerts_are_refused_with_a_reason(document: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertError, match=message.replace("(", r"\(").replace("'", "'")):
        parse_document(document)


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


def test_source_detection() -> None:
    with pytest.raises(AlertError, match="not an alert of a known source"):
        parse_document({"hello": "world"})
    with pytest.raises(AlertError, match="ambiguous"):
        parse_document(
            {"rule": "x", "priority": "Notice", "output": "o", "alerts": [], "groupKey": "g"}
        )
    with pytest.raises(AlertError, match="unknown alert source"):
        parse_document(_falco(), "splunk")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"rule": "a", "rule": "b"}', "duplicate key 'rule'"),
        (b'{"priority": NaN}', "NaN is not valid JSON"),
        (b'{"priority": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nested 41 levels deep"),
        (b"[" * 200_000, "nested deeper"),
        (b'{"a": 1', "invalid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "empty body"),
        (b'["a list"]', "expected a JSON object"),
        (b'{"n": ' + b"9" * 5000 + b"}", "invalid JSON"),
        (b'{"a": "' + b"x" * 2_000_000 + b'"}', "exceeds the limit"),
    ],
)
def test_strict_json(body: bytes, message: str) -> None:
    with pytest.raises(AlertError, match=message.replace("(", r"\(")):
        decode_json(body)


def test_parse_alerts_end_to_end_from_bytes() -> None:
    body = (SAMPLES / "guardduty-eventbridge-reverse-shell.json").read_bytes()
    assert parse_alerts(body)[0].pod == "web-7f9c6d8b5-x2kqp"
    assert parse_alerts(body, "guardduty")[0].source == "guardduty"


def test_priority_scale() -> None:
    assert [
        normalize_priority(w)
        for w in ("Critical", "WARNING", "information", "page", "medium", "bogus", None)
    ] == ["critical", "warning", "informational", "critical", "warning", None, None]
    assert priority_rank("debug") < priority_rank("notice") < priority_rank("emergency")
    assert priority_rank(None) == -1


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(
        sorted(EXPECTED) + [f"upstream/{name}" for name in sorted(UPSTREAM_EXPECTED)]
    ),
    path_key=st.text(max_size=15),
    value=json_values(max_leaves=25),
)
def test_mutated_samples_never_crash(base: str, path_key: str, value: Any) -> None:
    """Any field of any sample replaced by any JSON value: an AlertError or alerts, nothing else."""
    document = json.loads((SAMPLES / base).read_text())
    keys = list(document) + [path_key]
    target = document
    if "detail" in document and isinstance(document["detail"], dict):
        target = document["detail"]
        keys = list(target) + [path_key]
    target[keys[len(path_key) % len(keys)]] = value
    try:
        alerts = parse_document(document)
    except AlertError:
        return
    for alert in alerts:
        assert isinstance(alert.rule, str) and alert.rule
        assert alert.pod is None or isinstance(alert.pod, str)
        _assert_time_consistent(alert)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(AlertError):
        parse_alerts(data)


REGRESSIONS = ATHERIS_REGRESSIONS / "alerts"


@pytest.mark.parametrize("found", sorted(p.name for p in REGRESSIONS.glob("*")))
def test_inputs_fuzzing_once_crashed_on_are_refused_cleanly(found: str) -> None:
    """Each input atheris once crashed the parsers with: an AlertError with a reason now."""
    with pytest.raises(AlertError) as caught:
        parse_alerts((REGRESSIONS / found).read_bytes())
    assert caught.value.message


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


# -- fidelity: what ir reports is what the source said ------------------------------------------


def _assert_time_consistent(alert: Alert) -> None:
    """`time_ns` is the exact instant; `time` is the same instant cut to microseconds."""
    assert alert.time_ns is not None and alert.time_precision in PRECISIONS
    assert alert.time == EPOCH + timedelta(microseconds=alert.time_ns // 1000)


def _upstream(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((UPSTREAM / name).read_text())
    return document


def test_every_upstream_fixture_is_covered() -> None:
    assert sorted(p.name for p in UPSTREAM.glob("*.json")) == sorted(UPSTREAM_EXPECTED)


@pytest.mark.parametrize("name", sorted(UPSTREAM_EXPECTED))
def test_upstream_fixture_parses_to_what_happened(name: str) -> None:
    alerts = load_alert_file(UPSTREAM / name)
    got = [
        (
            a.source,
            a.rule,
            a.priority,
            a.priority_original,
            a.summary_dict()["time"],
            a.time_precision,
            a.namespace,
            a.pod,
            a.container,
            a.container_id,
            a.node,
            a.host,
        )
        for a in alerts
    ]
    assert got == UPSTREAM_EXPECTED[name]
    for alert in alerts:
        _assert_time_consistent(alert)
        assert alert.to_dict()["time"] == alert.summary_dict()["time"] == alert.time_text


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


def _with_labels(alert: dict[str, Any], **labels: str | None) -> dict[str, Any]:
    """An Alertmanager webhook document of one alert, its labels changed (None removes one)."""
    changed = {k: v for k, v in {**alert["labels"], **labels}.items() if v is not None}
    return {"version": "4", "receiver": "ir-serve", "alerts": [dict(alert, labels=changed)]}


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


def test_falcosidekick_webhook_fixture_is_the_falco_event_with_a_uuid() -> None:
    event = _upstream("falco-docs-json-output-terminal-shell.json")
    forwarded = _upstream("falcosidekick-webhook-terminal-shell.json")
    assert forwarded.pop("uuid")
    assert forwarded == event


@pytest.mark.parametrize(
    ("text", "ns", "precision", "shown"),
    [
        ("2023-05-25T13:44:05.478445995Z", 1_685_022_245_478_445_995, "ns", ".478445995Z"),
        # Go's RFC3339Nano (Falcosidekick, Alertmanager) trims trailing zeros: exact, 4 digits
        ("2023-05-25T13:44:05.4784Z", 1_685_022_245_478_400_000, "us", ".478400Z"),
        ("2023-05-25T15:44:05.478445995+02:00", 1_685_022_245_478_445_995, "ns", ".478445995Z"),
        ("2024-06-05T10:06:40.001Z", 1_717_582_000_001_000_000, "ms", ".001000Z"),
        ("2024-06-04T03:15:00Z", 1_717_470_900_000_000_000, "s", "03:15:00.000000Z"),
        ("1685022245478445995", 1_685_022_245_478_445_995, "ns", ".478445995Z"),
        ("1685022245.478445995", 1_685_022_245_478_445_995, "ns", ".478445995Z"),
        ("1685022245478", 1_685_022_245_478_000_000, "ms", ".478000Z"),
        ("Tue, 04 Jun 2024 03:15:00 GMT", 1_717_470_900_000_000_000, "s", "03:15:00.000000Z"),
    ],
)
def test_alert_times_are_read_exactly(text: str, ns: int, precision: str, shown: str) -> None:
    parsed = parse_alert_time_exact(text, "t")
    assert (parsed.ns, parsed.precision, parsed.original) == (ns, precision, text)
    assert parsed.utc == EPOCH + timedelta(microseconds=ns // 1000)
    alert = Alert(
        "falco", "r", None, "", parsed.utc, text, "id", time_ns=ns, time_precision=precision
    )
    assert alert.summary_dict()["time"].endswith(shown)
    if precision == "ns":
        assert alert.summary_dict()["time"] == format_time_ns(ns)


def test_alert_built_without_exact_time_keeps_the_old_form() -> None:
    """Callers that build an Alert themselves (tests, ir serve) still get RFC 3339 with
    microseconds and no stated precision."""
    when = datetime(2024, 6, 3, 13, 50, 25, 826284, tzinfo=UTC)
    alert = Alert("falco", "r", None, "", when, "x", "id")
    assert alert.summary_dict()["time"] == "2024-06-03T13:50:25.826284Z"
    assert alert.summary_dict()["time_precision"] is None and "host" not in alert.summary_dict()


def test_guardduty_time_field_and_precision() -> None:
    [gd] = load_alert_file(SAMPLES / "guardduty-eventbridge-reverse-shell.json")
    assert gd.time_original == gd.raw["service"]["eventLastSeen"] and gd.time_precision == "ms"
    event = json.loads((SAMPLES / "guardduty-eventbridge-reverse-shell.json").read_text())
    del event["detail"]["service"]["eventLastSeen"]
    [updated] = parse_document(event)
    assert updated.time_original == event["detail"]["updatedAt"]
    assert any("the time is the finding's updatedAt" in note for note in updated.notes)
