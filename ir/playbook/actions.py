"""The narrow interface between the playbook engine and whatever acts on a cluster.

The engine decides *whether* a step runs (trigger, target validation, conditions, the capture
gate, what the step needs in the target, dry-run); an implementation of `ResponseActions`
decides *how* to do it. ir.cluster provides the real one (`ir.cluster.actions.ClusterActions`);
this module provides `DryRunActions` (says what each step would act on) and `RecordingActions`
(for tests). Both answer for every action declared in ir/playbook/steps/ without naming any.

Contract for `act(action, target, params, context) -> StepResult`, for every action but those
the engine sends itself (notify); ClusterActions implements each as a method named after it:
  * `action` names an `ActionSpec` (ir/playbook/steps/<action>.py): what the step does, what
    it needs in the target, what its params are and what ok / partial mean for it.
  * `target` is an `ir.playbook.alerts.Target`: every name in it is validated (DNS-1123), the
    namespace is neither protected (unless the playbook allowed it) nor outside the playbook's
    allow/deny lists, and a pod always comes with its namespace. Use names only as Kubernetes API
    path segments or field values; never pass them to a shell or format them into commands.
  * `params` is the step's parameters from the playbook, already validated by its ActionSpec.
  * `context` carries the run id, case id, reason, operator, dry-run flag, deadline and the
    results of earlier steps (e.g. the capture's bundle, the quarantine id).
  * Return a `StepResult`; do not raise for expected failures (API 403/404/409/5xx, timeouts):
    return status "failed" with a one-line `detail`. An `ir.errors.IrError` that escapes is
    recorded as "failed" with its message; any other exception as "failed" ("internal error").
  * Record each API request made (or, with `context.dry_run`, that would be made) in
    `StepResult.requests` as `ApiRequest(method, path, body)`: it goes into the audit log.
  * Be idempotent: a second run for the same target must not create a second NetworkPolicy,
    and must not fail because labels are already set.
  * Honour `context.deadline` (a `time.monotonic()` value, or None): stop waiting at it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ir.playbook.alerts import Alert, Target
from ir.playbook.steps import POD, action_spec

OK, PARTIAL, FAILED, SKIPPED, REFUSED, DRY_RUN = (
    "ok",
    "partial",
    "failed",
    "skipped",
    "refused",
    "dry-run",
)
STATUSES = (OK, PARTIAL, FAILED, SKIPPED, REFUSED, DRY_RUN)


@dataclass(frozen=True)
class ApiRequest:
    """One API request made (or that a dry run would make)."""

    method: str  # GET | POST | PATCH | PUT | DELETE
    path: str  # e.g. /api/v1/namespaces/shop/pods/web-1, or a URL for notify
    body: Any = None  # JSON-serialisable, or None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": self.body}

    def __str__(self) -> str:
        body = (
            ""
            if self.body is None
            else " " + json.dumps(self.body, sort_keys=True, ensure_ascii=True)
        )
        return f"{self.method} {self.path}{body}"


@dataclass
class StepResult:
    """The outcome of one step.

    status: ok | partial | failed | skipped | refused | dry-run; what ok and partial mean for
    each action is in its ActionSpec's doc. A capture sets `bundle` (local path or s3:// URI)
    and `bundle_digest` ("sha256:<hex>" root); a quarantine's data names the networkpolicy and
    the quarantine_id, a replace's the replacement.
    """

    action: str
    status: str
    detail: str = ""
    bundle: str | None = None
    bundle_digest: str | None = None
    requests: list[ApiRequest] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    step: str = ""  # the step's name in the playbook (set by the engine)
    started_at: str | None = None  # set by the engine
    duration_seconds: float | None = None  # set by the engine
    since_alert_seconds: float | None = None  # from receipt of the alert to the end of the step

    @property
    def succeeded(self) -> bool:
        return self.status in (OK, DRY_RUN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "action": self.action,
            "status": self.status,
            "detail": self.detail,
            "bundle": self.bundle,
            "bundle_digest": self.bundle_digest,
            "requests": [r.to_dict() for r in self.requests],
            "data": self.data,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "since_alert_seconds": self.since_alert_seconds,
        }


@dataclass
class Interruption:
    """A step an earlier attempt of a durable run started and did not record the end of."""

    attempt: int
    started_at: str | None
    holder: str | None = None

    def describe(self) -> str:
        return (
            f"attempt {self.attempt} started this step"
            + (f" at {self.started_at}" if self.started_at else "")
            + " and was interrupted before recording its end"
        )


@dataclass
class ActionContext:
    """What an action knows about the run it is part of."""

    run_id: str  # unique per run; use it in names (quarantine id, job names)
    case_id: str
    playbook: str
    step: str
    reason: str  # one line: "<source>: <rule> (alert <id>)", for annotations and custody
    operator: str  # who acts: "ir-serve" or the user running `ir playbook run`
    dry_run: bool
    alert: Alert
    results: list[StepResult] = field(default_factory=list)  # earlier steps of this run
    deadline: float | None = None  # time.monotonic() by which the step must finish
    attempt: int = 1  # of a durable run: 2 and up after an interruption (custody names it)
    # this step was started by an earlier attempt that was interrupted before recording its end:
    # it may have half happened; check before repeating (a sealed bundle, a policy in place)
    interrupted: Interruption | None = None

    def custody_note(self) -> str:
        """What custody records say about the attempt ("" for a first, uninterrupted one)."""
        if self.attempt <= 1 and self.interrupted is None:
            return ""
        note = f"run {self.run_id} attempt {self.attempt}"
        if self.interrupted is not None:
            note += f"; {self.interrupted.describe()}"
        return note

    def result_of(self, action: str) -> StepResult | None:
        """The latest earlier result of `action` (e.g. "capture", "quarantine")."""
        return next((r for r in reversed(self.results) if r.action == action), None)

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@runtime_checkable
class ResponseActions(Protocol):
    """What the engine calls. Implemented by ir.cluster.actions.ClusterActions (real API),
    DryRunActions and RecordingActions. Actions the engine sends itself (notify) never come
    here."""

    def act(
        self, action: str, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        """Perform the step `action` (see the module's contract)."""
        ...


class DryRunActions:
    """An offline rehearsal (no cluster to ask): each step returns status "dry-run" and says what
    it would act on, with its parameters; no request is sent or invented. The exact requests
    come only from the code that makes them: with cluster actions, a dry run sends each of them,
    in the order a real run does, as an apiserver server-side dry run (ir.cluster.ops.Operator:
    dryRun=All, so RBAC and admission answer too). `planned` lists the lines, `echo` prints
    them."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.echo = echo
        self.planned: list[str] = []
        self._lock = threading.Lock()

    def act(
        self, action: str, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        spec = action_spec(action)
        what = (
            f"pod {target.namespace}/{target.pod}"
            if spec.acts_on(params, target) == POD and target.pod
            else f"node {target.node or 'of the pod'}"
        )
        hidden = {p.name for p in spec.params if not p.in_plan}
        shown = {k: v for k, v in params.items() if k not in hidden}
        line = f"would {action} {what}" + (f" with {shown}" if shown else "")
        with self._lock:
            self.planned.append(line)
        if self.echo:
            self.echo(f"  {line}")
        return StepResult(
            action=action,
            status=DRY_RUN,
            detail=line + "; offline rehearsal: no request sent (with a cluster, "
            "--actions cluster --dry-run sends the exact requests as server-side dry runs)",
        )


@dataclass
class RecordedCall:
    action: str
    target: Target
    params: dict[str, Any]
    context: ActionContext
    at: float  # time.monotonic()


class RecordingActions:
    """For tests: records every call; returns `statuses[action]` (default "ok"); sleeps
    `delays[action]` seconds first; raises `errors[action]` when set. Thread-safe."""

    def __init__(
        self,
        statuses: dict[str, str] | None = None,
        delays: dict[str, float] | None = None,
        errors: dict[str, Exception] | None = None,
    ) -> None:
        self.statuses = dict(statuses or {})
        self.delays = dict(delays or {})
        self.errors = dict(errors or {})
        self.calls: list[RecordedCall] = []
        self._cond = threading.Condition()

    def act(
        self, action: str, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        """Record the call, then answer as configured. A subclass may answer for one action
        with a method named after it (tests make an action misbehave)."""
        own = getattr(type(self), action, None)
        if callable(own) and not hasattr(RecordingActions, action):
            return own(self, target, params, context)
        with self._cond:
            self.calls.append(RecordedCall(action, target, dict(params), context, time.monotonic()))
            self._cond.notify_all()
        delay = self.delays.get(action, 0.0)
        if delay:
            time.sleep(delay)
        if action in self.errors:
            raise self.errors[action]
        status = self.statuses.get(action, OK)
        result = StepResult(action=action, status=status, detail=f"recorded {action}")
        if action == "capture" and status in (OK, PARTIAL):
            result.bundle = f"evidence/{context.case_id}/{context.run_id}.tar"
            result.bundle_digest = "sha256:" + "0" * 64
        return result

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least `count` calls were recorded (or `timeout`); True if they were."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= count, timeout)

    def actions_called(self) -> list[str]:
        with self._cond:
            return [c.action for c in self.calls]
