"""Random-access byte sources a bundle is read from: a local file here; the S3 store adds ranged GETs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class ByteSource(Protocol):
    """Read-only random access to the bytes of one bundle file."""

    size: int
    name: str

    def read_at(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class FileSource:
    def __init__(self, path: Path) -> None:
        self.name = str(path)
        # O_NOFOLLOW is not used: an investigator may legitimately point at a symlinked bundle.
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

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
