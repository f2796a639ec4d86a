"""Durable playbook runs: what a run record holds, the rules for claiming one, and the journal
through which the engine records each step as it starts and ends, so a run that a crash
interrupted resumes where it stopped instead of being lost or done twice.

Where records live is a `RunStore`: `ir.cluster.runs.KubeRuns` (IrRun objects through the
apiserver: durable, shared by every replica) or `ir.serve.memoryruns.MemoryRuns` (this process
only: lost with it). Both follow the same rules, written here once:

  * accept: a run is recorded before its alert is answered 202; its name is derived from the
    dedupe key, so a second record for the same playbook and target is refused by the store
    (`DUPLICATE`) while the first is inside the dedupe window or still open;
  * claim: a worker takes a run by writing itself as holder (compare-and-swap on the record's
    version); a claim is renewed while the run goes on and, once not renewed for `lease`
    seconds, may be taken over, the interruption recorded with the attempt it ended;
  * steps: each step is recorded "running" before it starts and with its result when it ends;
    a step found "running" by a later attempt may have half happened: the action is told
    (`ActionContext.interrupted`) and checks before it repeats anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from ir.playbook.actions import DRY_RUN, FAILED, OK, PARTIAL, REFUSED, StepResult

# phases of a run record (printed by `kubectl get irruns`)
PENDING, RUNNING = "Pending", "Running"
SUCCEEDED, PARTIALLY, FAILED_PHASE, REFUSED_PHASE = "Succeeded", "Partial", "Failed", "Refused"
FINISHED = frozenset({SUCCEEDED, PARTIALLY, FAILED_PHASE, REFUSED_PHASE})
PHASE_OF_STATUS = {
    OK: SUCCEEDED,
    DRY_RUN: SUCCEEDED,
    PARTIAL: PARTIALLY,
    FAILED: FAILED_PHASE,
    REFUSED: REFUSED_PHASE,
}
STEP_RUNNING, STEP_DONE = "running", "done"
NAME_PREFIX = "run-"

# what `accept` answers
CREATED, DUPLICATE, RATE_LIMITED, UNAVAILABLE, FULL = (
    "created",
    "duplicate",
    "rate-limited",
    "unavailable",
    "full",
)


class ClaimLost(Exception):
    """This worker no longer holds the run (taken over after its lease ran out, or the store
    could not be written for as long as the lease): it must stop acting on it."""


def run_name(playbook: str, target_key: str, salt: str = "") -> str:
    """The record's name, from the dedupe key (playbook and target): the store refuses a second
    record with it. `salt` (e.g. a run id) makes it unique when dedupe is off."""
    digest = hashlib.sha256(f"{playbook}\0{target_key}\0{salt}".encode()).hexdigest()
    return NAME_PREFIX + digest[:40]


@dataclass
class NewRun:
    """A run as the intake accepts it."""

    name: str
    run_id: str
    playbook: str
    target_key: str
    alert: dict[str, Any]  # Alert.to_record()
    accepted_at: float  # epoch seconds
    accepted_by: str  # the replica
    request_id: str

    def spec(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "playbook": self.playbook,
            "target": self.target_key,
            "alert": self.alert,
            "acceptedAt": self.accepted_at,
            "acceptedBy": self.accepted_by,
            "requestId": self.request_id,
        }


def spec_digest(spec: dict[str, Any]) -> bytes:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class RunSeal:
    """Authenticates run records: an HMAC of the record's spec under keys derived from ir serve's
    own webhook credentials (bearer tokens, HMAC secrets), which its Kubernetes identity cannot
    read. A token stolen from the intake can write IrRun objects, but not ones a worker runs."""

    CONTEXT = b"ir serve run record v1"

    def __init__(self, secrets: list[bytes]) -> None:
        self._keys = [hmac.new(s, self.CONTEXT, hashlib.sha256).digest() for s in secrets]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def seal(self, spec: dict[str, Any], body: bytes | None = None) -> str:
        """The seal of `spec` (`body`: its spec_digest, when already made)."""
        if not self._keys:
            return ""
        body = spec_digest(spec) if body is None else body
        return "hmac-sha256:" + hmac.new(self._keys[0], body, "sha256").hexdigest()

    def check(self, spec: dict[str, Any], seal: str | None) -> str | None:
        """None when the seal is good (or sealing is off); else why not."""
        if not self._keys:
            return None
        if not seal:
            return "the run record carries no seal"
        body = spec_digest(spec)
        for key in self._keys:  # every configured credential: rotation
            want = "hmac-sha256:" + hmac.new(key, body, "sha256").hexdigest()
            if hmac.compare_digest(want, seal):
                return None
        return "the run record's seal does not match this ir serve's credentials"


@dataclass
class RunState:
    """A run record as read from its store, with its status; `version` is the store's
    compare-and-swap token (resourceVersion)."""

    name: str
    spec: dict[str, Any]
    version: str = ""
    uid: str = ""
    seal: str = ""
    created: float = 0.0  # epoch seconds
    phase: str = PENDING
    attempt: int = 0
    holder: str | None = None
    renewed: float | None = None  # epoch seconds of the holder's last renewal
    current: str | None = None  # the step running now
    steps: list[dict[str, Any]] = field(default_factory=list)
    interruptions: list[dict[str, Any]] = field(default_factory=list)
    result: str | None = None  # the run's status once finished
    reason: str = ""
    finished: float | None = None

    @property
    def run_id(self) -> str:
        return str(self.spec.get("runId") or self.name)

    @property
    def playbook(self) -> str:
        return str(self.spec.get("playbook") or "")

    @property
    def target_key(self) -> str:
        return str(self.spec.get("target") or "")

    @property
    def accepted_at(self) -> float:
        value = self.spec.get("acceptedAt")
        return float(value) if isinstance(value, int | float) else self.created

    @property
    def is_finished(self) -> bool:
        return self.phase in FINISHED

    def status(self) -> dict[str, Any]:
        """The record's status as stored."""
        return {
            "phase": self.phase,
            "attempt": self.attempt,
            "claim": {"holder": self.holder, "renewed": self.renewed} if self.holder else None,
            "currentStep": self.current,
            "steps": self.steps,
            "interruptions": self.interruptions,
            "result": self.result,
            "reason": self.reason,
            "finished": self.finished,
        }

    def load_status(self, status: dict[str, Any] | None) -> None:
        """Fill from a stored status (ignoring what is malformed: a record is data)."""
        status = status if isinstance(status, dict) else {}
        self.phase = str(status.get("phase") or PENDING)
        attempt = status.get("attempt")
        self.attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0
        claim = status.get("claim") if isinstance(status.get("claim"), dict) else None
        self.holder = str(claim["holder"]) if claim and claim.get("holder") else None
        renewed = claim.get("renewed") if claim else None
        self.renewed = float(renewed) if isinstance(renewed, int | float) else None
        self.current = (
            status.get("currentStep") if isinstance(status.get("currentStep"), str) else None
        )
        self.steps = [s for s in status.get("steps") or [] if isinstance(s, dict)]
        self.interruptions = [i for i in status.get("interruptions") or [] if isinstance(i, dict)]
        self.result = status.get("result") if isinstance(status.get("result"), str) else None
        self.reason = str(status.get("reason") or "")
        finished = status.get("finished")
        self.finished = float(finished) if isinstance(finished, int | float) else None

    def summary(self) -> dict[str, Any]:
        return {
            "run": self.name,
            "run_id": self.run_id,
            "playbook": self.playbook,
            "target": self.target_key,
            "phase": self.phase,
            "attempt": self.attempt,
        }


def replica_of(holder: str | None) -> str:
    """The replica part of a holder ("<replica>/<incarnation>")."""
    return (holder or "").split("/", 1)[0]


def claim_kind(state: RunState, holder: str, now: float, lease: float) -> str | None:
    """How `holder` may claim the run now: "new" (never claimed), "taken-over" (its holder's
    lease ran out), "restarted" (held by an earlier process of this same replica, which is gone),
    or None (finished, or held by a live worker)."""
    if state.is_finished:
        return None
    if not state.holder:
        return "new"
    if state.holder == holder:
        return None  # ours already
    if replica_of(state.holder) == replica_of(holder):
        return "restarted"
    if state.renewed is None or state.renewed + lease <= now:
        return "taken-over"
    return None


def claim(state: RunState, holder: str, now: float, how: str) -> None:
    """Make `holder` the run's holder for a new attempt; an interrupted attempt is recorded."""
    if state.holder and how != "new":
        state.interruptions.append(
            {
                "attempt": state.attempt,
                "holder": state.holder,
                "step": state.current,
                "at": now,
                "how": how,
            }
        )
    state.attempt += 1
    state.holder = holder
    state.renewed = now
    state.phase = RUNNING


def finish(state: RunState, status: str, reason: str, now: float) -> None:
    state.phase = PHASE_OF_STATUS.get(status, FAILED_PHASE)
    state.result = status
    state.reason = reason
    state.current = None
    state.finished = now


def duplicate_of(existing: RunState, run: NewRun, window: float) -> Acceptance | None:
    """The DUPLICATE answer while `existing` holds the name `run` wants (open, or accepted inside
    the dedupe window); None when it may make way."""
    age = run.accepted_at - existing.accepted_at
    if existing.is_finished and age >= window:
        return None
    state = "open" if not existing.is_finished else existing.phase.lower()
    return Acceptance(
        DUPLICATE,
        f"run {existing.name} on {run.target_key} by playbook {run.playbook}, "
        f"accepted {max(0.0, age):.0f}s ago, is {state}",
        existing,
    )


class RunStore(Protocol):
    """Where accepted runs are recorded. `durable` says whether a record outlives this process."""

    durable: bool
    where: str  # one line for the start record and the operator: what holds the runs

    def accept(self, run: NewRun, seal: str, window: float, rate: tuple[int, float]) -> Acceptance:
        """Record `run` unless the same name is live (inside `window` seconds, or still open), or
        its target had `rate` = (limit, seconds) runs already. Never raises for the store being
        unreachable: answers UNAVAILABLE with the cause."""
        ...

    def get(self, name: str) -> RunState | None: ...

    def write(self, state: RunState) -> RunState:
        """Store `state`'s status if the record is still at `state.version` (compare-and-swap);
        return it with its new version. Raises Conflict when it changed, OSError-like
        RunStoreError when the store cannot be reached."""
        ...

    def open_runs(self) -> list[RunState]:
        """Every run not finished."""
        ...

    def waiting(self) -> int:
        """Runs recorded and not yet claimed (as last seen): what bounds accepting more."""
        ...

    def expire(self, ttl: float, now: float) -> int:
        """Delete finished runs older than `ttl` seconds; the number deleted."""
        ...


@dataclass
class Acceptance:
    outcome: str  # CREATED | DUPLICATE | RATE_LIMITED | UNAVAILABLE | FULL
    reason: str = ""
    state: RunState | None = None


class Conflict(Exception):
    """The record changed since it was read (another writer)."""


class RunStoreError(Exception):
    """The store cannot be reached or refused the request; the message says which and why.
    `transient`: it may work later (unreachable, overloaded); else it was refused."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class RunJournal(Protocol):
    """What the engine records a step through, and reads earlier attempts' steps from."""

    attempt: int

    def earlier(self, index: int) -> dict[str, Any] | None:
        """The record of step `index` from an earlier attempt, or None."""
        ...

    def started(self, index: int, step: str, action: str, started_at: str) -> None: ...

    def ended(self, index: int, result: StepResult) -> None: ...


def step_result_from(record: dict[str, Any]) -> StepResult:
    """A StepResult back from its recorded dict (requests are not kept: the audit log has them)."""
    data = record.get("data")
    result = StepResult(
        str(record.get("action") or ""),
        str(record.get("status") or FAILED),
        str(record.get("detail") or ""),
        bundle=record.get("bundle") if isinstance(record.get("bundle"), str) else None,
        bundle_digest=(
            record.get("bundle_digest") if isinstance(record.get("bundle_digest"), str) else None
        ),
        data=data if isinstance(data, dict) else {},
    )
    result.step = str(record.get("step") or "")
    result.started_at = (
        record.get("started_at") if isinstance(record.get("started_at"), str) else None
    )
    duration = record.get("duration_seconds")
    result.duration_seconds = float(duration) if isinstance(duration, int | float) else None
    return result
