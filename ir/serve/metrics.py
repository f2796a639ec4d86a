"""Prometheus metrics in the text exposition format (version 0.0.4), without a client library:
counters and histograms with labels, and gauges read when scraped."""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Sequence

Labels = tuple[tuple[str, str], ...]
_INF = 'le="+Inf"'
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}
        self._histogram_buckets: dict[str, tuple[float, ...]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}

    def counter(self, name: str, help_text: str) -> None:
        self._help[name] = ("counter", help_text)
        self._counters.setdefault(name, {})

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self._help[name] = ("histogram", help_text)
        self._histograms.setdefault(name, {})
        self._histogram_buckets[name] = tuple(sorted(buckets))

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._help[name] = ("gauge", help_text)
        self._gauges[name] = read

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._histograms[name]
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram(self._histogram_buckets[name])
            hist.counts[bisect.bisect_left(hist.buckets, value)] += 1
            hist.total += value
            hist.count += 1

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (tests)."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            return self._counters.get(name, {}).get(key, 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._help):
                kind, help_text = self._help[name]
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                if kind == "counter":
                    for labels, value in sorted(self._counters[name].items()):
                        lines.append(f"{name}{_labels(labels)} {_number(value)}")
                elif kind == "histogram":
                    for labels, hist in sorted(self._histograms[name].items()):
                        cumulative = 0
                        for bound, count in zip(hist.buckets, hist.counts, strict=False):
                            cumulative += count
                            le = 'le="' + _number(bound) + '"'
                            lines.append(f"{name}_bucket{_labels(labels, le)} {cumulative}")
                        lines.append(f"{name}_bucket{_labels(labels, _INF)} {hist.count}")
                        lines.append(f"{name}_sum{_labels(labels)} {_number(hist.total)}")
                        lines.append(f"{name}_count{_labels(labels)} {hist.count}")
                else:
                    try:
                        value = float(self._gauges[name]())
                    except Exception:  # noqa: BLE001 -- a broken gauge must not break the scrape
                        value = float("nan")
                    lines.append(f"{name} {_number(value) if not math.isnan(value) else 'NaN'}")
        return "\n".join(lines) + "\n"
