"""Alert intake: strict JSON, then one parser module per source (found by convention: a module
here with `SOURCE`, `detect(document)` and `parse(document)`), all producing `Alert`s."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from ir.playbook.alerts.decode import MAX_BYTES, MAX_DEPTH, decode_json
from ir.playbook.alerts.model import (
    PRIORITIES,
    Alert,
    AlertError,
    Target,
    normalize_priority,
    priority_rank,
)

__all__ = [
    "PRIORITIES",
    "Alert",
    "AlertError",
    "Target",
    "decode_json",
    "load_alert_file",
    "normalize_priority",
    "parse_alerts",
    "parse_document",
    "priority_rank",
    "source_names",
]


@cache
def _sources() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "SOURCE") and hasattr(module, "detect") and hasattr(module, "parse"):
            found[module.SOURCE] = module
    return found


def source_names() -> list[str]:
    return sorted(_sources())


def detect_source(document: dict[str, Any]) -> str:
    """Which source wrote this document. Raises AlertError when none or more than one claims it."""
    claimed = [name for name, module in _sources().items() if module.detect(document)]
    if not claimed:
        raise AlertError(
            "not an alert of a known source (" + ", ".join(source_names()) + "): "
            "no Falco 'rule'/'priority', Alertmanager 'alerts', or GuardDuty finding"
        )
    if len(claimed) > 1:
        raise AlertError(f"ambiguous alert: looks like {' and '.join(claimed)}")
    return claimed[0]


def parse_document(document: dict[str, Any], source: str | None = None) -> list[Alert]:
    """Alerts in one decoded document; `source` None means detect it. Raises AlertError."""
    sources = _sources()
    if source is None:
        source = detect_source(document)
    elif source not in sources:
        raise AlertError(f"unknown alert source {source!r} (known: {', '.join(source_names())})")
    elif not sources[source].detect(document):
        raise AlertError(f"the body is not a {source} alert")
    alerts: list[Alert] = sources[source].parse(document)
    return alerts


def parse_alerts(
    data: bytes,
    source: str | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> list[Alert]:
    """Strictly decode then parse an untrusted body. Raises AlertError with a reason."""
    return parse_document(decode_json(data, max_bytes=max_bytes, max_depth=max_depth), source)


def load_alert_file(path: str | Path, source: str | None = None) -> list[Alert]:
    """Alerts in a file (one JSON document). Raises AlertError when unreadable or malformed."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise AlertError(f"cannot read alert file {path}: {exc.strerror}") from None
    try:
        return parse_alerts(data, source)
    except AlertError as exc:
        raise AlertError(f"{path}: {exc.message}") from None
