"""What a playbook action is: `ActionSpec`, its `Param`s, and `Checks`, the typed readers a
param check reports its problems through (the loader's, which knows the lines and columns).

May import ir.playbook.alerts (for `Target`) only: the loader, the spec and the engine import
this, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

from ir.playbook.alerts import Target

POD, NODE = "pod", "node"

At = tuple[str | int, ...]
"""Where a value stands in the playbook document: ("steps", 2, "labels")."""


class Checks(Protocol):
    """The loader's typed readers: each records a problem at `at` (with its line and column)
    and returns None when the value is wrong, else the value read."""

    def error(self, at: At, message: str, *, at_key: bool = False) -> None: ...

    def mapping(self, value: Any, at: At) -> dict[str, Any] | None: ...

    def string(self, value: Any, at: At, *, choices: Iterable[str] | None = None) -> str | None: ...

    def boolean(self, value: Any, at: At) -> bool | None: ...

    def integer(self, value: Any, at: At, low: int, high: int) -> int | None: ...

    def number(self, value: Any, at: At, low: float, high: float) -> float | None: ...

    def strings(self, value: Any, at: At) -> tuple[str, ...]: ...

    def size(self, value: Any, at: At) -> int | None: ...


Check = Callable[[Checks, Any, At], Any]
"""Checks one param's value, found at `at`, recording each problem through `Checks`. Returns the
value the step keeps: the one given, or its normal form (a size in bytes for '2GiB')."""

StepCheck = Callable[[Checks, Mapping[str, Any], At], None]
"""Checks what concerns more than one param of a step, at the step (`at`). Runs before the
params' own checks."""

Needs = Callable[[Mapping[str, Any], Target], str | None]
"""What a step with these params needs in this target: POD, NODE (a node, or a pod on one) or
None."""

OnNode = Callable[[Mapping[str, Any], bool], bool]
"""Whether a step with these params changes a node, given whether the target names a pod."""


@dataclass(frozen=True)
class Param:
    """One parameter a step of the action may carry."""

    name: str
    check: Check
    doc: str  # one line: what it does, its default
    required: bool = False  # missing: "missing required key '<name>'" at the step
    in_plan: bool = True  # False: left out of the offline dry run's "would ..." line


@dataclass(frozen=True)
class ActionSpec:
    """One playbook action, declared once (ir/playbook/steps/<name>.py, as `SPEC`). The action
    list, the destructive set, the loader's allowed keys and param checks, the engine's need and
    node logic, and the offline dry run's plan are all read from here."""

    name: str  # what a step's `action:` says; also the implementation's name in ClusterActions
    doc: str  # one line: what it does and what ok / partial mean for it
    params: tuple[Param, ...] = ()  # in this order in "allowed: ..." and when checked
    _: KW_ONLY
    rank: int  # where it stands in the action list (error messages, docs): lowest first
    destructive: bool = False  # changes or removes the workload: behind the capture gate
    needs: str | None = None  # what the target must name whatever the params: POD, NODE, None
    needs_for: Needs | None = None  # where the params or the target decide instead (label)
    on_node: OnNode | None = None  # whether it changes a node (node evidence first); default no
    check: StepCheck | None = None  # checks across params (notify: exactly one of url...)
    sent_by_engine: bool = False  # the engine performs it itself (notify): no ResponseActions
    default_when: str = "always"  # the step's condition when it gives no `when`

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def need(self, params: Mapping[str, Any], target: Target) -> str | None:
        """What a step with `params` needs in `target` (POD, NODE or None): a target without it
        makes the step "skipped"."""
        return self.needs_for(params, target) if self.needs_for is not None else self.needs

    def acts_on_node(self, params: Mapping[str, Any], target_has_pod: bool) -> bool:
        """Whether a step with `params` changes a node (it then needs node evidence first)."""
        return self.on_node is not None and self.on_node(params, target_has_pod)

    def acts_on(self, params: Mapping[str, Any], target: Target) -> str:
        """What a step with `params` acts on in `target`: NODE or POD (the dry run says it)."""
        if self.acts_on_node(params, bool(target.pod)) or self.need(params, target) == NODE:
            return NODE
        return POD

    def validate(self, c: Checks, params: dict[str, Any], at: At) -> None:
        """Check a step's params (their keys are already known to be allowed), recording each
        problem through `c`; put each param's normal form into `params`."""
        if self.check is not None:
            self.check(c, params, at)
        for param in self.params:
            if param.name in params:
                params[param.name] = param.check(c, params[param.name], (*at, param.name))
            elif param.required:
                c.error(at, f"missing required key {param.name!r}")

    def describe(self) -> str:
        """Its docs: one line for the action, one per param."""
        traits = [
            t
            for t in (
                "destructive" if self.destructive else "",
                f"needs a {self.needs}" if self.needs else "",
                "sent by the engine" if self.sent_by_engine else "",
            )
            if t
        ]
        head = f"{self.name}" + (f" ({', '.join(traits)})" if traits else "") + f": {self.doc}"
        return "\n".join(
            [head]
            + [f"  {p.name}{' (required)' if p.required else ''}: {p.doc}" for p in self.params]
        )
