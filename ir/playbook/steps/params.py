"""Param checks more than one action uses: typed values (each a `Check`: it records problems
through `Checks` and returns the value the step keeps), and `metadata_action`, what label and
annotate share (a mapping of keys under ir.forensics/, and `object`: the pod or its node).

May import ir.playbook.steps.model, ir.playbook.alerts (Target) and ir.playbook.k8snames only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ir.playbook.alerts import Target
from ir.playbook.k8snames import IR_KEY_PREFIX, label_key_problem
from ir.playbook.steps.model import NODE, POD, ActionSpec, At, Check, Checks, Param

ENV_NAME = r"[A-Z_][A-Z0-9_]*"
ENV_NAME_PROBLEM = "must name an environment variable (A-Z, 0-9, '_')"


def boolean(c: Checks, value: Any, at: At) -> Any:
    c.boolean(value, at)
    return value


def strings(c: Checks, value: Any, at: At) -> Any:
    c.strings(value, at)
    return value


def size(c: Checks, value: Any, at: At) -> Any:
    """Bytes: an integer or '512MiB', '2GiB', '100MB'; kept as the number of bytes."""
    converted = c.size(value, at)
    return value if converted is None else converted


def string(*choices: str) -> Check:
    """A non-empty string; one of `choices` when given."""

    def check(c: Checks, value: Any, at: At) -> Any:
        c.string(value, at, choices=choices or None)
        return value

    return check


def integer(low: int, high: int) -> Check:
    def check(c: Checks, value: Any, at: At) -> Any:
        c.integer(value, at, low, high)
        return value

    return check


def number(low: float, high: float) -> Check:
    def check(c: Checks, value: Any, at: At) -> Any:
        c.number(value, at, low, high)
        return value

    return check


def matching(pattern: str, problem: str) -> Check:
    """A non-empty string that `pattern` matches whole; else `problem`."""

    def check(c: Checks, value: Any, at: At) -> Any:
        text = c.string(value, at)
        if text is not None and not re.fullmatch(pattern, text):
            c.error(at, problem)
        return value

    return check


# -- label and annotate: a mapping of keys under ir.forensics/, on the pod or its node ---------

OBJECT = Param(
    "object",
    string(POD, NODE),
    "pod (default) or node: the pod's node, or the target's when it is a node",
)


def metadata_action(
    name: str,
    key: str,
    doc: str,
    value_problem: Callable[[object], str | None],
    *,
    rank: int,
    destructive: bool = False,
) -> ActionSpec:
    """An action that sets keys under ir.forensics/ in the metadata of the pod, or of its node
    with `object: node` (or when the target names no pod): label, annotate. Its one required
    param, `key` (labels, annotations), a mapping; each value as `value_problem` allows."""
    return ActionSpec(
        name,
        doc,
        (_metadata(key, value_problem), OBJECT),
        rank=rank,
        destructive=destructive,
        needs_for=_object_needed,
        on_node=_object_on_node,
    )


def _metadata(key: str, value_problem: Callable[[object], str | None]) -> Param:
    """The required mapping of `key`: at least one key, each under ir.forensics/ (the only keys
    ir sets), each value as `value_problem` allows."""

    def check(c: Checks, value: Any, at: At) -> Any:
        mapping = c.mapping(value, at)
        if mapping is not None and not mapping:
            c.error(at, "must name at least one key")
        for k, v in (mapping or {}).items():
            problem = label_key_problem(k)
            if problem is None and isinstance(k, str) and not k.startswith(IR_KEY_PREFIX):
                problem = (
                    f"must be under {IR_KEY_PREFIX} (ir changes only its own keys; the "
                    "shipped admission policies refuse any other)"
                )
            if problem:
                c.error((*at, k), f"key {k!r}: {problem}", at_key=True)
            problem = value_problem(v)
            if problem:
                c.error((*at, k), f"value: {problem}")
        return value

    return Param(key, check, "{key: value}, each key under ir.forensics/", required=True)


def _object_needed(params: Mapping[str, Any], target: Target) -> str | None:
    """What a step with an `object` param needs: that object (the pod by default)."""
    return str(params.get("object", POD))


def _object_on_node(params: Mapping[str, Any], target_has_pod: bool) -> bool:
    """A step with an `object` param changes a node for `object: node`, and on a target that
    names no pod (where it goes to the node)."""
    return params.get("object") == NODE or not target_has_pod


def node_always(params: Mapping[str, Any], target_has_pod: bool) -> bool:
    """An action that always changes a node (cordon)."""
    return True
