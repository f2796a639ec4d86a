"""The collector runner: feeds each collector's artifacts into the bundle writer, catching every
failure per collector so one broken collector never stops the capture. `RunContext` is the
`CaptureContext` a collector gets; the writer stays inside it, reached through its methods."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from ir.bundle.manifest import CollectorEntry
from ir.bundle.writer import ArtifactSink, BundleWriter
from ir.clock import rfc3339, utcnow
from ir.collect.base import Artifact, Collector
from ir.errors import Unsupported

ProgressFn = Callable[[str], None]
TargetT = TypeVar("TargetT")


class RunContext(Generic[TargetT]):
    """A capture context bound to one scope (e.g. one container) of one bundle: what the
    collectors get (a `CaptureContext`), and what the runner writes through."""

    def __init__(
        self,
        writer: BundleWriter,
        *,
        scope: str | None,
        target: TargetT,
        options: dict[str, Any],
        target_label: str,
    ) -> None:
        self._writer = writer
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
        self._writer.record_action(action, self.target_label, outcome=outcome, **detail)

    def take_notes(self) -> list[str]:
        notes, self._notes = self._notes, []
        return notes

    # -- the runner's side: what it writes of a collector's run -----------------------------
    def open_artifact(
        self, artifact: Artifact, *, collector: str, container: str | None
    ) -> tuple[str, ArtifactSink]:
        """Open the bundle member of an artifact under this scope: (its name, its sink)."""
        name = f"{self.scope}/{artifact.name}" if self.scope else artifact.name
        sink = self._writer.artifact(
            name,
            kind=artifact.kind,
            media_type=artifact.media_type,
            collector=collector,
            container=container,
            meta=artifact.meta,
        )
        return name, sink

    def record_collector(self, entry: CollectorEntry) -> None:
        self._writer.record_collector(entry)


def run_collectors(
    ctx: RunContext[TargetT],
    collectors: Sequence[Collector[TargetT]],
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
    ctx: RunContext[TargetT], collector: Collector[TargetT], *, container: str | None = None
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
        ctx.record_collector(entry)
    return entry


def _write_artifact(
    ctx: RunContext[Any],
    collector: str,
    artifact: Artifact,
    container: str | None,
    entry: CollectorEntry,
) -> str:
    name, sink = ctx.open_artifact(artifact, collector=collector, container=container)
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
