"""What a collector is, what it is given and what it yields: `Collector`, the `CaptureContext`
it gets with the `CaptureTarget` (the container) and `CaptureOptions` it captures with, and
`Artifact`. Collectors import ir.collect from here only, never the modules that run them.
May import ir.runtime, ir.clock and ir.errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any, Protocol

from ir.clock import parse_timestamp, utcnow
from ir.errors import Unsupported, UsageError
from ir.runtime.base import ContainerHandle, ContainerState

__all__ = [
    "Artifact",
    "CaptureContext",
    "CaptureOptions",
    "CaptureTarget",
    "Collector",
    "Unsupported",
    "json_bytes",
    "to_epoch_text",
]

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


class CaptureContext(Protocol):
    """What a collector gets: the target, the options, and a way to say what it did and what it
    could not get. `ir.collect.runner.RunContext` is the one the runner gives."""

    @property
    def target(self) -> CaptureTarget: ...

    @property
    def options(self) -> dict[str, Any]: ...

    def note(self, text: str) -> None:
        """Say something about this collector's run (goes to its manifest entry)."""

    def shortfall(self, text: str) -> None:
        """Say what could not be got: a note, and the collector is then not "ok"."""

    def record_action(self, action: str, outcome: str = "ok", **detail: Any) -> None:
        """Record a request made of the target in the manifest's actions."""


class Collector(Protocol):
    """A collector must have a `name` (the artifact family) and:

    - `check(ctx)`: raise Unsupported(reason) when it does not apply; never return False;
    - `collect(ctx)`: yield Artifacts as `chunks` or `write`, never a whole artifact in memory."""

    name: str

    def check(self, ctx: CaptureContext) -> None:
        """Raise Unsupported(reason) when this collector does not apply to the target."""

    def collect(self, ctx: CaptureContext) -> Iterator[Artifact]:
        """Yield artifacts; raising records the collector as failed, and the capture goes on."""
        ...
