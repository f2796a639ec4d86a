"""`ir replay BUNDLE fs` and `fs cat` (ir/replay/files.py): the filters, one file's content
streamed, and when a deleted file was deleted (its whiteout's ctime, never the image's mtime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ir.errors import ExitCode
from ir.records import FileChange
from ir.replay.evidence import Evidence
from ir.replay.files import FsFilter, iter_changes, locate_file, stream_file
from tests.replay_fixtures import (
    PAYLOAD,
    SAMPLE,
    BundleSpec,
    ContainerSpec,
    build_bundle,
    ir,
)
from tests.views import _jsonl, column, compromised_kworker


def test_fs_filters(evidence: Evidence, bundles: dict[str, Path], cache: Path) -> None:
    def paths(**kw: Any) -> list[str]:
        return [c.record.path for c in iter_changes(evidence, FsFilter(**kw))]

    assert paths(glob="/usr/*") == ["/usr/bin/.sysupdate", "/usr/local/bin/helper"]
    assert paths(changes={"deleted"}) == ["/var/log/nginx/access.log"]
    assert paths(types={"symlink"}) == ["/usr/local/bin/helper"]
    assert paths(executable=True) == ["/tmp/payload.sh", "/usr/bin/.sysupdate", "/dev/shm/.x/miner"]
    assert paths(min_size=120) == ["/tmp/payload.sh", "/usr/bin/.sysupdate"]
    window = ir(
        "replay",
        bundles["bad"],
        "fs",
        "--since",
        "14/Mar/2025:10:13:00 +0100",
        "--until",
        "2025-03-14T09:13:31Z",
        cache=cache,
    )
    shown = column(window.out, "path")
    # /usr/bin/.sysupdate: mtime forged to 2019, its ctime (09:13:00) puts it in the window
    assert shown == [
        "/usr/bin/.sysupdate",
        "/usr/local/bin/helper -> /dev/shm/.x/miner",
        "/etc/passwd",
    ]
    jsonl = ir(
        "replay",
        bundles["bad"],
        "fs",
        "--type",
        "file",
        "--min-size",
        "1k",
        "-o",
        "jsonl",
        cache=cache,
    )
    assert jsonl.out == ""  # nothing of 1 KiB or more
    assert (
        ir("replay", bundles["bad"], "fs", "--min-size", "lots", cache=cache).code == ExitCode.USAGE
    )


def test_fs_cat_streams_one_file(evidence: Evidence, bundles: dict[str, Path], cache: Path) -> None:
    located = locate_file(evidence, "/tmp/payload.sh")
    assert b"".join(stream_file(evidence, located, "/tmp/payload.sh")) == PAYLOAD
    ran = ir("replay", bundles["bad"], "fs", "cat", "/tmp/payload.sh", cache=cache)
    assert ran.code == 0 and ran.out.encode() == PAYLOAD
    assert (
        ir("replay", bundles["bad"], "fs", "cat", "usr/local/bin/helper", cache=cache).out
        == "-> /dev/shm/.x/miner\n"
    )
    skipped = ir("replay", bundles["bad"], "fs", "cat", "/var/lib/big.db", cache=cache)
    assert skipped.code == ExitCode.USAGE and "over --max-file-size" in skipped.err
    kworker = ir(
        "replay", bundles["bad"], "fs", "cat", "/tmp/.kworker", cache=cache
    )  # deleted, kept
    assert (
        kworker.code == 0
        and kworker.out.encode("utf-8", "surrogateescape") == compromised_kworker()
    )
    assert "deleted executable of pid 5133" in kworker.err
    missing = ir("replay", bundles["bad"], "fs", "cat", "/nope", cache=cache)
    assert missing.code == ExitCode.USAGE and "no captured content" in missing.err


def test_sample_deletion_is_at_its_whiteout_never_at_the_image_mtime(
    sample: Path, cache: Path
) -> None:
    rows = _jsonl(ir("replay", sample, "timeline", "-o", "jsonl", cache=cache))
    motd = [r for r in rows if r["fields"].get("path") == "/etc/motd"]
    assert [(r["description"], r["time"], r["precision"], r["clock"]) for r in motd] == [
        ("File deleted (whiteout created: its ctime)", SAMPLE["motd_deleted"], "1ns", "host")
    ]
    assert not motd[0]["other_clock"]
    assert not [r for r in rows if r["time"].startswith("2025-03-14T06:00:00.000")]  # image mtime
    fs = ir("replay", sample, "fs", "--change", "deleted", cache=cache)
    assert column(fs.out, "time (UTC)") == [SAMPLE["motd_deleted"]]
    assert column(fs.out, "time is") == ["deleted: whiteout ctime"]
    # --since/--until see a deletion at its ctime only
    window = ir("replay", sample, "fs", "--until", "2025-03-14T09:00:00Z", cache=cache)
    assert "/etc/motd" not in window.out


def test_deletion_times_opaque_unknown_and_old_records(tmp_path: Path, cache: Path) -> None:
    """Unit fixture: a path hidden by an opaque directory is deleted at or before the directory's
    ctime; a deletion without a ctime has no time (placed at capture start, said so); an older
    bundle's deletion that kept the image's mtime is never placed there."""
    hidden_at = "2025-03-14T10:05:00.250000001Z"
    spec = BundleSpec(
        bundle_id="0a0a0a0a-0000-4000-8000-000000000001",
        case_id="D",
        target={"kind": "container", "name": "c"},
        containers={
            "c": ContainerSpec(
                changes=[
                    FileChange(
                        "/opt/app",
                        "changed",
                        "dir",
                        mode="0755",
                        mtime=hidden_at,
                        ctime=hidden_at,
                        opaque=True,
                    ),
                    FileChange("/opt/app/app.conf", "deleted", "file", ctime=hidden_at),
                    FileChange("/var/log/old.log", "deleted", "file", mtime="2019-06-01T12:00:00Z"),
                ]
            )
        },
    )
    path = build_bundle(tmp_path, spec).path
    rows = {
        r["fields"]["path"]: r
        for r in _jsonl(
            ir("replay", path, "timeline", "--source", "file", "-o", "jsonl", cache=cache)
        )
        if r["fields"]["change"] == "deleted"
    }
    conf, old = rows["/opt/app/app.conf"], rows["/var/log/old.log"]
    assert conf["description"].startswith("File deleted at or before this (ctime of the opaque")
    assert conf["time"] == hidden_at
    assert old["description"] == "File deleted before capture; time unknown"
    assert old["precision"] == "none" and old["time"].startswith("2025-03-14T10:30:00.")
    fs = ir("replay", path, "fs", cache=cache)
    assert column(fs.out, "time is") == [
        "mtime",
        "deleted at or before: opaque dir ctime",
        "deleted: time unknown",
    ]
    assert "2019" not in fs.out
