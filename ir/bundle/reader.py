"""Reading a bundle: index the tar members by seeking from header to header, then stream any one
artifact, decompressed and bounded by its declared size. Nothing is extracted to answer a question.

Bundles come from hostile places; every structural surprise becomes a `BundleFormatError` or a
problem listed in `problems`, never a crash or an unbounded read.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyzstd

from ir.bundle import layout
from ir.bundle.manifest import ArtifactEntry, Manifest
from ir.bundle.pipeline import steady_heap
from ir.bundle.source import ByteSource, FileSource, NotAFile
from ir.errors import BundleFormatError, IntegrityError

READ_CHUNK = 1024 * 1024
MAX_MEMBERS = 200_000
MAX_SMALL_MEMBER = 64 * 1024 * 1024  # manifest, signature, journal entries
MAX_TRAILER = 1024 * 1024
# The seal (manifest.json, at most MAX_SMALL_MEMBER, and the small members after it) is at the end
# of a finished file: when a damaged header stops the index, this much of the tail is searched for
# it, and no more (a hostile or huge file is not read whole to tell damaged from unfinished).
MAX_SEAL_SCAN = MAX_SMALL_MEMBER + 4 * 1024 * 1024
SEAL_MEMBERS = (
    layout.MANIFEST_MEMBER,
    layout.ROOT_DIGEST_MEMBER,
    layout.SUMS_MEMBER,
    layout.CONTENT_SUMS_MEMBER,
    layout.SIGNATURE_MEMBER,
)
ZERO_BLOCK = b"\0" * layout.BLOCK


@dataclass(frozen=True)
class Member:
    name: str
    header_offset: int
    offset: int  # of the data
    size: int


class BundleReader:
    """An indexed view of one bundle file. Cheap to open: reads headers only."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.members: dict[str, Member] = {}
        self.problems: list[str] = []  # structural findings (duplicates, truncation, odd members)
        self.truncated = False  # the file was cut short (an interrupted write or copy)
        self.corrupt = False  # the structure was altered (a tampered or damaged file)
        self.stopped_at: int | None = None  # where indexing stopped early (truncated or corrupt)
        self._still_writing = False  # stopped inside an artifact the writer had not closed
        self._clean_end = False  # the file ends exactly where a member header would start
        self._evidence: tuple[str | None] | None = None  # seal_evidence(), once computed
        self._manifest: Manifest | None = None
        self._manifest_bytes: bytes | None = None
        try:
            self._index()
        except BaseException:
            # The reader owns its source: a file that is no bundle must not leak its descriptor
            # (atheris found it: ~1000 refused bundles and a long-running process had no fds left).
            source.close()
            raise

    @classmethod
    def open(cls, path: Path | str) -> BundleReader:
        path = Path(path)
        try:
            source = FileSource(path)
        except FileNotFoundError:
            raise BundleFormatError(f"{path}: no such bundle") from None
        except IsADirectoryError:
            raise BundleFormatError(f"{path} is a directory, not a bundle file") from None
        except NotAFile as exc:
            raise BundleFormatError(f"{path} is a {exc.kind}, not a bundle file") from None
        except OSError as exc:
            raise BundleFormatError(f"{path}: cannot open: {exc.strerror}") from None
        return cls(source)

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- indexing ----------------------------------------------------------------------------
    def _index(self) -> None:
        size = self.source.size
        pos = 0
        if size < layout.BLOCK:
            raise BundleFormatError(f"{self.source.name}: too short to be a bundle ({size} bytes)")
        while True:
            if len(self.members) >= MAX_MEMBERS:
                raise BundleFormatError(f"{self.source.name}: more than {MAX_MEMBERS} members")
            block = self.source.read_at(pos, layout.BLOCK)
            if len(block) < layout.BLOCK:
                self._clean_end = not block
                self.stopped_at = pos
                self._truncation(
                    f"file ends at offset {pos}, where the next member header would start"
                    if not block
                    else f"file ends inside a tar header at offset {pos}"
                )
                break
            if block == ZERO_BLOCK:
                self._check_trailer(pos)
                break
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
            except (tarfile.HeaderError, UnicodeDecodeError) as exc:
                if not self.members and block[257:262] != b"ustar":
                    raise BundleFormatError(
                        f"{self.source.name}: not a bundle (not a tar file: {exc})"
                    ) from None
                last = next(reversed(self.members.values()), None)
                if (
                    last is not None
                    and last.size == 0
                    and last.name.startswith(layout.ARTIFACT_PREFIX)
                ):
                    # The writer's placeholder header (its size is patched when the artifact
                    # closes; a zstd frame is never empty): the writing stopped inside this artifact.
                    self._still_writing = True
                    self.stopped_at = pos
                    self._truncation(
                        f"file ends inside artifact {last.name!r}, still being written when the "
                        f"capture stopped ({size - last.offset} bytes of it follow, unindexed)"
                    )
                    break
                self.stopped_at = pos
                self._corruption(f"corrupt tar header at offset {pos} ({exc})")
                break
            if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                raise BundleFormatError(
                    f"{self.source.name}: member {info.name!r} at offset {pos} is not a regular file "
                    f"(type {info.type!r}); bundles hold regular files only"
                )
            name = info.name
            if not _expected_member(name):
                raise BundleFormatError(
                    f"{self.source.name}: unexpected member name {name!r} at offset {pos}"
                )
            data = pos + layout.BLOCK
            end = data + info.size
            pad = -info.size % layout.BLOCK
            if end + pad > size:  # not indexed: a member is read whole or not at all
                self.stopped_at = pos
                self._truncation(
                    f"member {name!r} is cut short: needs {info.size} bytes, file ends at {size}"
                )
                break
            if name in self.members:
                self._corruption(f"member {name!r} appears twice (second at offset {pos})")
            else:
                self.members[name] = Member(name, pos, data, info.size)
            if pad and self.source.read_at(end, pad) != b"\0" * pad:
                self._corruption(
                    f"non-zero bytes in the tar padding after member {name!r} (offset {end})"
                )
            pos = end + pad
        if not self.members:
            if self.corrupt:
                return
            raise BundleFormatError(f"{self.source.name}: not an ir bundle (no members)")
        first = next(iter(self.members))
        if first != layout.HEADER_MEMBER:
            raise BundleFormatError(
                f"{self.source.name}: not an ir bundle (first member is {first!r})"
            )

    def _truncation(self, problem: str) -> None:
        self.truncated = True
        self.problems.append(problem)

    def _corruption(self, problem: str) -> None:
        self.corrupt = True
        self.problems.append(problem)

    def _check_trailer(self, pos: int) -> None:
        """After the end-of-archive block only zero bytes may follow (bounded read)."""
        rest = self.source.size - pos
        if rest > MAX_TRAILER:
            self._corruption(f"{rest} bytes after the end of the archive at offset {pos}")
            return
        if self.source.read_at(pos, rest).strip(b"\0"):
            self._corruption(f"non-zero data after the end of the archive (offset {pos})")

    # -- finished or not ---------------------------------------------------------------------
    def seal_evidence(self) -> str | None:
        """Why this file is known to have been sealed -- its capture finished -- or None when
        nothing says so (the capture did not finish, or nothing tells).

        - Its manifest is indexed; unless it is a *.tar.partial cut short: the writer may have
          been killed while it wrote the seal.
        - Its index stopped at a damaged header and the seal is still in its tail (the header of
          manifest.json or of a member after it).
        - It is named *.tar (ir renames a bundle from *.tar.partial only once it is sealed) and it
          does not end where an unfinished writer stops: after a whole member, or inside the
          artifact it was still writing (whose header holds the placeholder size 0)."""
        if self._evidence is None:
            self._evidence = (self._find_evidence(),)
        return self._evidence[0]

    def _find_evidence(self) -> str | None:
        name = self.source.name
        if self.sealed:
            if self.truncated and name.endswith(layout.PARTIAL_SUFFIX):
                return None
            return f"its manifest is at offset {self.members[layout.MANIFEST_MEMBER].offset}"
        if self._still_writing:
            return None
        if self.corrupt and self.stopped_at is not None:
            found = self._last_header(self.stopped_at + layout.BLOCK)
            if found is not None and found[0] in SEAL_MEMBERS:
                return f"its seal is still there: {found[0]} at offset {found[1]}"
            if found is not None:
                return None  # the file ends as an unfinished writer leaves it
        if name.endswith(layout.BUNDLE_SUFFIX) and not self._clean_end:
            return f"it is named *{layout.BUNDLE_SUFFIX}, which ir gives a bundle only once it is sealed"
        return None

    def _last_header(self, start: int) -> tuple[str, int] | None:
        """The last valid header of a bundle member in the file, searched block by block back
        from its end (not before `start`, at most MAX_SEAL_SCAN bytes): (name, offset), or None."""
        size = self.source.size
        floor = max(start, size - MAX_SEAL_SCAN)
        floor += -floor % layout.BLOCK
        top = size - size % layout.BLOCK  # members start on block boundaries
        while top > floor:
            low = max(floor, top - READ_CHUNK)
            chunk = self.source.read_at(low, top - low)
            for at in range(len(chunk) - layout.BLOCK, -1, -layout.BLOCK):
                block = chunk[at : at + layout.BLOCK]
                if block[257:262] != b"ustar":
                    continue
                try:
                    info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
                except (tarfile.HeaderError, UnicodeDecodeError):
                    continue
                if _expected_member(info.name):
                    return info.name, low + at
            top = low
        return None

    # -- small members ------------------------------------------------------------------------
    def read_member(self, name: str, limit: int = MAX_SMALL_MEMBER) -> bytes:
        member = self.members.get(name)
        if member is None:
            raise KeyError(name)
        if member.size > limit:
            raise BundleFormatError(
                f"member {name!r} is {member.size} bytes, over the {limit} limit"
            )
        return self.source.read_at(member.offset, member.size)

    @property
    def header(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.read_member(layout.HEADER_MEMBER, 1024 * 1024))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleFormatError(f"header.json is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != layout.FORMAT_NAME:
            raise BundleFormatError("header.json does not describe an ir bundle")
        return doc

    @property
    def sealed(self) -> bool:
        return layout.MANIFEST_MEMBER in self.members

    @property
    def manifest_bytes(self) -> bytes:
        if self._manifest_bytes is None:
            if not self.sealed:
                evidence = self.seal_evidence()
                problem = self.problems[0] if self.problems else "no manifest"
                raise IntegrityError(
                    f"{self.source.name}: bundle is damaged: {problem}, after its capture had "
                    f"finished ({evidence}); its manifest cannot be read: use another copy (the "
                    "store, the spool)"
                    if evidence
                    else f"{self.source.name}: bundle is incomplete: no manifest (the capture "
                    "did not finish)"
                )
            self._manifest_bytes = self.read_member(layout.MANIFEST_MEMBER)
        return self._manifest_bytes

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = Manifest.from_bytes(self.manifest_bytes)
        return self._manifest

    @property
    def root_digest(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    def signature_document(self) -> bytes | None:
        if layout.SIGNATURE_MEMBER not in self.members:
            return None
        return self.read_member(layout.SIGNATURE_MEMBER, 64 * 1024)

    def journal(self) -> list[dict[str, Any]]:
        """The per-artifact entries written as the capture went (useful for partial bundles).
        An entry that is not a JSON object comes back as {"_invalid": member name}."""
        entries: list[dict[str, Any]] = []
        for name in self.members:
            if name.startswith(layout.JOURNAL_PREFIX):
                try:
                    doc = json.loads(self.read_member(name, 16 * 1024 * 1024))
                except (ValueError, UnicodeDecodeError):
                    doc = None
                entries.append(doc if isinstance(doc, dict) else {"_invalid": name})
        return entries

    # -- artifacts ---------------------------------------------------------------------------
    def entry(self, name: str) -> ArtifactEntry:
        try:
            return self.manifest.artifact(name)
        except KeyError:
            raise BundleFormatError(f"no artifact named {name!r} in this bundle") from None

    def find(self, kind: str, container: str | None = None) -> list[ArtifactEntry]:
        return [
            a
            for a in self.manifest.artifacts
            if a.kind == kind and (container is None or a.container == container)
        ]

    def _member_for(self, entry: ArtifactEntry) -> Member:
        member = self.members.get(layout.artifact_member(entry.name))
        if member is None:
            raise IntegrityError(
                f"artifact {entry.name!r}: listed in the manifest but missing from the file"
            )
        if member.offset != entry.offset or member.size != entry.stored_size:
            raise IntegrityError(
                f"artifact {entry.name!r}: stored at offset {member.offset} size {member.size}, "
                f"manifest says offset {entry.offset} size {entry.stored_size}"
            )
        return member

    def stored_chunks(self, entry: ArtifactEntry) -> Iterator[bytes]:
        member = self._member_for(entry)
        pos, end = member.offset, member.offset + member.size
        while pos < end:
            chunk = self.source.read_at(pos, min(READ_CHUNK, end - pos))
            if not chunk:
                raise IntegrityError(f"artifact {entry.name!r}: file ends inside its data")
            pos += len(chunk)
            yield chunk

    def iter_artifact(self, name_or_entry: str | ArtifactEntry) -> Iterator[bytes]:
        """Decompressed chunks of one artifact, never more than its declared size (bomb guard)."""
        entry = self.entry(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
        yield from decompress_bounded(self.stored_chunks(entry), entry.size, entry.name)

    def open_artifact(self, name_or_entry: str | ArtifactEntry) -> io.BufferedReader:
        """A file-like reader of one artifact's decompressed content (for tarfile streams, lines)."""
        return io.BufferedReader(
            _ChunkStream(self.iter_artifact(name_or_entry)), buffer_size=READ_CHUNK
        )

    def iter_lines(self, name_or_entry: str | ArtifactEntry) -> Iterator[bytes]:
        with self.open_artifact(name_or_entry) as fh:
            yield from fh

    def iter_records(self, name_or_entry: str | ArtifactEntry) -> Iterator[dict[str, Any]]:
        """JSON Lines records of an artifact; a malformed line raises BundleFormatError."""
        for number, line in enumerate(self.iter_lines(name_or_entry), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise BundleFormatError(f"{name_or_entry}: line {number} is not JSON") from None
            if isinstance(record, dict):
                yield record

    def read_json(self, name_or_entry: str | ArtifactEntry, limit: int = 256 * 1024 * 1024) -> Any:
        entry = self.entry(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
        if entry.size > limit:
            raise BundleFormatError(
                f"{entry.name}: {entry.size} bytes is too large to load as one document"
            )
        data = b"".join(self.iter_artifact(entry))
        try:
            return json.loads(data)
        except ValueError as exc:
            raise BundleFormatError(f"{entry.name}: not valid JSON: {exc}") from None


def decompress_bounded(chunks: Iterator[bytes], declared: int, label: str) -> Iterator[bytes]:
    """Decompress one zstd frame, refusing output beyond `declared` bytes and trailing garbage."""
    steady_heap()  # verify, replay and import stream pieces of a MiB from here
    decompressor = pyzstd.ZstdDecompressor()
    produced = 0
    try:
        for chunk in chunks:
            if decompressor.eof:
                raise IntegrityError(f"artifact {label!r}: data after the end of its zstd frame")
            data = chunk
            while True:
                out = decompressor.decompress(data, READ_CHUNK)
                data = b""
                if out:
                    produced += len(out)
                    if produced > declared:
                        raise IntegrityError(
                            f"artifact {label!r}: decompresses to more than its declared {declared} bytes "
                            "(tampered, or a decompression bomb); stopped"
                        )
                    yield out
                if decompressor.eof or decompressor.needs_input:
                    break
            if decompressor.eof and decompressor.unused_data:
                raise IntegrityError(f"artifact {label!r}: data after the end of its zstd frame")
    except pyzstd.ZstdError as exc:
        raise IntegrityError(f"artifact {label!r}: zstd data is corrupt: {exc}") from None
    if not decompressor.eof:
        raise IntegrityError(f"artifact {label!r}: zstd frame is truncated")
    if produced != declared:
        raise IntegrityError(
            f"artifact {label!r}: decompressed to {produced} bytes, manifest declares {declared}"
        )


class ContentCheck:
    """Decompress and hash one artifact's stored bytes in a thread while they are handed over
    (`feed`), with decompress_bounded's limits; `result()` gives the content's (size, sha256)
    or raises IntegrityError; `stop()` gives what was decompressed up to an interruption."""

    _END = object()

    def __init__(self, declared: int, label: str) -> None:
        self.size = 0
        self._digest = hashlib.sha256()
        self._declared, self._label = declared, label
        self._error: BaseException | None = None
        self._ended = False  # the end mark was taken from the queue
        self._q: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, name="ir-content-check", daemon=True)
        self._thread.start()

    def _chunks(self) -> Iterator[bytes]:
        while (item := self._q.get()) is not self._END:
            yield item
        self._ended = True

    def _run(self) -> None:
        try:
            for out in decompress_bounded(self._chunks(), self._declared, self._label):
                self._digest.update(out)
                self.size += len(out)
        except BaseException as exc:  # noqa: BLE001 -- raised to the caller by result()
            self._error = exc
            while not self._ended:  # keep taking until the end mark: the feeder never blocks
                self._ended = self._q.get() is self._END

    def feed(self, chunk: bytes) -> None:
        """Hand over the next stored bytes; they must not be mutated afterwards."""
        self._q.put(chunk)

    def result(self) -> tuple[int, str]:
        done = self.stop()
        if self._error is not None:
            raise self._error
        return done

    def stop(self) -> tuple[int, str]:
        """End early: the size and digest of the content decompressed so far."""
        self._q.put(self._END)
        self._thread.join()
        return self.size, self._digest.hexdigest()


class _ChunkStream(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _expected_member(name: str) -> bool:
    if name in (
        layout.HEADER_MEMBER,
        layout.MANIFEST_MEMBER,
        layout.ROOT_DIGEST_MEMBER,
        layout.SUMS_MEMBER,
        layout.CONTENT_SUMS_MEMBER,
        layout.SIGNATURE_MEMBER,
    ):
        return True
    if name.startswith(layout.JOURNAL_PREFIX):
        rest = name[len(layout.JOURNAL_PREFIX) :]
        return rest.endswith(".json") and rest[:-5].isdigit()
    if name.startswith(layout.ARTIFACT_PREFIX) and name.endswith(layout.ARTIFACT_SUFFIX):
        inner = name[len(layout.ARTIFACT_PREFIX) : -len(layout.ARTIFACT_SUFFIX)]
        try:
            layout.check_artifact_name(inner)
        except BundleFormatError:
            return False
        return True
    return False
