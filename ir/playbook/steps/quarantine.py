"""The `quarantine` action: the pod is cut off the network and kept running for the responder."""

from __future__ import annotations

import ipaddress
from typing import Any

from ir.playbook.steps.model import POD, ActionSpec, At, Checks, Param
from ir.playbook.steps.params import boolean, matching


def _cidrs(c: Checks, value: Any, at: At) -> Any:
    for i, cidr in enumerate(c.strings(value, at)):
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            c.error((*at, i), f"not a CIDR: {exc}")
    return value


IMAGE = matching(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}", "not an image reference")
SPEC = ActionSpec(
    "quarantine",
    "label the pod with a quarantine id, select only it with a deny-all ingress and egress "
    "NetworkPolicy, annotate who, why and when; ok: the policy selects exactly the pod (the "
    "detail says whether traffic proved it enforced); partial: a probe still got through",
    (
        Param("allow_egress_cidrs", _cidrs, "networks the pod may still reach (default none)"),
        Param("allow_dns", boolean, "let the pod resolve names (default false)"),
        Param("probe_image", IMAGE, "image of the probe that proves it (or $IR_PROBE_IMAGE)"),
    ),
    rank=20,
    destructive=True,
    needs=POD,
)
