"""label (ir/playbook/steps/label.py): labels under ir.forensics/ with valid values, and its
`object`, which decides what it needs and whether it changes a node."""

from __future__ import annotations

import pytest

from ir.playbook.steps.label import SPEC
from tests.steps import POD_TARGET, given, params, problems, refusals

GOOD = "labels: {ir.forensics/case: inc-42}, object: node"
BAD = refusals("""
labels: {}                              | 8:29: steps[0].labels: must name at least one key
labels: [a]                             | 8:29: steps[0].labels: must be a mapping, got a list
labels: {team: x}                       | 8:30: steps[0].labels.team: key 'team': must be under ir.forensics/ (ir changes only its own keys; the shipped admission policies refuse any other)
labels: {'ir.forensics/bad key': x}     | 8:30: steps[0].labels.ir.forensics/bad key: key 'ir.forensics/bad key': name 'bad key' must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric
labels: {ir.forensics/a: 'not a value'} | 8:46: steps[0].labels.ir.forensics/a: value: must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric
labels: {ir.forensics/a: 5}             | 8:46: steps[0].labels.ir.forensics/a: value: must be a string
labels: {ir.forensics/a: b}, object: cluster | 8:58: steps[0].object: 'cluster' is not one of: pod, node
""")


def test_a_good_step_passes_and_labels_are_required() -> None:
    assert params(f"{{action: label, {GOOD}}}") == given(GOOD)
    assert problems("{action: label}") == ["t.yaml:8:5: steps[0]: missing required key 'labels'"]


@pytest.mark.parametrize(("param", "problem"), BAD)
def test_each_bad_param_is_refused_with_its_message(param: str, problem: str) -> None:
    assert problems(f"{{action: label, {param}}}") == [f"t.yaml:{problem}"]


def test_its_object_decides_what_it_needs_and_changes() -> None:
    assert SPEC.destructive
    assert (SPEC.need({}, POD_TARGET), SPEC.need({"object": "node"}, POD_TARGET)) == ("pod", "node")
    assert not SPEC.acts_on_node({}, target_has_pod=True)
    assert SPEC.acts_on_node({"object": "node"}, target_has_pod=True)
    assert SPEC.acts_on_node({}, target_has_pod=False)  # no pod named: it goes to the node
