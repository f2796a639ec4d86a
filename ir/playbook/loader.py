"""Load and validate playbooks (YAML): every problem is reported with its file, line and column,
taken from the YAML node marks, and all problems of a file are reported at once.

Refused outright: anchors/aliases (expansion bombs), custom tags, duplicate keys, unknown keys
(with a did-you-mean), files over 256 KiB. A step's keys and params are those its action declares
(ir/playbook/steps/<action>.py), checked through the typed readers here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ir.errors import UsageError
from ir.playbook.alerts import PRIORITIES, normalize_priority, source_names
from ir.playbook.k8snames import is_dns1123_label
from ir.playbook.pointer import pointer_problem
from ir.playbook.spec import (
    ACTIONS,
    API_VERSION,
    DESTRUCTIVE,
    KIND,
    ON_CAPTURE_FAILURE,
    POINTER_FIELDS,
    TARGET_KINDS,
    WHEN,
    Playbook,
    Step,
    Trigger,
)
from ir.playbook.steps import At, action_spec

MAX_FILE = 256 * 1024
MAX_DEPTH = 20
PLAYBOOK_SUFFIXES = (".yaml", ".yml")

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


class _Fatal(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


def where_text(at: Path_) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
)


class _Tree:
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
            raise _Fatal(line, column, "YAML anchors and aliases are not allowed in playbooks")
        self._seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _Fatal(line, column, f"nested deeper than {MAX_DEPTH} levels")
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
                    raise _Fatal(
                        kline,
                        kcol,
                        f"mapping key {shown!r} is not a plain string (YAML reads "
                        f"it as {key_node.tag.rsplit(':', 1)[-1]}); quote it",
                    )
                key = str(key_node.value)
                if key == "<<":
                    raise _Fatal(kline, kcol, "YAML merge keys are not allowed in playbooks")
                if key in result:
                    raise _Fatal(
                        kline, kcol, f"duplicate key {key!r} in {where_text(at) or 'document'}"
                    )
                self.key_marks[(*at, key)] = (kline, kcol)
                result[key] = self._build(value_node, (*at, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*at, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag not in _SCALAR_TAGS:
            raise _Fatal(line, column, f"custom YAML tag {node.tag!r} is not allowed")
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise _Fatal(line, column, f"unreadable value: {exc}") from None


class _Checker:
    def __init__(self, file: str, tree: _Tree) -> None:
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
        self.error(at, f"must be a mapping, got {_type(value)}")
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
            self.error(at, f"must be a non-empty string, got {_type(value)}")
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
        self.error(at, f"must be true or false, got {_type(value)}")
        return None

    def integer(self, value: Any, at: Path_, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(at, f"must be an integer, got {_type(value)}")
            return None
        if not low <= value <= high:
            self.error(at, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def number(self, value: Any, at: Path_, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(at, f"must be a number, got {_type(value)}")
            return None
        if not low <= value <= high:
            self.error(at, f"must be between {low:g} and {high:g}, got {value}")
            return None
        return float(value)

    def strings(self, value: Any, at: Path_) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.error(at, f"must be a list of strings, got {_type(value)}")
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


def _type(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing (null)",
    }.get(type(value), type(value).__name__)


_TOP_KEYS = (
    "apiVersion",
    "kind",
    "name",
    "description",
    "order",
    "dry_run",
    "on_capture_failure",
    "node_actions_need_capture",
    "allow_protected_namespaces",
    "case",
    "trigger",
    "target",
    "steps",
)
_TRIGGER_KEYS = (
    "sources",
    "rules",
    "rule_patterns",
    "min_priority",
    "tags_any",
    "tags_all",
    "fields",
    "namespaces",
    "targets",
)
_STEP_COMMON = ("action", "name", "when")


def check_playbook_text(text: str, file: str) -> tuple[Playbook | None, list[Problem]]:
    """Validate one playbook's YAML text. Returns the playbook (None when invalid) and problems."""
    if len(text.encode("utf-8", "replace")) > MAX_FILE:
        return None, [Problem(file, 1, 1, "", f"file larger than {MAX_FILE} bytes")]
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [Problem(file, line, column, "", f"YAML syntax: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 1, 1, "", f"YAML syntax: {exc}")]
    nodes = [n for n in nodes if n is not None]
    if len(nodes) != 1:
        return None, [
            Problem(file, 1, 1, "", f"expected exactly one YAML document, found {len(nodes)}")
        ]
    try:
        tree = _Tree(nodes[0])
    except _Fatal as exc:
        return None, [Problem(file, exc.line, exc.column, "", exc.message)]
    checker = _Checker(file, tree)
    playbook = _check_playbook(checker, tree.data, file)
    if checker.problems:
        return None, sorted(checker.problems, key=lambda p: (p.line, p.column))
    return playbook, []


def _check_playbook(c: _Checker, data: Any, file: str) -> Playbook | None:
    top = c.mapping(data, ())
    if top is None:
        return None
    c.keys(top, (), _TOP_KEYS, required=("apiVersion", "kind", "name", "trigger", "steps"))
    if "apiVersion" in top:
        c.string(top["apiVersion"], ("apiVersion",), choices=(API_VERSION,))
    if "kind" in top:
        c.string(top["kind"], ("kind",), choices=(KIND,))
    name = c.string(top.get("name"), ("name",)) if "name" in top else None
    if name is not None and not is_dns1123_label(name):
        c.error(("name",), f"{name!r} must be a DNS-1123 label (a-z, 0-9, '-', at most 63)")
    description = c.string(top["description"], ("description",)) if "description" in top else ""
    order = c.integer(top["order"], ("order",), 0, 10000) if "order" in top else 100
    dry_run = c.boolean(top["dry_run"], ("dry_run",)) if "dry_run" in top else False
    on_failure = (
        c.string(top["on_capture_failure"], ("on_capture_failure",), choices=ON_CAPTURE_FAILURE)
        if "on_capture_failure" in top
        else "stop"
    )
    node_capture = (
        c.boolean(top["node_actions_need_capture"], ("node_actions_need_capture",))
        if "node_actions_need_capture" in top
        else True
    )
    protected = (
        c.boolean(top["allow_protected_namespaces"], ("allow_protected_namespaces",))
        if "allow_protected_namespaces" in top
        else False
    )
    case = c.string(top["case"], ("case",)) if "case" in top else None
    if case is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", case):
        c.error(("case",), "must be 1-64 letters, digits, '.', '_' or '-'")
    trigger = _check_trigger(c, top.get("trigger"), ("trigger",)) if "trigger" in top else None
    pointers = _check_target(c, top["target"], ("target",)) if "target" in top else {}
    steps = _check_steps(c, top.get("steps"), ("steps",)) if "steps" in top else ()

    if steps and on_failure != "continue":
        captured = False
        for index, step in enumerate(steps):
            if step.action == "capture":
                captured = True
            elif step.destructive and not captured:
                c.error(
                    ("steps", index),
                    f"destructive step {step.name!r} ({step.action}) has no capture "
                    "step before it: add a capture step, or set on_capture_failure: continue to act "
                    "without evidence",
                )
    if c.problems or name is None or trigger is None:
        return None
    return Playbook(
        name=name,
        path=file,
        line=c.tree.marks.get((), (1, 1))[0],
        trigger=trigger,
        steps=steps,
        description=description or "",
        order=order if order is not None else 100,
        dry_run=bool(dry_run),
        on_capture_failure=on_failure or "stop",
        node_actions_need_capture=node_capture is not False,
        allow_protected_namespaces=bool(protected),
        case=case,
        target_pointers=pointers,
    )


def _check_trigger(c: _Checker, value: Any, at: Path_) -> Trigger | None:
    trig = c.mapping(value, at)
    if trig is None:
        return None
    c.keys(trig, at, _TRIGGER_KEYS)
    known = source_names()
    sources = c.strings(trig.get("sources", []), (*at, "sources"))
    for i, source in enumerate(sources):
        if source not in known:
            c.error((*at, "sources", i), f"unknown source {source!r}; known: {', '.join(known)}")
    rules = c.strings(trig.get("rules", []), (*at, "rules"))
    patterns = []
    for i, text in enumerate(c.strings(trig.get("rule_patterns", []), (*at, "rule_patterns"))):
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            c.error((*at, "rule_patterns", i), f"invalid regular expression: {exc}")
    if not rules and not patterns and "fields" not in trig:
        c.error(
            at,
            "a trigger needs at least one of rules, rule_patterns or fields "
            "(a playbook must not fire on every alert)",
        )
    min_priority = None
    if "min_priority" in trig:
        raw = trig["min_priority"]
        min_priority = normalize_priority(raw) if isinstance(raw, str) else None
        if min_priority is None:
            c.error(
                (*at, "min_priority"),
                f"{raw!r} is not a priority; use one of: {', '.join(PRIORITIES)}",
            )
    fields: list[tuple[str, tuple[Any, ...]]] = []
    if "fields" in trig:
        field_map = c.mapping(trig["fields"], (*at, "fields")) or {}
        for pointer, accepted in field_map.items():
            problem = pointer_problem(pointer)
            if problem:
                c.error((*at, "fields", pointer), problem)
                continue
            values = tuple(accepted) if isinstance(accepted, list) else (accepted,)
            for value in values:
                if isinstance(value, (dict, list)) or value is None:
                    c.error(
                        (*at, "fields", pointer),
                        "accepted values must be strings, numbers or booleans",
                    )
            fields.append((pointer, values))
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    if "namespaces" in trig:
        ns = c.mapping(trig["namespaces"], (*at, "namespaces"))
        if ns is not None:
            c.keys(ns, (*at, "namespaces"), ("allow", "deny"))
            allow = c.strings(ns.get("allow", []), (*at, "namespaces", "allow"))
            deny = c.strings(ns.get("deny", []), (*at, "namespaces", "deny"))
            for key, patterns_ in (("allow", allow), ("deny", deny)):
                for i, pattern in enumerate(patterns_):
                    if not re.fullmatch(r"[a-z0-9*?\[\]!-]{1,63}", pattern):
                        c.error(
                            (*at, "namespaces", key, i),
                            f"{pattern!r} is not a namespace name or glob (a-z, 0-9, '-', '*', '?')",
                        )
    targets = c.strings(trig.get("targets", []), (*at, "targets"))
    for i, kind in enumerate(targets):
        if kind not in TARGET_KINDS:
            c.error((*at, "targets", i), f"{kind!r} is not one of: {', '.join(TARGET_KINDS)}")
    return Trigger(
        sources=sources,
        rules=rules,
        rule_patterns=tuple(patterns),
        min_priority=min_priority,
        tags_any=c.strings(trig.get("tags_any", []), (*at, "tags_any")),
        tags_all=c.strings(trig.get("tags_all", []), (*at, "tags_all")),
        fields=tuple(fields),
        namespaces_allow=allow,
        namespaces_deny=deny,
        targets=targets,
    )


def _check_target(c: _Checker, value: Any, at: Path_) -> dict[str, dict[str, str]]:
    by_source = c.mapping(value, at)
    if by_source is None:
        return {}
    known = source_names()
    c.keys(by_source, at, known)
    result: dict[str, dict[str, str]] = {}
    for source, mapping in by_source.items():
        if source not in known:
            continue
        fields = c.mapping(mapping, (*at, source))
        if fields is None:
            continue
        c.keys(fields, (*at, source), POINTER_FIELDS)
        result[source] = {}
        for field_name, pointer in fields.items():
            if field_name not in POINTER_FIELDS:
                continue
            problem = pointer_problem(pointer)
            if problem:
                c.error((*at, source, field_name), problem)
            else:
                result[source][field_name] = pointer
    return result


def _check_steps(c: _Checker, value: Any, at: Path_) -> tuple[Step, ...]:
    if not isinstance(value, list) or not value:
        c.error(at, "must be a non-empty list of steps")
        return ()
    steps: list[Step] = []
    names: set[str] = set()
    for index, raw in enumerate(value):
        here = (*at, index)
        step = c.mapping(raw, here)
        if step is None:
            continue
        action = (
            c.string(step.get("action"), (*here, "action"), choices=ACTIONS)
            if "action" in step
            else None
        )
        if "action" not in step:
            c.error(here, "missing required key 'action'")
        if action is None:
            continue
        spec = action_spec(action)
        c.keys(step, here, _STEP_COMMON + spec.param_names)
        when = spec.default_when
        if "when" in step:
            when = c.string(step["when"], (*here, "when"), choices=WHEN) or when
        name = f"{index + 1}-{action}"
        if "name" in step:
            given = c.string(step["name"], (*here, "name"))
            if given is not None and not is_dns1123_label(given):
                c.error((*here, "name"), "must be a DNS-1123 label (a-z, 0-9, '-')")
            name = given or name
        if name in names:
            c.error((*here, "name"), f"step name {name!r} is used twice")
        names.add(name)
        params = {k: v for k, v in step.items() if k not in _STEP_COMMON}
        spec.validate(c, params, here)
        line = c.tree.marks.get(here, (1, 1))[0]
        steps.append(Step(action=action, params=params, when=when, name=name, line=line))
    return tuple(steps)


def playbook_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named by `paths`: files as given, directories → their *.yaml/*.yml (sorted)."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.suffix in PLAYBOOK_SUFFIXES and p.is_file())
            )
        else:
            files.append(path)
    return files


def load_playbooks(paths: Iterable[str | Path]) -> tuple[list[Playbook], list[Problem]]:
    """Every playbook under `paths`, and every problem found (files that fail are left out).
    Two playbooks with the same name are a problem."""
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for file in playbook_files(paths):
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_FILE + 1)
            text = data.decode("utf-8")
        except OSError as exc:
            problems.append(Problem(str(file), 1, 1, "", f"cannot read: {exc.strerror}"))
            continue
        except UnicodeDecodeError:
            problems.append(Problem(str(file), 1, 1, "", "not UTF-8 text"))
            continue
        playbook, found = check_playbook_text(text, str(file))
        problems.extend(found)
        if playbook is None:
            continue
        if playbook.name in seen:
            problems.append(
                Problem(
                    str(file),
                    playbook.line,
                    1,
                    "name",
                    f"playbook name {playbook.name!r} already used by {seen[playbook.name]}",
                )
            )
            continue
        seen[playbook.name] = str(file)
        playbooks.append(playbook)
    playbooks.sort(key=lambda p: (p.order, p.name))
    return playbooks, problems


def load_playbooks_strict(paths: Iterable[str | Path]) -> list[Playbook]:
    """Like load_playbooks, but any problem (or no playbook at all) raises PlaybookError."""
    path_list = list(paths)
    playbooks, problems = load_playbooks(path_list)
    if problems:
        raise PlaybookError(problems)
    if not playbooks:
        raise UsageError("no playbooks found in " + ", ".join(str(p) for p in path_list))
    return playbooks


__all__ = [
    "DESTRUCTIVE",
    "PlaybookError",
    "Problem",
    "check_playbook_text",
    "load_playbooks",
    "load_playbooks_strict",
    "playbook_files",
]
