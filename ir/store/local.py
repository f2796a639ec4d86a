"""A local evidence directory: STORE/<case>/<bundle-id>.tar, with `.custody.jsonl` beside each."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ir.bundle import layout
from ir.bundle.custody import FileCustody, append_record
from ir.bundle.reader import BundleReader
from ir.bundle.signing import Signer
from ir.bundle.writer import BundleWriter, SealedBundle, fsync_dir
from ir.errors import BundleFormatError, IrError, StoreError
from ir.store.base import BundleHandle, BundleListing, StoreResult


def custody_path(bundle: Path) -> Path:
    name = bundle.name
    for suffix in (layout.PARTIAL_SUFFIX, layout.BUNDLE_SUFFIX):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return bundle.with_name(name + layout.CUSTODY_SUFFIX)


def record_created(sealed: SealedBundle, custody_signer: Signer | None = None) -> None:
    """The first custody record of a sealed bundle, in the `.custody.jsonl` beside its file."""
    append_record(
        FileCustody(custody_path(sealed.path)),
        action="created",
        bundle_id=sealed.manifest.bundle_id,
        bundle_digest=sealed.root_digest,
        actor=sealed.manifest.operator,
        detail={
            "location": str(sealed.path),
            "size": sealed.size,
            "outcome": sealed.manifest.outcome,
            # why it was taken (as the signed manifest says): a playbook run's attempt included
            **({"reason": sealed.manifest.reason} if sealed.manifest.reason else {}),
        },
        signer=custody_signer,
    )


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def staging_dir(self, case_id: str) -> Path:
        directory = self.root / layout.safe_component(case_id, "uncased")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create evidence directory {directory}: {exc.strerror}"
            ) from None
        return directory

    def attach(self, writer: BundleWriter) -> None:
        return None

    def abandon(self, writer: BundleWriter) -> None:
        return None

    def finish(self, sealed: SealedBundle, custody_signer: Signer | None = None) -> StoreResult:
        record_created(sealed, custody_signer)
        return StoreResult(str(sealed.path), sealed.root_digest, sealed.size, confirmed=True)

    def put_document(self, case_id: str, name: str, data: bytes) -> StoreResult:
        """STORE/<case>/<name>, written once (see `write_once`)."""
        path = self.staging_dir(case_id) / document_name(name)
        write_once(path, data)
        return StoreResult(str(path), hashlib.sha256(data).hexdigest(), len(data), confirmed=True)

    def list_bundles(self) -> Iterator[BundleListing]:
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: no such evidence directory")
        paths = sorted(self.root.glob(f"*/*{layout.BUNDLE_SUFFIX}")) + sorted(
            self.root.glob(f"*/*{layout.PARTIAL_SUFFIX}")
        )
        for path in paths:
            yield listing_of(path)

    @classmethod
    def from_uri(cls, uri: str, **options: object) -> LocalStore:
        """A directory path (the store's options are S3's: a directory has none)."""
        return cls(uri)

    @classmethod
    def open_bundle(cls, ref: str, **options: object) -> BundleHandle:
        return cls.open_path(ref)

    @staticmethod
    def open_path(ref: str | Path) -> BundleHandle:
        path = Path(ref)
        reader = BundleReader.open(path)
        return BundleHandle(reader, FileCustody(custody_path(path)), str(path), path)


def document_name(name: str) -> str:
    """A case document's name is one plain file name (ir makes it; this keeps it so)."""
    if layout.safe_component(name) != name or name.endswith(layout.BUNDLE_SUFFIX):
        raise StoreError(f"{name!r} is not a name a case document can have")
    return name


def write_once(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all, and never over an existing file: the bytes go to a
    temporary file beside it, synced, which is then linked to its name (a link never replaces a
    file that is there) and the directory synced. Raises StoreError."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise StoreError(f"{path} exists; a stored document is never overwritten") from None
        fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def listing_of(path: Path) -> BundleListing:
    size = path.stat().st_size
    try:
        with BundleReader.open(path) as reader:
            if not reader.sealed:
                header = reader.header
                return BundleListing(
                    str(path),
                    str(header.get("bundle_id")),
                    header.get("case_id"),
                    None,
                    header.get("started_at"),
                    size,
                    "incomplete",
                )
            m = reader.manifest
            return BundleListing(
                str(path),
                m.bundle_id,
                m.case_id,
                describe_target(m.target),
                m.started_at,
                size,
                m.outcome,
                hashlib.sha256(reader.manifest_bytes).hexdigest(),
            )
    except (BundleFormatError, IrError) as exc:
        return BundleListing(str(path), path.name, None, None, None, size, f"unreadable: {exc}")


def describe_target(target: dict[str, Any]) -> str:
    """One line naming a target: `pod shop/web-7f9c`, `container web (3f2a…)`."""
    kind = target.get("kind", "target")
    if kind == "pod":
        return f"pod {target.get('namespace')}/{target.get('name')}"
    if kind == "container":
        return f"container {target.get('name')} ({str(target.get('id', ''))[:12]})"
    return f"{kind} {target.get('name', '')}".strip()
