"""The HMAC signatures `ir serve` has accepted, so that a captured signed request cannot be replayed
while its timestamp is still fresh: in memory, and with `--replay-state FILE` in an append-only
journal that survives a restart.

Journal format (text, one record per line):

    ir.serve-replay/1 since=<unix seconds>       first line: when this journal began
    <sha256 hex of the signature> <its X-Ir-Timestamp>

A line is appended and fsync'd before the request it admits is answered. At open, records past the
tolerance are dropped, an unreadable line (the torn last line of a kill -9 mid-write) is skipped
and counted, and the journal is rewritten compacted (temporary file, fsync, rename, fsync of the
directory); it is compacted again whenever it holds more than COMPACT_RATIO times the live records.

What cannot be known is refused: a request signed before `since` (the start of this process
without a journal, the start of the journal with one) may have been used already.

May import ir.errors only.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ir.bundle.writer import fsync_dir
from ir.errors import UsageError

SCHEMA = "ir.serve-replay/1"
MAX_ENTRIES = 200_000  # live signatures held; beyond, the oldest is forgotten (666/s for 300 s)
MAX_LINE = 128  # a record is 64 hex, a space and at most 12 digits: anything longer is not ours
COMPACT_MIN_LINES = 10_000  # a journal shorter than this is never rewritten while serving
COMPACT_RATIO = 2
_RECORD = re.compile(rb"([0-9a-f]{64}) ([0-9]{1,12})\n")
_HEADER = re.compile(rb"ir\.serve-replay/1 since=([0-9]{1,12})\n")


@dataclass(frozen=True)
class JournalLoad:
    """What opening the journal found (audited at start)."""

    path: str
    since: int
    live: int
    expired: int
    unreadable: int  # torn or corrupt lines, skipped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UsedSignatures:
    """`claim` admits a signature once within its validity (timestamp ± tolerance)."""

    def __init__(
        self,
        tolerance: float,
        journal: str | Path | None = None,
        *,
        now: float | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        now = time.time() if now is None else now
        self.tolerance = tolerance
        self.max_entries = max_entries
        self.path = Path(journal) if journal is not None else None
        self.since = math.floor(now)
        self.loaded: JournalLoad | None = None
        self._seen: OrderedDict[str, int] = OrderedDict()  # digest -> timestamp, oldest first
        self._lock = threading.Lock()  # the memory
        self._journal_lock = threading.Lock()  # the file: appends and compactions
        self._fd: int | None = None
        self._lines = 0
        self._torn = False  # a failed append may have left a partial line: compact first
        if self.path is not None:
            self.loaded = self._open(self.path, now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def claim(self, signature: str, timestamp: int, now: float) -> str:
        """'' when the signature is admitted (and journaled, fsync'd); otherwise why it is refused.
        Raises OSError when the journal cannot be written; nothing is admitted then."""
        if timestamp < self.since:
            return self._unknown(timestamp)
        digest = hashlib.sha256(signature.encode()).hexdigest()
        with self._lock:
            self._expire(now)
            if digest in self._seen:
                return "replayed request (signature already used)"
            self._seen[digest] = timestamp
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
        if self.path is None:
            return ""
        try:
            self._append(digest, timestamp)
        except OSError:
            with self._lock:
                self._seen.pop(digest, None)
            raise
        return ""

    def close(self) -> None:
        with self._journal_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- memory -------------------------------------------------------------------------------
    def _unknown(self, timestamp: int) -> str:
        if self.path is None:
            return (
                f"signed at {timestamp}, before this server started ({self.since}): without "
                "--replay-state it cannot tell whether the request was already used; sign it "
                "again, or run ir serve with --replay-state FILE"
            )
        return (
            f"signed at {timestamp}, before the replay journal began ({self.since}): it cannot "
            "tell whether the request was already used; sign it again"
        )

    def _expire(self, now: float) -> None:
        while self._seen:
            digest, timestamp = next(iter(self._seen.items()))
            if timestamp + self.tolerance >= now:
                break
            del self._seen[digest]

    # -- journal ------------------------------------------------------------------------------
    def _open(self, path: Path, now: float) -> JournalLoad:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            since, records, unreadable = _read(path)
            self.since = since if since is not None else self.since
            live = sorted((t, d) for d, t in records.items() if t + self.tolerance >= now)
            for timestamp, digest in live[-self.max_entries :]:
                self._seen[digest] = timestamp
            with self._journal_lock:
                self._compact()
        except OSError as exc:
            raise UsageError(
                f"--replay-state {path}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else "")
            ) from None
        return JournalLoad(
            str(path), self.since, len(self._seen), len(records) - len(live), unreadable
        )

    def _append(self, digest: str, timestamp: int) -> None:
        line = f"{digest} {timestamp}\n".encode()
        with self._journal_lock:
            if self._fd is None:
                raise OSError("the replay journal is closed")
            if self._torn:
                self._compact()
            try:
                if os.write(self._fd, line) != len(line):
                    raise OSError(f"short write to {self.path}")
                os.fsync(self._fd)
            except OSError:
                self._torn = True
                raise
            self._lines += 1
            if self._lines > max(COMPACT_MIN_LINES, COMPACT_RATIO * len(self)):
                self._compact()

    def _compact(self) -> None:
        """Rewrite the journal as its header and the live records (journal lock held)."""
        assert self.path is not None
        with self._lock:
            records = list(self._seen.items())
        lines = [f"{SCHEMA} since={self.since}\n"] + [f"{d} {t}\n" for d, t in records]
        temporary = self.path.with_name(self.path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(temporary, flags, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write("".join(lines).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        fsync_dir(self.path.parent)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._lines = len(records)
        self._torn = False


def _read(path: Path) -> tuple[int | None, dict[str, int], int]:
    """(since, digest -> timestamp, unreadable lines) of a journal; (None, {}, 0) when there is
    none yet. Raises UsageError when the file is not a replay journal (it will be rewritten)."""
    records: dict[str, int] = {}
    unreadable = 0
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None, records, 0
    with handle:
        header = handle.readline(MAX_LINE)
        if not header:
            return None, records, 0
        found = _HEADER.fullmatch(header)
        if found is None:
            raise UsageError(
                f"--replay-state {path} is not an ir serve replay journal (its first line is not "
                f"{SCHEMA!r}); refusing to overwrite it"
            )
        for line in iter(lambda: handle.readline(MAX_LINE), b""):
            record = _RECORD.fullmatch(line)
            if record is None:
                unreadable += 1
                continue
            records[record.group(1).decode()] = int(record.group(2))
    return int(found.group(1)), records, unreadable
