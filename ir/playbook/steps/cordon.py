"""The `cordon` action: no new pod lands on the node (the one the pod runs on, as the API says,
or a node target). It takes no params."""

from __future__ import annotations

from ir.playbook.steps.model import NODE, ActionSpec
from ir.playbook.steps.params import node_always

DOC = "mark the node unschedulable; ok when the API accepted it"
SPEC = ActionSpec("cordon", DOC, rank=40, destructive=True, needs=NODE, on_node=node_always)
