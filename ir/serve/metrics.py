"""Prometheus metrics for `ir serve`, kept and written out by prometheus_client: counters and
histograms with labels, and gauges read when scraped, rendered in the text exposition format
(version 0.0.4).

Each `Metrics` owns its own `CollectorRegistry` and is its only collector: no process or platform
metrics, nothing in the library's global registry (a test process starts many servers). Callers
name labels ad hoc as keyword arguments; a counter's or histogram's label names are fixed at its
first `inc`/`observe` (the sorted keys) and a later call with other keys raises `ValueError`.
prometheus_client escapes label values (untrusted text: alert sources, paths), and a character
UTF-8 cannot carry (a lone surrogate) becomes "?"; bounding their length and count stays with the
caller (server.py cuts paths). No `_created` series are written: this collector drops them,
rather than the library's process-wide switch (disable_created_metrics) being thrown.

May import prometheus_client only; knows nothing of alerts, HTTP or ir's other rooms.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

# What generate_latest writes; newer releases' CONTENT_TYPE_LATEST names version 1.0.0 instead.
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

_COUNTER = "counter"
_HISTOGRAM = "histogram"
_GAUGE = "gauge"


class _Family:
    """One declared name: its kind and help, and once first used, the library's metric."""

    def __init__(self, kind: str, help_text: str, buckets: tuple[float, ...] = ()) -> None:
        self.kind = kind
        self.help_text = help_text
        self.buckets = buckets
        self.read: Callable[[], float] | None = None  # gauges
        self.labelnames: tuple[str, ...] | None = None  # fixed at first use
        self.counter: Counter | None = None  # made at first use
        self.histogram: Histogram | None = None  # made at first use

    @property
    def metric(self) -> Counter | Histogram | None:
        return self.counter if self.counter is not None else self.histogram


class Metrics(Collector):
    """Declare with `counter`/`histogram`/`gauge`, then `inc`/`observe` from any thread;
    `render` is the body of GET /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def counter(self, name: str, help_text: str) -> None:
        if not name.endswith("_total"):
            # prometheus_client writes every counter's samples as <name>_total.
            raise ValueError(f"counter {name!r}: a counter's name ends in _total")
        self._declare(name, _Family(_COUNTER, help_text))

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self._declare(name, _Family(_HISTOGRAM, help_text, tuple(sorted(buckets))))

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """`read` is called at each scrape, outside the lock; if it raises, the gauge shows NaN."""
        family = _Family(_GAUGE, help_text)
        family.read = read
        self._declare(name, family)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        labels = _utf8(labels)
        with self._lock:
            family = self._in_use(name, _COUNTER, labels)
            if family.counter is None:
                family.counter = Counter(name, family.help_text, sorted(labels), registry=None)
                family.labelnames = tuple(sorted(labels))
            counter = family.counter
        (counter.labels(**labels) if labels else counter).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        labels = _utf8(labels)
        with self._lock:
            family = self._in_use(name, _HISTOGRAM, labels)
            if family.histogram is None:
                family.histogram = Histogram(
                    name, family.help_text, sorted(labels), registry=None, buckets=family.buckets
                )
                family.labelnames = tuple(sorted(labels))
            histogram = family.histogram
        (histogram.labels(**labels) if labels else histogram).observe(value)

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value, 0 for a series never incremented (tests)."""
        labels = _utf8(labels)
        with self._lock:
            family = self._families.get(name)
            counter = family.counter if family else None
        if counter is None:
            return 0.0
        for collected in counter.collect():
            for sample in collected.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0

    def render(self) -> str:
        return generate_latest(self._registry).decode()

    def collect(self) -> Iterable[Metric]:
        """The registry's view, by name: declared names not yet used show their HELP and TYPE."""
        with self._lock:
            families = sorted(self._families.items())
        for name, family in families:
            if family.kind == _GAUGE:
                yield GaugeMetricFamily(name, family.help_text, value=_read(family.read))
            elif family.metric is None and family.kind == _COUNTER:
                yield CounterMetricFamily(name, family.help_text)
            elif family.metric is None:
                yield HistogramMetricFamily(name, family.help_text)
            else:
                for collected in family.metric.collect():
                    created = collected.name + "_created"
                    collected.samples = [s for s in collected.samples if s.name != created]
                    yield collected

    def _declare(self, name: str, family: _Family) -> None:
        with self._lock:
            known = self._families.get(name)
            if known is not None and known.kind != family.kind:
                raise ValueError(f"{name!r} is already declared as a {known.kind}")
            if known is not None and known.metric is not None:
                # The library fixes help, label names and buckets when it makes the metric.
                raise ValueError(f"{known.kind} {name!r} is in use; it cannot be declared again")
            self._families[name] = family

    def _in_use(self, name: str, kind: str, labels: dict[str, str]) -> _Family:
        """The declared family of that kind; label names, once fixed, must be these. Under the lock."""
        labelnames = tuple(sorted(labels))
        family = self._families.get(name)
        if family is None or family.kind != kind:
            raise KeyError(f"{name!r} is not a declared {kind}")
        if family.labelnames is not None and family.labelnames != labelnames:
            raise ValueError(
                f"{kind} {name!r} has labels {list(family.labelnames)}, not {list(labelnames)}"
            )
        return family


def _utf8(labels: dict[str, str]) -> dict[str, str]:
    """Label values as UTF-8 can carry them: a lone surrogate (json.loads makes one of "\\ud800")
    would fail every later scrape of the series when generate_latest encodes it."""
    return {key: str(value).encode("utf-8", "replace").decode() for key, value in labels.items()}


def _read(read: Callable[[], float] | None) -> float:
    try:
        return float(read()) if read is not None else math.nan
    except Exception:  # noqa: BLE001 -- a broken gauge must not break the scrape
        return math.nan
