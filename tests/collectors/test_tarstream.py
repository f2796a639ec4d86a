"""TarStream writes what tarfile's PAX "w" mode writes, byte for byte: the fast ustar header for
the common member, tarfile's own PAX extended header for every other (long or non-ASCII names
and links, numbers past their octal fields, fractional mtimes, PAX records set by the caller),
the padding and the archive end.
The stream is read back by tarfile and by GNU tar."""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ir.collect.tarstream import ONE_WRITE, TarStream

NAMES = ["a", "etc/passwd", "x" * 100, "x" * 101, "é/ü", "bad\udcff", "d/" + "y" * 98, "z" * 300]
LINKS = ["/t", "l" * 100, "l" * 101, "ö"]
IDS = [0, 1000, 8**7 - 1, 8**7, 2**32]
MTIMES = [0, 1_700_000_000, 8**11 - 1, 8**11, 1.5]
SIZES = [0, 1, 511, 512, 513, ONE_WRITE, ONE_WRITE + 1]


def members() -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for n, (name, uid, mtime) in enumerate(itertools.product(NAMES, IDS, MTIMES)):
        info = tarfile.TarInfo(name)
        info.uid, info.gid, info.mtime, info.mode = uid, uid // 2, mtime, 0o104755
        if n % 3 == 0:
            info.type, info.linkname = tarfile.SYMTYPE, LINKS[n % len(LINKS)]
            data = b""
        else:
            info.size = SIZES[n % len(SIZES)]
            data = bytes([n % 251]) * info.size
        if n % 7 == 0:  # records of the caller's own (as deleted-exes.tar's comment)
            info.pax_headers = {"comment": f"member {n}"}
        out.append((info, data))
    return out


def by_tarfile(items: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf,
        mode="w",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
    ) as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def by_stream(items: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    tar = TarStream(buf)
    for info, data in items:
        # big members come in pieces, as the capture reads them
        tar.add(info, [data[i : i + 100_000] for i in range(0, len(data), 100_000)])
    tar.close()
    assert tar.offset == len(buf.getvalue())
    return buf.getvalue()


def test_same_bytes_as_tarfile() -> None:
    items = members()
    assert len(items) == 200
    assert by_stream(items) == by_tarfile(items)


@pytest.mark.parametrize("count", [0, 1, 19, 20, 21])
def test_archive_end_padding(count: int) -> None:
    """Two zero blocks, then zeros to a whole 10240-byte record, for any member count."""
    items = [(tarfile.TarInfo(f"f{i}"), b"") for i in range(count)]
    assert by_stream(items) == by_tarfile(items)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
def test_gnu_tar_reads_it_back(tmp_path: Path) -> None:
    # (GNU tar refuses a uid past 32 bits, which Linux cannot have either)
    items = [
        (i, d) for i, d in members() if i.isfile() and "\udcff" not in i.name and i.uid < 2**32
    ]
    path = tmp_path / "t.tar"
    path.write_bytes(by_stream(items))
    listed = subprocess.run(["tar", "-tf", str(path)], capture_output=True, check=True).stdout
    assert listed.decode().splitlines() == [i.name for i, _ in items]
    with tarfile.open(path) as tar:
        for (info, data), got in zip(items, tar.getmembers(), strict=True):
            assert (got.name, got.size, got.uid, got.mtime) == (
                info.name,
                info.size,
                info.uid,
                info.mtime,
            )
            fh = tar.extractfile(got)
            assert fh is not None and fh.read() == data
