"""quarantine (ir/playbook/steps/quarantine.py): its params, and that it needs the pod and is
destructive."""

from __future__ import annotations

import pytest

from ir.playbook.steps.quarantine import SPEC
from tests.steps import NODE_TARGET, given, params, problems, refusals

GOOD = (
    "allow_egress_cidrs: [10.0.0.0/8, 'fd00::/8'], allow_dns: true, "
    "probe_image: 'registry.example/ir/probe:1.2'"
)
BAD = refusals("""
allow_egress_cidrs: [10.0.0.1/8] | 8:47: steps[0].allow_egress_cidrs[0]: not a CIDR: 10.0.0.1/8 has host bits set
allow_egress_cidrs: {a: b}       | 8:46: steps[0].allow_egress_cidrs: must be a list of strings, got a mapping
allow_dns: 1                     | 8:37: steps[0].allow_dns: must be true or false, got an integer
probe_image: 'probe; rm -rf /'   | 8:39: steps[0].probe_image: not an image reference
probe_image: ''                  | 8:39: steps[0].probe_image: must be a non-empty string, got a string
""")


def test_a_good_step_passes() -> None:
    assert params(f"{{action: quarantine, {GOOD}}}") == given(GOOD)


@pytest.mark.parametrize(("param", "problem"), BAD)
def test_each_bad_param_is_refused_with_its_message(param: str, problem: str) -> None:
    assert problems(f"{{action: quarantine, {param}}}") == [f"t.yaml:{problem}"]


def test_it_needs_the_pod() -> None:
    assert SPEC.destructive and SPEC.need({}, NODE_TARGET) == "pod"
