"""Capturing one container into an open CaptureSession: every container collector, in order of
volatility, under the scope `containers/<name>`, then a `capture.json` saying how it went.

This is the library entry `ir capture container` uses, and `ir capture pod` reuses per container.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ir.bundle.layout import safe_component
from ir.bundle.manifest import CollectorEntry
from ir.clock import rfc3339, utcnow
from ir.collect.base import (
    Artifact,
    CaptureOptions,
    CaptureTarget,
    ContainerContext,
    Scope,
    json_bytes,
)
from ir.collect.registry import container_collectors
from ir.collect.runner import ProgressFn
from ir.collect.session import CaptureSession
from ir.errors import IrError
from ir.runtime.base import ContainerHandle, ContainerState


@dataclass
class ContainerTarget:
    """What each container collector gets as `ctx.target`: a `CaptureTarget`."""

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
    target: CaptureTarget = ContainerTarget(handle, options, start)  # mypy checks it is one
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
    session.record_runtime_actions(handle.actions.drain(), handle.label)


class CaptureInfo:
    """The last word on one container: backend and why, options, state at start and end."""

    name = "capture-info"
    scope: Scope = "container"

    def check(self, ctx: ContainerContext) -> None:
        return None

    def collect(self, ctx: ContainerContext) -> Iterator[Artifact]:
        target = ctx.target
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


__all__ = ["CaptureOptions", "ContainerTarget", "capture_container", "drain_actions"]
