"""Timestamps as their sources gave them: the instant in nanoseconds, the source's precision, and
whose clock made it. Imports ir.clock only.

A bundle mixes clocks. The capture host's kernel stamps file times (nanoseconds, from its coarse
clock); process starts are the boot time (/proc/stat btime, whole seconds) plus ticks since boot
(1/CLK_TCK, 10 ms); the container runtime stamps its records and log lines; the apiserver and
kubelet stamp Kubernetes objects (whole seconds, events' eventTime in microseconds); the alert
sender stamps its alert; an application writes its own time into its messages. Replay keeps each
time at the precision its source gave (`Stamp`), says whose clock made it (`CLOCKS`) and marks
the rows whose clock is not the capture host's (`Clock.reference`). See docs/replay.md, "Clocks".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ir.clock import EPOCH, ParsedTime, rfc3339_ns

NS = 1
US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
#: Linux's USER_HZ: /proc/PID/stat start times count 1/100 s since boot on every mainstream
#: architecture (the kernel converts to this unit whatever its own HZ).
PROC_TICK = 10 * MS


@dataclass(frozen=True)
class Clock:
    name: str
    reference: bool  # the capture host's own wall clock
    what: str  # one line: whose clock, and how far to trust it against the others


HOST = "host"
BOOT = "host-boot"
IR = "ir-host"
CUSTODY = "custody-host"
RUNTIME = "runtime"
IMAGE = "image-builder"
KUBERNETES = "kubernetes"
ALERT = "alert-sender"
APPLICATION = "application"

CLOCKS: dict[str, Clock] = {
    c.name: c
    for c in (
        Clock(
            HOST,
            True,
            "the capture host's wall clock: file times from its kernel, and ir's own records when "
            "ir ran there",
        ),
        Clock(
            BOOT,
            False,
            "the capture host's boot clock: boot time (/proc/stat btime, whole seconds, rounded "
            "down) + ticks since boot; reads up to 1 s early against the wall clock, more if the "
            "wall clock was stepped since boot",
        ),
        Clock(IR, False, "the clock of the machine that wrote the bundle (not the capture host)"),
        Clock(CUSTODY, False, "the clock of the machine that appended the custody record"),
        Clock(RUNTIME, False, "the container runtime's record (its daemon's clock)"),
        Clock(IMAGE, False, "the clock of the machine that built the image"),
        Clock(KUBERNETES, False, "the apiserver's or the kubelet's clock"),
        Clock(ALERT, False, "the alert sender's clock"),
        Clock(APPLICATION, False, "the time an application wrote in its own message"),
    )
}


@dataclass(frozen=True, slots=True)
class Stamp:
    """An instant as precise as its source gave it. `ns` is the start of the interval the source
    could tell apart: 12:00:01.08 from 10 ms ticks is 12:00:01.080000000."""

    ns: int  # nanoseconds since the Unix epoch, UTC
    precision_ns: int  # the source's resolution: 1 (ns) .. 1_000_000_000 (whole seconds)

    @property
    def utc(self) -> datetime:
        """As a datetime (which holds microseconds: truncated)."""
        return EPOCH + timedelta(microseconds=self.ns // 1000)

    @property
    def text(self) -> str:
        """RFC 3339 UTC with as many fraction digits as the precision has (9 for nanoseconds,
        6 for microseconds, 2 for 10 ms ticks, none for whole seconds)."""
        return format_ns(self.ns, digits_for(self.precision_ns))

    @property
    def precision(self) -> str:
        return precision_label(self.precision_ns)


def digits_for(precision_ns: int) -> int:
    if precision_ns <= 1:
        return 9
    return max(0, min(9, math.ceil(9 - math.log10(precision_ns) - 1e-9)))


def format_ns(ns: int, digits: int = 9) -> str:
    return rfc3339_ns(ns, digits)


def precision_label(precision_ns: int) -> str:
    for unit, size in (("s", SECOND), ("ms", MS), ("us", US)):
        if precision_ns >= size and precision_ns % size == 0:
            return f"{precision_ns // size}{unit}"
    return f"{precision_ns}ns"


def from_datetime(dt: datetime, precision_ns: int = US) -> Stamp:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Stamp(micros * 1000, precision_ns)


_CLOCK_FRACTION = re.compile(r"\d:\d\d[.,](\d+)")
_EPOCH_TEXT = re.compile(r"^\s*(\d{9,19})(?:\.(\d+))?\s*$")


def from_parsed(parsed: ParsedTime) -> Stamp:
    """The exact instant and precision of a parsed timestamp, from the digits of its text (a
    datetime keeps microseconds: Docker's and containerd's nanoseconds would be cut)."""
    text = parsed.original
    m = _EPOCH_TEXT.match(text)
    if m:
        whole, frac = m.group(1), m.group(2) or ""
        unit = (
            SECOND if len(whole) < 12 else MS if len(whole) < 15 else US if len(whole) < 18 else NS
        )
        precision = max(1, unit // 10 ** len(frac)) if frac else unit
        frac_ns = int(frac.ljust(18, "0")[:18]) * unit // 10**18 if frac else 0
        return Stamp(int(whole) * unit + frac_ns, precision)
    seconds = from_datetime(parsed.utc.replace(microsecond=0), SECOND)
    fraction = _CLOCK_FRACTION.search(text)
    if fraction is None:
        return Stamp(seconds.ns + parsed.utc.microsecond * 1000, SECOND)
    digits = fraction.group(1)
    exact = int(digits[:9].ljust(9, "0"))
    if exact // 1000 != parsed.utc.microsecond:  # not the fraction that was parsed: trust the parse
        return Stamp(seconds.ns + parsed.utc.microsecond * 1000, US)
    return Stamp(seconds.ns + exact, max(NS, 10 ** (9 - min(len(digits), 9))))


def tick_precision(stamp: Stamp) -> Stamp:
    """A /proc start time (boot time + ticks): its precision is the tick (USER_HZ, 100 on Linux:
    10 ms), whatever digits the boot time gave it (since boot time comes from CLOCK_BOOTTIME, to
    the microsecond, the digits no longer show the tick)."""
    return Stamp(stamp.ns, max(PROC_TICK, min(stamp.precision_ns, SECOND)))
