"""One capture from start to stored bundle: open a writer in the store's staging area, run the
collectors scope by scope, seal (even when interrupted), hand the sealed bundle to the store."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ir import TOOL_NAME, __version__
from ir.bundle.custody import host_facts, operator_name
from ir.bundle.manifest import CollectorEntry
from ir.bundle.signing import Signer
from ir.bundle.writer import BundleWriter, SealedBundle
from ir.collect.base import Collector
from ir.collect.runner import ProgressFn, RunContext, run_collectors
from ir.errors import ExitCode
from ir.store.base import Store, StoreResult


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


class CaptureSession:
    """Use as a context manager; call `run()` per scope, then `finish()`."""

    def __init__(self, store: Store, request: CaptureRequest) -> None:
        self.store = store
        self.request = request
        self.writer = BundleWriter(
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
        store.attach(self.writer)
        self.collectors: list[CollectorEntry] = []
        self._result: CaptureResult | None = None

    @property
    def bundle_id(self) -> str:
        return self.writer.bundle_id

    def context(
        self, *, scope: str | None, target: Any, options: dict[str, Any], label: str
    ) -> RunContext:
        return RunContext(
            self.writer, scope=scope, target=target, options=options, target_label=label
        )

    def run(
        self,
        collectors: Sequence[Collector],
        *,
        scope: str | None,
        target: Any,
        options: dict[str, Any],
        label: str,
        container: str | None = None,
        progress: ProgressFn | None = None,
    ) -> list[CollectorEntry]:
        ctx = self.context(scope=scope, target=target, options=options, label=label)
        entries = run_collectors(ctx, collectors, container=container, progress=progress)
        self.collectors.extend(entries)
        return entries

    def finish(self, outcome: str | None = None) -> CaptureResult:
        sealed = self.writer.seal(self.request.signer, outcome=outcome)
        stored = self.store.finish(sealed, custody_signer=self.request.signer)
        self._result = CaptureResult(sealed, stored, self.collectors)
        return self._result

    def __enter__(self) -> CaptureSession:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._result is not None or self.writer.sealed:
            return
        if exc is None:
            return
        # Interrupted or failed mid-capture: seal what we have, explicitly marked interrupted.
        # If even that fails (disk full, ...), the `.partial` file stays as the explicit remains.
        try:
            self.finish(outcome="interrupted")
        except Exception:  # noqa: BLE001 -- never mask the original error
            self.writer.abandon()
            self.store.abandon(self.writer)
