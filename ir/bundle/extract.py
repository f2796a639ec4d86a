"""Safe extraction of a bundle's artifacts into a directory.

Never writes outside the target: every path is opened relative to the target directory's file
descriptor, component by component, refusing symlinks (O_NOFOLLOW) and existing files (O_EXCL).
Refuses decompression bombs (declared size bound, ratio limit, free-space check) and verifies each
artifact's digest before it is given its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ir.bundle import layout
from ir.bundle.reader import BundleReader
from ir.errors import IntegrityError, IrError, UsageError

RATIO_LIMIT = 1000  # uncompressed/stored, applied to artifacts above RATIO_MIN_SIZE
RATIO_MIN_SIZE = 64 * 1024 * 1024
FREE_SPACE_MARGIN = 256 * 1024 * 1024


@dataclass
class ExtractResult:
    directory: Path
    written: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def extract_bundle(
    reader: BundleReader,
    target: Path,
    *,
    names: list[str] | None = None,
    allow_high_ratio: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExtractResult:
    """Extract artifacts (all, or `names`) decompressed to TARGET/artifacts/<name>, plus the
    manifest, its digest and signature. Raises IrError on refusal; IntegrityError on a bad digest."""
    manifest = reader.manifest
    entries = manifest.artifacts if names is None else [reader.entry(n) for n in names]
    _check_bomb(entries, target, allow_high_ratio)
    target.mkdir(parents=True, exist_ok=True)
    result = ExtractResult(target)
    root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for member in (layout.MANIFEST_MEMBER, layout.ROOT_DIGEST_MEMBER, layout.SIGNATURE_MEMBER):
            if member in reader.members:
                _write_new(root_fd, member, [reader.read_member(member)])
        for entry in entries:
            rel = "artifacts/" + entry.name
            digest = hashlib.sha256()

            def chunks(entry=entry, digest=digest):  # type: ignore[no-untyped-def]
                for chunk in reader.iter_artifact(entry):
                    digest.update(chunk)
                    if progress:
                        progress(len(chunk))
                    yield chunk

            tmp = rel + ".part"
            _write_new(root_fd, tmp, chunks())
            if digest.hexdigest() != entry.sha256:
                _unlink(root_fd, tmp)
                raise IntegrityError(
                    f"artifact {entry.name!r}: content does not match its sha256; not extracted"
                )
            _rename_new(root_fd, tmp, rel)
            result.written.append(rel)
    finally:
        os.close(root_fd)
    return result


def _check_bomb(entries: list, target: Path, allow_high_ratio: bool) -> None:  # type: ignore[type-arg]
    total = 0
    for entry in entries:
        total += entry.size
        ratio = entry.size / max(entry.stored_size, 1)
        if entry.size > RATIO_MIN_SIZE and ratio > RATIO_LIMIT and not allow_high_ratio:
            raise IrError(
                f"artifact {entry.name!r} would expand {ratio:.0f}x ({entry.size} bytes from {entry.stored_size}): "
                f"refusing a possible decompression bomb (limit {RATIO_LIMIT}x; --allow-high-ratio overrides)"
            )
    probe = target if target.exists() else target.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if total + FREE_SPACE_MARGIN > free:
        raise IrError(
            f"extraction needs {total} bytes; only {free} free at {probe} (keeping a margin)"
        )


def _open_parent(root_fd: int, rel: str) -> tuple[int, str]:
    """Walk/create the directories of REL beneath root_fd without following symlinks."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or rel.startswith("/"):
        raise UsageError(f"refusing unsafe path {rel!r}")
    dfd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=dfd)
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            except OSError as exc:
                raise UsageError(
                    f"refusing to extract through {part!r} in {rel!r}: not a plain directory ({exc.strerror})"
                ) from None
            os.close(dfd)
            dfd = nfd
    except BaseException:
        os.close(dfd)
        raise
    return dfd, parts[-1]


def _write_new(root_fd: int, rel: str, chunks) -> None:  # type: ignore[no-untyped-def]
    dfd, leaf = _open_parent(root_fd, rel)
    try:
        try:
            fd = os.open(
                leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dfd
            )
        except FileExistsError:
            raise UsageError(
                f"{rel} already exists in the target directory; refusing to overwrite"
            ) from None
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
    finally:
        os.close(dfd)


def _unlink(root_fd: int, rel: str) -> None:
    dfd, leaf = _open_parent(root_fd, rel)
    try:
        os.unlink(leaf, dir_fd=dfd)
    finally:
        os.close(dfd)


def _rename_new(root_fd: int, src: str, dst: str) -> None:
    sfd, sleaf = _open_parent(root_fd, src)
    dfd, dleaf = _open_parent(root_fd, dst)
    try:
        try:
            os.stat(dleaf, dir_fd=dfd, follow_symlinks=False)
            raise UsageError(f"{dst} already exists in the target directory; refusing to overwrite")
        except FileNotFoundError:
            pass
        os.rename(sleaf, dleaf, src_dir_fd=sfd, dst_dir_fd=dfd)
    finally:
        os.close(sfd)
        os.close(dfd)
