"""From parsed alerts to recorded runs: match, validate the target, then record the run in the
run store, which decides dedupe and rate limits (ir.playbook.runstate); only a recorded run is
answered "queued" (202). Every alert gets exactly one decision, audited and counted; nothing is
dropped silently."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ir.playbook.alerts import Alert
from ir.playbook.audit import AuditLog
from ir.playbook.match import REFUSED, match_alert, select
from ir.playbook.runstate import (
    CREATED,
    FULL,
    UNAVAILABLE,
    NewRun,
    RunSeal,
    RunStore,
    run_name,
    spec_digest,
)
from ir.playbook.runstate import DUPLICATE as DUPLICATE_RUN
from ir.playbook.runstate import RATE_LIMITED as RATE_LIMITED_RUN
from ir.playbook.spec import Playbook
from ir.serve.config import ServeConfig
from ir.serve.metrics import Metrics

QUEUED = "queued"
DUPLICATE = "duplicate"
IGNORED = "ignored"  # resolved alerts
UNMATCHED = "unmatched"
TARGET_REFUSED = "refused"
RATE_LIMITED = "rate-limited"
QUEUE_FULL = "queue-full"
DRAINING = "draining"
UNRECORDED = "unrecorded"  # the run store could not record the run: never answered 202
TOO_LARGE = "too-large"
MAX_RUN_BYTES = 768 * 1024  # a run record well inside etcd's object limit (1.5 MiB)


@dataclass
class Decision:
    index: int
    decision: str
    reason: str = ""
    alert: Alert | None = None
    playbook: str | None = None
    target: str | None = None
    run_id: str | None = None
    run: str | None = None  # the run record's name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "decision": self.decision}
        if self.alert is not None:
            out.update(source=self.alert.source, rule=self.alert.rule, alert_id=self.alert.alert_id)
        for key in ("reason", "playbook", "target", "run_id", "run"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


def response_status(decisions: Sequence[Decision]) -> int:
    """One HTTP status for a request's decisions: retry-worthy failures win (503, then 429), so a
    sender retries and dedupe absorbs the alerts that were already recorded."""
    kinds = {d.decision for d in decisions}
    if kinds & {QUEUE_FULL, DRAINING, UNRECORDED}:
        return 503
    if QUEUED in kinds:
        return 202
    if RATE_LIMITED in kinds:
        return 429
    if TOO_LARGE in kinds:
        return 413
    if TARGET_REFUSED in kinds:
        return 422
    return 200


class Intake:
    """Decides each alert; a run is answered "queued" only once its store recorded it."""

    def __init__(
        self,
        config: ServeConfig,
        playbooks: Sequence[Playbook],
        store: RunStore,
        offer: Callable[[str], bool],
        audit: AuditLog,
        metrics: Metrics,
        *,
        holder: str,
        seal: RunSeal,
    ) -> None:
        self.config = config
        self.playbooks = list(playbooks)
        self.store = store
        self.offer = offer
        self.audit = audit
        self.metrics = metrics
        self.holder = holder
        self.seal = seal
        self.draining = False

    def submit(
        self,
        alerts: Sequence[Alert],
        *,
        request_id: str,
        remote: str,
    ) -> list[Decision]:
        decisions = []
        for index, alert in enumerate(alerts):
            decision = self._decide(index, alert, request_id)
            decisions.append(decision)
            self.metrics.inc(
                "ir_serve_alerts_total", source=alert.source, decision=decision.decision
            )
            record: dict[str, Any] = {
                "request_id": request_id,
                "remote": remote,
                "decision": decision.decision,
                "reason": decision.reason,
                "playbook": decision.playbook,
                "target": decision.target,
                "run_id": decision.run_id,
                "run": decision.run,
                "alert": alert.summary_dict(),
            }
            if alert.notes:
                record["notes"] = list(alert.notes)
            self.audit.record("alert", **record)
        return decisions

    def _decide(self, index: int, alert: Alert, request_id: str) -> Decision:
        if alert.status != "firing":
            return Decision(index, IGNORED, f"{alert.status} alert", alert)
        results = match_alert(self.playbooks, alert, self.config.protected_namespaces)
        chosen = select(results)
        if chosen is None:
            refused = next((r for r in results if r.decision == REFUSED), None)
            if refused is not None:
                return Decision(
                    index, TARGET_REFUSED, refused.reasons[-1], alert, refused.playbook.name
                )
            return Decision(index, UNMATCHED, "no playbook matches", alert)
        target = chosen.target
        assert target is not None
        playbook = chosen.playbook
        base = Decision(index, QUEUED, "", alert, playbook.name, target.key)
        if self.draining:
            base.decision, base.reason = DRAINING, "server is shutting down"
            return base
        run_id = uuid.uuid4().hex
        window = self.config.dedupe_window
        run = NewRun(
            name=run_name(playbook.name, target.key, "" if window > 0 else run_id),
            run_id=run_id,
            playbook=playbook.name,
            target_key=target.key,
            alert=alert.to_record(),
            accepted_at=time.time(),
            accepted_by=self.holder,
            request_id=request_id,
        )
        spec = run.spec()
        body = spec_digest(spec)
        size = len(body)
        if size > MAX_RUN_BYTES:
            base.decision = TOO_LARGE
            base.reason = f"the alert makes a run record of {size} bytes (limit {MAX_RUN_BYTES})"
            return base
        accepted = self.store.accept(
            run,
            self.seal.seal(spec, body),
            window,
            (self.config.rate_limit, self.config.rate_window),
        )
        base.run = run.name
        if accepted.outcome == CREATED:
            base.run_id = run_id
            self.offer(run.name)
            return base
        base.decision, base.reason = _DECISION_OF[accepted.outcome], accepted.reason
        if accepted.outcome == DUPLICATE_RUN and accepted.state is not None:
            base.run_id = accepted.state.run_id
        if accepted.outcome == UNAVAILABLE:
            self.metrics.inc("ir_serve_run_store_errors_total", op="accept")
        return base


_DECISION_OF = {
    DUPLICATE_RUN: DUPLICATE,
    RATE_LIMITED_RUN: RATE_LIMITED,
    UNAVAILABLE: UNRECORDED,
    FULL: QUEUE_FULL,
}
