"""ir.serve.metrics on prometheus_client: labelled counters, histogram buckets/sum/count, gauges
read at scrape, hostile label values escaped (and parsed back whole), instances that share
nothing, and a body that the library's own parser reads."""

from __future__ import annotations

import json
import math
import threading

import prometheus_client
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ir.serve.metrics import CONTENT_TYPE, LATENCY_BUCKETS, RUN_BUCKETS, Metrics


def _metrics() -> Metrics:
    metrics = Metrics()
    metrics.counter("t_requests_total", "Requests by path and code.")
    metrics.counter("t_failures_total", "Failures, unlabelled.")
    metrics.histogram("t_wait_seconds", "Wait.", (1.0, 0.1, 10.0))  # out of order on purpose
    return metrics


def _samples(text: str) -> dict[str, list[Sample]]:
    """Parsed with prometheus_client's own parser, by family name."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_constants() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    assert list(RUN_BUCKETS) == sorted(RUN_BUCKETS)


def test_labelled_counters_render_and_count() -> None:
    metrics = _metrics()
    metrics.inc("t_requests_total", path="/v1/alerts", code="202")
    metrics.inc("t_requests_total", code="202", path="/v1/alerts")  # keyword order is free
    metrics.inc("t_requests_total", 3, path="/healthz", code="200")
    text = metrics.render()
    assert "# TYPE t_requests_total counter" in text
    assert 't_requests_total{code="202",path="/v1/alerts"} 2.0' in text
    assert metrics.value("t_requests_total", path="/v1/alerts", code="202") == 2
    assert metrics.value("t_requests_total", path="/healthz", code="200") == 3
    assert metrics.value("t_requests_total", path="/nowhere", code="200") == 0
    assert metrics.value("t_never_declared_total") == 0
    samples = _samples(text)["t_requests"]
    assert {(s.labels["path"], s.labels["code"], s.value) for s in samples} == {
        ("/v1/alerts", "202", 2.0),
        ("/healthz", "200", 3.0),
    }


def test_declared_but_unused_names_show_help_and_type_and_no_created_series() -> None:
    metrics = _metrics()
    text = metrics.render()
    assert "# HELP t_failures_total Failures, unlabelled.\n# TYPE t_failures_total counter" in text
    assert "# TYPE t_wait_seconds histogram" in text
    metrics.inc("t_failures_total")
    metrics.observe("t_wait_seconds", 0.5)
    text = metrics.render()
    assert "t_failures_total 1.0" in text
    assert "_created" not in text, "no _created series: the old exposition had none"
    assert _families(text) == {
        "t_failures": "counter",
        "t_requests": "counter",
        "t_wait_seconds": "histogram",
    }


def test_label_keys_are_fixed_at_first_use() -> None:
    metrics = _metrics()
    metrics.inc("t_requests_total", path="/", code="200")
    with pytest.raises(ValueError, match=r"has labels \['code', 'path'\], not \['path'\]"):
        metrics.inc("t_requests_total", path="/")
    with pytest.raises(ValueError, match="has labels"):
        metrics.inc("t_requests_total")
    metrics.observe("t_wait_seconds", 1.0, action="quarantine")
    with pytest.raises(ValueError, match=r"not \['status'\]"):
        metrics.observe("t_wait_seconds", 1.0, status="ok")
    assert metrics.value("t_requests_total", path="/", code="200") == 1


def test_misuse_is_refused_with_a_reason() -> None:
    metrics = _metrics()
    with pytest.raises(KeyError, match="not a declared counter"):
        metrics.inc("t_undeclared_total")
    with pytest.raises(KeyError, match="not a declared histogram"):
        metrics.observe("t_requests_total", 1.0)
    with pytest.raises(ValueError, match="ends in _total"):
        metrics.counter("t_requests", "no suffix")
    with pytest.raises(ValueError, match="already declared as a counter"):
        metrics.histogram("t_requests_total", "a clash")
    metrics.inc("t_failures_total")
    with pytest.raises(ValueError, match="in use"):
        metrics.counter("t_failures_total", "declared again")
    with pytest.raises(ValueError):
        metrics.inc("t_failures_total", -1)  # a counter never goes down


def test_histogram_buckets_sum_and_count() -> None:
    metrics = _metrics()
    for value in (0.05, 0.1, 0.5, 2.0, 50.0):  # 0.1 is on a bound: le is inclusive
        metrics.observe("t_wait_seconds", value, action="quarantine")
    metrics.observe("t_wait_seconds", 0.01, action="collect")
    samples = _samples(metrics.render())["t_wait_seconds"]
    quarantine = {
        (s.name, s.labels.get("le")): s.value for s in samples if s.labels["action"] == "quarantine"
    }
    assert quarantine == {
        ("t_wait_seconds_bucket", "0.1"): 2.0,
        ("t_wait_seconds_bucket", "1.0"): 3.0,
        ("t_wait_seconds_bucket", "10.0"): 4.0,
        ("t_wait_seconds_bucket", "+Inf"): 5.0,
        ("t_wait_seconds_count", None): 5.0,
        ("t_wait_seconds_sum", None): pytest.approx(52.65),
    }
    collect = [s for s in samples if s.labels["action"] == "collect"]
    assert [s.value for s in collect if s.name == "t_wait_seconds_bucket"] == [1.0] * 4


def test_gauges_are_read_at_each_scrape_and_a_broken_one_shows_nan() -> None:
    metrics = Metrics()
    depth = [0]
    calls = []

    def broken() -> float:
        calls.append(1)
        raise RuntimeError("gone")

    metrics.gauge("t_queue_depth", "Depth.", lambda: depth[0])
    metrics.gauge("t_broken", "Raises.", broken)
    assert not calls, "nothing is read before a scrape"
    assert "t_queue_depth 0.0" in metrics.render()
    depth[0] = 7
    text = metrics.render()
    assert "t_queue_depth 7.0" in text
    assert "t_broken NaN" in text
    assert len(calls) == 2
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert values["t_queue_depth"] == 7 and math.isnan(values["t_broken"])
    metrics.gauge("t_queue_depth", "Depth, redeclared.", lambda: 3)  # a gauge may be replaced
    assert "t_queue_depth 3.0" in metrics.render()


HOSTILE = [
    'a"b',
    "back\\slash",
    "new\nline",
    '"} 1\nevil_total 99\n#',
    "",
    "ünïcødé ☃",
    "\x00\t\r\x7f",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_label_values_are_escaped_and_parse_back_whole(value: str) -> None:
    metrics = _metrics()
    metrics.inc("t_requests_total", path=value, code="200")
    text = metrics.render()
    assert "evil_total" not in _families(text)
    (sample,) = _samples(text)["t_requests"]
    assert sample.labels == {"path": value, "code": "200"} and sample.value == 1
    assert metrics.value("t_requests_total", path=value, code="200") == 1


def test_a_lone_surrogate_becomes_a_question_mark_not_a_broken_scrape() -> None:
    metrics = _metrics()
    metrics.inc("t_requests_total", path=json.loads('"x\\ud800"'), code="200")
    assert 't_requests_total{code="200",path="x?"} 1.0' in metrics.render()


@given(st.text(st.characters(exclude_categories=()), max_size=60))  # surrogates too
def test_any_label_value_keeps_the_scrape_readable(value: str) -> None:
    """Any text at all: UTF-8 cannot carry a lone surrogate (json.loads makes one of "\\ud800"),
    so it becomes "?" rather than failing every later scrape."""
    metrics = _metrics()
    metrics.inc("t_requests_total", path=value, code="200")
    metrics.observe("t_wait_seconds", 0.2, action=value)
    text = metrics.render()
    text.encode("utf-8")
    shown = value.encode("utf-8", "replace").decode()
    (sample,) = _samples(text)["t_requests"]
    assert sample.labels["path"] == shown
    assert {s.labels["action"] for s in _samples(text)["t_wait_seconds"]} == {shown}
    assert metrics.value("t_requests_total", path=value, code="200") == 1


def test_two_instances_share_nothing_and_stay_out_of_the_global_registry() -> None:
    first, second = _metrics(), _metrics()  # the same names twice: no duplicate registration
    first.inc("t_requests_total", path="/", code="200")
    first.gauge("t_only_first", "Only in the first.", lambda: 1)
    assert first.value("t_requests_total", path="/", code="200") == 1
    assert second.value("t_requests_total", path="/", code="200") == 0
    assert "t_only_first" not in second.render()
    assert 't_requests_total{code="200",path="/"}' not in second.render()
    assert prometheus_client.REGISTRY.get_sample_value("t_requests_total", {"path": "/"}) is None
    assert "process_" not in first.render() and "python_" not in first.render()


def test_concurrent_increments_are_all_counted() -> None:
    metrics = _metrics()
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        for _ in range(500):
            metrics.inc("t_requests_total", path=f"/{index % 2}", code="200")
            metrics.observe("t_wait_seconds", 0.5, action="run")
            if index == 0:
                metrics.render()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(metrics.value("t_requests_total", path=p, code="200") for p in ("/0", "/1"))
    assert total == 8 * 500
    counts = [s for s in _samples(metrics.render())["t_wait_seconds"] if s.name.endswith("_count")]
    assert [s.value for s in counts] == [8 * 500]
