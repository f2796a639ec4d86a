"""Strict JSON for untrusted alert bodies: size and depth limits, no duplicate keys, no NaN or
Infinity, UTF-8 only, an object at the top. Every failure is an `AlertError` with a reason."""

from __future__ import annotations

import json
from typing import Any

from ir.playbook.alerts.model import AlertError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def decode_json(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """Parse one JSON object from `data`.

    Raises AlertError when the body is larger than `max_bytes`, not UTF-8, not JSON, has duplicate
    keys, NaN/Infinity, nesting deeper than `max_depth`, or is not an object at the top level.
    """
    if len(data) > max_bytes:
        raise AlertError(f"body of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AlertError(f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise AlertError("empty body")
    try:
        document = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except RecursionError:
        raise AlertError(f"JSON nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise AlertError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # duplicate keys, NaN, integers too long to convert
        raise AlertError(f"invalid JSON: {exc}") from None
    depth = _depth(document)
    if depth > max_depth:
        raise AlertError(f"JSON nested {depth} levels deep; the limit is {max_depth}")
    if not isinstance(document, dict):
        raise AlertError(f"expected a JSON object at the top level, got {type(document).__name__}")
    return document


def _depth(document: Any) -> int:
    """Nesting depth, iteratively (a hostile document must not exhaust the stack here either)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in value)
    return deepest
