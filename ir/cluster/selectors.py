"""Label selector evaluation (matchLabels + matchExpressions), as the API server does it."""

from __future__ import annotations

from typing import Any


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against a label set. An empty selector matches everything; None nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def service_selects(service: dict[str, Any], labels: dict[str, str]) -> bool:
    """Services use a plain map selector; an empty or missing one selects no pods."""
    selector = service.get("spec", {}).get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def selector_keys(selector: dict[str, Any] | None) -> set[str]:
    """The label keys a selector constrains (what must change to stop matching)."""
    if not selector:
        return set()
    keys = set((selector.get("matchLabels") or {}).keys())
    keys.update(e.get("key") for e in selector.get("matchExpressions") or [] if e.get("key"))
    return keys
