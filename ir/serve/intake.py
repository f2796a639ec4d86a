"""From parsed alerts to queued runs: match, validate the target, dedupe, rate-limit, enqueue.
Every alert gets exactly one decision, audited and counted; nothing is dropped silently."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ir.playbook.alerts import Alert
from ir.playbook.audit import AuditLog
from ir.playbook.match import REFUSED, match_alert, select
from ir.playbook.spec import Playbook
from ir.serve.config import ServeConfig
from ir.serve.limits import Deduper, RateLimiter
from ir.serve.metrics import Metrics

QUEUED = "queued"
DUPLICATE = "duplicate"
IGNORED = "ignored"  # resolved alerts
UNMATCHED = "unmatched"
TARGET_REFUSED = "refused"
RATE_LIMITED = "rate-limited"
QUEUE_FULL = "queue-full"
DRAINING = "draining"


@dataclass
class Job:
    """One playbook run waiting for a worker."""

    alert: Alert
    playbook: Playbook
    target_key: str
    run_id: str
    request_id: str
    received_at: float  # time.monotonic() when the request arrived
    dedupe_keys: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook.name,
            "target": self.target_key,
            "request_id": self.request_id,
            "alert": self.alert.summary_dict(),
        }


@dataclass
class Decision:
    index: int
    decision: str
    reason: str = ""
    alert: Alert | None = None
    playbook: str | None = None
    target: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "decision": self.decision}
        if self.alert is not None:
            out.update(source=self.alert.source, rule=self.alert.rule, alert_id=self.alert.alert_id)
        for key in ("reason", "playbook", "target", "run_id"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


def response_status(decisions: Sequence[Decision]) -> int:
    """One HTTP status for a request's decisions: retry-worthy failures win (503, then 429), so a
    sender retries and dedupe absorbs the alerts that were already queued."""
    kinds = {d.decision for d in decisions}
    if kinds & {QUEUE_FULL, DRAINING}:
        return 503
    if QUEUED in kinds:
        return 202
    if RATE_LIMITED in kinds:
        return 429
    if TARGET_REFUSED in kinds:
        return 422
    return 200


class Intake:
    def __init__(
        self,
        config: ServeConfig,
        playbooks: Sequence[Playbook],
        work: queue.Queue[Job],
        audit: AuditLog,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.playbooks = list(playbooks)
        self.work = work
        self.audit = audit
        self.metrics = metrics
        self.deduper = Deduper(config.dedupe_window)
        self.limiter = RateLimiter(config.rate_limit, config.rate_window)
        self.draining = False

    def submit(
        self,
        alerts: Sequence[Alert],
        *,
        request_id: str,
        remote: str,
        received_at: float | None = None,
    ) -> list[Decision]:
        received = time.monotonic() if received_at is None else received_at
        decisions = []
        for index, alert in enumerate(alerts):
            decision = self._decide(index, alert, request_id, received)
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
                "alert": alert.summary_dict(),
            }
            if alert.notes:
                record["notes"] = list(alert.notes)
            self.audit.record("alert", **record)
        return decisions

    def _decide(self, index: int, alert: Alert, request_id: str, received: float) -> Decision:
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
        keys = (f"id:{alert.source}:{alert.alert_id}", f"run:{playbook.name}:{target.key}")
        if not self.deduper.claim(*keys):
            base.decision = DUPLICATE
            base.reason = (
                f"same alert or same playbook on {target.key} within {self.config.dedupe_window:g}s"
            )
            return base
        if not self.limiter.acquire(target.key):
            self.deduper.release(*keys)
            base.decision = RATE_LIMITED
            base.reason = f"more than {self.config.rate_limit} runs on {target.key} per {self.config.rate_window:g}s"
            return base
        job = Job(alert, playbook, target.key, uuid.uuid4().hex, request_id, received, keys)
        try:
            self.work.put_nowait(job)
        except queue.Full:
            self.deduper.release(*keys)
            self.limiter.refund(target.key)
            base.decision, base.reason = QUEUE_FULL, f"work queue full ({self.work.maxsize})"
            return base
        base.run_id = job.run_id
        return base
