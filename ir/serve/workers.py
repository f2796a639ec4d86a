"""The worker pool: takes queued runs, runs the engine (runs on the same target never overlap),
and on shutdown finishes what it can before the deadline and records the rest."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from ir.playbook.audit import AuditLog
from ir.playbook.engine import Engine
from ir.serve.intake import Job
from ir.serve.metrics import Metrics

_STRIPES = 64


class WorkerPool:
    def __init__(
        self, engine: Engine, work: queue.Queue[Job], size: int, audit: AuditLog, metrics: Metrics
    ) -> None:
        self.engine = engine
        self.work = work
        self.size = size
        self.audit = audit
        self.metrics = metrics
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._inflight: dict[str, Job] = {}
        self._inflight_lock = threading.Lock()
        self.completed = 0

    def start(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(
                target=self._loop, name=f"ir-serve-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    @property
    def busy(self) -> int:
        with self._inflight_lock:
            return len(self._inflight)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads) or self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.work.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                # taken (and recorded as such) before waiting for the target: a shutdown deadline
                # reports it as interrupted rather than losing it
                with self._inflight_lock:
                    self._inflight[job.run_id] = job
                with self._locks[hash(job.target_key) % _STRIPES]:
                    self._run(job)
            finally:
                with self._inflight_lock:
                    self._inflight.pop(job.run_id, None)
                    self.completed += 1
                self.work.task_done()

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        self.metrics.observe("ir_serve_queue_wait_seconds", started - job.received_at)
        try:
            result = self.engine.run(
                job.playbook, job.alert, run_id=job.run_id, received_at=job.received_at
            )
        except Exception as exc:  # noqa: BLE001 -- a bug in one run must not kill the worker
            self.audit.record("run-error", **job.summary(), error=f"{type(exc).__name__}: {exc}")
            self.metrics.inc("ir_serve_runs_total", playbook=job.playbook.name, status="error")
            return
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

    def drain(self, deadline: float) -> dict[str, Any]:
        """Finish queued and running work until `deadline` (time.monotonic()); then stop, and
        audit every run left in the queue ("abandoned", with its alert) or still running."""
        with self.work.all_tasks_done:
            while self.work.unfinished_tasks and time.monotonic() < deadline:
                self.work.all_tasks_done.wait(max(0.0, min(0.2, deadline - time.monotonic())))
        self._stop.set()
        abandoned = []
        while True:
            try:
                job = self.work.get_nowait()
            except queue.Empty:
                break
            abandoned.append(job)
            self.audit.record(
                "abandoned",
                **job.summary(),
                alert_raw=job.alert.raw,
                alert_envelope=job.alert.envelope,
                reason="shutdown deadline reached before a worker took it",
            )
            self.work.task_done()
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
        with self._inflight_lock:
            running = list(self._inflight.values())
        for job in running:
            self.audit.record(
                "interrupted",
                **job.summary(),
                alert_raw=job.alert.raw,
                reason="still running at the shutdown deadline; steps so far are in the audit log",
            )
        return {
            "completed": self.completed,
            "abandoned": len(abandoned),
            "interrupted": len(running),
        }
