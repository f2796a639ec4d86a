"""The collector contract: what a collector is (`Collector`), where its artifacts go (`Scope`),
what it is given (`CaptureContext`, whose `target` is the container's `CaptureTarget` with the
`CaptureOptions` it captures with, or a pod's, for the Kubernetes collectors), what it yields
(`Artifact`), and the helpers every collector shares (`json_bytes`, `to_epoch_text`).

Collectors import ir.collect from here only, never the modules that register or run them
(`registry`, `runner`, `session`, `container`). May import ir.runtime, ir.clock and ir.errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any, Literal, Protocol, TypeVar

from ir.clock import parse_timestamp, utcnow
from ir.errors import Unsupported, UsageError
from ir.runtime.base import ContainerHandle, ContainerState

__all__ = [
    "Artifact",
    "CaptureContext",
    "CaptureOptions",
    "CaptureTarget",
    "Collector",
    "ContainerContext",
    "Scope",
    "Unsupported",
    "json_bytes",
    "to_epoch_text",
]

#: Where a collector's artifacts go, and how often a capture runs it: once per container, under
#: `containers/<name>/` ("container"), or once per pod, at the top of the bundle ("pod").
Scope = Literal["container", "pod"]

TargetT_co = TypeVar("TargetT_co", covariant=True)  # what a context gives as `target`
TargetT_contra = TypeVar("TargetT_contra", contravariant=True)  # what a collector takes

MiB = 1024 * 1024
GiB = 1024 * MiB


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


@dataclass
class CaptureOptions:
    """What the operator asked for; recorded in capture.json."""

    max_file_size: int = 64 * MiB  # per file content captured
    max_diff_size: int = 1 * GiB  # total file content captured per container
    include_env: bool = False  # environment values in clear (names are always listed)
    since: str | None = None  # logs: RFC 3339 time, epoch seconds, or a duration back (10m, 2h, 1d)
    tail: int | None = None  # logs: last N lines per instance
    allow_exec: bool = False  # may run read-only commands inside the container (recorded)
    hash_limit: int = 512 * MiB  # executables larger than this are not hashed

    def since_epoch(self) -> str | None:
        """`since` as the Docker API wants it: "seconds.nanoseconds" (UTC)."""
        return to_epoch_text(self.since) if self.since else None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def to_epoch_text(text: str) -> str:
    """A time as "seconds.nanoseconds": RFC 3339 (nanoseconds kept), epoch, or a duration ago."""
    m = _DURATION.match(text.strip())
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return f"{(utcnow() - timedelta(seconds=float(m.group(1)) * unit)).timestamp():.9f}"
    frac = re.search(r"\.(\d+)", text.split("T")[-1]) if "T" in text else None
    try:
        parsed = parse_timestamp(text)
    except ValueError as exc:
        raise UsageError(f"bad time {text!r}: {exc}") from None
    seconds = int(parsed.utc.timestamp())
    nanos = (frac.group(1) + "000000000")[:9] if frac else f"{parsed.utc.microsecond * 1000:09d}"
    return f"{seconds}.{nanos}"


def json_bytes(document: Any) -> bytes:
    """A JSON artifact's bytes: indented, keys sorted, ASCII, anything else as str."""
    return (
        json.dumps(document, indent=1, sort_keys=True, ensure_ascii=True, default=str) + "\n"
    ).encode()


class CaptureTarget(Protocol):
    """The container a container collector captures, as `ctx.target`. A target must:

    - give the `handle` every request to the runtime goes through;
    - give the `options` the operator asked for;
    - give the state the container was in when the capture started, and whether it was running;
    - keep `sources`, where each collector writes what it read from (capture.json shows it).

    `ir.collect.container.ContainerTarget` is the one a capture builds."""

    @property
    def handle(self) -> ContainerHandle: ...

    @property
    def options(self) -> CaptureOptions: ...

    @property
    def state_at_start(self) -> ContainerState: ...

    @property
    def was_running(self) -> bool: ...

    @property
    def sources(self) -> dict[str, Any]: ...  # collector name -> what it read from


class CaptureContext(Protocol[TargetT_co]):
    """What a collector gets: its target, the options, and a way to say what it did and what it
    could not get. `ir.collect.runner.RunContext` is the one the runner gives; a container
    collector's target is a `CaptureTarget` (see `ContainerContext`), a Kubernetes collector's
    the pod as `ir.cluster.context.KubeTarget`. A context gives no way to the bundle itself: the
    runner writes what the collector yields."""

    @property
    def target(self) -> TargetT_co: ...

    @property
    def options(self) -> dict[str, Any]: ...

    def note(self, text: str) -> None:
        """Say something about this collector's run (goes to its manifest entry)."""

    def shortfall(self, text: str) -> None:
        """Say what could not be got: a note, and the collector is then not "ok"."""

    def record_action(self, action: str, outcome: str = "ok", **detail: Any) -> None:
        """Record a request made of the target in the manifest's actions."""


#: What a container collector gets.
ContainerContext = CaptureContext[CaptureTarget]


class Collector(Protocol[TargetT_contra]):
    """A collector must have a `name` (the artifact family; its manifest entry), a `scope`, and:

    - `check(ctx)`: raise Unsupported(reason) when it does not apply; never return False;
    - `collect(ctx)`: yield Artifacts as `chunks` or `write`, never a whole artifact in memory.

    It keeps no state between captures: one object serves every capture (a module's `COLLECTOR`,
    registered in `ir.collect.registry`); all it needs comes in `ctx`."""

    name: str
    scope: Scope

    def check(self, ctx: CaptureContext[TargetT_contra]) -> None:
        """Raise Unsupported(reason) when this collector does not apply to the target."""

    def collect(self, ctx: CaptureContext[TargetT_contra]) -> Iterator[Artifact]:
        """Yield artifacts; raising records the collector as failed, and the capture goes on."""
        ...
