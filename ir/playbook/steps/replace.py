"""The `replace` action: a clean copy of the workload takes the compromised pod's place."""

from __future__ import annotations

from ir.playbook.steps.model import POD, ActionSpec, Param
from ir.playbook.steps.params import integer

WAIT = Param("wait_ready_seconds", integer(0, 3600), "how long to wait for it to be ready (120)")
DOC = (
    "take the pod out of its controller's selector so that a clean replacement is created, and "
    "wait for it; ok: a replacement is ready; partial: none ready in time, or a bare pod"
)
SPEC = ActionSpec("replace", DOC, (WAIT,), rank=30, destructive=True, needs=POD)
