"""cordon (ir/playbook/steps/cordon.py): no params, a node (or a pod on one) needed, and always a
node action."""

from __future__ import annotations

from ir.playbook.steps.cordon import SPEC
from tests.steps import NODE_TARGET, params, problems


def test_a_good_step_passes() -> None:
    assert params("{action: cordon, when: capture_ok}") == {}


def test_it_takes_no_params() -> None:
    assert problems("{action: cordon, object: node}") == [
        "t.yaml:8:22: steps[0].object: unknown key 'object'; allowed: action, name, when"
    ]


def test_it_changes_a_node() -> None:
    assert SPEC.destructive and SPEC.need({}, NODE_TARGET) == "node"
    assert SPEC.acts_on_node({}, target_has_pod=True)
