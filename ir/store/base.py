"""The store interface shared by the local directory and S3."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ir.bundle.custody import CustodyBackend
from ir.bundle.reader import BundleReader
from ir.bundle.signing import KeyLookup, Signer
from ir.bundle.verify import VerifyReport, verify_bundle
from ir.bundle.writer import BundleWriter, SealedBundle


@dataclass
class BundleListing:
    """One row of `ir bundle ls`."""

    location: str
    bundle_id: str
    case_id: str | None
    target: str | None
    started_at: str | None
    size: int
    status: str  # outcome of a sealed bundle, or "incomplete" for a .partial, "spooled", ...
    root_digest: str | None = None


@dataclass
class StoreResult:
    """Where a sealed bundle ended up, and what the store confirmed."""

    location: str
    root_digest: str
    size: int
    confirmed: bool  # the store confirmed the bytes (local fsync; S3 checksum)
    spooled: str | None = None  # local spool path when an upload did not complete
    detail: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class BundleHandle:
    reader: BundleReader
    custody: CustodyBackend
    display: str
    local_path: Path | None = None

    def verify(
        self,
        *,
        trust: KeyLookup | None = None,
        expected_digest: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """verify_bundle of this bundle, its custody log included (and the records its custody
        backend found rewritten, where it keeps them)."""
        return verify_bundle(
            self.reader,
            trust=trust,
            custody_lines=self.custody.read_lines(),
            expected_digest=expected_digest,
            progress=progress,
            custody_problems=getattr(self.custody, "rewritten", None),
        )

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> BundleHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(Protocol):
    uri: str

    def staging_dir(self, case_id: str) -> Path:
        """Where the writer puts the bundle file while it is written."""
        ...

    def attach(self, writer: BundleWriter) -> None:
        """Follow a writer as it writes (S3 streams parts while the capture runs)."""
        ...

    def finish(self, sealed: SealedBundle, custody_signer: Signer | None = None) -> StoreResult:
        """Make a sealed bundle durable in the store and append the custody record(s)."""
        ...

    def abandon(self, writer: BundleWriter) -> None:
        """The capture stopped without sealing: keep what was written, stop following."""
        ...

    def list_bundles(self) -> Iterator[BundleListing]: ...

    def put_document(self, case_id: str, name: str, data: bytes) -> StoreResult:
        """Store a small document of a case (a case index, its signature) beside the case's
        bundles, once: written whole or not at all, never over an existing one (StoreError then),
        its SHA-256 checked by the store. The result's `root_digest` is the document's SHA-256;
        `confirmed=False` with `spooled` when only a local copy could be kept."""
        ...
