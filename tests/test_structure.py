"""The shape of the code (STYLE.md "Rooms", docs/architecture.md): every module under ir/ belongs
to a room, imports only rooms below its own, opens with a docstring, and stays under 600 lines.

Read from the source with `ast` (nothing is imported): an import inside a function or under
`if TYPE_CHECKING:` counts like any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ir"

# The rooms, top first: a module may import its own room and the rooms of the tiers below it,
# nothing above it and nothing beside it. The order is STYLE.md's table, which the code follows.
# cluster and serve share a tier because neither may import the other: serve knows no
# Kubernetes (it hands alerts to the playbook engine), and cluster implements the playbook's
# actions without the webhook server.
TIERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("cluster", "serve"),
    ("replay",),
    ("collect",),
    ("playbook",),
    ("runtime",),
    ("store",),
    ("bundle",),
    ("ground",),  # ir/__init__.py, ir/errors.py, ir/clock.py, ir/records/
)
GROUND = frozenset({"__init__", "errors", "clock", "records"})
RANK = {room: rank for rank, tier in enumerate(TIERS) for room in tier}

# Imports that break the order today and are not trivial to fix: (file, imported module). Each
# entry says why it is tolerated; the test fails for any other, and for an entry that is gone
# (then delete it here). None today.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()

MAX_LINES = 600
OVER_REASON = "over 600 lines because"
# Modules over MAX_LINES that are not split yet and cannot be edited in the change that added
# this test. Split pending (issue 18); delete an entry once its file is split.
OVERSIZED: frozenset[str] = frozenset()  # none left


@dataclass(frozen=True)
class Module:
    path: str  # relative to the repository: ir/store/s3.py
    name: str  # dotted: ir.store.s3
    room: str
    tree: ast.Module
    lines: int


@dataclass(frozen=True)
class Import:
    module: Module
    line: int
    target: (
        str  # the dotted name imported: ir.store.s3, or ir.TOOL_NAME for `from ir import TOOL_NAME`
    )
    room: str


def room_of(name: str) -> str:
    """The room of a dotted module name under ir (`ir.store.s3` -> store, `ir.errors` -> ground)."""
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in GROUND:
        return "ground"
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "ground"  # a name `from ir import X` takes from ir/__init__.py (TOOL_NAME, ...)


def modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        name = ".".join(parts)
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(relative))
        found.append(Module(relative.as_posix(), name, room_of(name), tree, len(text.splitlines())))
    return found


def _package_of(module: Module) -> list[str]:
    parts = module.name.split(".")
    return parts if module.path.endswith("__init__.py") else parts[:-1]


def imports(module: Module) -> Iterator[Import]:
    """Every import of an ir module in `module`, wherever it stands in the file."""
    for node in ast.walk(module.tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's package
                base = _package_of(module)[: len(_package_of(module)) - node.level + 1]
                stem = ".".join([*base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            # `from ir import store` names a room; `from ir.store import s3` is room store anyway.
            targets = [f"{stem}.{alias.name}" for alias in node.names] if stem == "ir" else [stem]
        for target in targets:
            if target == "ir" or target.startswith("ir."):
                yield Import(module, node.lineno, target, room_of(target))


def violation(imp: Import) -> str | None:
    """Why this import breaks the order, or None when it points down (or stays in its room)."""
    own, other = imp.module.room, imp.room
    if own == other:
        return None
    if RANK[other] < RANK[own]:
        return f"{other} is above {own}"
    if RANK[other] == RANK[own]:
        return f"{other} is beside {own} (same tier: neither imports the other)"
    return None


MODULES = modules()


def test_every_module_is_in_a_room() -> None:
    unknown = sorted(f"{m.path}: room {m.room!r}" for m in MODULES if m.room not in RANK)
    assert not unknown, "add the room to TIERS (and to STYLE.md / docs/architecture.md):\n" + (
        "\n".join(unknown)
    )


def test_imports_point_down() -> None:
    found = []
    seen = set()
    for module in MODULES:
        for imp in imports(module):
            why = violation(imp)
            if why is None:
                continue
            seen.add((module.path, imp.target))
            if (module.path, imp.target) not in KNOWN_EXCEPTIONS:
                found.append(f"{module.path}:{imp.line} imports {imp.target}: {why}")
    assert not found, "imports against the room order (STYLE.md, Rooms):\n" + "\n".join(found)
    gone = sorted(KNOWN_EXCEPTIONS - seen)
    assert not gone, f"no longer imported; delete from KNOWN_EXCEPTIONS: {gone}"


@pytest.mark.parametrize(
    ("source", "room", "target", "expected"),
    [
        ("ir/cluster/jobs.py", "cluster", "ir.serve.jobs", "serve is beside cluster"),
        ("ir/collect/x.py", "collect", "ir.cli.output", "cli is above collect"),
        ("ir/bundle/x.py", "bundle", "ir.store.local", "store is above bundle"),
        ("ir/store/x.py", "store", "ir.bundle.reader", None),
        ("ir/replay/x.py", "replay", "ir.errors", None),
    ],
)
def test_the_check_itself(source: str, room: str, target: str, expected: str | None) -> None:
    module = Module(source, source.removesuffix(".py").replace("/", "."), room, ast.Module(), 1)
    why = violation(Import(module, 1, target, room_of(target)))
    if expected is None:
        assert why is None
    else:
        assert why is not None and why.startswith(expected)


def test_every_module_says_what_it_holds() -> None:
    bare = sorted(m.path for m in MODULES if not ast.get_docstring(m.tree))
    assert not bare, f"open these modules with a docstring (STYLE.md, Habits 1): {bare}"


def test_modules_stay_under_600_lines() -> None:
    long = sorted(
        f"{m.path}: {m.lines} lines"
        for m in MODULES
        if m.lines > MAX_LINES
        and m.path not in OVERSIZED
        and OVER_REASON not in (ast.get_docstring(m.tree) or "")
    )
    assert not long, (
        f"split along a seam (STYLE.md, Habits 12), or say in the module docstring why it is "
        f"'{OVER_REASON} ...':\n" + "\n".join(long)
    )


def test_oversized_list_is_current() -> None:
    sizes = {m.path: m.lines for m in MODULES}
    done = sorted(path for path in OVERSIZED if sizes.get(path, 0) <= MAX_LINES)
    assert not done, f"at most {MAX_LINES} lines now (or gone); delete from OVERSIZED: {done}"
