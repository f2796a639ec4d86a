"""JSON Pointers (RFC 6901): how a playbook names a field of an alert. `/output_fields/k8s.pod.name`
reads key "k8s.pod.name" of object "output_fields"; `~1` is '/', `~0` is '~'. A pointer only
reads a value: it is never formatted into text, a command or a URL."""

from __future__ import annotations

import re
from typing import Any

_MISSING = object()
_BAD_ESCAPE = re.compile(r"~(?![01])")


def pointer_problem(pointer: object) -> str | None:
    """Why `pointer` is not a JSON Pointer; None when it is one."""
    if not isinstance(pointer, str):
        return "a JSON Pointer must be a string"
    if pointer and not pointer.startswith("/"):
        return f"JSON Pointer {pointer!r} must start with '/' (e.g. /output_fields/k8s.pod.name)"
    if _BAD_ESCAPE.search(pointer):
        return f"JSON Pointer {pointer!r}: '~' must be followed by 0 or 1"
    return None


def split_pointer(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def resolve_pointer(document: Any, pointer: str) -> tuple[bool, Any]:
    """(found, value) of `pointer` in `document`; (False, None) when any step is missing."""
    value: Any = document
    for part in split_pointer(pointer):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif (
            isinstance(value, list) and part.isdigit() and (part == "0" or not part.startswith("0"))
        ):
            index = int(part)
            value = value[index] if index < len(value) else _MISSING
        else:
            return False, None
        if value is _MISSING:
            return False, None
    return True, value
