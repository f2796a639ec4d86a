"""Files inside a root directory (`/proc/PID/root`, an overlay layer), opened without following
links: every component is opened O_NOFOLLOW, so a symlink planted by the container fails the open
instead of leading outside it. Small files are read whole up to a limit; others are streamed.

Used by the node backend (through `ir.runtime.procfs`). Imports nothing of ir (the runtime room
may import ir.records, ir.errors and ir.clock only).
"""

from __future__ import annotations

import errno
import os
import stat as statmod
from collections.abc import Iterator
from typing import IO

READ_CHUNK = 1024 * 1024
MAX_SMALL_FILE = 1024 * 1024


def open_in_root(root: str, path: str) -> int:
    """Open `path` (absolute, inside the container) below the directory `root` (e.g.
    /proc/PID/root or an overlay layer) with every component opened O_NOFOLLOW: a symlink
    anywhere in the path fails the open (ELOOP/ENOTDIR) instead of leading outside the
    container. Returns a read-only fd of a regular file; raises OSError otherwise."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(errno.EINVAL, f"refusing path {path!r}")
    flags_dir = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        st = os.fstat(leaf)
        if not statmod.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{path!r} is not a regular file")
        return os.open(
            f"/proc/self/fd/{leaf}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        )
    finally:
        os.close(leaf)


def read_file_in_root(root: str, path: str, limit: int = MAX_SMALL_FILE) -> bytes | None:
    """A small regular file below `root` (see open_in_root); None if absent or not regular."""
    try:
        fd = open_in_root(root, path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EINVAL):
            return None
        raise
    with os.fdopen(fd, "rb", buffering=0) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return data


def stream_file(fh: IO[bytes], size_limit: int) -> Iterator[bytes]:
    copied = 0
    while copied < size_limit:
        chunk = fh.read(min(READ_CHUNK, size_limit - copied))
        if not chunk:
            break
        copied += len(chunk)
        yield chunk
