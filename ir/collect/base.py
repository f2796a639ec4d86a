"""What a collector is, and what it yields."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from ir.errors import Unsupported

__all__ = ["Artifact", "CaptureContext", "Collector", "Unsupported"]


@dataclass
class Artifact:
    """One artifact a collector produces, as a stream: either `chunks` (an iterable of bytes,
    consumed lazily) or `write` (a function that writes into a binary sink, e.g. a tarfile)."""

    name: str  # relative to the collector's scope; the runner adds `containers/<name>/` etc.
    # what replay looks for: "processes", "sockets", "fs-changes", "fs-files", "logs", ...
    kind: str
    media_type: str
    chunks: Iterable[bytes] | None = None
    write: Callable[[IO[bytes]], None] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # a collector may mark an artifact partial itself (e.g. container exited)
    error: str | None = None


class CaptureContext(Protocol):
    """What a collector gets: the target, the options, and a way to record what it did."""

    options: dict[str, Any]

    def note(self, text: str) -> None: ...

    def record_action(self, action: str, **detail: Any) -> None: ...


class Collector(Protocol):
    name: str

    def check(self, ctx: Any) -> None:
        """Raise Unsupported(reason) when this collector does not apply to the target."""

    def collect(self, ctx: Any) -> Iterator[Artifact]:
        """Yield artifacts; raising records the collector as failed, and the capture goes on."""
        ...
