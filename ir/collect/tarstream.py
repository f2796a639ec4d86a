"""A write-only PAX tar stream: the same bytes `tarfile.open(mode="w", format=PAX_FORMAT,
encoding="utf-8", errors="surrogateescape")` writes, without its per-member costs.

`tarfile` copies each TarInfo, builds a dict of its fields and checks every one for a PAX
extension: about 45 us a member, a third of the capture's own work per file in a tree of small
files. Here the common member (an ASCII name and link of at most 100 bytes, numbers that fit
their octal fields, no PAX records of its own) gets its ustar header from one format string;
any other member falls back to `TarInfo.tobuf`, which writes the PAX extended header exactly as
tarfile would. A small file's header, content and padding go to the sink as one write.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from typing import IO

from ir.bundle.layout import BLOCK, padding

RECORD = tarfile.RECORDSIZE
ONE_WRITE = 256 * 1024  # members up to this size are handed to the sink in one piece
_OCT7 = 8**7
_OCT11 = 8**11
_TAIL = b"ustar\x0000" + b"\0" * (32 + 32 + 8 + 8 + 155 + 12)  # magic .. prefix, to 512 bytes


def header(info: tarfile.TarInfo) -> bytes:
    """The member's header block(s), as tarfile's PAX format writes them."""
    return _ustar(info) or info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _ustar(info: tarfile.TarInfo) -> bytes | None:
    if info.type not in (tarfile.REGTYPE, tarfile.SYMTYPE):
        return None
    try:
        name = info.name.encode("ascii")
        link = info.linkname.encode("ascii")
    except UnicodeEncodeError:
        return None  # a PAX "path"/"linkpath" record
    uid, gid, size, mtime = info.uid, info.gid, info.size, info.mtime
    if (
        len(name) > 100
        or len(link) > 100
        or info.uname
        or info.gname
        or info.pax_headers
        or type(mtime) is not int
        or not (0 <= uid < _OCT7 and 0 <= gid < _OCT7)
        or not (0 <= size < _OCT11 and 0 <= mtime < _OCT11)
    ):
        return None
    block = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0%07o\0%07o\0%011o\0%011o\0        "
            % (info.mode & 0o7777, uid, gid, size, mtime),
            info.type,
            link.ljust(100, b"\0"),
            _TAIL,
        )
    )
    return block[:148] + b"%06o\0" % sum(block) + block[155:]


class TarStream:
    """Members written one after another to `sink`; `close()` ends the archive."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.offset = 0

    def add(self, info: tarfile.TarInfo, pieces: Iterable[bytes] = ()) -> None:
        """Write a member: its header, then `pieces` (exactly info.size bytes), then padding."""
        head, pad = header(info), padding(info.size)
        if info.size <= ONE_WRITE:
            self.sink.write(b"".join([head, *pieces, pad]))
        else:
            self.sink.write(head)
            for piece in pieces:
                self.sink.write(piece)
            if pad:
                self.sink.write(pad)
        self.offset += len(head) + info.size + len(pad)

    def close(self) -> None:
        end = 2 * BLOCK
        end += -(self.offset + end) % RECORD
        self.sink.write(b"\0" * end)
        self.offset += end
