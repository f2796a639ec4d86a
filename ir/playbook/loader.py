"""Load and validate playbooks (YAML): every problem is reported with its file, line and column,
taken from the YAML node marks, and all problems of a file are reported at once.

Refused outright: anchors/aliases (expansion bombs), custom tags, duplicate keys, unknown keys
(with a did-you-mean), files over 256 KiB. A step's keys and params are those its action declares
(ir/playbook/steps/<action>.py), checked through the typed readers here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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
from ir.playbook.steps import action_spec
from ir.playbook.yamlcheck import (
    Checker,
    Fatal,
    Path_,
    PlaybookError,
    Problem,
    Tree,
)

MAX_FILE = 256 * 1024
PLAYBOOK_SUFFIXES = (".yaml", ".yml")


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
        tree = Tree(nodes[0])
    except Fatal as exc:
        return None, [Problem(file, exc.line, exc.column, "", exc.message)]
    checker = Checker(file, tree)
    playbook = _check_playbook(checker, tree.data, file)
    if checker.problems:
        return None, sorted(checker.problems, key=lambda p: (p.line, p.column))
    return playbook, []


def _check_playbook(c: Checker, data: Any, file: str) -> Playbook | None:
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


def _check_trigger(c: Checker, value: Any, at: Path_) -> Trigger | None:
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


def _check_target(c: Checker, value: Any, at: Path_) -> dict[str, dict[str, str]]:
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


def _check_steps(c: Checker, value: Any, at: Path_) -> tuple[Step, ...]:
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
