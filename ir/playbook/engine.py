"""Run a playbook on an alert: resolve and validate the target, then the steps in order, each
behind its condition and the capture gate, each audited. Never raises on what an action does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ir.clock import rfc3339, utcnow
from ir.errors import ExitCode, IrError
from ir.playbook.actions import (
    DRY_RUN,
    FAILED,
    OK,
    PARTIAL,
    REFUSED,
    SKIPPED,
    ActionContext,
    ApiRequest,
    DryRunActions,
    Interruption,
    ResponseActions,
    StepResult,
)
from ir.playbook.alerts import Alert, Target
from ir.playbook.audit import AuditLog
from ir.playbook.k8snames import PROTECTED_NAMESPACES
from ir.playbook.match import MATCH, evaluate
from ir.playbook.notify import WebhookNotifier
from ir.playbook.runstate import STEP_DONE, STEP_RUNNING, RunJournal, step_result_from
from ir.playbook.spec import Playbook, Step

DEFAULT_STEP_TIMEOUT = 600.0


@dataclass
class RunResult:
    run_id: str
    playbook: str
    case_id: str
    alert: Alert
    dry_run: bool
    status: str = OK  # ok | partial | failed | refused | dry-run
    target: Target | None = None
    reason: str = ""  # why refused
    steps: list[StepResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""

    @property
    def exit_code(self) -> ExitCode:
        if self.status == REFUSED:
            return ExitCode.REFUSED
        if self.status in (FAILED, PARTIAL):
            return ExitCode.FAILED
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "case_id": self.case_id,
            "dry_run": self.dry_run,
            "status": self.status,
            "reason": self.reason,
            "alert": self.alert.summary_dict(),
            "target": self.target.to_dict() if self.target else None,
            "steps": [s.to_dict() for s in self.steps],
            "notes": self.notes,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class Engine:
    """`actions` acts for real; `dry_run_actions` (default DryRunActions) is used when the run,
    the engine or the playbook says dry_run. The engine sends `notify` itself (`notifier`)."""

    def __init__(
        self,
        actions: ResponseActions,
        *,
        dry_run_actions: ResponseActions | None = None,
        notifier: WebhookNotifier | None = None,
        audit: AuditLog | None = None,
        operator: str = "ir",
        protected_namespaces: Iterable[str] = PROTECTED_NAMESPACES,
        dry_run: bool = False,
        step_timeout: float = DEFAULT_STEP_TIMEOUT,
        on_step: Callable[[RunResult, StepResult], None] | None = None,
        cluster_name: str | None = None,
    ) -> None:
        self.actions = actions
        # this cluster's name (EKS: the cluster name in GuardDuty findings): node actions on an
        # alert that names a cluster need it to match
        self.cluster_name = cluster_name
        self.dry_run_actions = dry_run_actions or DryRunActions()
        self.notifier = notifier or WebhookNotifier()
        self.audit = audit or AuditLog()
        self.operator = operator
        self.protected_namespaces = tuple(protected_namespaces)
        self.dry_run = dry_run
        self.step_timeout = step_timeout
        self.on_step = on_step

    def run(
        self,
        playbook: Playbook,
        alert: Alert,
        *,
        dry_run: bool = False,
        run_id: str | None = None,
        received_at: float | None = None,
        journal: RunJournal | None = None,
    ) -> RunResult:
        """Run `playbook` on `alert`. The trigger and target are checked again here (whoever
        queued the run): a run whose playbook does not match, or whose target is refused, acts on
        nothing and has status "refused". `received_at` is the time.monotonic() the alert arrived.

        With a `journal` (a durable run), each step is recorded as it starts and ends; steps an
        earlier attempt ended are not run again (their recorded result stands), and a step it
        started without recording the end is run with `context.interrupted` set, so the action
        checks what happened before repeating it. ClaimLost from the journal ends the run."""
        received = received_at if received_at is not None else time.monotonic()
        dry = dry_run or self.dry_run or playbook.dry_run
        run_id = run_id or uuid.uuid4().hex
        case_id = playbook.case or f"IR-{alert.time:%Y%m%d}-{run_id[:8]}"
        result = RunResult(
            run_id=run_id,
            playbook=playbook.name,
            case_id=case_id,
            alert=alert,
            dry_run=dry,
            started_at=rfc3339(utcnow()) or "",
        )
        base = {"run_id": run_id, "playbook": playbook.name, "case_id": case_id, "dry_run": dry}
        decision = evaluate(playbook, alert, self.protected_namespaces)
        if decision.decision != MATCH:
            result.status = REFUSED
            result.reason = decision.reasons[-1] if decision.reasons else "playbook does not match"
            result.finished_at = rfc3339(utcnow()) or ""
            self.audit.record(
                "run",
                **base,
                status=REFUSED,
                reason=result.reason,
                alert=alert.summary_dict(),
                decision=decision.decision,
            )
            return result
        target = decision.target
        assert target is not None
        result.target = target
        result.notes.extend(decision.notes)
        attempt = journal.attempt if journal is not None else 1
        self.audit.record(
            "run-start",
            **base,
            alert=alert.summary_dict(),
            target=target.to_dict(),
            reasons=decision.reasons,
            notes=decision.notes,
            **({"attempt": attempt} if journal is not None else {}),
        )
        actions = self.dry_run_actions if dry else self.actions
        reason = f"{alert.source}: {alert.rule} (alert {alert.alert_id})"
        for index, step in enumerate(playbook.steps):
            earlier = journal.earlier(index) if journal is not None else None
            if (
                earlier
                and earlier.get("state") == STEP_DONE
                and isinstance(earlier.get("result"), dict)
            ):
                recovered = step_result_from(earlier["result"])
                result.steps.append(recovered)
                self.audit.record(
                    "step-recovered",
                    **base,
                    step=step.name,
                    action=step.action,
                    status=recovered.status,
                    ended_by_attempt=earlier.get("attempt"),
                    attempt=attempt,
                )
                continue
            interrupted = None
            if earlier and earlier.get("state") == STEP_RUNNING:
                number = earlier.get("attempt")
                interrupted = Interruption(
                    number if isinstance(number, int) else 0,
                    earlier.get("started_at")
                    if isinstance(earlier.get("started_at"), str)
                    else None,
                    earlier.get("holder") if isinstance(earlier.get("holder"), str) else None,
                )
            step_result = self._step(
                playbook,
                step,
                target,
                actions,
                result,
                reason,
                dry,
                received,
                journal=journal,
                index=index,
                interrupted=interrupted,
            )
            result.steps.append(step_result)
            if journal is not None:
                journal.ended(index, step_result)  # before the audit line: see docs/serve-runs.md
            self.audit.record(
                "step",
                **base,
                step=step.name,
                action=step.action,
                status=step_result.status,
                detail=step_result.detail,
                target=target.key,
                requests=[r.to_dict() for r in step_result.requests],
                bundle=step_result.bundle,
                bundle_digest=step_result.bundle_digest,
                data=step_result.data,
                duration_seconds=step_result.duration_seconds,
                since_alert_seconds=step_result.since_alert_seconds,
                **(
                    {"attempt": attempt, "interrupted": interrupted.describe()}
                    if interrupted is not None
                    else {}
                ),
            )
            if self.on_step:
                self.on_step(result, step_result)
        result.status = _overall(result.steps, dry)
        result.finished_at = rfc3339(utcnow()) or ""
        self.audit.record(
            "run",
            **base,
            status=result.status,
            target=target.key,
            steps={s.step: s.status for s in result.steps},
        )
        return result

    def _step(
        self,
        playbook: Playbook,
        step: Step,
        target: Target,
        actions: ResponseActions,
        run: RunResult,
        reason: str,
        dry: bool,
        received: float,
        *,
        journal: RunJournal | None = None,
        index: int = 0,
        interrupted: Interruption | None = None,
    ) -> StepResult:
        started = time.monotonic()
        started_at = rfc3339(utcnow())
        outcome = self._decide(playbook, step, target, run)
        if outcome is None:
            if journal is not None:  # recorded before anything is done: a crash leaves a trace
                journal.started(index, step.name, step.action, started_at or "")
            context = ActionContext(
                run_id=run.run_id,
                case_id=run.case_id,
                playbook=playbook.name,
                step=step.name,
                reason=reason,
                operator=self.operator,
                dry_run=dry,
                alert=run.alert,
                results=list(run.steps),
                deadline=started + float(step.params.get("timeout_seconds", self.step_timeout)),
                attempt=journal.attempt if journal is not None else 1,
                interrupted=interrupted,
            )
            outcome = self._call(step, target, actions, context, run, dry)
            if interrupted is not None and step.spec.sent_by_engine:
                outcome.detail += (
                    f" ({interrupted.describe()}: the receiver may have the notification twice)"
                )
        outcome.step = step.name
        outcome.started_at = started_at
        now = time.monotonic()
        outcome.duration_seconds = round(now - started, 6)
        outcome.since_alert_seconds = round(now - received, 6)
        return outcome

    def _decide(
        self, playbook: Playbook, step: Step, target: Target, run: RunResult
    ) -> StepResult | None:
        """A skipped/refused result when the step must not run; None when it runs."""
        capture = next(
            (s for s in reversed(run.steps) if s.action == "capture" and s.status != SKIPPED), None
        )
        ran = [s for s in run.steps if s.status != SKIPPED]
        previous = ran[-1] if ran else None
        conditions = {
            "always": True,
            "capture_ok": capture is not None and capture.succeeded,
            "capture_failed": capture is not None and not capture.succeeded,
            "previous_ok": previous is None or previous.succeeded,
            "previous_failed": previous is not None and not previous.succeeded,
        }
        if not conditions[step.when]:
            return StepResult(step.action, SKIPPED, f"condition '{step.when}' is false")
        if step.acts_on_node(bool(target.pod)):
            refusal = self._node_evidence(playbook, run.alert, capture)
            if refusal:
                return StepResult(step.action, REFUSED, refusal)
        if step.destructive and playbook.on_capture_failure != "continue":
            if capture is None:
                return StepResult(
                    step.action,
                    REFUSED,
                    "capture gate closed: no capture ran before this destructive step",
                )
            if not capture.succeeded:
                return StepResult(
                    step.action,
                    REFUSED,
                    f"capture gate closed: capture {capture.status} "
                    "(set on_capture_failure: continue to act without evidence)",
                )
        need = step.needs(
            target
        )  # its ActionSpec's: e.g. a capture of a node target needs the node
        if need == "pod" and not target.pod:
            return StepResult(step.action, SKIPPED, f"needs a pod; the target is a {target.kind}")
        if need == "node" and not (target.node or target.pod):
            return StepResult(step.action, SKIPPED, f"needs a node; the target is a {target.kind}")
        return None

    def _node_evidence(
        self, playbook: Playbook, alert: Alert, capture: StepResult | None
    ) -> str | None:
        """Why a node action must not run, or None: the alert must be about this cluster (a
        GuardDuty finding always names its EKS cluster; so may an Alertmanager `cluster` label),
        and a capture earlier in the run must have completed (unless the playbook waives it)."""
        if alert.source == "guardduty" or alert.cluster:
            if not alert.cluster:
                return "node action refused: the finding names no EKS cluster"
            if not self.cluster_name:
                return (
                    f"node action refused: the alert is about cluster {alert.cluster!r} and this "
                    "ir was not told its own cluster's name (--cluster-name, IR_CLUSTER_NAME)"
                )
            if alert.cluster != self.cluster_name:
                return (
                    f"node action refused: the alert is about cluster {alert.cluster!r}, "
                    f"not this one ({self.cluster_name!r})"
                )
        if playbook.node_actions_need_capture and not (capture and capture.succeeded):
            state = f"capture {capture.status}" if capture else "no capture ran before it"
            return (
                f"node action refused: {state}; a node is acted on only with evidence "
                "(node_actions_need_capture: false waives it)"
            )
        return None

    def _call(
        self,
        step: Step,
        target: Target,
        actions: ResponseActions,
        context: ActionContext,
        run: RunResult,
        dry: bool,
    ) -> StepResult:
        if step.spec.sent_by_engine:  # notify: the one step the engine performs itself
            return self._notify(step, target, run, dry)
        try:
            outcome = actions.act(step.action, target, dict(step.params), context)
        except IrError as exc:
            return StepResult(step.action, FAILED, exc.message)
        except Exception as exc:  # noqa: BLE001 -- an action's bug must not stop the run or the server
            return StepResult(
                step.action, FAILED, f"internal error in {step.action}: {type(exc).__name__}: {exc}"
            )
        if not isinstance(outcome, StepResult):
            return StepResult(
                step.action,
                FAILED,
                f"{type(actions).__name__}.{step.action} returned "
                f"{type(outcome).__name__}, not a StepResult",
            )
        if outcome.status not in (OK, PARTIAL, FAILED, SKIPPED, REFUSED, DRY_RUN):
            outcome.detail = f"unknown status {outcome.status!r}: {outcome.detail}"
            outcome.status = FAILED
        if dry and outcome.status == OK:
            outcome.status = DRY_RUN
        return outcome

    def _notify(self, step: Step, target: Target, run: RunResult, dry: bool) -> StepResult:
        document = {
            "kind": "ir.playbook-run/1",
            "run_id": run.run_id,
            "playbook": run.playbook,
            "case_id": run.case_id,
            "dry_run": dry,
            "alert": run.alert.summary_dict(),
            "target": target.to_dict(),
            "steps": [
                {
                    "step": s.step,
                    "action": s.action,
                    "status": s.status,
                    "detail": s.detail,
                    "bundle": s.bundle,
                    "bundle_digest": s.bundle_digest,
                }
                for s in run.steps
            ],
        }
        if step.params.get("include_raw"):
            document["alert_raw"] = run.alert.raw
        if dry:
            url, why = self.notifier.url(step.params)
            if url is None:
                return StepResult("notify", SKIPPED, why)
            return StepResult(
                "notify",
                DRY_RUN,
                f"would POST to {url}",
                requests=[ApiRequest("POST", url, document)],
            )
        return self.notifier.send(step.params, document)


def _overall(steps: list[StepResult], dry: bool) -> str:
    statuses = {s.status for s in steps}
    if FAILED in statuses:
        return FAILED
    if PARTIAL in statuses or REFUSED in statuses:
        return PARTIAL
    return DRY_RUN if dry else OK
