"""One capture from start to stored bundle: open a writer in the store's staging area, run the
collectors scope by scope, seal (even when interrupted), hand the sealed bundle to the store.

`CaptureSession` is the one way other modules and rooms write into the bundle: its writer is
its own (`_writer`), and what a capture records goes through the session's methods."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ir import TOOL_NAME, __version__
from ir.bundle.custody import host_facts, operator_name
from ir.bundle.manifest import ArtifactEntry, CollectorEntry
from ir.bundle.reader import BundleReader, ContentCheck
from ir.bundle.signing import Signer
from ir.bundle.writer import ArtifactSink, BundleWriter, SealedBundle, StoredCopy
from ir.clock import rfc3339, utcnow
from ir.collect.base import Collector
from ir.collect.runner import ProgressFn, RunContext, run_collectors
from ir.errors import ExitCode
from ir.runtime.base import RuntimeAction
from ir.store.base import Store, StoreResult

TargetT = TypeVar("TargetT")


@dataclass
class CaptureRequest:
    case_id: str
    target: dict[str, Any]
    operator: str | None = None
    reason: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    signer: Signer | None = None
    level: int = 3
    threads: int = 0


@dataclass
class CaptureResult:
    sealed: SealedBundle
    stored: StoreResult
    collectors: list[CollectorEntry]

    @property
    def exit_code(self) -> ExitCode:
        if not self.stored.confirmed:
            return ExitCode.STORE
        if self.sealed.manifest.outcome != "complete":
            return ExitCode.FAILED
        return ExitCode.OK

    @property
    def cause(self) -> str | None:
        """Why exit_code is not OK, in one line (None when it is)."""
        if not self.stored.confirmed:
            where = (
                f"; kept in the local spool: {self.stored.spooled}" if self.stored.spooled else ""
            )
            return f"the bundle is not confirmed stored{where}"
        outcome = self.sealed.manifest.outcome
        if outcome != "complete":
            failed = [
                f"{c.name}{' [' + c.container + ']' if c.container else ''}: {c.status}"
                + (f" ({c.error})" if c.error else "")
                for c in self.collectors
                if c.status != "ok"
            ]
            return f"capture {outcome}: " + ("; ".join(failed) or "see the collectors above")
        return None


class CaptureSession:
    """Use as a context manager; call `run()` per scope, then `finish()`."""

    def __init__(self, store: Store, request: CaptureRequest) -> None:
        self.store = store
        self.request = request
        self._writer = BundleWriter(
            store.staging_dir(request.case_id),
            case_id=request.case_id,
            target=request.target,
            operator=operator_name(request.operator),
            host={**host_facts(), "platform": platform.platform()},
            tool={"name": TOOL_NAME, "version": __version__},
            reason=request.reason,
            labels=request.labels,
            level=request.level,
            threads=request.threads,
        )
        store.attach(self._writer)
        self.collectors: list[CollectorEntry] = []
        self._result: CaptureResult | None = None

    @property
    def bundle_id(self) -> str:
        return self._writer.bundle_id

    def context(
        self, *, scope: str | None, target: TargetT, options: dict[str, Any], label: str
    ) -> RunContext[TargetT]:
        return RunContext(
            self._writer, scope=scope, target=target, options=options, target_label=label
        )

    def run(
        self,
        collectors: Sequence[Collector[TargetT]],
        *,
        scope: str | None,
        target: TargetT,
        options: dict[str, Any],
        label: str,
        container: str | None = None,
        progress: ProgressFn | None = None,
    ) -> list[CollectorEntry]:
        ctx = self.context(scope=scope, target=target, options=options, label=label)
        entries = run_collectors(ctx, collectors, container=container, progress=progress)
        self.collectors.extend(entries)
        return entries

    # -- what other rooms write into the bundle, through the session only ----------------------
    def record_action(self, action: str, target: str, outcome: str = "ok", **detail: Any) -> None:
        self._writer.record_action(action, target, outcome=outcome, **detail)

    def record_runtime_actions(self, actions: Iterable[RuntimeAction], target: str) -> None:
        """The requests a runtime backend recorded (`ContainerHandle.actions`), as the manifest's
        actions, each at the time it was made; a request repeated is one entry with its count."""
        for action in actions:
            detail = dict(action.detail)
            if action.count > 1:
                detail.update(count=action.count, last_time=action.last_time)
            entry = self._writer.record_action(
                action.action, target, outcome=action.outcome, **detail
            )
            entry.time = action.time

    def record_collector(self, entry: CollectorEntry) -> None:
        self._writer.record_collector(entry)

    def record_access(
        self, name: str, note: str, *, status: str = "failed", container: str | None = None
    ) -> None:
        """A collector entry that ran no collector: how (or why not) the target was reached
        (`container-access`, `node-access`), at this moment."""
        now = rfc3339(utcnow())
        self.record_collector(CollectorEntry(name, status, now, now, note, container=container))

    def add_json(self, name: str, document: Any, **kw: Any) -> None:
        self._writer.add_json(name, document, **kw)

    def import_bundle(self, path: str, *, scope: str, container: str, via: str) -> None:
        """Copy another capture's bundle (e.g. ir's, in a node collector) into this one, under
        `scope`: every artifact's content decompressed, hashed and compared with that bundle's
        manifest first; one that agrees is copied as its stored zstd frames (no second
        compression), one that does not is decompressed and compressed again, marked failed
        (digest differs) or partial (unreadable) with the cause. Its collectors and actions are
        kept, each marked with `via`."""
        with BundleReader.open(path) as reader:
            manifest = reader.manifest
            renamed: dict[str, str] = {}
            for entry in manifest.artifacts:
                parts = entry.name.split("/", 2)
                inside = parts[2] if len(parts) == 3 and parts[0] == "containers" else entry.name
                name = renamed[entry.name] = f"{scope}/{inside}"
                opened: dict[str, Any] = {
                    "kind": entry.kind,
                    "media_type": entry.media_type,
                    "collector": entry.collector,
                    "container": container,
                    "meta": {**entry.meta, "via": via},
                }
                if _content_agrees(reader, entry):
                    _copy_stored(self._writer.copy_artifact(name, **opened), reader, entry)
                else:
                    _copy_content(self._writer.artifact(name, **opened), reader, entry)
            for c in manifest.collectors:
                self._writer.record_collector(
                    CollectorEntry(
                        c.name,
                        c.status,
                        c.started_at,
                        c.ended_at,
                        c.error,
                        [renamed.get(a, a) for a in c.artifacts],
                        container,
                        [*c.notes, f"ran in the {via}"],
                    )
                )
            for a in manifest.actions:
                self._writer.record_action(
                    a.action, a.target, outcome=a.outcome, **{**a.detail, "via": via}
                )

    def finish(self, outcome: str | None = None) -> CaptureResult:
        sealed = self._writer.seal(self.request.signer, outcome=outcome)
        stored = self.store.finish(sealed, custody_signer=self.request.signer)
        self._result = CaptureResult(sealed, stored, self.collectors)
        return self._result

    def __enter__(self) -> CaptureSession:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._result is not None or self._writer.sealed:
            return
        if exc is None:
            return
        # Interrupted or failed mid-capture: seal what we have, explicitly marked interrupted.
        # If even that fails (disk full, ...), the `.partial` file stays as the explicit remains.
        try:
            self.finish(outcome="interrupted")
        except Exception:  # noqa: BLE001 -- never mask the original error
            self._writer.abandon()
            self.store.abandon(self._writer)


def _content_agrees(reader: BundleReader, entry: ArtifactEntry) -> bool:
    """Does the artifact decompress to the size and digest its manifest says?"""
    check = ContentCheck(entry.size, entry.name)
    try:
        for chunk in reader.stored_chunks(entry):
            check.feed(chunk)
        return check.result() == (entry.size, entry.sha256)
    except Exception:  # noqa: BLE001 -- unreadable or corrupt: the slow path says why
        check.stop()
        return False


def _copy_stored(sink: StoredCopy, reader: BundleReader, entry: ArtifactEntry) -> None:
    """The artifact's stored bytes as they are (checked just before by _content_agrees)."""
    status, error = entry.status, entry.error
    try:
        for chunk in reader.stored_chunks(entry):
            sink.write(chunk)
    except Exception as exc:  # noqa: BLE001 -- read a moment ago: a failing disk; recorded
        status, error = "partial", f"copy from the imported bundle failed: {exc}"
    sink.close(status, error, size=entry.size, sha256=entry.sha256)


def _copy_content(sink: ArtifactSink, reader: BundleReader, entry: ArtifactEntry) -> None:
    """The artifact's content decompressed and compressed again, hashed on the way; what
    differs from its manifest, or cannot be read, is said on the artifact."""
    status, error = entry.status, entry.error
    check, size = hashlib.sha256(), 0
    try:
        for chunk in reader.iter_artifact(entry):
            check.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    except Exception as exc:  # noqa: BLE001 -- recorded on the artifact; goes on
        status, error = "partial", f"copy from the imported bundle failed: {exc}"
    if (check.hexdigest(), size) != (entry.sha256, entry.size) and status == "ok":
        status, error = (
            "failed",
            f"sha256 {check.hexdigest()} ({size} bytes) differs from the imported "
            f"bundle's {entry.sha256} ({entry.size} bytes)",
        )
    sink.close(status, error)
