"""Every view declared in ir/replay/views/ is whole: its module declares it (`VIEW`), it has its
test file here (tests/views/test_<module>.py), each of its options reaches its page function,
it has `-o/--output`, and `ir replay` has its command, made from it and nothing else."""

from __future__ import annotations

import inspect
from pathlib import Path

import click
import pytest

from ir.cli.replay import replay
from ir.cli.replayopts import TRUST_KEYS
from ir.replay.views import Text, View, view_modules, views

HERE = Path(__file__).resolve().parent
VIEWS = HERE.parents[1] / "ir" / "replay" / "views"
HELPERS = {"__init__", "model", "options"}  # modules of ir/replay/views that declare no view
# `ir replay` commands that are not views: they write files, not pages (ir/cli/replay.py).
NOT_VIEWS = {"export"}


def untested(modules: dict[str, View], here: Path) -> list[str]:
    """The views of `modules` (by the module declaring each) without their test file in
    `here`, each as the file to add."""
    return [
        f"tests/views/test_{module}.py (view {view.name})"
        for module, view in modules.items()
        if not (here / f"test_{module}.py").is_file()
    ]


def test_each_view_module_declares_a_view() -> None:
    modules = {path.stem for path in VIEWS.glob("*.py")} - HELPERS
    assert sorted(view_modules()) == sorted(modules), "a module here without VIEW, or a helper"


def test_every_view_has_its_test_file() -> None:
    missing = untested(view_modules(), HERE)
    assert not missing, f"a view comes with its test (docs/architecture.md): {missing}"


def test_the_check_itself_names_the_view_without_a_test(tmp_path: Path) -> None:
    hashes = View("hashes", "Each executable the processes ran.", (), lambda ev, trust: Text(()))
    (tmp_path / "test_processes.py").write_text("")
    modules = {"processes": view_modules()["processes"], "hashes": hashes}
    assert untested(modules, tmp_path) == ["tests/views/test_hashes.py (view hashes)"]


@pytest.mark.parametrize("view", views(), ids=lambda v: v.name)
def test_each_option_reaches_the_page_function(view: View) -> None:
    parameters = inspect.signature(view.page).parameters.values()
    keywords = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
    declared = {option.keyword for option in view.options}
    assert keywords == declared, f"{view.name}: options {declared}, page takes {keywords}"
    assert not declared & set(TRUST_KEYS), "an option named like a trust option"
    output = next(option for option in view.options if option.keyword == "output")
    assert output.short == "-o" and output.default in output.choices
    assert set(view.verdict_on_page) <= set(output.choices)


def test_replay_has_one_command_per_view_made_from_it() -> None:
    assert set(replay.commands) - NOT_VIEWS == {view.name for view in views()}
    for view in views():
        command = replay.commands[view.name]
        assert command.help == view.help
        options = [p for p in command.params if isinstance(p, click.Option)]
        assert [p.name for p in options[: len(view.options)]] == [o.keyword for o in view.options]
        assert [p.name for p in options[len(view.options) :]] == list(TRUST_KEYS)
