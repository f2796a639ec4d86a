"""Every action declared in ir/playbook/steps/ is whole: its module is named after it, it has
docs, the playbook room's lists are read from it, and every `ResponseActions` performs it
(ClusterActions through its STEPS table; DryRunActions and RecordingActions read the spec)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ir.cluster.actions import STEPS, ClusterActions
from ir.playbook.actions import ActionContext, DryRunActions, RecordingActions, ResponseActions
from ir.playbook.alerts import load_alert_file
from ir.playbook.spec import ACTIONS, DEFAULT_WHEN, WHEN
from ir.playbook.steps import action_specs, unimplemented
from tests.steps import POD_TARGET

ROOT = Path(__file__).resolve().parents[2]
HELPERS = {"__init__", "model", "params"}  # modules of ir/playbook/steps that declare no action
SPECS = action_specs()
PERFORMED = [s.name for s in SPECS if not s.sent_by_engine]  # by a ResponseActions


def test_each_action_module_declares_the_action_it_is_named_after() -> None:
    modules = {p.stem for p in (ROOT / "ir/playbook/steps").glob("*.py")} - HELPERS
    assert sorted(s.name for s in SPECS) == sorted(modules)


def test_every_action_has_its_test() -> None:
    missing = [
        f"tests/steps/test_{s.name}.py"
        for s in SPECS
        if not (ROOT / "tests/steps" / f"test_{s.name}.py").is_file()
    ]
    assert not missing, f"an action comes with its test (docs/architecture.md): {missing}"


def test_the_action_list_keeps_its_order() -> None:
    """By rank: the order "is not one of: ..." has always listed them in."""
    first = ("capture", "quarantine", "replace", "cordon", "label", "annotate", "delete", "notify")
    assert tuple(a for a in ACTIONS if a in first) == first
    assert len({s.rank for s in SPECS}) == len(SPECS), "two actions share a rank"
    assert all(DEFAULT_WHEN[s.name] in WHEN for s in SPECS)


def test_every_action_and_param_has_its_docs_line() -> None:
    undocumented = [
        f"{s.name}.{p.name}" if p else s.name
        for s in SPECS
        for p in (None, *s.params)
        if not (p.doc if p else s.doc)
    ]
    assert not undocumented
    assert all(s.describe().startswith(f"{s.name}") for s in SPECS)


def test_cluster_actions_implement_every_action() -> None:
    missing = unimplemented(STEPS)
    assert not missing, (
        f"no implementation in ir.cluster.actions.ClusterActions of {', '.join(missing)}: add "
        "a method named after the action and list it in STEPS"
    )
    assert sorted(STEPS) == sorted(PERFORMED), "STEPS lists an action no ActionSpec declares"
    misnamed = [name for name, method in STEPS.items() if method.__name__ != name]
    assert not misnamed, f"STEPS maps these names to another method: {misnamed}"


def test_the_check_itself_names_what_is_missing() -> None:
    assert unimplemented(["capture", "cordon"]) == [
        n for n in PERFORMED if n not in ("capture", "cordon")
    ]
    assert "notify" not in unimplemented([])  # the engine sends it


@pytest.mark.parametrize("kind", [DryRunActions, RecordingActions, ClusterActions])
def test_each_implementation_is_a_response_actions(kind: type) -> None:
    assert issubclass(kind, ResponseActions)


@pytest.mark.parametrize("make", [DryRunActions, RecordingActions], ids=["dry-run", "recording"])
def test_the_offline_implementations_answer_for_every_action(make: type) -> None:
    actions = make()
    alert = load_alert_file(ROOT / "samples/alerts/falco-terminal-shell.json")[0]
    context = ActionContext("r-1", "c-1", "p", "s", "why", "test", True, alert)
    wrong = [
        name for name in PERFORMED if actions.act(name, POD_TARGET, {}, context).action != name
    ]
    assert not wrong, f"{make.__name__} does not answer for {wrong}"
