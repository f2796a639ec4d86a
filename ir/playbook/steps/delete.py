"""The `delete` action: the pod is removed (its evidence is in the bundle by then)."""

from __future__ import annotations

from ir.playbook.steps.model import POD, ActionSpec, Param
from ir.playbook.steps.params import integer

GRACE = Param("grace_period_seconds", integer(0, 3600), "time to stop (default: the pod's own)")
DOC = (
    "delete the pod (reached only after a complete capture unless the playbook sets "
    "on_capture_failure: continue); ok when the API accepted it"
)
SPEC = ActionSpec("delete", DOC, (GRACE,), rank=70, destructive=True, needs=POD)
