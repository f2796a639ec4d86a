"""The `annotate` action: notes for the responder under ir.forensics/ on the pod or its node,
which nothing in the workload reads."""

from __future__ import annotations

from ir.playbook.k8snames import annotation_value_problem
from ir.playbook.steps.params import metadata_action

DOC = "set annotations (any text up to 4096 characters); ok when the API accepted them"
SPEC = metadata_action("annotate", "annotations", DOC, annotation_value_problem, rank=60)
