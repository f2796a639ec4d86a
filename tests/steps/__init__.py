"""Tests of each playbook action's declaration (ir/playbook/steps/<action>.py), one file each,
and of their completeness (test_every_action.py). A step is written as one YAML flow mapping and
checked as the only step of a playbook, so each problem carries its real line and column."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from ir.playbook.alerts import Target
from ir.playbook.loader import check_playbook_text

# the step stands at line 8, from column 5
HEAD = (
    "apiVersion: ir/v1\nkind: Playbook\nname: t\non_capture_failure: continue\n"
    "trigger:\n  rules: [x]\nsteps:\n  - "
)


def problems(step: str) -> list[str]:
    """Every problem of a playbook whose only step is `step`, as 'file:line:column: ...'."""
    return [str(p) for p in check_playbook_text(HEAD + step + "\n", "t.yaml")[1]]


def params(step: str) -> dict[str, Any]:
    """The params of `step`, which must be valid, as the loader keeps them."""
    book, found = check_playbook_text(HEAD + step + "\n", "t.yaml")
    assert book is not None, [str(p) for p in found]
    return book.steps[0].params


def given(flow: str) -> dict[str, Any]:
    """Params written as in a flow mapping ('a: 1, b: [x]'), as YAML reads them."""
    return dict(yaml.safe_load("{" + flow + "}"))


def refusals(table: str) -> list[tuple[str, str]]:
    """(param, problem) from each line 'param | line:column: where: message' of `table`."""
    rows = [line.split(" | ", 1) for line in table.strip().splitlines()]
    return [(param.strip(), problem.strip()) for param, problem in rows]


def target(**names: str) -> Target:
    """A target naming `names` (namespace, pod, node, service_account, ...)."""
    return Target("falco", "r", None, datetime(2024, 5, 1, tzinfo=UTC), "a-1", **names)  # type: ignore[arg-type]


POD_TARGET = target(namespace="shop", pod="web-1", node="n1")
NODE_TARGET = target(node="n1")
NO_TARGET = target(service_account="builder")
