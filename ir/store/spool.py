"""The local spool: where bundles bound for S3 are written first, and stay when an upload fails.

Layout: SPOOL/<case>/<bundle-id>.tar (or `.tar.partial` while written), `<bundle-id>.custody.jsonl`
(the custody records made before the upload) and `<bundle-id>.upload.json`: the upload state
(target bucket and key, multipart upload id, parts sent with their SHA-256, options) that lets
`ir bundle push` resume instead of starting over. Nothing here talks to S3.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ir.bundle import layout
from ir.clock import rfc3339, utcnow
from ir.errors import StoreError
from ir.store.local import custody_path  # noqa: F401 -- one definition, re-exported for s3.py

ENV_SPOOL_DIR = "IR_SPOOL_DIR"
STATE_SUFFIX = ".upload.json"
STATE_VERSION = 1


def default_spool_dir() -> Path:
    """$IR_SPOOL_DIR, else ${XDG_STATE_HOME:-~/.local/state}/ir/spool."""
    explicit = os.environ.get(ENV_SPOOL_DIR)
    if explicit:
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "ir" / "spool"


def ensure_dir(path: Path) -> Path:
    """Create a spool directory (owner-only: it holds evidence). Raises StoreError."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StoreError(f"cannot create spool directory {path}: {exc.strerror}") from None
    return path


def bundle_stem(path: Path) -> str:
    name = path.name
    for suffix in (layout.PARTIAL_SUFFIX, layout.BUNDLE_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def state_path(bundle: Path) -> Path:
    return bundle.with_name(bundle_stem(bundle) + STATE_SUFFIX)


@dataclass
class PartState:
    number: int
    offset: int
    size: int
    sha256: str  # hex
    etag: str | None = None


@dataclass
class UploadState:
    """What a later `ir bundle push` needs to finish an upload (never credentials)."""

    bucket: str
    key: str
    store_uri: str
    bundle_id: str
    endpoint_url: str | None = None
    region: str | None = None
    upload_id: str | None = None
    first_part_size: int = 0
    parts: list[PartState] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # S3Options as a dict
    stage: str = "uploading"  # uploading | completed (object confirmed; manifest/custody pending)
    spooled: bool = True  # the spool owns the bundle (delete it once stored); False: a user's file
    version_id: str | None = None
    error: str | None = None
    updated_at: str | None = None
    version: int = STATE_VERSION

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> UploadState:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
                raise ValueError("unknown state file version")
            parts = [PartState(**p) for p in doc.pop("parts", [])]
            return cls(parts=parts, **doc)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{where}: unreadable upload state ({exc})") from None


def read_state(bundle: Path) -> UploadState | None:
    path = state_path(bundle)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: {exc.strerror}") from None
    return UploadState.from_json(data, str(path))


def write_state(bundle: Path, state: UploadState) -> Path:
    """Write the state file atomically (temp file, fsync, rename). Raises StoreError."""
    path = state_path(bundle)
    state.updated_at = rfc3339(utcnow())
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, state.to_json())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(f"cannot write upload state {path}: {exc.strerror}") from None
    return path


def remove_spooled(bundle: Path) -> None:
    """Delete a bundle and its spool companions. Only call once the store confirmed them."""
    for path in (bundle, custody_path(bundle), state_path(bundle)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(OSError):
        bundle.parent.rmdir()  # the case directory, when it was the last bundle in it


def try_lock(fd: int) -> bool:
    """An exclusive advisory lock on an open bundle file: one uploader per bundle at a time."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def spooled_bundles(root: Path) -> Iterator[Path]:
    """Sealed and partial bundles under a spool directory (or one bundle path), oldest first."""
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise StoreError(f"{root}: no such spool directory or bundle")
    found = [
        p
        for pattern in (
            f"*{layout.BUNDLE_SUFFIX}",
            f"*/*{layout.BUNDLE_SUFFIX}",
            f"*{layout.PARTIAL_SUFFIX}",
            f"*/*{layout.PARTIAL_SUFFIX}",
        )
        for p in root.glob(pattern)
    ]
    yield from sorted(set(found), key=lambda p: (p.stat().st_mtime, str(p)))
