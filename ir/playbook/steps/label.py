"""The `label` action: labels under ir.forensics/ on the pod or its node. Destructive: a label
can take a pod out of a Service or away from its controller."""

from __future__ import annotations

from ir.playbook.k8snames import label_value_problem
from ir.playbook.steps.params import metadata_action

DOC = "set labels on the pod or its node; ok when the API accepted them"
SPEC = metadata_action("label", "labels", DOC, label_value_problem, rank=50, destructive=True)
