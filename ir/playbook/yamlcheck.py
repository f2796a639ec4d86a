"""The YAML side of playbook validation: a document read into plain data with each value's line
and column (anchors, aliases, merge keys, custom tags, non-string keys and duplicates refused
outright), and the typed readers that record a Problem at the right place instead of raising.
ir.playbook.loader checks a playbook's structure with them; each action's params are checked
through the same readers (ir/playbook/steps/)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from ir.errors import UsageError
from ir.playbook.steps import At

MAX_DEPTH = 20

Path_ = At  # where a value stands in the document: ("steps", 2, "labels")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    where: str
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "where": self.where,
            "message": self.message,
        }


class PlaybookError(UsageError):
    """One or more playbooks are invalid; `problems` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        head = str(problems[0]) if problems else "invalid playbook"
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(head + more)


class Fatal(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


def where_text(at: Path_) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
)


class Tree:
    """Plain Python data built from the YAML node tree, with each path's line and column."""

    def __init__(self, root: yaml.Node) -> None:
        self.marks: dict[Path_, tuple[int, int]] = {}  # where each value starts
        self.key_marks: dict[Path_, tuple[int, int]] = {}  # where each mapping key starts
        self._seen: set[int] = set()
        self._constructor = yaml.SafeLoader("")
        self.data = self._build(root, (), 0)

    def _build(self, node: yaml.Node, at: Path_, depth: int) -> Any:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if id(node) in self._seen:
            raise Fatal(line, column, "YAML anchors and aliases are not allowed in playbooks")
        self._seen.add(id(node))
        if depth > MAX_DEPTH:
            raise Fatal(line, column, f"nested deeper than {MAX_DEPTH} levels")
        self.marks[at] = (line, column)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                kline, kcol = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag != "tag:yaml.org,2002:str"
                ):
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                    raise Fatal(
                        kline,
                        kcol,
                        f"mapping key {shown!r} is not a plain string (YAML reads "
                        f"it as {key_node.tag.rsplit(':', 1)[-1]}); quote it",
                    )
                key = str(key_node.value)
                if key == "<<":
                    raise Fatal(kline, kcol, "YAML merge keys are not allowed in playbooks")
                if key in result:
                    raise Fatal(
                        kline, kcol, f"duplicate key {key!r} in {where_text(at) or 'document'}"
                    )
                self.key_marks[(*at, key)] = (kline, kcol)
                result[key] = self._build(value_node, (*at, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*at, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag not in SCALAR_TAGS:
            raise Fatal(line, column, f"custom YAML tag {node.tag!r} is not allowed")
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise Fatal(line, column, f"unreadable value: {exc}") from None


class Checker:
    def __init__(self, file: str, tree: Tree) -> None:
        self.file = file
        self.tree = tree
        self.problems: list[Problem] = []

    def error(self, at: Path_, message: str, *, at_key: bool = False) -> None:
        """Record a problem at the value of `at` (or at its key with `at_key`)."""
        if at_key and at in self.tree.key_marks:
            line, column = self.tree.key_marks[at]
        else:
            probe = at
            while probe not in self.tree.marks and probe:
                probe = probe[:-1]
            line, column = self.tree.marks.get(probe, (1, 1))
        self.problems.append(Problem(self.file, line, column, where_text(at), message))

    # -- typed readers: return None (and record a problem) when the value is wrong ------------
    def mapping(self, value: Any, at: Path_) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.error(at, f"must be a mapping, got {type_name(value)}")
        return None

    def keys(
        self,
        mapping: dict[str, Any],
        at: Path_,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> None:
        allowed = tuple(allowed)
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.error(
                    (*at, key),
                    f"unknown key {key!r}{suggestion}; allowed: {', '.join(allowed)}",
                    at_key=True,
                )
        for key in required:
            if key not in mapping:
                self.error(at, f"missing required key {key!r}")

    def string(self, value: Any, at: Path_, *, choices: Iterable[str] | None = None) -> str | None:
        if not isinstance(value, str) or not value:
            self.error(at, f"must be a non-empty string, got {type_name(value)}")
            return None
        if choices is not None:
            options = tuple(choices)
            if value not in options:
                self.error(at, f"{value!r} is not one of: {', '.join(options)}")
                return None
        return value

    def boolean(self, value: Any, at: Path_) -> bool | None:
        if isinstance(value, bool):
            return value
        self.error(at, f"must be true or false, got {type_name(value)}")
        return None

    def integer(self, value: Any, at: Path_, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(at, f"must be an integer, got {type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(at, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def number(self, value: Any, at: Path_, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(at, f"must be a number, got {type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(at, f"must be between {low:g} and {high:g}, got {value}")
            return None
        return float(value)

    def strings(self, value: Any, at: Path_) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.error(at, f"must be a list of strings, got {type_name(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            text = self.string(item, (*at, i))
            if text is not None:
                out.append(text)
        return tuple(out)

    def size(self, value: Any, at: Path_) -> int | None:
        """Bytes: an integer or '512MiB', '2GiB', '100MB'."""
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*([KMGT]i?B|B)?\s*", value)
            if match:
                units = {
                    None: 1,
                    "B": 1,
                    "KB": 10**3,
                    "MB": 10**6,
                    "GB": 10**9,
                    "TB": 10**12,
                    "KiB": 2**10,
                    "MiB": 2**20,
                    "GiB": 2**30,
                    "TiB": 2**40,
                }
                return int(match.group(1)) * units[match.group(2)]
        self.error(at, f"must be a size in bytes (e.g. 536870912 or '512MiB'), got {value!r}")
        return None


def type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing (null)",
    }.get(type(value), type(value).__name__)
