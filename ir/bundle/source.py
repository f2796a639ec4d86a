"""Random-access byte sources a bundle is read from: a local file here; the S3 store adds ranged GETs."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol


class ByteSource(Protocol):
    """Read-only random access to the bytes of one bundle file."""

    size: int
    name: str

    def read_at(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class NotAFile(OSError):
    """The path is a directory, socket, FIFO or device: no bundle."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class FileSource:
    def __init__(self, path: Path) -> None:
        self.name = str(path)
        # What the path is, before it is opened: opening a device can act (a tape rewinds, a
        # watchdog arms) and reading a FIFO can block, so neither is ever opened. The stat follows
        # symlinks (O_NOFOLLOW is not used: an investigator may point at a symlinked bundle).
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFile(_kind(mode))
        # O_NONBLOCK: should the path be swapped for a FIFO between the stat and the open, the
        # open does not wait for a writer; the fstat below refuses it.
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self._fd)
            self._fd = -1
            raise NotAFile(_kind(st.st_mode))
        self.size = st.st_size

    def read_at(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        return os.pread(self._fd, min(length, self.size - offset), offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"
