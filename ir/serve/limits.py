"""Dedupe window and per-target rate limits for alert intake (in memory, thread-safe, bounded)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]


class Deduper:
    """`claim(key)` is True the first time a key is seen within `window` seconds. A claim can be
    released (the alert was not queued after all) so a retry is not taken for a duplicate."""

    def __init__(
        self, window: float, *, max_entries: int = 500_000, clock: Clock = time.monotonic
    ) -> None:
        self.window = window
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._lock = threading.Lock()

    def claim(self, *keys: str) -> bool:
        """True and all `keys` recorded when none is live; False (nothing recorded) otherwise."""
        if self.window <= 0:
            return True
        now = self.clock()
        with self._lock:
            self._expire(now)
            if any(key in self._seen for key in keys):
                return False
            for key in keys:
                self._seen[key] = now + self.window
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def release(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._seen.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen:
            key, expiry = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[key]


class RateLimiter:
    """At most `limit` acquisitions per key per `window` seconds (token bucket, refilled evenly)."""

    def __init__(
        self, limit: int, window: float, *, max_keys: int = 100_000, clock: Clock = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        now = self.clock()
        rate = self.limit / self.window
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.limit), now))
            tokens = min(float(self.limit), tokens + (now - at) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)  # most recently used last
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed

    def refund(self, key: str) -> None:
        with self._lock:
            if key in self._buckets:
                tokens, at = self._buckets[key]
                self._buckets[key] = (min(float(self.limit), tokens + 1.0), at)
