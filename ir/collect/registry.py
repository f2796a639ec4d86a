"""The container collectors by name, in the order a capture runs them (most volatile first,
after the metadata that identifies the target). Adding a collector is adding a module with a
`COLLECTOR` object and its name here."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ir.collect.base import Collector
from ir.errors import UsageError

# name -> module under ir.collect; order = run order
CONTAINER_COLLECTORS: dict[str, str] = {
    "metadata": "ir.collect.metadata",
    "network": "ir.collect.network",
    "processes": "ir.collect.processes",
    "filesystem": "ir.collect.filesystem",
    "logs": "ir.collect.logs",
}


def collector(name: str) -> Collector:
    if name not in CONTAINER_COLLECTORS:
        raise UsageError(f"unknown collector {name!r} (known: {', '.join(CONTAINER_COLLECTORS)})")
    module = importlib.import_module(CONTAINER_COLLECTORS[name])
    return module.COLLECTOR  # type: ignore[no-any-return]


def container_collectors(names: Sequence[str] | None = None) -> list[Collector]:
    """The named collectors (all when None), always in run order."""
    wanted = list(CONTAINER_COLLECTORS) if not names else [n.strip() for n in names if n.strip()]
    for name in wanted:
        if name not in CONTAINER_COLLECTORS:
            raise UsageError(
                f"unknown collector {name!r} (known: {', '.join(CONTAINER_COLLECTORS)})"
            )
    return [collector(name) for name in CONTAINER_COLLECTORS if name in wanted]
