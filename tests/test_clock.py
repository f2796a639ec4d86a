"""ir.clock: every foreign timestamp format lands on the right UTC instant, and timestamps are
found inside log text without false positives."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ir.clock import find_timestamp, parse_timestamp, rfc3339

REF = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)


def utc(text: str, reference: datetime = REF) -> str | None:
    return rfc3339(parse_timestamp(text, reference=reference).utc)


@pytest.mark.parametrize(
    ("text", "expected", "assumed_utc"),
    [
        ("2025-03-14T10:00:00Z", "2025-03-14T10:00:00.000000Z", False),
        (
            "2025-03-14T10:00:00.123456789Z",
            "2025-03-14T10:00:00.123456Z",
            False,
        ),  # Docker: nanoseconds
        ("2025-03-14T10:00:00+05:30", "2025-03-14T04:30:00.000000Z", False),
        ("2025-03-14T10:00:00.5-07:00", "2025-03-14T17:00:00.500000Z", False),
        ("2025-03-14T23:30:00-0200", "2025-03-15T01:30:00.000000Z", False),  # date rolls over
        ("2025-03-14 10:00:00,250", "2025-03-14T10:00:00.250000Z", True),  # Python logging
        ("2025-03-14T10:00:00", "2025-03-14T10:00:00.000000Z", True),
    ],
)
def test_rfc3339_with_offsets(text: str, expected: str, assumed_utc: bool) -> None:
    parsed = parse_timestamp(text, reference=REF)
    assert rfc3339(parsed.utc) == expected
    assert parsed.assumed_utc is assumed_utc
    assert parsed.original == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/Oct/2000:13:55:36 -0700", "2000-10-10T20:55:36.000000Z"),
        ("14/Mar/2025:09:11:58 +0000", "2025-03-14T09:11:58.000000Z"),
        ("14/Mar/2025:00:30:00 +0100", "2025-03-13T23:30:00.000000Z"),
    ],
)
def test_apache_nginx_common_log(text: str, expected: str) -> None:
    assert utc(text) == expected
    assert not parse_timestamp(text).assumed_utc


def test_syslog_without_year_takes_the_reference_year() -> None:
    parsed = parse_timestamp("Mar 14 09:13:31", reference=REF)
    assert rfc3339(parsed.utc) == "2025-03-14T09:13:31.000000Z"
    assert parsed.assumed_year and parsed.assumed_utc
    assert utc("Mar  1 01:02:03") == "2025-03-01T01:02:03.000000Z"  # space-padded day


def test_year_less_stamps_after_the_reference_belong_to_the_year_before() -> None:
    new_year = datetime(2025, 1, 2, 8, 0, tzinfo=UTC)
    assert utc("Dec 31 23:59:59", new_year) == "2024-12-31T23:59:59.000000Z"
    assert utc("I1231 23:59:59.000001", new_year) == "2024-12-31T23:59:59.000001Z"
    assert utc("Jan  2 07:00:00", new_year) == "2025-01-02T07:00:00.000000Z"
    # Feb 29 read in a common year is the last leap year's
    assert utc("Feb 29 10:00:00", datetime(2025, 3, 1, tzinfo=UTC)) == "2024-02-29T10:00:00.000000Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1741943527", "2025-03-14T09:12:07.000000Z"),
        ("1741943527.5", "2025-03-14T09:12:07.500000Z"),
        ("1741943527500", "2025-03-14T09:12:07.500000Z"),  # millis
        ("1741943527500250", "2025-03-14T09:12:07.500250Z"),  # micros
        ("1741943527500250000", "2025-03-14T09:12:07.500250Z"),  # nanos
    ],
)
def test_epoch_seconds_millis_micros_nanos(text: str, expected: str) -> None:
    assert utc(text) == expected


def test_go_and_klog() -> None:
    klog = parse_timestamp("I0314 09:12:04.250000", reference=REF)
    assert rfc3339(klog.utc) == "2025-03-14T09:12:04.250000Z" and klog.assumed_year
    assert utc("E0314 09:12:04") == "2025-03-14T09:12:04.000000Z"
    assert (
        utc("2025/03/14 09:12:01") == "2025-03-14T09:12:01.000000Z"
    )  # Go log package, nginx error log
    assert utc("2025/03/14 09:12:01.123456") == "2025-03-14T09:12:01.123456Z"


def test_dateutil_formats_and_zone_names_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            utc("Mon Jan  2 15:04:05 MST 2006") == "2006-01-02T22:04:05.000000Z"
        )  # Go's reference time
        assert utc("Fri, 14 Mar 2025 10:00:00 +0100") == "2025-03-14T09:00:00.000000Z"  # RFC 2822
        assert utc("Wed Oct 11 14:32:52 2000") == "2000-10-11T14:32:52.000000Z"  # ctime
        unknown = parse_timestamp("2025-03-14 10:00:00 IST", reference=REF)
        assert unknown.assumed_utc  # ambiguous zone: kept as written, flagged


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "2025-13-45T10:00:00Z",
        "Feb 30 10:00:00",
        # dateutil raised decimal.InvalidOperation on this (found by atheris, see test_fuzz_atheris)
        "2024-06-05T10:222222222222222222222222222222222206:40.001Z",
    ],
)
def test_unparseable_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text, reference=REF)


@pytest.mark.parametrize(
    ("line", "fmt", "expected"),
    [
        (
            '10.0.0.5 - - [14/Mar/2025:09:11:58 +0000] "GET / HTTP/1.1" 200 5',
            "clf",
            "2025-03-14T09:11:58.000000Z",
        ),
        ("<86>Mar 14 09:13:31 web useradd[88]: new user", "syslog", "2025-03-14T09:13:31.000000Z"),
        ("Mar 14 09:13:31 web sshd[1]: ok", "syslog", "2025-03-14T09:13:31.000000Z"),
        ("I0314 09:12:04.250000       1 watcher.go:88] x", "klog", "2025-03-14T09:12:04.250000Z"),
        ("2025/03/14 09:12:01 [error] 29#29: *7 timeout", "golog", "2025-03-14T09:12:01.000000Z"),
        ('{"level":"warn","ts":1741943527.5,"msg":"x"}', "epoch", "2025-03-14T09:12:07.500000Z"),
        ('{"t":1741943527500,"msg":"x"}', "epoch", "2025-03-14T09:12:07.500000Z"),
        ("level=info t=1741943527 msg=x", "epoch", "2025-03-14T09:12:07.000000Z"),
        ('{"@timestamp": 1741943527}', "epoch", "2025-03-14T09:12:07.000000Z"),
        (
            'time="2025-03-14T10:14:01.250+01:00" level=warn',
            "rfc3339",
            "2025-03-14T09:14:01.250000Z",
        ),
        ('{"time":"2025-03-14T09:00:00Z","msg":"x"}', "rfc3339", "2025-03-14T09:00:00.000000Z"),
        ("[Fri Mar 14 09:12:00.5 2025] [core:error] x", "ctime", "2025-03-14T09:12:00.500000Z"),
        (
            "bad 2025-13-45T10:00:00Z then 2025-03-14T10:00:00Z",
            "rfc3339",
            "2025-03-14T10:00:00.000000Z",
        ),
    ],
)
def test_find_timestamp_in_log_text(line: str, fmt: str, expected: str) -> None:
    found = find_timestamp(line, reference=REF)
    assert found is not None
    assert found.format == fmt
    assert rfc3339(found.parsed.utc) == expected
    assert line[found.start : found.end] == found.parsed.original


def test_find_timestamp_takes_the_leftmost() -> None:
    found = find_timestamp('{"ts":1741943527,"msg":"replayed 2020-01-01T00:00:00Z"}', reference=REF)
    assert found is not None and found.format == "epoch"


@pytest.mark.parametrize(
    "line",
    [
        "GET /healthz 200 in 3ms",
        "version 1.2.3 build 1741943527",  # a bare number is not a time
        "starts=1741943527",  # a key that merely ends in ts
        "retry in 12:30 minutes",
        "order 2025-03-14 shipped",  # a date is not a timestamp
        "   I0314 09:12:04.250000 indented klog is prose",
        "see Oct 11 22:14:15 in the middle of a line",
        "",
    ],
)
def test_find_timestamp_has_no_false_positives(line: str) -> None:
    assert find_timestamp(line, reference=REF) is None


aware = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)


@settings(max_examples=200, deadline=None)
@given(aware, offsets)
def test_round_trip_through_every_format(moment: datetime, offset: timezone) -> None:
    local = moment.astimezone(offset)
    assert parse_timestamp(local.isoformat(), reference=REF).utc == moment
    sign = "-" if local.utcoffset() < timedelta(0) else "+"  # type: ignore[operator]
    minutes = abs(int(local.utcoffset().total_seconds()) // 60)  # type: ignore[union-attr]
    clf = local.strftime("%d/%b/%Y:%H:%M:%S ") + f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    assert parse_timestamp(clf, reference=REF).utc == moment.replace(microsecond=0)
    millis = int(moment.timestamp() * 1000)
    assert abs(parse_timestamp(str(millis), reference=REF).utc - moment) < timedelta(milliseconds=1)
    found = find_timestamp(f"x {local.isoformat()} y", reference=REF)
    assert found is not None and found.parsed.utc == moment
