"""What the views' options share: the common ones (`CONTAINER`, `TEXT_OR_JSON`, `output(...)`)
and the reading of a value given as text -- a time in any format ir parses (`time_option`), a
size (`size_option`) -- raising UsageError that names the option (exit 2)."""

from __future__ import annotations

from datetime import datetime

from ir.clock import parse_timestamp
from ir.errors import UsageError
from ir.replay.evidence import Evidence
from ir.replay.views.model import Option


def output(*choices: str, help: str | None = None) -> Option:
    """`-o/--output`: one of `choices`, the first by default (every view has one)."""
    return Option(
        "--output", help, short="-o", choices=choices, default=choices[0], show_default=True
    )


CONTAINER = Option("--container", "Only this container.")
TEXT_OR_JSON = output("text", "json", help="text for people, json for machines.")


def time_option(value: str | None, ev: Evidence, name: str) -> datetime | None:
    """A time option in any format ir parses (year-less: the capture's year), in UTC."""
    if value is None:
        return None
    try:
        return parse_timestamp(value, reference=ev.reference_time).utc
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def size_option(value: str | None, name: str) -> int | None:
    """A size option in bytes: 4096, 10k, 2M, 1G (binary multiples)."""
    if value is None:
        return None
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    factor = 1
    for suffix, mult in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if text.endswith(suffix):
            text, factor = text[:-1], mult
            break
    try:
        return int(float(text) * factor)
    except ValueError:
        raise UsageError(f"{name}: not a size: {value!r} (e.g. 4096, 10k, 2M)") from None
