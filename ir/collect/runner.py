"""The collector runner: feeds each collector's artifacts into the bundle writer, catching every
failure per collector so one broken collector never stops the capture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ir.bundle.manifest import CollectorEntry
from ir.bundle.writer import BundleWriter
from ir.clock import rfc3339, utcnow
from ir.collect.base import Artifact, Collector
from ir.errors import Unsupported

ProgressFn = Callable[[str], None]


class RunContext:
    """A capture context bound to one scope (e.g. one container) of one bundle."""

    def __init__(
        self,
        writer: BundleWriter,
        *,
        scope: str | None,
        target: Any,
        options: dict[str, Any],
        target_label: str,
    ) -> None:
        self.writer = writer
        self.scope = scope  # e.g. "containers/web"; None for bundle-level artifacts
        self.target = target
        self.options = options
        self.target_label = target_label
        self._notes: list[str] = []
        self._shortfalls: list[str] = []

    def note(self, text: str) -> None:
        self._notes.append(text)

    def shortfall(self, text: str) -> None:
        """The collector could not get something it asked for: a note, and the collector is then
        "partial" (or "failed" with no artifact), never "ok" with an error in its notes."""
        self._notes.append(text)
        self._shortfalls.append(text)

    def take_shortfalls(self) -> list[str]:
        found, self._shortfalls = self._shortfalls, []
        return found

    def record_action(self, action: str, outcome: str = "ok", **detail: Any) -> None:
        self.writer.record_action(action, self.target_label, outcome=outcome, **detail)

    def take_notes(self) -> list[str]:
        notes, self._notes = self._notes, []
        return notes


def run_collectors(
    ctx: RunContext,
    collectors: Sequence[Collector],
    *,
    container: str | None = None,
    progress: ProgressFn | None = None,
) -> list[CollectorEntry]:
    entries = []
    for collector in collectors:
        if progress:
            progress(f"{collector.name}" + (f" [{container}]" if container else ""))
        entries.append(run_one(ctx, collector, container=container))
    return entries


def run_one(
    ctx: RunContext, collector: Collector, *, container: str | None = None
) -> CollectorEntry:
    """Run one collector; never raises except KeyboardInterrupt/SystemExit (capture interrupted)."""
    entry = CollectorEntry(
        name=collector.name, status="ok", started_at=rfc3339(utcnow()), container=container
    )
    try:
        try:
            collector.check(ctx)
        except Unsupported as exc:
            entry.status, entry.error = "skipped", str(exc)
            return entry
        for artifact in collector.collect(ctx):
            status = _write_artifact(ctx, collector.name, artifact, container, entry)
            if status != "ok" and entry.status == "ok":
                entry.status = "partial"
                entry.error = entry.error or artifact.error  # why, on the collector too
    except Exception as exc:  # noqa: BLE001 -- partial failure is data: it goes to the manifest
        entry.status = "partial" if entry.artifacts else "failed"
        entry.error = f"{type(exc).__name__}: {exc}"
    finally:
        entry.ended_at = rfc3339(utcnow())
        short = ctx.take_shortfalls()
        if short and entry.status == "ok":
            entry.status = "partial" if entry.artifacts else "failed"
            entry.error = entry.error or short[0]
        entry.notes.extend(ctx.take_notes())
        ctx.writer.record_collector(entry)
    return entry


def _write_artifact(
    ctx: RunContext,
    collector: str,
    artifact: Artifact,
    container: str | None,
    entry: CollectorEntry,
) -> str:
    name = f"{ctx.scope}/{artifact.name}" if ctx.scope else artifact.name
    sink = ctx.writer.artifact(
        name,
        kind=artifact.kind,
        media_type=artifact.media_type,
        collector=collector,
        container=container,
        meta=artifact.meta,
    )
    entry.artifacts.append(name)
    try:
        if artifact.write is not None:
            artifact.write(sink)  # type: ignore[arg-type]
        for chunk in artifact.chunks or ():
            sink.write(chunk)
    except Exception as exc:
        sink.close("partial", f"{type(exc).__name__}: {exc}")
        raise
    except BaseException:
        sink.close("partial", "capture interrupted")
        raise
    sink.close(artifact.status, artifact.error)
    return artifact.status
