"""The workers of `ir serve`: claim recorded runs from the run store, run them through the
engine with a journal that records each step in the run record as it starts and ends, renew
the claims of runs in progress, and scan the store for runs to take up: runs accepted by a
replica or a process that died, runs whose holder stopped renewing (ir.playbook.runstate).
Runs on the same target never overlap in one process. On shutdown, workers finish what they
can before the deadline; what is left stays in a durable store for the next process."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ir.playbook.actions import FAILED, REFUSED, StepResult
from ir.playbook.alerts import Alert, AlertError
from ir.playbook.audit import AuditLog
from ir.playbook.engine import Engine
from ir.playbook.runstate import (
    STEP_DONE,
    STEP_RUNNING,
    ClaimLost,
    Conflict,
    RunSeal,
    RunState,
    RunStore,
    RunStoreError,
    claim,
    claim_kind,
    finish,
)
from ir.playbook.spec import Playbook
from ir.serve.metrics import Metrics

_STRIPES = 64
EXPIRE_EVERY = 60.0  # seconds between deletions of finished runs past their TTL
WRITE_BACKOFF = (0.2, 0.5, 1.0, 2.0)


def holder_name(replica: str) -> str:
    """This process's name as a holder of runs: the replica, and an incarnation that a restart
    of the same replica changes (its earlier runs are then taken over at once)."""
    return f"{replica}/{uuid.uuid4().hex[:8]}"


class StoreJournal:
    """The engine's RunJournal for one claimed run: every write is a compare-and-swap of the run
    record; a write refused because another holder took the run, or impossible for as long as the
    lease, raises ClaimLost (the worker stops acting)."""

    def __init__(self, store: RunStore, state: RunState, holder: str, lease: float) -> None:
        self.store = store
        self.state = state
        self.holder = holder
        self.lease = lease
        self.attempt = state.attempt
        self._lock = threading.Lock()
        self._written = time.time()
        self.lost: str | None = None

    def earlier(self, index: int) -> dict[str, Any] | None:
        return next((s for s in self.state.steps if s.get("index") == index), None)

    def started(self, index: int, step: str, action: str, started_at: str) -> None:
        self._set(
            index,
            {
                "index": index,
                "step": step,
                "action": action,
                "state": STEP_RUNNING,
                "attempt": self.attempt,
                "holder": self.holder,
                "started_at": started_at,
            },
            current=step,
        )

    def ended(self, index: int, result: StepResult) -> None:
        record = result.to_dict()
        record.pop("requests", None)  # the audit log has them; the record stays small
        self._set(
            index,
            {
                "index": index,
                "step": result.step,
                "action": result.action,
                "state": STEP_DONE,
                "attempt": self.attempt,
                "holder": self.holder,
                "started_at": result.started_at,
                "result": record,
            },
            current=None,
        )

    def _set(self, index: int, record: dict[str, Any], current: str | None) -> None:
        with self._lock:
            steps = [s for s in self.state.steps if s.get("index") != index]
            steps.append(record)
            self.state.steps = sorted(steps, key=lambda s: int(s.get("index") or 0))
            self.state.current = current
            self.state.renewed = time.time()
            self._write()

    def renew(self) -> None:
        with self._lock:
            if self.lost is None and not self.state.is_finished:
                self.state.renewed = time.time()
                self._write()

    def finish(self, status: str, reason: str) -> None:
        with self._lock:
            finish(self.state, status, reason, time.time())
            self._write()

    def _write(self) -> None:
        """Write the state; retry through conflicts caused by nobody else and through an
        unreachable store until the lease would have run out."""
        if self.lost is not None:
            raise ClaimLost(self.lost)
        attempt = 0
        while True:
            try:
                self.store.write(self.state)
                self._written = time.time()
                return
            except Conflict:
                fresh = self._fresh()
                if fresh is None or fresh.holder != self.holder or fresh.attempt != self.attempt:
                    self.lost = (
                        f"run {self.state.name} was taken over by {fresh.holder} (attempt "
                        f"{fresh.attempt})"
                        if fresh is not None
                        else f"run {self.state.name} was deleted"
                    )
                    raise ClaimLost(self.lost) from None
                self.state.version = fresh.version
            except RunStoreError as exc:
                if not exc.transient:  # refused (RBAC, admission): waiting changes nothing
                    self.lost = f"run {self.state.name} cannot be recorded: {exc}"
                    raise ClaimLost(self.lost) from None
                if time.time() - self._written > self.lease * 0.8:
                    self.lost = (
                        f"could not record run {self.state.name} for "
                        f"{time.time() - self._written:.0f}s ({exc}); its claim may be taken over"
                    )
                    raise ClaimLost(self.lost) from None
                time.sleep(WRITE_BACKOFF[min(attempt, len(WRITE_BACKOFF) - 1)])
                attempt += 1

    def _fresh(self) -> RunState | None:
        while True:
            try:
                return self.store.get(self.state.name)
            except RunStoreError as exc:
                if time.time() - self._written > self.lease * 0.8:
                    self.lost = f"could not read run {self.state.name}: {exc}"
                    raise ClaimLost(self.lost) from None
                time.sleep(0.5)


class WorkerPool:
    """Workers, a heartbeat that renews the claims in progress, and a scanner of the store."""

    def __init__(
        self,
        engine: Engine,
        store: RunStore,
        playbooks: Sequence[Playbook],
        size: int,
        audit: AuditLog,
        metrics: Metrics,
        *,
        holder: str,
        seal: RunSeal,
        lease: float = 60.0,
        scan_interval: float = 5.0,
        ttl: float = 7 * 86400.0,
        queue_size: int = 1000,
    ) -> None:
        self.engine = engine
        self.store = store
        self.playbooks = {p.name: p for p in playbooks}
        self.size = size
        self.audit = audit
        self.metrics = metrics
        self.holder = holder
        self.seal = seal
        self.lease = lease
        self.scan_interval = scan_interval
        self.ttl = ttl
        self.work: queue.Queue[str] = queue.Queue(queue_size)
        self._known: set[str] = set()  # queued or running here
        self._known_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._inflight: dict[str, StoreJournal | None] = {}
        self.completed = 0
        self.open_runs = 0  # at the last scan
        self._expired_at = 0.0

    # -- queue ----------------------------------------------------------------------------------
    def offer(self, name: str) -> bool:
        """Queue a run name here (a run this replica just recorded, or one a scan found). False
        when it is already queued or running here, or the local queue is full (the store keeps
        it: a later scan offers it again)."""
        with self._known_lock:
            if name in self._known:
                return False
            try:
                self.work.put_nowait(name)
            except queue.Full:
                return False
            self._known.add(name)
            return True

    def start(self) -> None:
        for index in range(self.size):
            self._thread(self._loop, f"ir-serve-worker-{index}")
        self._thread(self._heartbeat, "ir-serve-heartbeat")
        self._thread(self._scan_loop, "ir-serve-scanner")

    def _thread(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def busy(self) -> int:
        with self._known_lock:
            return len(self._inflight)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads) or self._stop.is_set()

    # -- workers --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                name = self.work.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                with self._known_lock:
                    self._inflight[name] = None
                self._take(name)
            except Exception as exc:  # noqa: BLE001 -- a bug in one run must not kill the worker
                self.audit.record("run-error", run=name, error=f"{type(exc).__name__}: {exc}")
            finally:
                with self._known_lock:
                    self._inflight.pop(name, None)
                    self._known.discard(name)
                    self.completed += 1
                self.work.task_done()

    def _take(self, name: str) -> None:
        """Claim the run if it is claimable, then run it to its end (or until the claim is lost)."""
        try:
            state = self.store.get(name)
        except RunStoreError as exc:
            self.audit.record("run-store-error", run=name, op="read", error=str(exc))
            return  # still in the store: a later scan offers it again
        if state is None:
            return
        now = time.time()
        how = claim_kind(state, self.holder, now, self.lease)
        if how is None and state.holder == self.holder and not state.is_finished:
            how = "resumed"  # this process dropped it (the store was unreachable for a lease)
        if how is None:
            return
        claim(state, self.holder, now, how)
        try:
            self.store.write(state)
        except Conflict:
            return  # another worker claimed it first
        except RunStoreError as exc:
            self.audit.record("run-store-error", run=name, op="claim", error=str(exc))
            return
        self.metrics.inc("ir_serve_run_claims_total", how=how)
        if state.spec.get("acceptedBy") != self.holder:
            self.metrics.inc("ir_serve_runs_recovered_total")
        self.audit.record(
            "run-claimed",
            **state.summary(),
            how=how,
            interrupted=state.interruptions[-1] if how != "new" and state.interruptions else None,
        )
        journal = StoreJournal(self.store, state, self.holder, self.lease)
        with self._known_lock:
            self._inflight[name] = journal
        with self._locks[hash(state.target_key) % _STRIPES]:
            self._run(state, journal)

    def _run(self, state: RunState, journal: StoreJournal) -> None:
        problem = self.seal.check(state.spec, state.seal)
        playbook = self.playbooks.get(state.playbook)
        alert: Alert | None = None
        if problem is None and playbook is None:
            problem = f"playbook {state.playbook!r} is not loaded by this replica"
        if problem is None:
            try:
                alert = Alert.from_record(state.spec.get("alert") or {})
            except AlertError as exc:
                problem = exc.message
        if problem is not None or alert is None or playbook is None:
            self._end(state, journal, REFUSED, problem or "unreadable run")
            self.metrics.inc("ir_serve_runs_total", playbook=state.playbook[:63], status=REFUSED)
            return
        started = time.monotonic()
        received = started - max(0.0, time.time() - state.accepted_at)
        self.metrics.observe("ir_serve_queue_wait_seconds", started - received)
        try:
            result = self.engine.run(
                playbook, alert, run_id=state.run_id, received_at=received, journal=journal
            )
        except ClaimLost as exc:
            self.audit.record("claim-lost", **state.summary(), reason=str(exc))
            self.metrics.inc("ir_serve_run_claims_lost_total")
            return
        except Exception as exc:  # noqa: BLE001 -- recorded on the run, the worker goes on
            self.audit.record("run-error", **state.summary(), error=f"{type(exc).__name__}: {exc}")
            self.metrics.inc("ir_serve_runs_total", playbook=playbook.name, status="error")
            self._end(state, journal, FAILED, f"internal error: {type(exc).__name__}: {exc}")
            return
        self._end(state, journal, result.status, result.reason)
        self.metrics.inc("ir_serve_runs_total", playbook=result.playbook, status=result.status)
        self.metrics.observe(
            "ir_serve_run_seconds", time.monotonic() - started, playbook=result.playbook
        )
        for step in result.steps:
            self.metrics.inc("ir_serve_steps_total", action=step.action, status=step.status)
            if step.since_alert_seconds is not None and step.status not in ("skipped", "refused"):
                self.metrics.observe(
                    "ir_serve_alert_to_step_seconds", step.since_alert_seconds, action=step.action
                )

    def _end(self, state: RunState, journal: StoreJournal, status: str, reason: str) -> None:
        try:
            journal.finish(status, reason)
        except ClaimLost as exc:
            self.audit.record("claim-lost", **state.summary(), reason=str(exc))
            return
        if status == REFUSED and reason:
            self.audit.record("run", **state.summary(), status=REFUSED, reason=reason)

    # -- heartbeat and scans --------------------------------------------------------------------
    def _heartbeat(self) -> None:
        while not self._stop.wait(max(0.5, self.lease / 4)):
            with self._known_lock:
                journals = [j for j in self._inflight.values() if j is not None]
            for journal in journals:
                try:
                    journal.renew()
                except ClaimLost as exc:
                    self.audit.record("claim-lost", **journal.state.summary(), reason=str(exc))

    def _scan_loop(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.scan_interval)

    def scan(self) -> int:
        """Offer every run of the store this process may claim now; expire old finished runs.
        Returns how many were offered."""
        now = time.time()
        try:
            runs = self.store.open_runs()
        except RunStoreError as exc:
            self.audit.record("run-store-error", op="scan", error=str(exc))
            self.metrics.inc("ir_serve_run_store_errors_total", op="scan")
            return 0
        self.open_runs = len(runs)
        offered = 0
        for state in sorted(runs, key=lambda r: r.accepted_at):
            with self._known_lock:
                here = state.name in self._known
            mine = state.holder == self.holder and not here
            if here or (claim_kind(state, self.holder, now, self.lease) is None and not mine):
                continue
            offered += int(self.offer(state.name))
        if now - self._expired_at >= EXPIRE_EVERY:
            self._expired_at = now
            try:
                deleted = self.store.expire(self.ttl, now)
            except RunStoreError as exc:
                self.audit.record("run-store-error", op="expire", error=str(exc))
            else:
                if deleted:
                    self.audit.record("runs-expired", deleted=deleted, ttl_seconds=self.ttl)
        return offered

    # -- shutdown -------------------------------------------------------------------------------
    def drain(self, deadline: float) -> dict[str, Any]:
        """Finish queued and running work until `deadline` (time.monotonic()); then stop. Runs
        still queued are left in a durable store for the next process or another replica
        ("left"); in memory they are lost, and each is audited as "abandoned" with its alert."""
        with self.work.all_tasks_done:
            while self.work.unfinished_tasks and time.monotonic() < deadline:
                self.work.all_tasks_done.wait(max(0.0, min(0.2, deadline - time.monotonic())))
        self._stop.set()
        waiting = []
        while True:
            try:
                waiting.append(self.work.get_nowait())
            except queue.Empty:
                break
            self.work.task_done()
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
        with self._known_lock:
            running = list(self._inflight)
        durable = self.store.durable
        for name in waiting:
            state = self._read(name)
            self.audit.record(
                "left" if durable else "abandoned",
                **(state.summary() if state else {"run": name}),
                alert_raw=(state.spec.get("alert") or {}).get("raw") if state else None,
                reason=(
                    "not started before the shutdown deadline; it stays recorded for the next "
                    "process or another replica"
                    if durable
                    else "shutdown deadline reached before a worker took it; runs are kept in "
                    "memory only (--runs memory): this one is lost"
                ),
            )
        for name in running:
            state = self._read(name)
            self.audit.record(
                "interrupted",
                **(state.summary() if state else {"run": name}),
                reason="still running at the shutdown deadline; its steps so far are recorded"
                + ("; the next holder resumes it" if durable else ""),
            )
        return {
            "completed": self.completed,
            "left" if durable else "abandoned": len(waiting),
            "interrupted": len(running),
        }

    def _read(self, name: str) -> RunState | None:
        try:
            return self.store.get(name)
        except RunStoreError:
            return None
