"""The audit log: one JSON object per line for every decision (request refused, alert accepted,
deduplicated, rate-limited, matched, step run or refused, shutdown). Appended and flushed line by
line so a crash loses at most the line being written; safe to share between threads."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import IO, Any

from ir.clock import rfc3339, utcnow


class AuditLog:
    """`AuditLog(path)` appends to a file; `AuditLog(stream=…)` writes to a text stream;
    `AuditLog()` keeps nothing (in memory only when `keep=True`, for tests)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        stream: IO[str] | None = None,
        keep: bool = False,
        fsync: bool = False,
    ) -> None:
        self.path = Path(path) if path else None
        self._handle: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self._handle = os.fdopen(fd, "a", encoding="utf-8")
        self._stream = stream
        self._fsync = fsync
        self._lock = threading.Lock()
        self.kept: list[dict[str, Any]] | None = [] if keep else None

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one line {"time", "event", **fields}; returns the record."""
        record = {"time": rfc3339(utcnow()), "event": event, **fields}
        line = json.dumps(record, sort_keys=True, ensure_ascii=True, default=str) + "\n"
        with self._lock:
            if self._handle is not None:
                self._handle.write(line)
                self._handle.flush()
                if self._fsync:
                    os.fsync(self._handle.fileno())
            if self._stream is not None:
                self._stream.write(line)
                self._stream.flush()
            if self.kept is not None:
                self.kept.append(record)
        return record

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Records kept in memory (keep=True), optionally of one event kind."""
        with self._lock:
            kept = list(self.kept or [])
        return [r for r in kept if event is None or r["event"] == event]

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
