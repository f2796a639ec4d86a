"""The normal form every alert source is parsed into (`Alert`), the validated `Target` the engine
hands to response actions, and the one priority scale all sources are mapped onto."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ir.clock import rfc3339
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

    @property
    def priority_rank(self) -> int:
        return priority_rank(self.priority)

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
            "time": rfc3339(self.time),
            "alert_id": self.alert_id,
            "status": self.status,
            "tags": list(self.tags),
            "target": {k: v for k, v in self.claimed_target().items() if v is not None},
            **({"cluster": self.cluster} if self.cluster else {}),
            **({"instance_id": self.instance_id} if self.instance_id else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary_dict(),
            "summary": self.summary,
            "notes": list(self.notes),
            "raw": self.raw,
            "envelope": self.envelope,
        }


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
    from ir.clock import parse_timestamp

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AlertError(f"{what}: expected a timestamp, got {type(value).__name__}")
    text = str(value)
    try:
        return parse_timestamp(text).utc, text
    except (ValueError, OverflowError) as exc:
        raise AlertError(f"{what}: {exc}") from None
