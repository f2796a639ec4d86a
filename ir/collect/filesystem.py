"""Filesystem diff: every added/changed/deleted path of the container (type, size, mode, owner,
times, link target), and a tar of the contents of added/changed regular files and symlinks.

Hostile content rules: links are stored as links and never followed; FIFOs, sockets and device
nodes are listed, never opened; a file over --max-file-size, or past the --max-diff-size budget,
is listed as skipped with the reason (so a 2 GiB sparse file costs nothing); a file that changes
while read is flagged; names are kept byte-exact (tar PAX, `path_b64` in the records).

Times: RFC 3339 UTC, in nanoseconds when the source read them so (an lstat of the overlay or the
root), else microseconds. A deletion's `ctime` is the time of what shows it -- its whiteout's
ctime (when it was deleted) or the ctime of the opaque directory that hides it (deleted at or
before) -- and its `mtime` is empty: the deleted file's own mtime is the image's, never the
deletion's time (the `note` keeps it, and says which).

Artifacts: fs-files.tar first (the records are spooled meanwhile), then fs-changes.jsonl."""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import IO

from ir.bundle.pipeline import prefetch
from ir.clock import from_epoch, rfc3339, rfc3339_ns
from ir.collect.base import Artifact, ContainerContext, Scope
from ir.collect.tarstream import TarStream
from ir.errors import IrError
from ir.records import FileChange, encode_path
from ir.runtime.base import FileContent, FsDiffSource, FsEntry
from ir.runtime.overlay import OPAQUE, WHITEOUT, ExactEntry

READ_CHUNK = 1024 * 1024
# Files at least this big are read and hashed in a thread, a few pieces ahead of the tar and
# the compressor; smaller ones inline (a thread costs more than it saves there).
READ_AHEAD = 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass
class DiffStats:
    entries: int = 0
    added: int = 0
    changed: int = 0
    deleted: int = 0
    files_captured: int = 0
    symlinks_captured: int = 0
    bytes_captured: int = 0
    skipped: int = 0
    changed_while_read: int = 0


class FilesystemCollector:
    name = "filesystem"
    scope: Scope = "container"

    def check(self, ctx: ContainerContext) -> None:
        ctx.target.handle.fs_diff()  # raises Unsupported (e.g. no overlay); cheap: nothing is walked

    def collect(self, ctx: ContainerContext) -> Iterator[Artifact]:
        target = ctx.target
        source = target.handle.fs_diff()
        target.sources[self.name] = source.description
        opts = target.options
        stats = DiffStats()
        with (
            tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool,
            tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as amended,
        ):
            files = Artifact(
                "fs-files.tar",
                kind="fs-files",
                media_type="application/x-tar",
                meta={
                    "limits": {
                        "max_file_size": opts.max_file_size,
                        "max_diff_size": opts.max_diff_size,
                    }
                },
            )

            def write(sink: IO[bytes]) -> None:
                try:
                    write_diff(
                        sink,
                        source,
                        spool,
                        stats,
                        max_file=opts.max_file_size,
                        max_total=opts.max_diff_size,
                    )
                except (OSError, IrError, tarfile.TarError) as exc:
                    # Keep what was captured; the listing below still goes out.
                    files.status, files.error = "partial", f"{type(exc).__name__}: {exc}"
                truncated = getattr(source, "truncated", None)  # the node walk stopped early
                if truncated and files.status == "ok":
                    files.status, files.error = "partial", str(truncated)
                entry = getattr(sink, "entry", None)
                if entry is not None:  # a copy: the journal and the manifest must agree
                    entry.meta["stats"] = dict(vars(stats))

            files.write = write
            yield files
            for note in getattr(source, "notes", []):
                ctx.note(note)
            ctx.note(
                f"{stats.entries} change(s): {stats.added} added, {stats.changed} changed, "
                f"{stats.deleted} deleted; {stats.files_captured} file(s) / {stats.bytes_captured} bytes "
                f"captured, {stats.skipped} skipped"
            )
            spool.seek(0)
            late = getattr(source, "late_changes", None)
            if late:
                amend_changed_while_read(spool, amended, late, stats)
                spool = amended
                spool.seek(0)
            yield Artifact(
                "fs-changes.jsonl",
                kind="fs-changes",
                media_type=FileChange.media_type(),
                chunks=_chunks(spool),
                meta={"stats": dict(vars(stats)), "source": source.description},
                status=files.status,
                error=files.error,
            )


def write_diff(
    sink: IO[bytes],
    source: FsDiffSource,
    records: IO[bytes],
    stats: DiffStats,
    *,
    max_file: int,
    max_total: int,
    ahead: bool = True,
) -> None:
    """Stream the diff of `source` as a tar into `sink`, writing one FileChange line per path
    to `records`. Per-path problems become record fields; only a broken source raises.

    Where the source allows it (`opens_ahead`), the walk, the opens and the reading and hashing
    of small files run in a thread ahead of the tar writer: their system calls and SHA-256
    release the GIL and overlap the writer's per-file Python work (the two threads' own Python
    still takes turns on the GIL: in a tree of small files that is what bounds the speed).
    `ahead=False` walks, opens and reads the small files in the calling thread instead (files
    of READ_AHEAD and more are still read a few pieces ahead); bench/filecost.py measures so."""
    entries = source.entries()
    taker = _Taker(source, max_file, max_total)
    if not source.opens_ahead:
        batches = taker.one_by_one(entries)
    elif ahead:
        batches = prefetch(taker.batches(entries), 4, discard=_close_batch)
    else:
        batches = taker.batches(entries)
    try:
        _write_tar(sink, batches, records, stats)
    finally:
        # Either generator closes the listing as it ends (ahead: in the walking thread, which
        # this stops), not at garbage collection.
        batches.close()


@dataclass
class _Taken:
    """A regular file of the diff as the taker found it: skipped (why), opened (`content`, to
    read on the writer's side), or, when small, already read: `data` (exactly `declared` bytes),
    its `sha256` and what changed while it was read (`why`)."""

    declared: int = 0
    skipped: str | None = None
    changed_size: bool = False  # skipped because it grew over the limits before it was read
    content: FileContent | None = None
    data: bytes | None = None
    sha256: str = ""
    why: str | None = None

    def close(self) -> None:
        if self.content is not None:
            self.content.close()
            self.content = None


Batch = list[tuple[FsEntry, _Taken | None]]
BATCH_FILES = 128  # entries handed over at once: one queue hand-off, not one per file
BATCH_BYTES = 1024 * 1024


class _Taker:
    """Opens the regular files of a diff in order, within --max-file-size and the
    --max-diff-size budget, and reads the small ones whole."""

    def __init__(self, source: FsDiffSource, max_file: int, max_total: int) -> None:
        self.source, self.max_file, self.max_total = source, max_file, max_total
        self.used = 0  # bytes of the files taken so far: what the tar will hold

    def take(self, entry: FsEntry, *, read_small: bool) -> _Taken | None:
        if entry.type != "file" or entry.error or entry.change == "deleted":
            return None
        size = entry.size or 0
        if size > self.max_file:
            return _Taken(skipped=f"larger than --max-file-size ({size} > {self.max_file} bytes)")
        if self.used + size > self.max_total:
            return _Taken(
                skipped=f"--max-diff-size budget exhausted ({self.used} of {self.max_total} "
                "bytes used)"
            )
        try:
            content = self.source.open(entry)
        except (OSError, IrError) as exc:
            return _Taken(skipped=f"cannot open: {exc}")
        declared = content.size
        if declared > self.max_file or self.used + declared > self.max_total:
            content.close()
            return _Taken(
                skipped=f"grew to {declared} bytes before it was read: over the limits",
                changed_size=True,
            )
        self.used += declared
        taken = _Taken(declared, content=content)
        if read_small and declared < READ_AHEAD:  # one read, one hash: no reader object
            try:
                data, padded = _read_exact(content, declared) if declared else (b"", 0)
                taken.data, taken.sha256 = data, hashlib.sha256(data).hexdigest()
                taken.why = content.changed() or _short_note(padded)
            finally:
                taken.close()
        return taken

    def one_by_one(self, entries: Iterator[FsEntry]) -> Generator[Batch, None, None]:
        """Each entry in a batch of its own, its file opened just before it is written."""
        try:
            for entry in entries:
                yield [(entry, self.take(entry, read_small=False))]
        finally:
            _close_listing(entries)

    def batches(self, entries: Iterator[FsEntry]) -> Generator[Batch, None, None]:
        """The entries in batches, small files read (run in a thread ahead of the writer, or
        in the writer's own with write_diff(ahead=False))."""
        batch: Batch = []
        held = 0
        try:
            for entry in entries:
                taken = self.take(entry, read_small=True)
                batch.append((entry, taken))
                if taken is not None:
                    held += len(taken.data) if taken.data is not None else BATCH_BYTES
                if len(batch) >= BATCH_FILES or held >= BATCH_BYTES:
                    yield batch
                    batch, held = [], 0
            if batch:
                yield batch
        finally:
            _close_batch(batch)  # cut short: files opened for a batch never handed over
            _close_listing(entries)


def _close_listing(entries: Iterator[FsEntry]) -> None:
    # Now, not at garbage collection: a Docker archive stream left open keeps the container
    # locked in the engine, and every later request on it would hang.
    close = getattr(entries, "close", None)
    if close is not None:
        close()


def _close_batch(batch: Batch) -> None:
    for _entry, taken in batch:
        if taken is not None:
            taken.close()


def _write_tar(
    sink: IO[bytes], batches: Iterator[Batch], records: IO[bytes], stats: DiffStats
) -> None:
    tar = TarStream(sink)  # what tarfile's PAX "w" mode writes, at a fraction of its cost
    for batch in batches:
        try:
            for entry, taken in batch:
                stats.entries += 1
                setattr(stats, entry.change, getattr(stats, entry.change, 0) + 1)
                record = file_change(entry)
                if entry.error:
                    record.skipped = entry.error
                elif entry.change == "deleted":
                    pass
                elif entry.type == "symlink":
                    _add_symlink(tar, entry, record, stats)
                elif taken is not None:
                    _add_file(tar, entry, taken, record, stats)
                elif entry.type in ("fifo", "socket", "char", "block"):
                    record.skipped = f"{entry.type}: listed, never opened"
                if record.skipped:
                    stats.skipped += 1
                records.write(record.to_line())
        finally:
            _close_batch(batch)
    tar.close()


def amend_changed_while_read(
    records: IO[bytes], out: IO[bytes], late: dict[str, str], stats: DiffStats
) -> None:
    """Copy FileChange lines from `records` to `out`, flagging the paths of `late` (found to have
    changed while read only after their record was written: {path: why})."""
    for line in records:
        record = FileChange.from_dict(json.loads(line))
        why = late.get(record.path)
        if why is not None and record.captured:
            if not record.changed_while_read:
                stats.changed_while_read += 1
            record.changed_while_read = True
            record.note = f"{record.note}; {why}" if record.note else why
            line = record.to_line()
        out.write(line)


def file_change(entry: FsEntry) -> FileChange:
    path, path_b64 = encode_path(entry.path)
    exact = entry if isinstance(entry, ExactEntry) else None
    record = FileChange(
        path=path,
        path_b64=path_b64,
        change=entry.change,
        type=entry.type,
        size=entry.size,
        mode=f"{entry.mode:04o}" if entry.mode is not None else None,
        uid=entry.uid,
        gid=entry.gid,
        rdev=entry.rdev,
        opaque=entry.opaque,
        mtime=_time(entry.mtime, exact.mtime_ns if exact else None),
        ctime=_time(entry.ctime, exact.ctime_ns if exact else None),
    )
    if entry.link_target is not None:
        record.link_target, record.link_target_b64 = encode_path(entry.link_target)
    if entry.type == "file" and entry.mode is not None:
        record.executable = bool(entry.mode & 0o111)
    if entry.type == "file" and entry.blocks is not None and entry.size:
        record.sparse = entry.blocks * 512 < entry.size
    if exact is not None and entry.change == "deleted":
        record.note = _deletion_note(exact)
    return record


def _time(seconds: float | None, ns: int | None) -> str | None:
    """RFC 3339 UTC: every nanosecond when the source gave them, else microseconds."""
    if ns is not None:
        return rfc3339_ns(ns)
    return rfc3339(from_epoch(seconds)) if seconds is not None else None


def _deletion_note(entry: ExactEntry) -> str:
    if entry.deleted_by == WHITEOUT:
        note = "deleted: the whiteout's ctime is when"
    elif entry.deleted_by == OPAQUE:
        note = "deleted: hidden by an opaque directory, made at or before the ctime given"
    else:
        note = "deleted: time unknown"
    if entry.deleted_mtime_ns is not None:
        note += f"; the file's mtime in the image: {_time(None, entry.deleted_mtime_ns)}"
    return note


def _member(entry: FsEntry) -> tarfile.TarInfo:
    # Paths relative to the container root; bytes kept exact through surrogateescape + PAX.
    info = tarfile.TarInfo(entry.path.lstrip(b"/").decode("utf-8", "surrogateescape"))
    info.mode = entry.mode or 0
    info.uid, info.gid = entry.uid or 0, entry.gid or 0
    info.mtime = int(entry.mtime or 0)
    return info


def _add_symlink(tar: TarStream, entry: FsEntry, record: FileChange, stats: DiffStats) -> None:
    if entry.link_target is None:
        record.skipped = "symlink target unknown"
        return
    info = _member(entry)
    info.type = tarfile.SYMTYPE
    info.linkname = entry.link_target.decode("utf-8", "surrogateescape")
    tar.add(info)
    record.captured = True
    stats.symlinks_captured += 1


def _add_file(
    tar: TarStream, entry: FsEntry, taken: _Taken, record: FileChange, stats: DiffStats
) -> None:
    if taken.skipped:
        record.skipped = taken.skipped
        record.changed_while_read = taken.changed_size
        return
    declared = taken.declared
    info = _member(entry)
    info.size = declared
    record.uid, record.gid = entry.uid, entry.gid
    info.uid, info.gid = entry.uid or 0, entry.gid or 0
    if taken.data is not None:  # read whole by the taker
        tar.add(info, (taken.data,))
        record.sha256, why = taken.sha256, taken.why
    else:
        assert taken.content is not None
        reader = _ExactReader(taken.content, declared, ahead=declared >= READ_AHEAD)
        try:
            tar.add(info, reader.pieces)
        finally:
            reader.close()  # the read-ahead thread is done with the file before it is closed
        record.sha256 = reader.hexdigest()
        why = taken.content.changed() or reader.short_note()
        taken.close()
    record.size = declared
    record.captured = True
    if not why and entry.size is not None and entry.size != declared:
        why = f"size changed between listing and reading ({entry.size} -> {declared} bytes)"
    if why:
        record.changed_while_read = True
        record.note = why
        stats.changed_while_read += 1
    stats.files_captured += 1
    stats.bytes_captured += declared


class _ExactReader:
    """Exactly `size` bytes of a FileContent for the tar stream, in pieces of READ_CHUNK,
    zero-padded if the file ends early, hashed. With `ahead`, the pieces are read and hashed in a
    thread a few pieces ahead (reads and SHA-256 release the GIL: they run beside the compressor
    hand-off)."""

    def __init__(self, content: FileContent, size: int, *, ahead: bool) -> None:
        self.content, self.size = content, size
        self.h = hashlib.sha256()
        self.padded = 0
        # exactly `size` bytes in pieces of at most READ_CHUNK, for TarStream.add
        self.pieces: Iterator[bytes] = prefetch(self._read(), 4) if ahead else self._read()

    def _read(self) -> Iterator[bytes]:
        left = self.size
        while left > 0:
            want = min(left, READ_CHUNK)
            data, short = _read_exact(self.content, want, ended=self.padded > 0)
            self.padded += short
            self.h.update(data)
            left -= want
            yield data

    def close(self) -> None:
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()

    def hexdigest(self) -> str:
        for _ in self.pieces:  # the last piece's hash is in; lets the read-ahead thread end
            pass
        return self.h.hexdigest()

    def short_note(self) -> str | None:
        return _short_note(self.padded)


def _read_exact(content: FileContent, want: int, *, ended: bool = False) -> tuple[bytes, int]:
    """`want` bytes of `content`, read on over short reads, zero-padded if the file ends first
    (or had `ended` already): (the bytes, how many of them are padding)."""
    data = b"" if ended else content.read(want)
    while data and len(data) < want:  # a short read before the end: read on
        more = content.read(want - len(data))
        if not more:
            break
        data += more
    short = want - len(data)
    return (data + b"\0" * short if short else data), short


def _short_note(padded: int) -> str | None:
    return (
        f"file ended {padded} bytes early while read (zero-padded in the tar)" if padded else None
    )


def _chunks(fh: IO[bytes]) -> Iterator[bytes]:
    while chunk := fh.read(READ_CHUNK):
        yield chunk


COLLECTOR = FilesystemCollector()
