"""Durable runs without a cluster: the rules every run store follows (ir.playbook.runstate), the
engine's journal (a step an earlier attempt ended is not run again; one it started is run with
`context.interrupted`), the worker pool taking up runs a dead process left, and the seal that
keeps forged run records from running. MemoryRuns stands in for the apiserver here only because
these are the store-independent rules; tests/resilience/test_serve_durable.py runs the same
code against IrRun objects on the test bed's real apiserver, with real kills."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from ir.playbook.actions import STATUSES, RecordingActions, StepResult
from ir.playbook.alerts import Alert, AlertError, load_alert_file
from ir.playbook.audit import AuditLog
from ir.playbook.engine import Engine
from ir.playbook.loader import check_playbook_text
from ir.playbook.runstate import (
    CREATED,
    DUPLICATE,
    RATE_LIMITED,
    STEP_DONE,
    STEP_RUNNING,
    NewRun,
    RunSeal,
    RunState,
    claim,
    claim_kind,
    run_name,
)
from ir.playbook.spec import Playbook
from ir.serve.memoryruns import MemoryRuns
from ir.serve.metrics import Metrics
from ir.serve.server import _metrics
from ir.serve.workers import WorkerPool, holder_name

ROOT = Path(__file__).resolve().parent.parent
ALERT = load_alert_file(ROOT / "samples/alerts/falco-terminal-shell.json")[0]
BOOK_TEXT = """apiVersion: ir/v1
kind: Playbook
name: three-steps
trigger: {sources: [falco], rules: [Terminal shell in container]}
target:
  falco: {namespace: /output_fields/k8s.ns.name, pod: /output_fields/k8s.pod.name}
steps:
  - action: capture
  - action: quarantine
  - action: replace
"""


def book() -> Playbook:
    playbook, problems = check_playbook_text(BOOK_TEXT, "three-steps.yaml")
    assert playbook is not None, problems
    return playbook


class Events(AuditLog):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def record(self, event: str, **fields: Any) -> None:
        self.seen.append({"event": event, **fields})

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["event"] == event]


def new_run(playbook: str = "three-steps", target: str = "pod/shop/web-1", **kw: Any) -> NewRun:
    return NewRun(
        name=run_name(playbook, target),
        run_id=kw.get("run_id", "r" * 32),
        playbook=playbook,
        target_key=target,
        alert=ALERT.to_record(),
        accepted_at=kw.get("accepted_at", time.time()),
        accepted_by=kw.get("accepted_by", "replica-a/1234"),
        request_id="req",
    )


# -- the alert survives the record --------------------------------------------------------------


def test_every_sample_alert_round_trips_through_its_record() -> None:
    count = 0
    for path in sorted((ROOT / "samples/alerts").rglob("*.json")):
        try:
            alerts = load_alert_file(path)
        except AlertError:
            continue  # the samples of malformed alerts
        for alert in alerts:
            back = Alert.from_record(copy.deepcopy(alert.to_record()))
            assert back == alert and back.raw == alert.raw and back.envelope == alert.envelope
            count += 1
    assert count >= 20


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"time": "yesterday"}, "time"),
        ({"time": "2026-01-01T00:00:00"}, "time zone"),
        ({"tags": "shell"}, "tags"),
        ({"raw": []}, "raw"),
        ({"pod": 5}, "pod"),
        ({"time_ns": "1"}, "time_ns"),
        ({"rule": None}, "lacks rule"),
    ],
)
def test_a_malformed_alert_record_is_refused_with_its_cause(
    change: dict[str, Any], cause: str
) -> None:
    record = {**ALERT.to_record(), **change}
    with pytest.raises(AlertError, match=cause):
        Alert.from_record(record)


# -- store rules ----------------------------------------------------------------------------------


def test_the_store_decides_dedupe_by_name_and_reopens_after_the_window() -> None:
    store = MemoryRuns()
    first = store.accept(new_run(), "", 600, (0, 60))
    assert first.outcome == CREATED
    again = store.accept(new_run(run_id="s" * 32), "", 600, (0, 60))
    assert again.outcome == DUPLICATE and "is open" in again.reason
    state = store.get(first.state.name)  # type: ignore[union-attr]
    assert state is not None
    claim(state, "replica-a/1", time.time(), "new")
    state.phase, state.finished = "Succeeded", time.time()
    store.write(state)
    later = store.accept(new_run(accepted_at=time.time() + 700), "", 600, (0, 60))
    assert later.outcome == CREATED, "a finished run past the window makes way"


def test_rate_limits_count_runs_per_target() -> None:
    store = MemoryRuns()
    outcomes = [
        store.accept(new_run(playbook=f"book-{i}"), "", 600, (2, 60)).outcome for i in range(3)
    ]
    assert outcomes == [CREATED, CREATED, RATE_LIMITED]


def test_claims_new_restarted_taken_over_and_live() -> None:
    now = time.time()
    state = RunState(name="run-x", spec={})
    assert claim_kind(state, "a/1", now, 60) == "new"
    claim(state, "a/1", now, "new")
    assert claim_kind(state, "a/1", now, 60) is None, "its own"
    assert claim_kind(state, "b/1", now + 30, 60) is None, "a live holder keeps it"
    assert claim_kind(state, "a/2", now + 1, 60) == "restarted", "the replica's earlier process"
    assert claim_kind(state, "b/1", now + 61, 60) == "taken-over"
    state.current = "quarantine"
    claim(state, "b/1", now + 61, "taken-over")
    assert state.attempt == 2 and state.interruptions[0]["step"] == "quarantine"
    state.phase = "Succeeded"
    assert claim_kind(state, "c/1", now + 999, 60) is None, "finished runs are never claimed"


def test_the_seal_binds_the_spec_to_the_servers_credentials() -> None:
    seal = RunSeal([b"token-0123456789abcdef"])
    spec = new_run().spec()
    sealed = seal.seal(spec)
    assert seal.check(spec, sealed) is None
    rotated = RunSeal([b"new-token-0123456789abc", b"token-0123456789abcdef"])
    assert rotated.check(spec, sealed) is None, "every configured credential verifies"
    forged = {**spec, "target": "pod/other/victim"}
    assert "does not match" in (seal.check(forged, sealed) or "")
    assert "no seal" in (seal.check(spec, "") or "")
    assert RunSeal([]).check(spec, "") is None, "without credentials (loopback, no auth)"


# -- the engine's journal -------------------------------------------------------------------------


class Journal:
    def __init__(self, attempt: int, steps: list[dict[str, Any]]) -> None:
        self.attempt = attempt
        self.steps = {s["index"]: s for s in steps}
        self.log: list[tuple[str, int]] = []

    def earlier(self, index: int) -> dict[str, Any] | None:
        return self.steps.get(index)

    def started(self, index: int, step: str, action: str, started_at: str) -> None:
        self.log.append(("started", index))

    def ended(self, index: int, result: StepResult) -> None:
        self.log.append(("ended", index))


def test_a_resumed_run_skips_ended_steps_and_tells_the_interrupted_one() -> None:
    actions = RecordingActions()
    audit = Events()
    done = StepResult("capture", "ok", "bundle b", bundle="evidence/b.tar", step="capture")
    journal = Journal(
        2,
        [
            {"index": 0, "state": STEP_DONE, "attempt": 1, "result": done.to_dict()},
            {"index": 1, "state": STEP_RUNNING, "attempt": 1, "started_at": "2026-12-03T10:00:00Z"},
        ],
    )
    result = Engine(actions, audit=audit).run(book(), ALERT, journal=journal)
    assert result.status == "ok", result.to_dict()
    assert [c.action for c in actions.calls] == ["quarantine", "replace"], "capture not redone"
    quarantine = actions.calls[0].context
    assert quarantine.attempt == 2 and quarantine.interrupted is not None
    assert quarantine.interrupted.attempt == 1
    assert "run " in quarantine.custody_note() and "attempt 2" in quarantine.custody_note()
    assert actions.calls[1].context.interrupted is None
    assert result.steps[0].bundle == "evidence/b.tar", "the recovered capture gates the rest"
    assert journal.log == [("started", 1), ("ended", 1), ("started", 2), ("ended", 2)]
    assert [e["action"] for e in audit.of("step-recovered")] == ["capture"]


# -- workers over a store -------------------------------------------------------------------------


def pool(store: MemoryRuns, replica: str, actions: RecordingActions, audit: Events) -> WorkerPool:
    metrics: Metrics = _metrics()
    return WorkerPool(
        Engine(actions, audit=audit),
        store,
        [book()],
        2,
        audit,
        metrics,
        holder=holder_name(replica),
        seal=RunSeal([b"token-0123456789abcdef"]),
        lease=2.0,
        scan_interval=0.1,
    )


def wait(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_dead_replicas_run_is_taken_over_after_its_lease_and_resumed() -> None:
    store, seal, run = MemoryRuns(), RunSeal([b"token-0123456789abcdef"]), new_run()
    accepted = store.accept(run, seal.seal(run.spec()), 600, (0, 60))
    state = store.get(accepted.state.name)  # type: ignore[union-attr]
    assert state is not None
    # replica-a claimed it, ended the capture, started the quarantine, then died
    claim(state, "replica-a/dead", time.time(), "new")
    state.steps = [
        {
            "index": 0,
            "state": STEP_DONE,
            "attempt": 1,
            "result": StepResult(
                "capture", "ok", bundle="evidence/x.tar", step="capture"
            ).to_dict(),
        },
        {"index": 1, "state": STEP_RUNNING, "attempt": 1, "step": "quarantine"},
    ]
    state.current = "quarantine"
    store.write(state)
    actions, audit = RecordingActions(), Events()
    workers = pool(store, "replica-b", actions, audit)
    workers.start()
    try:
        time.sleep(0.5)
        assert not actions.calls, "replica-a's claim is live for its lease"
        final = wait(lambda: (lambda s: s if s and s.is_finished else None)(store.get(state.name)))
    finally:
        workers.drain(time.monotonic() + 2)
    assert final.phase == "Succeeded" and final.attempt == 2
    assert final.interruptions[0] | {"at": 0} == {
        "attempt": 1,
        "holder": "replica-a/dead",
        "step": "quarantine",
        "at": 0,
        "how": "taken-over",
    }
    assert [c.action for c in actions.calls] == ["quarantine", "replace"]
    assert actions.calls[0].context.interrupted is not None
    assert [e["how"] for e in audit.of("run-claimed")] == ["taken-over"]


def test_a_restarted_replica_takes_its_runs_at_once() -> None:
    store, seal, run = MemoryRuns(), RunSeal([b"token-0123456789abcdef"]), new_run()
    accepted = store.accept(run, seal.seal(run.spec()), 600, (0, 60))
    state = store.get(accepted.state.name)  # type: ignore[union-attr]
    assert state is not None
    claim(state, "replica-a/before", time.time(), "new")
    store.write(state)
    actions, audit = RecordingActions(), Events()
    workers = pool(store, "replica-a", actions, audit)
    workers.start()
    try:
        final = wait(
            lambda: (lambda s: s if s and s.is_finished else None)(store.get(state.name)), 1.5
        )
    finally:
        workers.drain(time.monotonic() + 2)
    assert final.phase == "Succeeded" and [e["how"] for e in audit.of("run-claimed")] == [
        "restarted"
    ]


def test_a_run_record_without_the_servers_seal_is_refused_not_run() -> None:
    store = MemoryRuns()
    forged = new_run(target="pod/payments/db-0")
    store.accept(forged, "hmac-sha256:" + "0" * 64, 600, (0, 60))
    actions, audit = RecordingActions(), Events()
    workers = pool(store, "replica-a", actions, audit)
    workers.start()
    try:
        final = wait(lambda: (lambda s: s if s and s.is_finished else None)(store.get(forged.name)))
    finally:
        workers.drain(time.monotonic() + 2)
    assert final.phase == "Refused" and "seal does not match" in final.reason
    assert not actions.calls
    assert final.result in STATUSES
