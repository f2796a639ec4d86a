"""The bundle writer: artifacts stream in, are hashed and zstd-compressed on the way, and land in
one tar file whose manifest is written last.

Memory is bounded by the chunk size and zstd's window, whatever the artifact size. The file is
`<id>.tar.partial` until `seal()` has written and fsynced everything; only then is it renamed to
`<id>.tar`, so a bundle never looks complete before it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import pyzstd

from ir.bundle import layout
from ir.bundle.manifest import ActionEntry, ArtifactEntry, CollectorEntry, Manifest
from ir.bundle.pipeline import Background, BackgroundHasher, steady_heap
from ir.bundle.signing import Signer, signature_document
from ir.clock import rfc3339, utcnow
from ir.errors import IrError, StoreError

CHUNK = 1024 * 1024
COALESCE = 256 * 1024  # writes smaller than this are gathered up to CHUNK
DEFAULT_LEVEL = 3

ProgressHook = Callable[[int], None]


class ArtifactSink:
    """A writable stream for one artifact. Use as a context manager or call close().

    On an exception inside the `with` block the bytes already written are kept, the artifact is
    recorded as `partial` with the error text, and the exception propagates to the collector runner.
    """

    def __init__(self, writer: BundleWriter, entry: ArtifactEntry, header_offset: int) -> None:
        self._writer = writer
        self.entry = entry
        self._header_offset = header_offset
        # Three stages in parallel: content hash | compress (here) | stored hash + file write.
        self._raw_hash = BackgroundHasher(hashlib.sha256())
        self._stored_hash = hashlib.sha256()
        self._out = Background(self._store, name="ir-bundle-write")
        self._size = 0
        self._stored = 0
        self._pending = bytearray()
        self._compressor = pyzstd.ZstdCompressor(writer.zstd_options)
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("artifact already closed")
        n = len(data)
        if not n:
            return 0
        self._size += n
        if n < COALESCE:
            # Small writes (a tar stream's 10 KiB blocks) are gathered into ~1 MiB before they
            # cross to the hashing and writing threads: per-chunk hand-offs cost more than hashing.
            self._pending += data
            if len(self._pending) >= CHUNK:
                self._push(bytes(self._pending))
                self._pending.clear()
            return n
        if self._pending:
            self._push(bytes(self._pending))
            self._pending.clear()
        # bytes(): the caller may reuse its buffer while the hasher thread reads this one
        self._push(data if isinstance(data, bytes) else bytes(data))
        return n

    def _push(self, data: bytes) -> None:
        self._raw_hash.update(data)
        self._emit(self._compressor.compress(data))

    def write_from(self, stream: IO[bytes], limit: int | None = None) -> int:
        """Copy a readable binary stream in (up to `limit` bytes); returns bytes copied."""
        copied = 0
        while limit is None or copied < limit:
            chunk = stream.read(CHUNK if limit is None else min(CHUNK, limit - copied))
            if not chunk:
                break
            self.write(chunk)
            copied += len(chunk)
        return copied

    def flush(self) -> None:
        """File-like no-op, so a sink can be handed to tarfile or json writers."""

    def tell(self) -> int:
        return self._size

    def writable(self) -> bool:
        return True

    def _emit(self, out: bytes) -> None:
        if out:
            self._out.put(out)

    def _store(self, out: bytes) -> None:
        self._stored_hash.update(out)
        self._stored += len(out)
        self._writer._write_raw(out)

    def close(self, status: str = "ok", error: str | None = None) -> ArtifactEntry:
        if self.closed:
            return self.entry
        self.closed = True
        try:
            if self._pending:
                self._push(bytes(self._pending))
                self._pending.clear()
            self._emit(self._compressor.flush())
        finally:
            self._out.close()  # every compressed byte is written (or the write error raised)
            # Drop the zstd context (tens of MiB with workers) now: the sink and its writer thread
            # refer to each other, and waiting for the cycle collector grows memory per artifact.
            del self._compressor, self._out
        e = self.entry
        e.status, e.error = status, error
        e.ended_at = rfc3339(utcnow())
        e.size, e.sha256 = self._size, self._raw_hash.hexdigest()
        e.stored_size, e.stored_sha256 = self._stored, self._stored_hash.hexdigest()
        self._writer._finish_artifact(self, self._header_offset)
        return e

    def __enter__(self) -> ArtifactSink:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.close("partial", f"{type(exc).__name__}: {exc}")


class StoredCopy:
    """An artifact copied from another bundle without a second compression: its stored bytes
    (zstd frames) are written as they come and hashed here (stored size and digest); the
    content's size and digest are the caller's, who decompressed and hashed what it copied
    (`close(size=, sha256=)`). Twice as fast as decompressing and compressing again."""

    def __init__(self, writer: BundleWriter, entry: ArtifactEntry, header_offset: int) -> None:
        self._writer = writer
        self.entry = entry
        self._header_offset = header_offset
        self._stored_hash = hashlib.sha256()
        self._stored = 0
        self._out = Background(self._store, name="ir-bundle-write")
        self.closed = False

    def write(self, data: bytes) -> int:
        """Hand over stored bytes; they must not be mutated afterwards."""
        if self.closed:
            raise ValueError("artifact already closed")
        self._out.put(data)
        return len(data)

    def _store(self, data: bytes) -> None:
        self._stored_hash.update(data)
        self._stored += len(data)
        self._writer._write_raw(data)

    def close(
        self,
        status: str = "ok",
        error: str | None = None,
        *,
        size: int = 0,
        sha256: str = hashlib.sha256().hexdigest(),
    ) -> ArtifactEntry:
        """End the artifact: `size` and `sha256` are of its content (what the stored bytes
        decompress to); without them, of no content (an artifact closed by `seal`)."""
        if self.closed:
            return self.entry
        self.closed = True
        try:
            self._out.close()  # every byte written (or the write error raised)
        finally:
            del self._out
        e = self.entry
        e.status, e.error = status, error
        e.ended_at = rfc3339(utcnow())
        e.size, e.sha256 = size, sha256
        e.stored_size, e.stored_sha256 = self._stored, self._stored_hash.hexdigest()
        self._writer._finish_artifact(self, self._header_offset)
        return e


class BundleWriter:
    """Writes one bundle. Not thread-safe: one artifact is open at a time (tar is sequential)."""

    def __init__(
        self,
        directory: Path,
        *,
        case_id: str,
        target: dict[str, Any],
        operator: str,
        host: dict[str, Any],
        tool: dict[str, str],
        reason: str | None = None,
        bundle_id: str | None = None,
        labels: dict[str, str] | None = None,
        level: int = DEFAULT_LEVEL,
        threads: int = 0,
    ) -> None:
        steady_heap()  # chunks of a MiB stream through every stage from here on
        self.bundle_id = bundle_id or str(uuid.uuid4())
        self.final_path = directory / f"{self.bundle_id}{layout.BUNDLE_SUFFIX}"
        self.path = directory / f"{self.bundle_id}{layout.PARTIAL_SUFFIX}"
        directory.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never append to or overwrite someone else's evidence.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        self._fh = os.fdopen(fd, "wb", buffering=0)
        self._failed: StoreError | None = None
        self._pos = 0
        self.stable_offset = 0  # bytes at the start of the file that will never be rewritten
        self._progress: list[ProgressHook] = []
        self._open: ArtifactSink | StoredCopy | None = None
        self._seq = 0
        workers = threads if threads > 0 else min(2, os.cpu_count() or 1)
        self.zstd_options: dict[int, int] = {
            pyzstd.CParameter.compressionLevel: level,
            pyzstd.CParameter.checksumFlag: 1,
        }
        if workers > 1 and pyzstd.zstd_support_multithread:
            self.zstd_options[pyzstd.CParameter.nbWorkers] = workers
            # 2 MiB jobs instead of zstd's default (4x the window): ~30 MiB less resident memory
            # per open artifact, same ratio and speed at level 3 (bench/bundle_bench.py).
            self.zstd_options[pyzstd.CParameter.jobSize] = 2 * 1024 * 1024
        self.manifest = Manifest(
            bundle_id=self.bundle_id,
            case_id=case_id,
            target=target,
            tool=tool,
            operator=operator,
            host=host,
            started_at=rfc3339(utcnow()) or "",
            reason=reason,
            labels=dict(labels or {}),
        )
        self.sealed = False
        header = {
            "format": layout.FORMAT_NAME,
            "format_version": layout.FORMAT_VERSION,
            "bundle_id": self.bundle_id,
            "case_id": case_id,
            "started_at": self.manifest.started_at,
            "tool": tool,
        }
        header_bytes = _json_bytes(header)
        self.manifest.header_sha256 = hashlib.sha256(header_bytes).hexdigest()
        self._write_member(layout.HEADER_MEMBER, header_bytes)

    # -- progress (the S3 uploader follows stable_offset) ---------------------------------
    def on_progress(self, hook: ProgressHook) -> None:
        self._progress.append(hook)

    def _advance_stable(self, offset: int) -> None:
        self.stable_offset = offset
        for hook in self._progress:
            hook(offset)

    # -- raw file writing ------------------------------------------------------------------
    def _write_raw(self, data: bytes | memoryview) -> None:
        if self._failed is not None:
            raise self._failed
        view = memoryview(data)
        try:
            while view:
                n = self._fh.write(view)
                if n is None or n <= 0:
                    raise OSError("short write to bundle file")
                view = view[n:]
                self._pos += n
        except OSError as exc:
            # Disk full, I/O error: the file can no longer be trusted to grow; every later write
            # fails with this one error, naming the cause and what is left.
            self._failed = StoreError(
                f"cannot write the bundle: {exc.strerror or exc}; what was written is kept, "
                f"incomplete, in {self.path}"
            )
            self._open = None
            raise self._failed from None

    def _write_member(self, name: str, data: bytes) -> int:
        """Write a small member whole; returns the offset of its data."""
        self._check_open()
        self._write_raw(layout.tar_header(name, len(data), time.time()))
        offset = self._pos
        self._write_raw(data)
        self._write_raw(layout.padding(len(data)))
        self._advance_stable(self._pos)
        return offset

    def _check_open(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self.sealed:
            raise IrError("bundle is sealed; it cannot change")
        if self._open is not None:
            raise IrError(f"artifact {self._open.entry.name!r} is still open")

    # -- artifacts -------------------------------------------------------------------------
    def artifact(
        self,
        name: str,
        *,
        kind: str,
        media_type: str,
        collector: str,
        container: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactSink:
        """Open a new artifact for streaming writes."""
        entry, header_offset = self._begin(name, kind, media_type, collector, container, meta)
        sink = ArtifactSink(self, entry, header_offset)
        self._open = sink
        return sink

    def copy_artifact(
        self,
        name: str,
        *,
        kind: str,
        media_type: str,
        collector: str,
        container: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> StoredCopy:
        """Open a new artifact whose stored bytes -- another bundle's zstd frames -- are written
        as they are: see StoredCopy."""
        entry, header_offset = self._begin(name, kind, media_type, collector, container, meta)
        sink = StoredCopy(self, entry, header_offset)
        self._open = sink
        return sink

    def _begin(
        self,
        name: str,
        kind: str,
        media_type: str,
        collector: str,
        container: str | None,
        meta: dict[str, Any] | None,
    ) -> tuple[ArtifactEntry, int]:
        self._check_open()
        layout.check_artifact_name(name)
        if any(a.name == name for a in self.manifest.artifacts):
            raise IrError(f"artifact {name!r} already in the bundle")
        header_offset = self._pos
        # Placeholder header: its size field is patched when the artifact closes.
        self._write_raw(layout.tar_header(layout.artifact_member(name), 0, time.time()))
        entry = ArtifactEntry(
            name=name,
            kind=kind,
            media_type=media_type,
            collector=collector,
            started_at=rfc3339(utcnow()),
            offset=self._pos,
            container=container,
            meta=dict(meta or {}),
        )
        return entry, header_offset

    def _finish_artifact(self, sink: ArtifactSink | StoredCopy, header_offset: int) -> None:
        entry = sink.entry
        self._write_raw(layout.padding(entry.stored_size))
        end = self._pos
        self._fh.seek(header_offset)
        self._fh.write(
            layout.tar_header(layout.artifact_member(entry.name), entry.stored_size, time.time())
        )
        self._fh.seek(end)
        self._open = None
        self.manifest.artifacts.append(entry)
        self._seq += 1
        self._write_member(
            f"{layout.JOURNAL_PREFIX}{self._seq:06d}.json", _json_bytes(asdict(entry))
        )

    def add_stream(self, name: str, chunks: Iterable[bytes], **kw: Any) -> ArtifactEntry:
        with self.artifact(name, **kw) as sink:
            for chunk in chunks:
                sink.write(chunk)
        return sink.entry

    def add_bytes(self, name: str, data: bytes, **kw: Any) -> ArtifactEntry:
        return self.add_stream(name, [data], **kw)

    def add_json(self, name: str, document: Any, **kw: Any) -> ArtifactEntry:
        kw.setdefault("media_type", "application/json")
        return self.add_bytes(name, _json_bytes(document), **kw)

    def add_file(self, name: str, stream: IO[bytes], **kw: Any) -> ArtifactEntry:
        with self.artifact(name, **kw) as sink:
            sink.write_from(stream)
        return sink.entry

    # -- collectors and actions ------------------------------------------------------------
    def record_collector(self, entry: CollectorEntry) -> None:
        self.manifest.collectors.append(entry)

    def record_action(
        self, action: str, target: str, outcome: str = "ok", **detail: Any
    ) -> ActionEntry:
        entry = ActionEntry(
            time=rfc3339(utcnow()) or "",
            action=action,
            target=target,
            detail=detail,
            outcome=outcome,
        )
        self.manifest.actions.append(entry)
        return entry

    # -- sealing ---------------------------------------------------------------------------
    def seal(self, signer: Signer | None = None, outcome: str | None = None) -> SealedBundle:
        """Write the manifest, root digest, checksums and signature; fsync; rename to `.tar`."""
        if self._open is not None:
            self._open.close("partial", "artifact still open when the bundle was sealed")
        self._check_open()
        m = self.manifest
        m.ended_at = rfc3339(utcnow())
        m.outcome = outcome or _outcome_of(m)
        manifest_bytes = m.to_bytes()
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        self._write_member(layout.MANIFEST_MEMBER, manifest_bytes)
        self._write_member(
            layout.ROOT_DIGEST_MEMBER, f"{digest}  {layout.MANIFEST_MEMBER}\n".encode()
        )
        sums = "".join(
            f"{a.stored_sha256}  {layout.artifact_member(a.name)}\n" for a in m.artifacts
        )
        self._write_member(layout.SUMS_MEMBER, sums.encode())
        self._write_member(layout.CONTENT_SUMS_MEMBER, content_sums(m).encode())
        if signer is not None:
            self._write_member(layout.SIGNATURE_MEMBER, signature_document(signer, manifest_bytes))
        self._write_raw(b"\0" * (2 * layout.BLOCK))  # tar end-of-archive
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.path, self.final_path)
        fsync_dir(self.final_path.parent)
        self.sealed = True
        self._advance_stable(self._pos)
        return SealedBundle(self.final_path, digest, self._pos, m)

    def abandon(self) -> Path:
        """Stop writing without a manifest: the `.partial` file stays, explicitly incomplete."""
        if self._open is not None and not self._open.closed:
            self._open.close("partial", "capture interrupted")
        if not self._fh.closed:
            with contextlib.suppress(OSError):  # a full disk: what is written stays as it is
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._fh.close()
        return self.path


class SealedBundle:
    def __init__(self, path: Path, root_digest: str, size: int, manifest: Manifest) -> None:
        self.path = path
        self.root_digest = root_digest
        self.size = size
        self.manifest = manifest


def stored_sums(m: Manifest) -> str:
    """The SHA256SUMS member: `sha256sum -c` lines for every stored artifact member."""
    return "".join(f"{a.stored_sha256}  {layout.artifact_member(a.name)}\n" for a in m.artifacts)


def content_sums(m: Manifest) -> str:
    """The CONTENTS.sha256 member: content digest and name of every artifact."""
    return "".join(f"{a.sha256}  {a.name}\n" for a in m.artifacts)


def _outcome_of(m: Manifest) -> str:
    statuses = [c.status for c in m.collectors] + [a.status for a in m.artifacts]
    if statuses and all(s == "failed" for s in statuses):
        return "failed"
    if any(s in ("failed", "partial") for s in statuses):
        return "partial"
    return "complete"


def _json_bytes(document: Any) -> bytes:
    return (
        json.dumps(document, indent=1, sort_keys=True, ensure_ascii=True, default=str) + "\n"
    ).encode()


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new link) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
