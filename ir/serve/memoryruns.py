"""Runs kept in this process's memory (`ir serve --runs memory`): the same rules as the durable
store (ir.playbook.runstate), for a laptop or a dry run without a cluster to write to. Not
durable: an accepted alert whose run has not finished is lost if the process dies, and dedupe
and rate limits hold within this process only. ir serve says so when it starts."""

from __future__ import annotations

import dataclasses
import threading
import time

from ir.playbook.runstate import (
    CREATED,
    FULL,
    PENDING,
    RATE_LIMITED,
    Acceptance,
    Conflict,
    NewRun,
    RunState,
    duplicate_of,
)
from ir.serve.limits import RateLimiter


def _copy(state: RunState) -> RunState:
    """A copy whose status can be changed freely (the spec is never changed once accepted)."""
    return dataclasses.replace(
        state, steps=list(state.steps), interruptions=list(state.interruptions)
    )


class MemoryRuns:
    durable = False
    where = "the memory of this process (not durable: lost if it dies)"

    def __init__(self, *, max_open: int = 1000, max_kept: int = 100_000) -> None:
        self.max_open = max_open
        self.max_kept = max_kept  # finished runs kept (oldest dropped first), memory is bounded
        self._runs: dict[str, RunState] = {}  # in order of acceptance
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._limiter: RateLimiter | None = None
        self._version = 0

    def accept(self, run: NewRun, seal: str, window: float, rate: tuple[int, float]) -> Acceptance:
        with self._lock:
            existing = self._runs.get(run.name)
            duplicate = duplicate_of(existing, run, window) if existing is not None else None
            if duplicate is not None:
                return duplicate
            if self._waiting() >= self.max_open:
                return Acceptance(FULL, f"{self.max_open} runs waiting for a worker")
            limit, per = rate
            if self._limiter is None or (self._limiter.limit, self._limiter.window) != rate:
                self._limiter = RateLimiter(limit, per)
            if not self._limiter.acquire(run.target_key):
                return Acceptance(
                    RATE_LIMITED, f"more than {limit} runs on {run.target_key} per {per:g}s"
                )
            state = RunState(name=run.name, spec=run.spec(), seal=seal, created=time.time())
            state.version = self._next()
            self._runs.pop(run.name, None)
            self._runs[run.name] = state
            self._pending.add(run.name)
            self._trim()
            return Acceptance(CREATED, state=_copy(state))

    def waiting(self) -> int:
        with self._lock:
            return self._waiting()

    def _waiting(self) -> int:
        return len(self._pending)

    def _trim(self) -> None:
        if len(self._runs) <= self.max_kept:
            return
        for name in [n for n, r in self._runs.items() if r.is_finished][
            : len(self._runs) - self.max_kept
        ]:
            del self._runs[name]

    def _next(self) -> str:
        self._version += 1
        return str(self._version)

    def get(self, name: str) -> RunState | None:
        with self._lock:
            state = self._runs.get(name)
            return _copy(state) if state else None

    def write(self, state: RunState) -> RunState:
        with self._lock:
            current = self._runs.get(state.name)
            if current is None or current.version != state.version:
                raise Conflict(f"run {state.name} changed since it was read")
            stored = _copy(state)
            stored.version = self._next()
            self._runs[state.name] = stored
            if stored.phase != PENDING:
                self._pending.discard(state.name)
            state.version = stored.version
            return _copy(stored)

    def open_runs(self) -> list[RunState]:
        with self._lock:
            return [_copy(r) for r in self._runs.values() if not r.is_finished]

    def expire(self, ttl: float, now: float) -> int:
        with self._lock:
            old = [
                name
                for name, r in self._runs.items()
                if r.is_finished and (r.finished or r.created) + ttl <= now
            ]
            for name in old:
                del self._runs[name]
            return len(old)
