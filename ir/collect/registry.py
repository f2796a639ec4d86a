"""The registry of collectors: `Registry`, an ordered mapping name -> collector in which each
collector says its own `scope`; and `CONTAINER_COLLECTORS`, the container collectors in the
order a capture runs them (most volatile first, after the metadata that identifies the target).

A collector is registered once, in one registry's list: the container collectors here (each
module's `COLLECTOR`), the Kubernetes collectors in `ir.cluster.context.POD_COLLECTORS` (they
read the API server, a room this one may not import). The run order is the list's, so it is
decided in one place; tests/collectors/test_registry.py checks that every collector is
registered and every registered collector has its test.
May import the collector modules of ir.collect, ir.collect.base and ir.errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ir.collect import filesystem, logs, metadata, network, processes
from ir.collect.base import CaptureTarget, Collector, Scope
from ir.errors import UsageError

CollectorT = TypeVar("CollectorT", bound=Collector[Any])


class Registry(Mapping[str, CollectorT]):
    """Collectors by name, in run order. Names are unique; iterating gives the names."""

    def __init__(self, *collectors: CollectorT) -> None:
        self._by_name: dict[str, CollectorT] = {}
        for collector in collectors:
            if collector.name in self._by_name:
                raise ValueError(f"collector {collector.name!r} registered twice")
            self._by_name[collector.name] = collector

    def __getitem__(self, name: str) -> CollectorT:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def named(self, name: str) -> CollectorT:
        """The collector of that name; UsageError naming the known ones when there is none."""
        if name not in self._by_name:
            raise UsageError(f"unknown collector {name!r} (known: {', '.join(self)})")
        return self._by_name[name]

    def select(self, names: Sequence[str] | None = None) -> list[CollectorT]:
        """The named collectors (all when None or empty), always in run order; UsageError for
        a name not registered."""
        wanted = list(self) if not names else [n.strip() for n in names if n.strip()]
        for name in wanted:
            self.named(name)
        return [collector for name, collector in self._by_name.items() if name in wanted]

    def in_scope(self, scope: Scope) -> list[CollectorT]:
        """The collectors of one scope, in run order."""
        return [c for c in self._by_name.values() if c.scope == scope]


CONTAINER_COLLECTORS: Registry[Collector[CaptureTarget]] = Registry(
    metadata.COLLECTOR,
    network.COLLECTOR,
    processes.COLLECTOR,
    filesystem.COLLECTOR,
    logs.COLLECTOR,
)


def collector(name: str) -> Collector[CaptureTarget]:
    return CONTAINER_COLLECTORS.named(name)


def container_collectors(names: Sequence[str] | None = None) -> list[Collector[CaptureTarget]]:
    """The named container collectors (all when None), always in run order."""
    return CONTAINER_COLLECTORS.select(names)
