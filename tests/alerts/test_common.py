"""What every alert source shares, on real-shaped samples (samples/alerts) and upstream payloads
(samples/alerts/upstream: what ir reports is what happened, times to the nanosecond): each sample
and payload parsed to its normal form, strict JSON, source detection, malformed alerts refused
with a reason, the priority scale and exact alert times (ir/playbook/alerts/model.py), and
hostile input."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
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
from tests.alerts import SAMPLES, UPSTREAM
from tests.resilience import ATHERIS_REGRESSIONS
from tests.strategies import json_values

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


# -- fidelity: what ir reports is what the source said ------------------------------------------


def _assert_time_consistent(alert: Alert) -> None:
    """`time_ns` is the exact instant; `time` is the same instant cut to microseconds."""
    assert alert.time_ns is not None and alert.time_precision in PRECISIONS
    assert alert.time == EPOCH + timedelta(microseconds=alert.time_ns // 1000)


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
