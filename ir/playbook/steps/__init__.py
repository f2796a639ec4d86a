"""Playbook actions, one module each, found by convention (a module here with `SPEC`, an
`ActionSpec`; nothing else registers it), as alert sources are in ir/playbook/alerts/.

An action's SPEC is the only place the playbook room declares it. Read from it: the action list
and the destructive set (ir.playbook.spec: ACTIONS, DESTRUCTIVE, NEEDS, DEFAULT_WHEN, and
`Step.destructive`, `Step.acts_on_node`, `Step.needs`), the keys a step may carry and their
checks (ir.playbook.loader), what the engine skips or refuses for lack of a pod, a node or node
evidence (ir.playbook.engine), and the offline dry run's plan and the test recorder
(ir.playbook.actions: DryRunActions, RecordingActions).

The modules here may import ir.playbook.alerts, ir.playbook.k8snames and ir.playbook.notify
only (and each other): the spec, the loader, the engine and the actions protocol import them.

Adding an action (here `taint`, for illustration):

1. `ir/playbook/steps/taint.py`, opening with what the action is for, ending with its SPEC:

       from ir.playbook.steps.model import NODE, ActionSpec, Param
       from ir.playbook.steps.params import node_always, string

       EFFECT = Param("effect", string("NoSchedule", "NoExecute"), "the taint's effect")
       DOC = "taint the node the pod runs on, or a node target; ok when the API accepted it"
       SPEC = ActionSpec(
           "taint",              # what a step's `action:` says
           DOC,                  # one line: what it does, what ok / partial mean
           (EFFECT,),            # its params, in the order "allowed: ..." lists them
           rank=45,              # after cordon (40) in "is not one of: ..."
           destructive=True,     # behind the capture gate
           needs=NODE,           # "skipped" on a target naming neither a node nor a pod
           on_node=node_always,  # changes a node: node evidence first
       )

   A param's check is a `Check`: ir.playbook.steps.params has the common ones; write one as a
   function of (checks, value, at) that records each problem with `checks.error(at, ...)` and
   returns the value the step keeps. `needs_for` and `on_node` look at the params where they
   decide (the `object` of label and annotate); `check` looks across params (notify's url).
2. `tests/steps/test_taint.py`: a good step passes, each bad param is refused with its exact
   message (file:line:column), and what it needs.
3. The real implementation is the one other place, in ir/cluster: a method
   `taint(self, target, params, context) -> StepResult` on `ir.cluster.actions.ClusterActions`
   (changes only through its Operator; the contract is in ir/playbook/actions.py), listed in
   that module's `STEPS` table. tests/steps/test_every_action.py fails, naming the action, until
   it is there. An action the engine performs itself (`sent_by_engine`: notify) has none.

The loader, the engine, DryRunActions and RecordingActions need no change.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache

from ir.playbook.steps.model import NODE, POD, ActionSpec, At, Checks, Param

__all__ = [
    "NODE",
    "POD",
    "ActionSpec",
    "At",
    "Checks",
    "Param",
    "action_spec",
    "action_specs",
    "unimplemented",
]


@cache
def _specs() -> dict[str, ActionSpec]:
    found: list[ActionSpec] = []
    for info in pkgutil.iter_modules(__path__):
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPEC", None)
        if isinstance(spec, ActionSpec):
            found.append(spec)
    return {spec.name: spec for spec in sorted(found, key=lambda s: (s.rank, s.name))}


def action_specs() -> tuple[ActionSpec, ...]:
    """Every action, by rank."""
    return tuple(_specs().values())


def action_spec(name: str) -> ActionSpec:
    """The action called `name`. Raises KeyError when there is none."""
    try:
        return _specs()[name]
    except KeyError:
        raise KeyError(f"no playbook action {name!r}") from None


def unimplemented(names: Iterable[str]) -> list[str]:
    """The actions a `ResponseActions` implementation must perform (all but those the engine
    sends itself) that are not among `names`."""
    have = set(names)
    return [s.name for s in action_specs() if not s.sent_by_engine and s.name not in have]
