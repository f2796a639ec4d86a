"""The filesystem diff's read-ahead (ir/collect/filesystem.py): on a directory walk the walk, the
opens and the reading and hashing of small files run in a thread ahead of the tar writer. On a
real directory tree (an overlay upperdir is one), the read-ahead must write exactly the bytes and
records the one-by-one path writes, keep every limit, and leave no file or thread open when the
writer stops half-way."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.collect.filesystem import BATCH_FILES, DiffStats, write_diff
from ir.runtime.base import FsEntry
from ir.runtime.overlay import OverlayDiff, OverlayMount


class OneByOne(OverlayDiff):
    opens_ahead = False


class WalkedIn(OverlayDiff):
    """Notes the threads its walk ran in."""

    def __init__(self, mount: OverlayMount) -> None:
        super().__init__(mount)
        self.threads: set[str] = set()

    def entries(self) -> Iterator[FsEntry]:
        for entry in super().entries():
            self.threads.add(threading.current_thread().name)
            yield entry


def _tree(root: Path) -> None:
    root.mkdir()
    (root / "small").mkdir()
    for i in range(BATCH_FILES * 3 + 7):  # several batches, the last one short
        (root / "small" / f"f{i:04d}").write_bytes(os.urandom(i % 50) * (i % 300))
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # read by the writer
    (root / "over-limit").write_bytes(b"x" * 5_000_000)  # over --max-file-size
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("/etc/shadow")
    os.mkfifo(root / "fifo")
    (root / "caf\xe9".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(b"bytes")
    (root / "zz-after-budget").mkdir()
    for i in range(5):
        (root / "zz-after-budget" / f"g{i}").write_bytes(b"y" * 400_000)


def _capture(
    source: OverlayDiff, *, max_total: int, ahead: bool = True
) -> tuple[bytes, list[dict], DiffStats]:
    records, sink, stats = io.BytesIO(), io.BytesIO(), DiffStats()
    write_diff(sink, source, records, stats, max_file=4_000_000, max_total=max_total, ahead=ahead)
    return sink.getvalue(), [json.loads(x) for x in records.getvalue().splitlines()], stats


@pytest.mark.parametrize("max_total", [1 << 30, 5_000_000], ids=["all", "budget"])
def test_read_ahead_writes_what_one_by_one_writes(tmp_path: Path, max_total: int) -> None:
    upper = tmp_path / "upper"
    _tree(upper)
    mount = OverlayMount(str(upper), [], None, "test")
    ahead = _capture(OverlayDiff(mount), max_total=max_total)
    inline = _capture(OneByOne(mount), max_total=max_total)
    walked_in = WalkedIn(mount)
    one_thread = _capture(walked_in, max_total=max_total, ahead=False)
    assert walked_in.threads == {threading.current_thread().name}  # ahead=False: walked here
    for other in (inline, one_thread):
        assert ahead[0] == other[0]  # the tar, byte for byte
        assert ahead[1] == other[1]  # every record
        assert vars(ahead[2]) == vars(other[2])
    by_path = {r["path"]: r for r in ahead[1]}
    assert by_path["/over-limit"]["skipped"].startswith("larger than --max-file-size")
    assert by_path["/fifo"]["skipped"] == "fifo: listed, never opened"
    assert by_path["/big.bin"]["captured"]
    if max_total < 1 << 30:
        assert any("budget exhausted" in (r["skipped"] or "") for r in ahead[1])


class FailingSink(io.BytesIO):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.left = after

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.left -= 1
        if self.left < 0:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_a_writer_stopping_half_way_leaves_nothing_open(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    _tree(upper)
    for i in range(12):  # files the writer reads: each waits in the queue open
        (upper / "small" / f"h{i:02d}").write_bytes(b"z" * (1024 * 1024 + i))
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="No space left"):
        write_diff(
            FailingSink(after=3),
            OverlayDiff(OverlayMount(str(upper), [], None, "test")),
            io.BytesIO(),
            DiffStats(),
            max_file=1 << 30,
            max_total=1 << 30,
        )
    assert not [t for t in threading.enumerate() if t.name == "ir-prefetch"]
    assert set(os.listdir("/proc/self/fd")) == before  # walk directories and opened files


@pytest.mark.parametrize("ahead", [True, False], ids=["read-ahead", "one-by-one"])
def test_a_file_cut_short_while_read_is_padded_to_its_declared_size(
    tmp_path: Path, ahead: bool
) -> None:
    """The container truncates a file between ir's open and its read: the tar holds the size
    declared at open (zero-padded: the stream stays a valid tar) and the record says so."""
    upper = tmp_path / "upper"
    upper.mkdir()
    small, big = b"s" * 10_000, b"b" * (2 * 1024 * 1024 + 5)  # read by the taker / the writer
    (upper / "small").write_bytes(small)
    (upper / "big").write_bytes(big)

    class Truncating(OverlayDiff):
        opens_ahead = ahead

        def open(self, entry: FsEntry) -> Any:
            content = super().open(entry)
            os.truncate(upper / entry.path.decode().lstrip("/"), 100)
            return content

    tar, records, _stats = _capture(
        Truncating(OverlayMount(str(upper), [], None, "t")), max_total=1 << 30
    )
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for name, original in (("small", small), ("big", big)):
            (record,) = [r for r in records if r["path"] == "/" + name]
            assert record["captured"] and record["changed_while_read"] and record["note"]
            assert record["size"] == len(original) == archive.getmember(name).size
            got = archive.extractfile(name).read()  # type: ignore[union-attr]
            assert got == original[:100] + b"\0" * (len(original) - 100)
