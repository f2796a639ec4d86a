"""replace (ir/playbook/steps/replace.py): how long it waits, and that it needs the pod."""

from __future__ import annotations

import pytest

from ir.playbook.steps.replace import SPEC
from tests.steps import NODE_TARGET, params, problems, refusals

BAD = refusals("""
wait_ready_seconds: 3601 | 8:43: steps[0].wait_ready_seconds: must be between 0 and 3600, got 3601
wait_ready_seconds: 1.5  | 8:43: steps[0].wait_ready_seconds: must be an integer, got a number
""")


@pytest.mark.parametrize(("param", "problem"), BAD)
def test_each_bad_param_is_refused_with_its_message(param: str, problem: str) -> None:
    assert problems(f"{{action: replace, {param}}}") == [f"t.yaml:{problem}"]


def test_a_good_step_passes_and_needs_the_pod() -> None:
    assert params("{action: replace, wait_ready_seconds: 120}") == {"wait_ready_seconds": 120}
    assert SPEC.destructive and SPEC.need({}, NODE_TARGET) == "pod"
