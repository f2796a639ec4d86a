"""The `capture` action: evidence of the target before anything changes it; the capture gate
(destructive steps wait for a capture that succeeded) and node evidence are built on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ir.playbook.alerts import Target
from ir.playbook.steps.model import NODE, POD, ActionSpec, Param
from ir.playbook.steps.params import boolean, number, size, string, strings


def _needs(params: Mapping[str, Any], target: Target) -> str:
    """A target that names a node and no pod (a node-level finding) is captured as the node
    itself: its processes and sockets, through the node collector."""
    return NODE if target.node and not target.pod else POD


DOC = (
    "capture the pod (or a node target's processes and sockets) into a bundle that holds the "
    "alert; ok: sealed, complete and confirmed stored; partial: sealed, but a collector failed "
    "or the store spooled it; failed: no usable bundle"
)
PARAMS = (
    Param("collectors", strings, "collector names (default: all)"),
    Param("max_bytes", size, "largest filesystem diff kept: bytes, or '512MiB', '2GiB'"),
    Param("timeout_seconds", number(1, 86400), "the step's deadline (default 600)"),
    Param("store", string(), "store URI (default: the configured store)"),
    Param("scope", string("container", "pod"), "pod (default) or the alert's container"),
    Param("sign", boolean, "sign the bundle (default true)"),
)
SPEC = ActionSpec("capture", DOC, PARAMS, rank=10, needs=POD, needs_for=_needs)
