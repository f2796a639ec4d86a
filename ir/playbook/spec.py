"""What a playbook is, once validated: a trigger, how the target is read from the alert, and
ordered steps. Built only by `ir.playbook.loader` (which checks everything and knows the lines).

The YAML format (`ir playbook validate` checks it; see playbooks/ for complete examples):

    apiVersion: ir/v1
    kind: Playbook
    name: shell-in-container          # DNS-1123 label, unique
    description: ...
    order: 10                         # lowest first; the first matching playbook runs
    dry_run: false                    # true: act on nothing, record the requests
    on_capture_failure: stop          # stop (default): no destructive step unless capture ok
    allow_protected_namespaces: false # kube-system, kube-public, kube-node-lease (+ --protect-namespace)
    case: INC-42                      # optional fixed case id (default IR-<date>-<run>)
    trigger:                          # all given conditions must hold
      sources: [falco, alertmanager, guardduty]
      rules: [Terminal shell in container]          # exact rule / alertname / finding type
      rule_patterns: ["^[A-Za-z]+:Runtime/"]         # Python regular expressions (search)
      min_priority: warning           # debug informational notice warning error critical alert emergency
      tags_any: [shell]               # tags_all: [...]
      fields: {/labels/ir_capture: "true"}          # JSON Pointer -> accepted value(s)
      namespaces: {allow: ["shop", "pay*"], deny: [ir-system]}
      targets: [pod]                  # pod workload service-account node none
    target:                           # optional, per source: JSON Pointers into the raw alert
      falco: {namespace: /output_fields/k8s.ns.name, pod: /output_fields/k8s.pod.name}
    steps:                            # in order; `when`: always (default) capture_ok
      - action: capture               #   capture_failed previous_ok previous_failed
        collectors: [processes, network]   # max_bytes: 2GiB, timeout_seconds, store, scope, sign
      - action: quarantine            # allow_egress_cidrs: [10.0.0.0/8], allow_dns: true
      - action: replace               # wait_ready_seconds: 120
      - action: cordon
      - action: label                 # labels: {k: v}, object: pod|node
      - action: annotate              # annotations: {k: v}, object: pod|node
      - action: delete                # grace_period_seconds: 30
      - action: notify                # url | url_from_env, headers, headers_from_env,
        url_from_env: IR_NOTIFY_URL   #   timeout_seconds (<= 30), include_raw
        when: always

The steps above are examples: every action, its params and what it needs in the target are
declared in its module in ir/playbook/steps/ (its ActionSpec, which the lists below are read from).

Values are static: nothing from an alert is ever formatted into a parameter, a command or a URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ir.playbook.alerts import Target
from ir.playbook.steps import ActionSpec, action_spec, action_specs

API_VERSION = "ir/v1"
KIND = "Playbook"

# Read from each action's declaration (ir/playbook/steps/<action>.py: its ActionSpec).
ACTIONS: tuple[str, ...] = tuple(spec.name for spec in action_specs())
# Steps that change or remove the workload: never run unless the capture gate is open.
DESTRUCTIVE: frozenset[str] = frozenset(spec.name for spec in action_specs() if spec.destructive)
# What each action needs in the target whatever its params (label and annotate: their `object`
# decides; capture of a node target: the node); a run whose target lacks it records "skipped".
NEEDS: dict[str, str] = {spec.name: spec.needs for spec in action_specs() if spec.needs}

# Conditions between steps (a fixed vocabulary: no expression language, nothing evaluated).
WHEN: tuple[str, ...] = ("always", "capture_ok", "capture_failed", "previous_ok", "previous_failed")
# The capture gate is not a condition: destructive steps are refused (not skipped) when the
# capture failed, whatever their `when`, unless the playbook sets on_capture_failure: continue.
DEFAULT_WHEN = {spec.name: spec.default_when for spec in action_specs()}

ON_CAPTURE_FAILURE = ("stop", "continue")
TARGET_KINDS = ("pod", "workload", "service-account", "node", "none")
POINTER_FIELDS = (
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
class Step:
    action: str
    params: dict[str, Any]
    when: str
    name: str  # unique in the playbook: given, or "<index>-<action>"
    line: int

    @property
    def spec(self) -> ActionSpec:
        """The action's declaration (ir/playbook/steps/)."""
        return action_spec(self.action)

    @property
    def destructive(self) -> bool:
        return self.spec.destructive

    def acts_on_node(self, target_has_pod: bool) -> bool:
        """Whether this step changes a node: cordon, or labels/annotations on `object: node`
        (or on a target that names no pod, where they go to the node)."""
        return self.spec.acts_on_node(self.params, target_has_pod)

    def needs(self, target: Target) -> str | None:
        """What this step needs in `target`: "pod", "node" (a node, or a pod on one) or None."""
        return self.spec.need(self.params, target)


@dataclass(frozen=True)
class Trigger:
    sources: tuple[str, ...] = ()  # empty: any source
    rules: tuple[str, ...] = ()  # exact names
    rule_patterns: tuple[re.Pattern[str], ...] = ()  # re.search
    min_priority: str | None = None
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    fields: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (JSON Pointer, accepted values)
    namespaces_allow: tuple[str, ...] = ()  # fnmatch patterns; empty: any
    namespaces_deny: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()  # target kinds accepted; empty: any


@dataclass(frozen=True)
class Playbook:
    name: str
    path: str
    line: int
    trigger: Trigger
    steps: tuple[Step, ...]
    description: str = ""
    order: int = 100
    dry_run: bool = False
    on_capture_failure: str = "stop"
    # a node action (cordon, a node's labels or annotations) needs a completed capture earlier in
    # the run, whatever on_capture_failure says; false is an explicit, audited choice
    node_actions_need_capture: bool = True
    allow_protected_namespaces: bool = False
    case: str | None = None
    # per source: target field -> JSON Pointer into the alert's raw object
    target_pointers: dict[str, dict[str, str]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "order": self.order,
            "dry_run": self.dry_run,
            "on_capture_failure": self.on_capture_failure,
            "node_actions_need_capture": self.node_actions_need_capture,
            "sources": list(self.trigger.sources),
            "steps": [f"{s.name} ({s.action}, when {s.when})" for s in self.steps],
        }
