"""delete (ir/playbook/steps/delete.py): the grace period, and that it needs the pod and is
behind the capture gate."""

from __future__ import annotations

import pytest

from ir.playbook.steps.delete import SPEC
from tests.steps import NO_TARGET, params, problems, refusals


def test_a_good_step_passes() -> None:
    assert params("{action: delete, grace_period_seconds: 0}") == {"grace_period_seconds": 0}
    assert SPEC.destructive


@pytest.mark.parametrize(
    ("param", "problem"),
    refusals("""
grace_period_seconds: -1   | 8:44: steps[0].grace_period_seconds: must be between 0 and 3600, got -1
grace_period_seconds: '30' | 8:44: steps[0].grace_period_seconds: must be an integer, got a string
"""),
)
def test_each_bad_param_is_refused_with_its_message(param: str, problem: str) -> None:
    assert problems(f"{{action: delete, {param}}}") == [f"t.yaml:{problem}"]


def test_a_target_without_a_pod_is_not_enough() -> None:
    assert SPEC.need({}, NO_TARGET) == "pod"
