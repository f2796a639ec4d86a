"""Capturing one container into an open CaptureSession: every container collector, in order of
volatility, under the scope `containers/<name>`, then a `capture.json` saying how it went.

This is the library entry `ir capture container` uses, and `ir capture pod` reuses per container.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from ir.bundle.layout import safe_component
from ir.bundle.manifest import CollectorEntry
from ir.clock import parse_timestamp, rfc3339, utcnow
from ir.collect.base import Artifact
from ir.collect.registry import container_collectors
from ir.collect.runner import ProgressFn, RunContext
from ir.collect.session import CaptureSession
from ir.errors import IrError, UsageError
from ir.runtime.base import ContainerHandle, ContainerState

MiB = 1024 * 1024
GiB = 1024 * MiB


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


@dataclass
class ContainerTarget:
    """What each container collector gets as `ctx.target`."""

    handle: ContainerHandle
    options: CaptureOptions
    state_at_start: ContainerState
    sources: dict[str, Any] = field(default_factory=dict)  # collector -> what it read from

    @property
    def was_running(self) -> bool:
        return self.state_at_start.running


def capture_container(
    session: CaptureSession,
    handle: ContainerHandle,
    options: CaptureOptions | None = None,
    *,
    collectors: Sequence[str] | None = None,
    scope: str | None = None,
    progress: ProgressFn | None = None,
) -> list[CollectorEntry]:
    """Run the container collectors (all, or those named) for `handle` into `session`, under
    `scope` (default `containers/<name>`), then write `capture.json`. Every request made of the
    runtime goes to the manifest's actions. Never raises for a collector's failure (it is
    recorded); raises UsageError for an unknown collector name."""
    options = options or CaptureOptions()
    chosen = container_collectors(collectors)
    label = safe_component(handle.name, "container")
    scope = scope or f"containers/{label}"
    start = handle.state()
    target = ContainerTarget(handle, options, start)
    entries: list[CollectorEntry] = []
    for collector in chosen:
        entries += session.run(
            [collector],
            scope=scope,
            target=target,
            options=asdict(options),
            label=handle.label,
            container=handle.name,
            progress=progress,
        )
        drain_actions(session, handle)
    entries += session.run(
        [CaptureInfo()],
        scope=scope,
        target=target,
        options=asdict(options),
        label=handle.label,
        container=handle.name,
        progress=progress,
    )
    drain_actions(session, handle)
    return entries


def drain_actions(session: CaptureSession, handle: ContainerHandle) -> None:
    """Move the runtime's recorded requests into the manifest, keeping their times."""
    for action in handle.actions.drain():
        detail = dict(action.detail)
        if action.count > 1:
            detail.update(count=action.count, last_time=action.last_time)
        entry = session.writer.record_action(
            action.action, handle.label, outcome=action.outcome, **detail
        )
        entry.time = action.time


class CaptureInfo:
    """The last word on one container: backend and why, options, state at start and end."""

    name = "capture-info"

    def check(self, ctx: RunContext) -> None:
        return None

    def collect(self, ctx: RunContext) -> Any:
        target: ContainerTarget = ctx.target
        handle = target.handle
        try:
            end = handle.state()
        except IrError as exc:
            end = ContainerState("unknown")
            ctx.note(f"state at end unknown: {exc.message}")
        start = target.state_at_start
        exited = start.running and (not end.running or end.pid != start.pid)
        removal = handle.removal_seen()
        document = {
            "backend": handle.backend,
            "decisions": handle.decisions,
            "target": handle.target(),
            "options": asdict(target.options),
            "state_at_start": asdict(start),
            "state_at_end": asdict(end),
            "exited_during_capture": exited,
            "removal_seen": removal,
            "sources": target.sources,
            "finished_at": rfc3339(utcnow()),
        }
        artifact = Artifact(
            "capture.json",
            kind="capture-info",
            media_type="application/json",
            chunks=[json_bytes(document)],
        )
        if exited:
            artifact.status = "partial"
            artifact.error = (
                f"the container exited during the capture (was {start.status} pid {start.pid}, "
                f"now {end.status}): volatile state may be missing"
            )
            ctx.note(artifact.error)
        elif removal:
            artifact.status = "partial"
            artifact.error = (
                f"the runtime said the container was being removed during the capture "
                f"({removal}), though it was still {end.status} at the last look: state may be "
                "missing"
            )
            ctx.note(artifact.error)
        yield artifact


def json_bytes(document: Any) -> bytes:
    import json

    return (
        json.dumps(document, indent=1, sort_keys=True, ensure_ascii=True, default=str) + "\n"
    ).encode()


__all__ = ["CaptureOptions", "ContainerTarget", "capture_container", "drain_actions"]
