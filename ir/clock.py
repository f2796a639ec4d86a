"""Time in ir: timezone-aware UTC inside, RFC 3339 with `Z` outside.

Every foreign timestamp is parsed here (python-dateutil), keeping the original text. The common
fixed formats have exact fast paths (a timeline parses millions of log lines); dateutil takes the
rest.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(dt: datetime | None) -> str | None:
    """Format an aware datetime as RFC 3339 UTC with microseconds and `Z`; naive means UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    elif dt.tzinfo is not UTC or dt.utcoffset():
        dt = dt.astimezone(UTC)
    # isoformat: 4x faster than strftime (timelines format millions of rows), and it always
    # pads the year to four digits as RFC 3339 requires
    return dt.isoformat(timespec="microseconds")[:-6] + "Z"


def rfc3339_ns(ns: int, digits: int = 9) -> str:
    """Epoch nanoseconds as RFC 3339 UTC with `digits` fractional digits (9: every nanosecond)
    and `Z`, by integer arithmetic (a float would round the nanoseconds away)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    base = _second(seconds)
    if digits <= 0:
        return base + "Z"
    return f"{base}.{fraction:09d}"[: len(base) + 1 + digits] + "Z"


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # the files of a tree share a few mtimes (an image layer, a package install): format once
    return (EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")[:-6]


def from_epoch(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True)
class ParsedTime:
    """A foreign timestamp: the UTC instant and the text it came from."""

    utc: datetime
    original: str
    assumed_utc: bool  # the text had no offset; UTC was assumed
    assumed_year: bool = False  # the text had no year (syslog); the reference year was used


_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_MONTH_NUMBER = {name: i for i, name in enumerate(_MONTHS.split("|"), 1)}

_EPOCH_RE = re.compile(r"^\d{9,19}(\.\d+)?$")
# RFC 3339 / ISO 8601 as written by ir, Docker, Kubernetes and most JSON loggers: the standard
# library parses it about 300x faster than dateutil.
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?$")
_KLOG_RE = re.compile(r"^[IWEF](\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$")
_NGINX_RE = re.compile(
    r"^(\d{2})/(" + _MONTHS + r")/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
)
_SYSLOG_RE = re.compile(r"^(" + _MONTHS + r") +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$")
_GOLOG_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


@cache
def _tzinfos() -> dict[str, object]:
    """Zone abbreviations we are sure of; anything else is kept as "no offset" (assumed_utc)."""
    from dateutil import tz

    return {
        "UTC": tz.UTC, "Z": tz.UTC, "GMT": tz.UTC, "UT": tz.UTC,
        "EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600, "CDT": -5 * 3600,
        "MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
        "CET": 3600, "CEST": 7200, "EET": 7200, "EEST": 3 * 3600, "JST": 9 * 3600,
    }  # fmt: skip


# A year-less stamp (syslog, klog) this far after the reference is from the year before.
_YEAR_ROLLOVER_SLACK = timedelta(days=2)


def parse_timestamp(text: str, *, reference: datetime | None = None) -> ParsedTime:
    """Parse a timestamp found in logs or API objects.

    Handles RFC 3339/ISO 8601 with offsets, Apache/nginx common log (`10/Oct/2000:13:55:36 -0700`),
    syslog without year (`Oct 11 22:14:15`), epoch seconds/millis/micros/nanos, Go/klog headers
    (`I1125 14:22:08.123456`), Go's log package (`2009/11/10 23:00:00`), and what dateutil reads
    (ctime, RFC 2822, common zone abbreviations). Year-less stamps take the year of `reference`
    (default now), or the year before when that would put them after the reference. Raises
    ValueError when unparseable.
    """
    raw = text
    if len(text) == 27 and text[10] == "T" and text[26] == "Z":
        # ir's own RFC 3339 (every record time): no regex, no strip (timelines parse millions)
        try:
            return ParsedTime(datetime.fromisoformat(text), raw, assumed_utc=False)
        except ValueError:
            pass
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    ref = reference or utcnow()
    if ref.tzinfo is None:
        ref = ref.replace(tzinfo=UTC)
    try:
        fast = _parse_fixed(s, raw, ref)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"unparseable timestamp {raw!r}: {exc}") from None
    if fast is not None:
        return fast
    default = datetime(ref.year, 1, 1)
    # dateutil only here: most ir runs never reach it, and its import costs every run ~15 ms
    from dateutil import parser as dateutil_parser

    try:
        with warnings.catch_warnings():
            # An unknown zone name ("IST": India or Ireland?) must not print a warning on the
            # terminal; the time is kept as written and flagged assumed_utc instead.
            warnings.simplefilter("ignore", dateutil_parser.UnknownTimezoneWarning)
            dt = dateutil_parser.parse(s, default=default, tzinfos=_tzinfos())  # type: ignore[arg-type]
    except (ValueError, ArithmeticError) as exc:
        # ArithmeticError: dateutil overflows, or raises decimal.InvalidOperation on a field of
        # thirty digits ("10:2222...22:40Z", found by atheris in a GuardDuty finding)
        raise ValueError(f"unparseable timestamp {raw!r}: {exc}") from None
    assumed_year = not re.search(r"\d{4}", s)
    assumed_utc = dt.tzinfo is None
    if assumed_utc:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if assumed_year:
        dt = _roll_back_year(dt, ref)
    return ParsedTime(dt, raw, assumed_utc=assumed_utc, assumed_year=assumed_year)


def _parse_fixed(s: str, raw: str, ref: datetime) -> ParsedTime | None:
    """The exact formats, without dateutil; None when `s` is none of them."""
    for pattern, parse in _FIXED:
        m = pattern.match(s)
        if m:
            return parse(m, raw, ref)
    return None


def _iso(m: re.Match[str], raw: str, ref: datetime) -> ParsedTime | None:
    try:
        dt = datetime.fromisoformat(m.string)
    except ValueError:
        return None  # e.g. hour 24: dateutil has its say
    if dt.tzinfo is None:
        return ParsedTime(dt.replace(tzinfo=UTC), raw, assumed_utc=True)
    return ParsedTime(dt.astimezone(UTC), raw, assumed_utc=False)


def _epoch(m: re.Match[str], raw: str, ref: datetime) -> ParsedTime:
    return ParsedTime(_parse_epoch(m.string), raw, assumed_utc=False)


def _clf(m: re.Match[str], raw: str, ref: datetime) -> ParsedTime:
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    minutes = (int(oh) * 60 + int(om)) * (-1 if sign == "-" else 1)
    local = datetime(int(year), _MONTH_NUMBER[mon], int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
    return ParsedTime(local - timedelta(minutes=minutes), raw, assumed_utc=False)


def _year_less(m: re.Match[str], raw: str, ref: datetime) -> ParsedTime:
    mon, day, hh, mm, ss, frac = m.groups()
    month = int(mon) if mon.isdigit() else _MONTH_NUMBER[mon]
    try:
        dt = datetime(ref.year, month, int(day), int(hh), int(mm), int(ss), _micros(frac), UTC)
    except ValueError:  # Feb 29 read in a common year: the last leap year is the candidate
        dt = datetime(ref.year - 1, month, int(day), int(hh), int(mm), int(ss), _micros(frac), UTC)
    return ParsedTime(_roll_back_year(dt, ref), raw, assumed_utc=True, assumed_year=True)


def _golog(m: re.Match[str], raw: str, ref: datetime) -> ParsedTime:
    year, mon, day, hh, mm, ss, frac = m.groups()
    dt = datetime(int(year), int(mon), int(day), int(hh), int(mm), int(ss), _micros(frac), UTC)
    return ParsedTime(dt, raw, assumed_utc=True)


_Parser = Callable[[re.Match[str], str, datetime], "ParsedTime | None"]
_FIXED: list[tuple[re.Pattern[str], _Parser]] = [
    (_ISO_RE, _iso),
    (_EPOCH_RE, _epoch),
    (_NGINX_RE, _clf),
    (_KLOG_RE, _year_less),
    (_SYSLOG_RE, _year_less),
    (_GOLOG_RE, _golog),
]
# find_timestamp knows which format it found: straight to that parser.
_BY_FORMAT: dict[str, tuple[re.Pattern[str], _Parser]] = {
    "rfc3339": (_ISO_RE, _iso), "epoch": (_EPOCH_RE, _epoch), "clf": (_NGINX_RE, _clf),
    "klog": (_KLOG_RE, _year_less), "syslog": (_SYSLOG_RE, _year_less), "golog": (_GOLOG_RE, _golog),
}  # fmt: skip


def _micros(fraction: str | None) -> int:
    return int((fraction or "0")[:6].ljust(6, "0"))


def _roll_back_year(dt: datetime, reference: datetime) -> datetime:
    """A year-less stamp that lands after the reference belongs to the year before (a syslog line
    of Dec 31 read on Jan 2)."""
    if dt - reference > _YEAR_ROLLOVER_SLACK:
        try:
            return dt.replace(year=dt.year - 1)
        except ValueError:  # Feb 29 has no previous-year twin
            return dt
    return dt


def _parse_epoch(s: str) -> datetime:
    whole = s.split(".")[0]
    value = float(s)
    digits = len(whole)
    if digits >= 18:
        value /= 1e9
    elif digits >= 15:
        value /= 1e6
    elif digits >= 12:
        value /= 1e3
    return from_epoch(value)


# -- timestamps inside free text ---------------------------------------------------------------

# Formats that count only at the start of a line: "I0102 ..." or "Oct 11 ..." inside prose is not
# the line's time. One anchored match is cheap.
_LINE_START_RE = re.compile(
    r"(?:<\d{1,3}>)?(?P<syslog>(?:" + _MONTHS + r") [ \d]\d \d{2}:\d{2}:\d{2})(?!\d)"
    r"|(?P<klog>[IWEF]\d{4} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?![\d.])"
    r"|(?P<golog>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?![\d.])"
)
# Formats found anywhere. Each scan starts on a literal or a rare shape (a pattern that starts with
# \d is tried at every digit and costs 10x more: this runs on every line of a multi-GiB log); the
# full pattern is then matched where the cheap one hit.
_RFC3339_HINT = re.compile(r"-\d\d-\d\d[T ]\d\d:\d\d:\d\d")
_RFC3339_AT = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d(?!\d))?"
)
_CLF_RE = re.compile(r"\[(\d\d/(?:" + _MONTHS + r")/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]")
_CTIME_HINT = re.compile(r" [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \d{4}(?!\d)")
_CTIME_HEAD = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:" + _MONTHS + r")$")
# An epoch number counts only right after a time-like key; keys are located with str.find (C
# speed) and the value matched there.
_EPOCH_KEYS = ("timestamp", "time", "epoch", "ts", '"t"', "'t'", "t=")
_EPOCH_VALUE = re.compile(
    r"""["']?\s*[:=]\s*["']?(\d{10}(?:\.\d{1,9})?|\d{13}(?:\.\d{1,6})?|\d{16}|\d{19})(?![\d.])"""
)


@dataclass(frozen=True)
class FoundTime:
    """A timestamp found inside free text (a log message): where, in which format, parsed."""

    parsed: ParsedTime
    format: str  # rfc3339 | clf | ctime | syslog | klog | golog | epoch
    start: int
    end: int


def find_timestamp(text: str, *, reference: datetime | None = None) -> FoundTime | None:
    """The first (leftmost) timestamp written inside `text` (a log message), or None.

    Recognises RFC 3339/ISO 8601 anywhere (JSON and logfmt loggers, Python logging), Apache/nginx
    common log `[10/Oct/2000:13:55:36 -0700]`, ctime as in Apache's error log
    `[Wed Oct 11 14:32:52 2000]`, and at the start of the line: syslog without year (optionally
    after `<PRI>`), klog `I1125 14:22:08.123456`, Go's log package and nginx's error log
    `2009/11/10 23:00:00`. Epoch seconds/millis/micros/nanos count only after a `ts=`, `"time":`
    style key (a bare number is too often not a time). Parsing is parse_timestamp's, `reference`
    included.
    """
    ref = reference or utcnow()
    for start, end, fmt in _candidates(text):
        stamp = text[start:end]
        parsed: ParsedTime | None = None
        try:
            fixed = _BY_FORMAT.get(fmt)
            m = fixed[0].match(stamp) if fixed else None
            parsed = fixed[1](m, stamp, ref) if fixed and m else None
            if parsed is None:
                parsed = parse_timestamp(stamp, reference=ref)
        except (ValueError, OverflowError):
            continue  # looked like a time, was not one (month 13): try the next
        return FoundTime(parsed, fmt, start, end)
    return None


def _candidates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, format) of the places a timestamp may be written, leftmost first. Each later
    scan only looks left of the best candidate so far (a line with a stamp up front is cheap)."""
    found: list[tuple[int, int, str]] = []
    m = _LINE_START_RE.match(text)
    if m and m.lastgroup:  # nothing can be further left
        return [(m.start(m.lastgroup), m.end(m.lastgroup), m.lastgroup)]
    limit = len(text)
    if "-" in text:
        for hint in _RFC3339_HINT.finditer(text):
            begin = hint.start() - 4
            full = _RFC3339_AT.match(text, begin) if begin >= 0 else None
            if full and (begin == 0 or not text[begin - 1].isdigit()):
                found.append((begin, full.end(), "rfc3339"))
                limit = min(limit, begin)
                if len(found) >= 3:
                    break
    if "[" in text:
        m = _CLF_RE.search(text, 0, limit + 40)
        if m:
            found.append((m.start(1), m.end(1), "clf"))
            limit = min(limit, m.start())
    if ":" in text:
        for hint in _CTIME_HINT.finditer(text, 0, limit + 40):
            begin = hint.start() - 7
            if begin >= 0 and _CTIME_HEAD.match(text, begin, hint.start()):
                found.append((begin, hint.end(), "ctime"))
                limit = min(limit, begin)
                break
    epoch = _epoch_candidate(text, limit)
    if epoch:
        found.append(epoch)
    if len(found) > 1:
        found.sort()
    return found


def _epoch_candidate(text: str, limit: int) -> tuple[int, int, str] | None:
    for key in _EPOCH_KEYS:
        at = text.find(key, 0, limit)
        while at >= 0:
            end = at + len(key)
            # "ts" inside "starts" is no key: a word key needs a boundary before it.
            before = text[at - 1] if at else " "
            if not key[0].isalpha() or not (before.isalnum() or before == "_"):
                m = _EPOCH_VALUE.match(text, end - 1 if key.endswith("=") else end)
                if m:
                    return (m.start(1), m.end(1), "epoch")
            at = text.find(key, end, limit)
    return None


def parse_utc(text: str | None) -> datetime | None:
    """Parse an RFC 3339 time that ir itself wrote (or a Kubernetes/Docker API time)."""
    if not text:
        return None
    return parse_timestamp(text).utc
