"""annotate (ir/playbook/steps/annotate.py): annotations under ir.forensics/, any text up to the
limit, on the pod or its node; not destructive."""

from __future__ import annotations

import pytest

from ir.playbook.steps.annotate import SPEC
from tests.steps import POD_TARGET, params, problems, refusals

BAD = refusals(f"""
annotations: {{}}                         | 8:37: steps[0].annotations: must name at least one key
annotations: {{app.kubernetes.io/x: y}}   | 8:38: steps[0].annotations.app.kubernetes.io/x: key 'app.kubernetes.io/x': must be under ir.forensics/ (ir changes only its own keys; the shipped admission policies refuse any other)
annotations: {{ir.forensics/a: [1]}}      | 8:54: steps[0].annotations.ir.forensics/a: value: must be a string
annotations: {{ir.forensics/a: {"x" * 4097}}} | 8:54: steps[0].annotations.ir.forensics/a: value: longer than 4096 characters
annotations: {{ir.forensics/a: b}}, object: pods | 8:66: steps[0].object: 'pods' is not one of: pod, node
""")


@pytest.mark.parametrize(("param", "problem"), BAD, ids=[p[:40] for p, _ in BAD])
def test_each_bad_param_is_refused_with_its_message(param: str, problem: str) -> None:
    assert problems(f"{{action: annotate, {param}}}") == [f"t.yaml:{problem}"]


def test_a_good_step_passes_and_annotations_are_required() -> None:
    note = {"ir.forensics/note": "shell in container, INC-42"}
    assert params(f"{{action: annotate, annotations: {note}}}") == {"annotations": note}
    assert problems("{action: annotate}") == [
        "t.yaml:8:5: steps[0]: missing required key 'annotations'"
    ]


def test_it_goes_where_its_object_says_and_is_not_destructive() -> None:
    assert not SPEC.destructive
    assert SPEC.need({"object": "node"}, POD_TARGET) == "node"
    assert SPEC.acts_on_node({"object": "node"}, target_has_pod=True)
