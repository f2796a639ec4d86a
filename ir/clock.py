"""Time in ir: timezone-aware UTC inside, RFC 3339 with `Z` outside.

Every foreign timestamp is parsed here (python-dateutil), keeping the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil import parser as dateutil_parser
from dateutil import tz

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(dt: datetime | None) -> str | None:
    """Format an aware datetime as RFC 3339 UTC with microseconds and `Z`; naive means UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_epoch(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


@dataclass(frozen=True)
class ParsedTime:
    """A foreign timestamp: the UTC instant and the text it came from."""

    utc: datetime
    original: str
    assumed_utc: bool  # the text had no offset; UTC was assumed
    assumed_year: bool = False  # the text had no year (syslog); the reference year was used


_EPOCH_RE = re.compile(r"^\d{9,19}(\.\d+)?$")
_KLOG_RE = re.compile(r"^[IWEF](\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$")
_NGINX_RE = re.compile(r"^(\d{2})/(\w{3})/(\d{4}):(\d{2}:\d{2}:\d{2}) ([+-]\d{4})$")


def parse_timestamp(text: str, *, reference: datetime | None = None) -> ParsedTime:
    """Parse a timestamp found in logs or API objects.

    Handles RFC 3339/ISO 8601 with offsets, Apache/nginx common log (`10/Oct/2000:13:55:36 -0700`),
    syslog without year (`Oct 11 22:14:15`, year taken from `reference`), epoch seconds/millis/
    micros/nanos, Go/klog headers (`I1125 14:22:08.123456`). Raises ValueError when unparseable.
    """
    raw = text
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    ref = reference or utcnow()
    if _EPOCH_RE.match(s):
        return ParsedTime(_parse_epoch(s), raw, assumed_utc=False)
    m = _KLOG_RE.match(s)
    if m:
        month, day, clock = int(m.group(1)), int(m.group(2)), m.group(3)
        dt = dateutil_parser.parse(f"{ref.year}-{month:02d}-{day:02d}T{clock}")
        return ParsedTime(dt.replace(tzinfo=UTC), raw, assumed_utc=True, assumed_year=True)
    m = _NGINX_RE.match(s)
    if m:
        s = f"{m.group(1)} {m.group(2)} {m.group(3)} {m.group(4)} {m.group(5)}"
    default = datetime(ref.year, 1, 1)
    try:
        dt = dateutil_parser.parse(s, default=default, tzinfos={"UTC": tz.UTC, "Z": tz.UTC})
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"unparseable timestamp {raw!r}: {exc}") from None
    assumed_year = not re.search(r"\d{4}", s)
    assumed_utc = dt.tzinfo is None
    if assumed_utc:
        dt = dt.replace(tzinfo=UTC)
    return ParsedTime(dt.astimezone(UTC), raw, assumed_utc=assumed_utc, assumed_year=assumed_year)


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


def parse_utc(text: str | None) -> datetime | None:
    """Parse an RFC 3339 time that ir itself wrote (or a Kubernetes/Docker API time)."""
    if not text:
        return None
    return parse_timestamp(text).utc
