"""capture (ir/playbook/steps/capture.py): its params, a size kept as bytes, and what it needs:
the pod, or the node of a node target."""

from __future__ import annotations

import pytest

from ir.playbook.steps.capture import SPEC
from tests.steps import NO_TARGET, NODE_TARGET, POD_TARGET, given, params, problems, refusals

GOOD = (
    "collectors: [processes, network], max_bytes: 2GiB, timeout_seconds: 300, "
    "store: 's3://evidence/ir', scope: container, sign: false"
)
BAD = refusals("""
collectors: 5       | 8:35: steps[0].collectors: must be a list of strings, got an integer
collectors: [ps, ''] | 8:40: steps[0].collectors[1]: must be a non-empty string, got a string
max_bytes: lots     | 8:34: steps[0].max_bytes: must be a size in bytes (e.g. 536870912 or '512MiB'), got 'lots'
timeout_seconds: 0  | 8:40: steps[0].timeout_seconds: must be between 1 and 86400, got 0
store: 3            | 8:30: steps[0].store: must be a non-empty string, got an integer
scope: node         | 8:30: steps[0].scope: 'node' is not one of: container, pod
sign: 'yes'         | 8:29: steps[0].sign: must be true or false, got a string
colectors: [ps]     | 8:23: steps[0].colectors: unknown key 'colectors' (did you mean 'collectors'?); allowed: action, name, when, collectors, max_bytes, timeout_seconds, store, scope, sign
""")


def test_a_good_step_passes_with_its_size_in_bytes() -> None:
    assert params(f"{{action: capture, {GOOD}}}") == {**given(GOOD), "max_bytes": 2 * 2**30}


@pytest.mark.parametrize(("param", "problem"), BAD)
def test_each_bad_param_is_refused_with_its_message(param: str, problem: str) -> None:
    assert problems(f"{{action: capture, {param}}}") == [f"t.yaml:{problem}"]


def test_it_needs_the_pod_or_a_node_target() -> None:
    assert SPEC.need({}, POD_TARGET) == "pod"
    assert SPEC.need({}, NODE_TARGET) == "node"
    assert SPEC.need({}, NO_TARGET) == "pod"
    assert not SPEC.destructive and not SPEC.acts_on_node({}, target_has_pod=False)
