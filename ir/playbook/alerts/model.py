"""The normal form every alert source is parsed into (`Alert`), the validated `Target` the engine
hands to response actions, the one priority scale all sources are mapped onto, and alert times
kept as exactly as the source wrote them (`AlertTime`: epoch nanoseconds and their precision).

May import ir.clock and ir.errors only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from ir.clock import EPOCH, parse_timestamp, rfc3339, rfc3339_ns
from ir.errors import UsageError


class AlertError(UsageError):
    """The input is not a usable alert (malformed JSON, unknown shape, wrong types)."""


# One scale for every source, lowest first (Falco's priorities, which are syslog's).
PRIORITIES: tuple[str, ...] = (
    "debug",
    "informational",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)

# Words other sources use, mapped onto the scale.
_PRIORITY_ALIASES = {
    "info": "informational",
    "information": "informational",
    "warn": "warning",
    "err": "error",
    "crit": "critical",
    "emerg": "emergency",
    "none": "debug",
    "low": "notice",
    "medium": "warning",
    "moderate": "warning",
    "high": "critical",
    "page": "critical",
    "severe": "critical",
    "fatal": "emergency",
}


def normalize_priority(word: str | None) -> str | None:
    """A priority/severity word from any source onto `PRIORITIES`; None when unknown."""
    if not isinstance(word, str):
        return None
    key = word.strip().lower()
    if key in PRIORITIES:
        return key
    return _PRIORITY_ALIASES.get(key)


def priority_rank(priority: str | None) -> int:
    """Position on the scale (debug 0 … emergency 7); -1 for unknown."""
    return PRIORITIES.index(priority) if priority in PRIORITIES else -1


@dataclass(frozen=True)
class Alert:
    """One alert from one source, in the normal form.

    Target fields (`namespace`, `pod`, …) are what the alert *claims*: untrusted text, never used to
    act before `ir.playbook.match.resolve_target` has validated them into a `Target`.
    `raw` is the single alert object as received (a Falco event, one Alertmanager alert, one
    GuardDuty finding); JSON Pointers in playbooks resolve against it. `envelope` keeps what
    surrounded it (Alertmanager group fields, the EventBridge wrapper) for the bundle.
    """

    source: str  # falco | alertmanager | guardduty
    rule: str  # Falco rule, Alertmanager alertname, GuardDuty finding type
    priority: str | None  # on PRIORITIES, None when the source gave nothing usable
    priority_original: str  # as the source wrote it ("Critical", "8.0", "warning")
    time: datetime  # UTC
    time_original: str
    alert_id: str  # Falco uuid, Alertmanager fingerprint, GuardDuty finding id
    status: str = "firing"  # firing | resolved
    tags: tuple[str, ...] = ()
    summary: str = ""
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    container_id: str | None = None
    node: str | None = None
    service_account: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    envelope: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    notes: tuple[str, ...] = ()
    #: the cluster the alert says it is from (GuardDuty's EKS cluster, an Alertmanager `cluster`
    #: label); node actions need it to be the configured one (ir.playbook.engine)
    cluster: str | None = None
    #: the cloud instance the alert names (GuardDuty's instanceId): the node's providerID must
    #: end with it before ir acts on that node
    instance_id: str | None = None
    #: the event time as epoch nanoseconds, exact to `time_precision` (`time` is cut to
    #: microseconds: a datetime holds no more); None when the Alert was built without it
    time_ns: int | None = None
    #: how much of the time the source wrote: "ns" | "us" | "ms" | "s" (9, 6, 3 or 0 fractional
    #: digits); None when not stated
    time_precision: str | None = None
    #: the host name the source reports (Falco's `hostname`): FALCO_HOSTNAME or gethostname() of
    #: the Falco process, which may be the node's name or the Falco pod's. Shown, never acted on:
    #: `node` is set only from a field that names the node (docs/alerts.md)
    host: str | None = None

    @property
    def priority_rank(self) -> int:
        return priority_rank(self.priority)

    @property
    def time_text(self) -> str:
        """The event time in RFC 3339 UTC at the precision the source gave: nine fractional digits
        when it gave nanoseconds, six otherwise (no digit is invented: six digits of a
        millisecond time end in zeros)."""
        if self.time_ns is not None and self.time_precision == "ns":
            return format_time_ns(self.time_ns)
        return rfc3339(self.time) or ""

    def claimed_target(self) -> dict[str, str | None]:
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "container_id": self.container_id,
            "node": self.node,
            "service_account": self.service_account,
            "workload_kind": self.workload_kind,
            "workload_name": self.workload_name,
        }

    def summary_dict(self) -> dict[str, Any]:
        """What an audit line or a notification says about the alert (no raw payload)."""
        return {
            "source": self.source,
            "rule": self.rule,
            "priority": self.priority,
            "priority_original": self.priority_original,
            "time": self.time_text,
            "time_precision": self.time_precision,
            "alert_id": self.alert_id,
            "status": self.status,
            "tags": list(self.tags),
            "target": {k: v for k, v in self.claimed_target().items() if v is not None},
            **({"cluster": self.cluster} if self.cluster else {}),
            **({"instance_id": self.instance_id} if self.instance_id else {}),
            **({"host": self.host} if self.host else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary_dict(),
            "time_original": self.time_original,
            "summary": self.summary,
            "notes": list(self.notes),
            "raw": self.raw,
            "envelope": self.envelope,
        }

    def to_record(self) -> dict[str, Any]:
        """Every field, as JSON (the run object of a durable `ir serve` run keeps it);
        `Alert.from_record` gives the same Alert back."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[item.name] = value
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Alert:
        """The Alert `to_record` wrote. Raises AlertError naming what is missing or malformed (a
        record read back from a store is checked, not trusted)."""
        if not isinstance(record, dict):
            raise AlertError("alert record is not an object")
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name not in record:
                continue
            value = record[item.name]
            if item.name == "time":
                try:
                    value = datetime.fromisoformat(str(value))
                except ValueError:
                    raise AlertError(f"alert record: time {value!r} is not ISO 8601") from None
                if value.tzinfo is None:
                    raise AlertError("alert record: time has no time zone")
            elif item.name in ("tags", "notes"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise AlertError(f"alert record: {item.name} is not a list of strings")
                value = tuple(value)
            elif item.name in ("raw", "envelope"):
                if not isinstance(value, dict):
                    raise AlertError(f"alert record: {item.name} is not an object")
            elif item.name == "time_ns":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise AlertError("alert record: time_ns is not an integer")
            elif value is not None and not isinstance(value, str):
                raise AlertError(f"alert record: {item.name} is not a string")
            values[item.name] = value
        missing = [
            name
            for name in ("source", "rule", "priority_original", "time", "time_original", "alert_id")
            if name not in values or values[name] is None
        ]
        if missing:
            raise AlertError("alert record lacks " + ", ".join(missing))
        values.setdefault("priority", None)
        return cls(**values)


TARGET_FIELDS = (
    "namespace",
    "pod",
    "container",
    "container_id",
    "node",
    "service_account",
    "workload_kind",
    "workload_name",
)


@dataclass(frozen=True)
class Target:
    """What a response action may act on. Built only by `ir.playbook.match.resolve_target`.

    Guarantees for implementers of `ResponseActions`:
      * `namespace` is a DNS-1123 label, not protected (kube-system, …) unless the playbook
        allowed it explicitly, and inside the playbook's namespace allow/deny lists;
      * `pod`, `node`, `service_account`, `workload_name` are DNS-1123 subdomains; `container` is
        a DNS-1123 label; `container_id` is 12–64 hex digits (runtime prefix such as
        `containerd://` stripped, kept in `container_runtime`);
      * `pod` is never set without `namespace`;
      * any field may be None: an action that needs a missing field returns status "skipped".
    `node` is what the alert claimed: for a pod target, act on the node the API says the pod runs
    on, not on this field. `raw` is the alert object as received, to be stored in the bundle.
    """

    source: str
    rule: str
    priority: str | None
    time: datetime
    alert_id: str
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    container_id: str | None = None
    container_runtime: str | None = None
    node: str | None = None
    service_account: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    tags: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def kind(self) -> str:
        """pod | workload | service-account | node | none: the most specific thing named."""
        if self.pod:
            return "pod"
        if self.workload_name:
            return "workload"
        if self.service_account:
            return "service-account"
        if self.node:
            return "node"
        return "none"

    @property
    def key(self) -> str:
        """A stable name of the thing acted on (dedupe, rate limits, per-target locks)."""
        if self.pod:
            return f"pod/{self.namespace}/{self.pod}"
        if self.workload_name:
            return f"workload/{self.namespace}/{self.workload_kind}/{self.workload_name}"
        if self.service_account:
            return f"serviceaccount/{self.namespace}/{self.service_account}"
        if self.node:
            return f"node/{self.node}"
        return "none"

    def to_dict(self) -> dict[str, Any]:
        fields = {
            "kind": self.kind,
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "container_id": self.container_id,
            "container_runtime": self.container_runtime,
            "node": self.node,
            "service_account": self.service_account,
            "workload_kind": self.workload_kind,
            "workload_name": self.workload_name,
        }
        return {k: v for k, v in fields.items() if v is not None}


def as_text(value: Any, *, limit: int = 4096) -> str | None:
    """A string field of an untrusted alert: None unless it is a non-empty string (numbers and
    booleans are not names), cut at `limit` characters."""
    if isinstance(value, str) and value:
        return value[:limit]
    return None


def parse_alert_time(value: Any, what: str) -> tuple[datetime, str]:
    """A timestamp field: (UTC instant, original text). Raises AlertError when unusable."""
    parsed = parse_alert_time_exact(value, what)
    return parsed.utc, parsed.original


# -- exact alert times -------------------------------------------------------------------------

PRECISIONS = ("s", "ms", "us", "ns")
_NS_PER_SECOND = 1_000_000_000
# RFC 3339 as Falco, Go (RFC3339Nano: trailing zeros of the fraction trimmed), Alertmanager and
# AWS write it; up to nine fractional digits are kept exactly.
_RFC3339_EXACT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,32}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)
# Epoch numbers as ir.clock reads them: the number of digits says the unit (s, ms, us, ns).
_EPOCH_EXACT = re.compile(r"^(\d{9,19})(?:\.(\d{1,32}))?$")
_FRACTION = re.compile(r"\d[.,](\d+)")


@dataclass(frozen=True)
class AlertTime:
    """An alert's time as the source wrote it: `ns` (epoch nanoseconds) is exact to `precision`;
    `utc` is the same instant cut to microseconds (a datetime holds no more)."""

    utc: datetime
    original: str
    ns: int
    precision: str  # s | ms | us | ns
    assumed_utc: bool = False  # the text had no offset: UTC was assumed


def precision_of(digits: int) -> str:
    """The precision a number of fractional-second digits states: 0 s, 1-3 ms, 4-6 us, 7+ ns."""
    if digits == 0:
        return "s"
    if digits <= 3:
        return "ms"
    if digits <= 6:
        return "us"
    return "ns"


def time_from_epoch_ns(ns: int, original: str, precision: str = "ns") -> AlertTime:
    """An instant given as epoch nanoseconds (Falco's evt.time). Raises OverflowError when it is
    outside what a datetime holds (years 1-9999)."""
    utc = EPOCH + timedelta(microseconds=ns // 1000)
    return AlertTime(utc, original, ns, precision)


def format_time_ns(ns: int) -> str:
    """Epoch nanoseconds as RFC 3339 UTC with nine fractional digits and `Z`."""
    return rfc3339_ns(ns)


def parse_alert_time_exact(value: Any, what: str) -> AlertTime:
    """A timestamp field, kept to the nanosecond it was written with. RFC 3339 (any offset, up to
    nine fractional digits kept; more are cut and stated as ns) and epoch numbers (digits as in
    ir.clock: 9-11 s, 12-14 ms, 15-17 us, 18-19 ns) are read exactly, by integer arithmetic; any
    other format ir.clock reads is accepted at the microsecond. Raises AlertError when unusable."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AlertError(f"{what}: expected a timestamp, got {type(value).__name__}")
    text = str(value)
    try:
        exact = _exact(text.strip())
    except (ValueError, OverflowError):
        exact = None  # e.g. hour 24 or a date out of range: ir.clock has its say
    if exact is not None:
        return AlertTime(exact.utc, text, exact.ns, exact.precision, exact.assumed_utc)
    try:
        parsed = parse_timestamp(text)
    except (ValueError, OverflowError) as exc:
        raise AlertError(f"{what}: {exc}") from None
    delta = parsed.utc - EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * _NS_PER_SECOND + delta.microseconds * 1000
    fraction = _FRACTION.search(text)
    precision = precision_of(min(len(fraction.group(1)), 6) if fraction else 0)
    return AlertTime(parsed.utc, text, ns, precision, parsed.assumed_utc)


def _exact(text: str) -> AlertTime | None:
    m = _RFC3339_EXACT.match(text)
    if m:
        year, month, day, hour, minute, second, fraction, zulu, sign, oh, om = m.groups()
        whole = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om))
            whole -= offset if sign == "+" else -offset
        delta = whole - EPOCH
        digits = fraction or ""
        ns = (delta.days * 86_400 + delta.seconds) * _NS_PER_SECOND + int(
            (digits[:9] or "0").ljust(9, "0")
        )
        parsed = time_from_epoch_ns(ns, text, precision_of(len(digits)))
        return AlertTime(parsed.utc, text, ns, parsed.precision, not (zulu or sign))
    m = _EPOCH_EXACT.match(text)
    if m:
        number, fraction = m.group(1), m.group(2) or ""
        # nanoseconds per unit, the unit told by the number of digits as ir.clock reads it
        exponent = next(
            e for digits, e in ((18, 0), (15, 3), (12, 6), (0, 9)) if len(number) >= digits
        )
        kept = fraction[:exponent]
        ns = int(number) * 10**exponent + (int(kept.ljust(exponent, "0")) if kept else 0)
        return time_from_epoch_ns(ns, text, precision_of(9 - exponent + len(kept)))
    return None
