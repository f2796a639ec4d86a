"""A bundle imported into another (ir in a node collector hands its bundle to the responder's
ir): artifacts whose content agrees with their manifest are copied as their stored zstd frames;
one that does not is compressed again and says why. Real bundle files, no mocks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyzstd

from ir.bundle import layout
from ir.bundle.reader import BundleReader
from ir.bundle.verify import VALID, verify_bundle
from ir.bundle.writer import BundleWriter
from ir.collect.session import CaptureRequest, CaptureSession
from ir.store.local import LocalStore


def _inner(tmp_path: Path) -> Path:
    """The collector's bundle: a big random artifact, a text one, an empty one."""
    w = BundleWriter(
        tmp_path / "inner",
        case_id="c",
        target={"container": "x"},
        operator="collector",
        host={},
        tool={"name": "ir"},
    )
    kw = {"kind": "fs-files", "media_type": "application/x-tar", "collector": "filesystem"}
    w.add_bytes("containers/x/fs-files.tar", os.urandom(3 * 1024 * 1024) + b"a" * 500_000, **kw)
    w.add_bytes("containers/x/fs-changes.jsonl", b'{"path": "/a"}\n' * 10_000, **kw)
    w.add_bytes("containers/x/logs-current.jsonl", b"", **kw)
    return w.seal().path


def _import(tmp_path: Path, inner: Path) -> Path:
    request = CaptureRequest(case_id="c", target={"pod": "p"}, operator="responder")
    with CaptureSession(LocalStore(tmp_path / "evidence"), request) as session:
        session.import_bundle(str(inner), scope="containers/app", container="app", via="test")
        return session.finish().sealed.path


def _stored(path: Path, name: str) -> bytes:
    with BundleReader.open(path) as reader:
        return b"".join(reader.stored_chunks(reader.entry(name)))


def test_agreeing_artifacts_are_copied_as_stored_frames(tmp_path: Path) -> None:
    inner = _inner(tmp_path)
    outer = _import(tmp_path, inner)
    with BundleReader.open(outer) as reader:
        report = verify_bundle(reader)
        assert report.intact and report.integrity == VALID
        with BundleReader.open(inner) as before:
            for old in before.manifest.artifacts:
                new = reader.entry("containers/app/" + old.name.split("/", 2)[2])
                assert (new.status, new.size, new.sha256) == ("ok", old.size, old.sha256)
                assert new.stored_sha256 == old.stored_sha256  # the very same frames
                assert new.meta["via"] == "test"
    assert _stored(outer, "containers/app/fs-files.tar") == _stored(
        inner, "containers/x/fs-files.tar"
    )


def test_an_artifact_whose_content_disagrees_is_compressed_again_and_failed(
    tmp_path: Path,
) -> None:
    inner = _inner(tmp_path)
    # The collector's manifest claims another content digest for fs-changes.jsonl (a bug or a
    # hostile node): its stored digest and the seal still agree, the content does not.
    with BundleReader.open(inner) as reader:
        manifest = json.loads(reader.manifest_bytes)
    for a in manifest["artifacts"]:
        if a["name"].endswith("fs-changes.jsonl"):
            a["sha256"] = "0" * 64
    data = inner.read_bytes()
    with BundleReader.open(inner) as reader:
        member = reader.members[layout.MANIFEST_MEMBER]
    forged = json.dumps(manifest, indent=1, sort_keys=True).encode()
    forged += b" " * (member.size - len(forged))
    assert len(forged) == member.size
    inner.write_bytes(data[: member.offset] + forged + data[member.offset + member.size :])
    outer = _import(tmp_path, inner)
    with BundleReader.open(outer) as reader:
        bad = reader.entry("containers/app/fs-changes.jsonl")
        assert bad.status == "failed"
        assert "differs from the imported bundle's " + "0" * 64 in (bad.error or "")
        assert b"".join(reader.iter_artifact(bad)) == b'{"path": "/a"}\n' * 10_000
        good = reader.entry("containers/app/fs-files.tar")
        assert good.status == "ok"
        assert verify_bundle(reader).intact  # the outer bundle is whole: it says what failed


def test_a_corrupt_frame_is_partial_and_the_rest_goes_on(tmp_path: Path) -> None:
    inner = _inner(tmp_path)
    with BundleReader.open(inner) as reader:
        entry = reader.entry("containers/x/fs-changes.jsonl")
    data = bytearray(inner.read_bytes())
    # break the zstd frame in the middle (its block data), leaving the tar structure alone
    middle = entry.offset + entry.stored_size // 2
    data[middle : middle + 16] = b"\xff" * 16
    inner.write_bytes(bytes(data))
    outer = _import(tmp_path, inner)
    with BundleReader.open(outer) as reader:
        bad = reader.entry("containers/app/fs-changes.jsonl")
        assert bad.status in ("partial", "failed")
        assert bad.error
        assert reader.entry("containers/app/fs-files.tar").status == "ok"
        assert verify_bundle(reader).intact
    assert pyzstd.decompress(_stored(outer, "containers/app/fs-files.tar"))
