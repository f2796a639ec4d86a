"""The bundle core against real files: round trips, tamper detection, hostile bundles, the
independent tar/zstd/sha256sum recipe. No mocks: every test writes and reads real bundle files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pyzstd

from ir.bundle.custody import FileCustody, append_record, check_chain
from ir.bundle.extract import extract_bundle
from ir.bundle.reader import BundleReader
from ir.bundle.signing import load_public_key, load_signer
from ir.bundle.verify import INCOMPLETE, TAMPERED, VALID, verify_bundle
from ir.bundle.writer import BundleWriter
from ir.errors import BundleFormatError, IrError, UsageError
from ir.store.local import custody_path

REPO = Path(__file__).resolve().parents[1]


def _verify(path: Path, **kw):  # type: ignore[no-untyped-def]
    with BundleReader.open(path) as reader:
        return verify_bundle(reader, **kw)


def test_round_trip_many_artifacts(make_bundle, signer, keypair) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    blobs = {
        f"a/{i:03d}.bin": rng.randbytes(rng.choice([0, 1, 511, 512, 513, 70_000, 1_500_000]))
        for i in range(60)
    }
    blobs["logs/current.jsonl"] = b"".join(b'{"n": %d}\n' % i for i in range(50_000))
    sealed = make_bundle(blobs, signer=signer)
    assert (
        sealed.path.name.endswith(".tar") and not sealed.path.with_suffix(".tar.partial").exists()
    )
    with BundleReader.open(sealed.path) as reader:
        for name, data in blobs.items():
            assert b"".join(reader.iter_artifact(name)) == data
        assert sum(1 for _ in reader.iter_records("logs/current.jsonl")) == 50_000
        report = verify_bundle(reader, trust=load_public_key(str(keypair[1])))
    assert report.intact, report.errors
    assert report.signature is not None and report.signature.status == "valid"
    assert report.artifacts_checked == len(blobs)
    # A standard tar reads it too, and each member is a standard zstd frame.
    with tarfile.open(sealed.path) as tf:
        member = tf.extractfile("artifacts/a/005.bin.zst")
        assert member is not None
        assert pyzstd.decompress(member.read()) == blobs["a/005.bin"]


BIG_WRITER = r"""
import os, sys, hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from ir.bundle.writer import BundleWriter
from ir.bundle.reader import BundleReader
from ir.bundle.verify import verify_bundle
size_mib = int(sys.argv[2])
w = BundleWriter(Path(sys.argv[1]), case_id="BIG", target={"kind": "sample"}, operator="t",
                 host={}, tool={"name": "ir", "version": "t"})
digest = hashlib.sha256()
def chunks():
    block = os.urandom(1 << 20)
    for i in range(size_mib):
        data = block if i % 2 else b"log line %d\n" % i * 200000
        data = data[: 1 << 20]
        digest.update(data)
        yield data
entry = w.add_stream("huge.bin", chunks(), kind="blob", media_type="application/octet-stream", collector="t")
sealed = w.seal()
with BundleReader.open(sealed.path) as r:
    report = verify_bundle(r)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest) through fork + exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(report.integrity, entry.size, entry.sha256 == digest.hexdigest(), hwm // 1024)
"""


def test_large_artifact_streams_with_bounded_memory(tmp_path: Path) -> None:
    """A 400 MiB artifact is written and verified in a fresh process whose peak RSS stays bounded."""
    out = subprocess.run(
        [sys.executable, "-c", BIG_WRITER, str(tmp_path), "400"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    verdict, size, digest_ok, rss_mib = out[0], int(out[1]), out[2], int(out[3])
    assert verdict == VALID and size == 400 << 20 and digest_ok == "True"
    assert rss_mib < 150, f"peak RSS {rss_mib} MiB"


def _flip(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x41]))


def test_a_flipped_byte_anywhere_fails_verification(make_bundle, signer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sealed = make_bundle(
        {"one.txt": b"hello " * 3000, "two.bin": os.urandom(5000), "empty": b""}, signer=signer
    )
    original = sealed.path.read_bytes()
    with BundleReader.open(sealed.path) as reader:
        members = list(reader.members.values())
        trailer = reader.source.size
    offsets: set[int] = set()
    for m in members:  # header start/middle/end, data start/middle/end, padding
        for o in (
            m.header_offset,
            m.header_offset + 100,
            m.header_offset + 148,
            m.header_offset + 511,
            m.offset,
            m.offset + m.size // 2,
            m.offset + m.size - 1,
            m.offset + m.size,
        ):
            if o < trailer:
                offsets.add(o)
    offsets.update(random.Random(3).sample(range(len(original)), 150))
    offsets.add(len(original) - 1)  # end-of-archive zeros
    undetected = []
    for offset in sorted(offsets):
        copy = tmp_path / "copy.tar"
        copy.write_bytes(original)
        _flip(copy, offset)
        try:
            report = _verify(copy)
            if report.intact:
                undetected.append(offset)
            else:
                assert report.errors and all(e for e in report.errors)
        except (BundleFormatError, IrError):
            pass  # unusable input is also a refusal (exit 2), with a message
    assert not undetected, f"flips at offsets {undetected} went undetected"


def test_errors_name_the_tampered_artifact(make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sealed = make_bundle({"keep.txt": b"a" * 1000, "victim.bin": os.urandom(4096)})
    with BundleReader.open(sealed.path) as reader:
        member = reader.members["artifacts/victim.bin.zst"]
    _flip(sealed.path, member.offset + 10)
    report = _verify(sealed.path)
    assert report.verdict == TAMPERED
    assert any("victim.bin" in e for e in report.errors)
    assert not any("keep.txt" in e for e in report.errors)


def test_trust_decides_authenticity(make_bundle, signer, keypair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Intact is not authentic: only a signature by a trusted key makes a bundle valid. A bundle
    signed by any other key (anyone can sign a forgery with their own) is `untrusted`, an unsigned
    one `unsigned`: exit 6 unless the policy allows it; a bad signature is `tampered`."""
    from ir.bundle.signing import generate_keypair
    from ir.bundle.trust import load_trust
    from ir.bundle.verify import UNSIGNED, UNTRUSTED

    sealed = make_bundle({"x": b"x"}, signer=signer)
    ours = load_trust([str(keypair[1])], environment=False)
    report = _verify(sealed.path, trust=ours)
    assert report.verdict == VALID and report.authentic and report.exit_code_for() == 0
    other = load_trust([str(generate_keypair(tmp_path / "other")[1])], environment=False)
    report = _verify(sealed.path, trust=other)
    assert (
        report.intact
        and report.verdict == UNTRUSTED
        and "not a trusted key" in (report.signature.detail)
    )
    assert report.exit_code_for() == 6 and report.exit_code_for(allow_untrusted=True) == 0
    assert _verify(sealed.path).verdict == UNTRUSTED  # no trust store: origin not proven
    unsigned = _verify(make_bundle({"x": b"x"}, directory=tmp_path / "u").path, trust=ours)
    assert unsigned.verdict == UNSIGNED and unsigned.exit_code_for() == 6
    assert unsigned.exit_code_for(allow_unsigned=True) == 0
    # a trust directory holds many keys; a key file that is not a key is a usage error
    keys = tmp_path / "trusted"
    keys.mkdir()
    (keys / "ours.pub").write_bytes(keypair[1].read_bytes())
    assert _verify(sealed.path, trust=load_trust([str(keys)], environment=False)).authentic


def test_unsigned_bundle_is_intact_not_authentic(make_bundle) -> None:  # type: ignore[no-untyped-def]
    report = _verify(make_bundle({"x": b"x"}).path)
    assert report.intact and report.signature.status == "unsigned" and not report.authentic


def test_truncated_bundle_is_incomplete(make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sealed = make_bundle({"a": os.urandom(100_000), "b": os.urandom(100_000)})
    data = sealed.path.read_bytes()
    for cut in (len(data) - 1024, len(data) // 2, 2000):
        copy = tmp_path / f"cut{cut}.tar"
        copy.write_bytes(data[:cut])
        report = _verify(copy)
        assert report.verdict in (INCOMPLETE, TAMPERED) and report.errors


def test_interrupted_capture_leaves_an_explicit_partial(tmp_path: Path) -> None:
    w = BundleWriter(
        tmp_path,
        case_id="C",
        target={"kind": "sample"},
        operator="t",
        host={},
        tool={"name": "ir", "version": "t"},
    )
    w.add_bytes("first", b"1" * 1000, kind="blob", media_type="x", collector="t")
    sink = w.artifact("second", kind="blob", media_type="x", collector="t")
    sink.write(b"2" * 5000)
    # the process dies here: nothing renames the file, no manifest exists
    w._fh.flush()
    assert w.path.name.endswith(".tar.partial") and not w.final_path.exists()
    report = _verify(w.path)
    assert report.verdict == INCOMPLETE
    assert "no manifest" in report.errors[-1] and "1 artifact(s)" in report.errors[-1]


def test_sealed_but_never_renamed_verifies_with_a_warning(make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Killed between the seal's fsync and the rename (the kill -9 suite lands there now and
    then): the `.tar.partial` holds a whole bundle. Verify says valid, and warns that it was
    never renamed; nothing calls it complete by its name alone."""
    sealed = make_bundle({"a": b"alpha" * 1000})
    unrenamed = sealed.path.with_name(sealed.path.name + ".partial")
    sealed.path.rename(unrenamed)
    report = _verify(unrenamed)
    assert report.intact, report.to_dict()
    assert any("before the rename" in w for w in report.warnings), report.warnings
    assert report.root_digest == sealed.root_digest


def test_custody_chain_detects_edits(make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sealed = make_bundle({"x": b"x"})
    log = FileCustody(tmp_path / "c.jsonl")
    for action in ("created", "stored", "verified"):
        append_record(log, action=action, bundle_id="b", bundle_digest=sealed.root_digest)
    digest = sealed.root_digest
    assert check_chain(log.read_lines(), digest, bundle_id="b").ok
    lines = log.read_lines()
    edited = [lines[0], lines[1].replace(b'"stored"', b'"copied"'), lines[2]]
    assert not check_chain(edited, digest, bundle_id="b").ok
    assert not check_chain([lines[0], lines[2]], digest, bundle_id="b").ok  # removed record
    assert not check_chain([lines[1], lines[0], lines[2]], digest, bundle_id="b").ok  # reordered
    assert not check_chain(lines[1:], digest, bundle_id="b").ok  # cut at its start
    assert not check_chain(lines, "0" * 64, bundle_id="b").ok  # another bundle's digest
    # the first record is bound to its bundle: the chain cannot be re-rooted onto another one
    assert not check_chain(lines, digest, bundle_id="another-bundle").ok


# -- hostile bundles ---------------------------------------------------------------------------


def _hostile_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)


def _info(
    name: str, size: int = 0, type_: bytes = tarfile.REGTYPE, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, type_, link
    return info


@pytest.mark.parametrize(
    "bad", ["../escape.txt", "/etc/evil", "artifacts/../../x.zst", "artifacts/a/../../b.zst"]
)
def test_traversal_member_names_are_refused(tmp_path: Path, bad: str) -> None:
    header = b'{"format": "ir-bundle"}'
    path = tmp_path / "evil.tar"
    _hostile_tar(path, [(_info("header.json", len(header)), header), (_info(bad, 3), b"bad")])
    with pytest.raises(BundleFormatError, match="unexpected member name"):
        BundleReader.open(path)
    assert not (tmp_path.parent / "escape.txt").exists()


@pytest.mark.parametrize(
    "kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE]
)
def test_non_regular_members_are_refused(tmp_path: Path, kind: bytes) -> None:
    header = b'{"format": "ir-bundle"}'
    path = tmp_path / "evil.tar"
    _hostile_tar(
        path,
        [
            (_info("header.json", len(header)), header),
            (_info("artifacts/x.zst", 0, kind, "/etc/shadow"), None),
        ],
    )
    with pytest.raises(BundleFormatError, match="not a regular file"):
        BundleReader.open(path)


def _rewrite_manifest(sealed_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    """Build a new bundle file whose manifest was changed by `mutate` (digest members recomputed,
    as a careful attacker would), keeping every other member."""
    import hashlib

    out = sealed_path.with_name("forged.tar")
    with tarfile.open(sealed_path) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "manifest.json":
                doc = json.loads(data)
                mutate(doc)
                data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
                digest = hashlib.sha256(data).hexdigest()
            if info.name == "manifest.json.sha256":
                data = f"{digest}  manifest.json\n".encode()
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def test_decompression_bomb_is_refused(make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # 200 MiB of zeros compress to a few KiB; a forged manifest declares a small size.
    sealed = make_bundle({"bomb": (b"\0" * (1 << 20) for _ in range(200))})
    forged = _rewrite_manifest(sealed.path, lambda m: m["artifacts"][0].update(size=1000))
    with BundleReader.open(forged) as reader:
        with pytest.raises(IrError, match="more than its declared"):
            for _ in reader.iter_artifact("bomb"):
                pass
        report = verify_bundle(reader)
    assert report.verdict == TAMPERED and any("bomb" in e for e in report.errors)
    # Honest but enormous expansion is refused by extract unless explicitly allowed.
    with (
        BundleReader.open(sealed.path) as reader,
        pytest.raises(IrError, match="decompression bomb"),
    ):
        extract_bundle(reader, tmp_path / "out")
    assert not (tmp_path / "out" / "artifacts" / "bomb").exists()


def test_forged_artifact_name_in_manifest_is_refused(make_bundle) -> None:  # type: ignore[no-untyped-def]
    sealed = make_bundle({"fine": b"x"})
    forged = _rewrite_manifest(
        sealed.path, lambda m: m["artifacts"][0].update(name="../../etc/passwd")
    )
    with (
        BundleReader.open(forged) as reader,
        pytest.raises(BundleFormatError, match="invalid artifact name"),
    ):
        _ = reader.manifest


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b"[]",
        b'{"format": "ir-bundle", "format_version": 1}',
        b'{"format": "ir-bundle", "format": "x"}',
    ],
)
def test_malformed_manifest_gives_a_clear_error(make_bundle, garbage: bytes) -> None:  # type: ignore[no-untyped-def]
    sealed = make_bundle({"x": b"x"})
    import hashlib

    out = sealed.path.with_name("bad.tar")
    with tarfile.open(sealed.path) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "manifest.json":
                data = garbage
            if info.name == "manifest.json.sha256":
                data = f"{hashlib.sha256(garbage).hexdigest()}  manifest.json\n".encode()
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    with BundleReader.open(out) as reader, pytest.raises(BundleFormatError) as err:
        verify_bundle(reader)
    assert "manifest" in str(err.value)


def test_extract_never_writes_outside_the_target(make_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sealed = make_bundle({"d/inner.txt": b"inner", "top.txt": b"top"})
    target = tmp_path / "target"
    outside = tmp_path / "outside"
    outside.mkdir()
    target.mkdir()
    (target / "artifacts").mkdir()
    os.symlink(outside, target / "artifacts" / "d")  # symlink-then-file trick planted in the target
    with (
        BundleReader.open(sealed.path) as reader,
        pytest.raises(UsageError, match="not a plain directory"),
    ):
        extract_bundle(reader, target)
    assert list(outside.iterdir()) == []
    shutil.rmtree(target)
    with BundleReader.open(sealed.path) as reader:
        result = extract_bundle(reader, target)
    assert (target / "artifacts" / "d" / "inner.txt").read_bytes() == b"inner"
    assert len(result.written) == 2
    with (
        BundleReader.open(sealed.path) as reader,
        pytest.raises(UsageError, match="refusing to overwrite"),
    ):
        extract_bundle(reader, target)


def test_not_a_bundle_is_a_usage_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(BundleFormatError):
        BundleReader.open(junk)
    with pytest.raises(BundleFormatError, match="no such bundle"):
        BundleReader.open(tmp_path / "missing.tar")


def test_independent_recipe_with_standard_tools(
    make_bundle, signer, keypair, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """scripts/verify-by-hand (tar, openssl, jq, zstd, sha256sum) checks everything against the
    signed manifest: a valid bundle passes (the key given by a relative path too); a changed
    artifact fails even when both checksum lists are rewritten to match it; a forged bundle
    re-signed with another key fails; one without its signature is not authentic (6)."""
    import shutil
    import tarfile

    script = str(REPO / "scripts" / "verify-by-hand")
    sealed = make_bundle({"a.txt": b"alpha\n" * 100, "b/c.bin": os.urandom(10_000)}, signer=signer)
    relative = os.path.relpath(keypair[1])
    ok = subprocess.run([script, str(sealed.path), relative], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"root digest: {sealed.root_digest}" in ok.stdout and "signature: valid" in ok.stdout

    def rebuilt(name: str, change: Callable[[Path], None]) -> Path:
        """The bundle unpacked, changed by hand, packed again in its order (as a forger would)."""
        tree = tmp_path / name
        with tarfile.open(sealed.path) as tar:
            order = tar.getnames()
            tar.extractall(tree, filter="data")
        change(tree)
        out = tmp_path / f"{name}.tar"
        with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
            for member in order:
                if (tree / member).is_file():
                    tar.add(tree / member, arcname=member)
        return out

    def rewrite_lists(tree: Path) -> None:
        """b/c.bin replaced, and both checksum lists rewritten to match it."""
        frame = tree / "artifacts/b/c.bin.zst"
        subprocess.run(["sh", "-c", f"head -c 10000 /dev/zero | zstd -q -o {frame} -f"], check=True)
        stored = hashlib.sha256(frame.read_bytes()).hexdigest()
        content = hashlib.sha256(b"\0" * 10_000).hexdigest()
        for lists, digest in (("SHA256SUMS", stored), ("CONTENTS.sha256", content)):
            path = tree / lists
            lines = [
                f"{digest}  {line.split('  ', 1)[1]}" if "c.bin" in line else line
                for line in path.read_text().splitlines()
            ]
            path.write_text("\n".join(lines) + "\n")

    forged = rebuilt("lists", rewrite_lists)
    bad = subprocess.run([script, str(forged), str(keypair[1])], capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL" in bad.stdout, bad.stdout + bad.stderr
    from ir.bundle.signing import generate_keypair, signature_document

    other = load_signer(str(generate_keypair(tmp_path / "forger")[0]))

    def resign(tree: Path) -> None:
        data = (tree / "manifest.json").read_bytes()
        (tree / "manifest.sig").write_bytes(signature_document(other, data))

    resigned = rebuilt("resigned", resign)
    refused = subprocess.run(
        [script, str(resigned), str(keypair[1])], capture_output=True, text=True
    )
    assert refused.returncode == 1 and "not signed by" in refused.stdout, refused.stdout
    stripped = rebuilt("stripped", lambda tree: (tree / "manifest.sig").unlink())
    unsigned = subprocess.run(
        [script, str(stripped), str(keypair[1])], capture_output=True, text=True
    )
    assert unsigned.returncode == 6 and "UNSIGNED" in unsigned.stdout, unsigned.stdout
    # ir's own verdicts on the same forgeries, against the same trusted key
    from ir.bundle.trust import load_trust
    from ir.bundle.verify import UNSIGNED, UNTRUSTED

    trust = load_trust([str(keypair[1])], environment=False)
    assert _verify(forged, trust=trust).verdict == TAMPERED
    assert _verify(resigned, trust=trust).verdict == UNTRUSTED
    assert _verify(stripped, trust=trust).verdict == UNSIGNED
    assert shutil.which("jq") and shutil.which("openssl")


def test_cli_verify_exit_codes(make_bundle, signer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ir = [sys.executable, "-m", "ir.cli.main"]
    unsigned = make_bundle({"x": b"x"}, directory=tmp_path / "unsigned")
    plain = subprocess.run(
        [*ir, "bundle", "verify", str(unsigned.path)], capture_output=True, text=True
    )
    assert plain.returncode == 6 and "INTACT, UNSIGNED" in plain.stdout, plain.stdout
    allowed = [*ir, "bundle", "verify", str(unsigned.path), "--allow-unsigned"]
    assert subprocess.run(allowed, capture_output=True).returncode == 0
    sealed = make_bundle({"x": b"x" * 100}, signer=signer)  # the key $IR_TRUST names
    good = subprocess.run(
        [*ir, "bundle", "verify", str(sealed.path), "-o", "json"], capture_output=True, text=True
    )
    assert good.returncode == 0 and json.loads(good.stdout)["verdict"] == "valid"
    assert not custody_path(sealed.path).exists() or b"verified" not in (
        custody_path(sealed.path).read_bytes()
    ), "verify writes no custody record unless --record"
    _flip(sealed.path, sealed.path.stat().st_size - 2000)
    bad = subprocess.run(
        [*ir, "bundle", "verify", str(sealed.path)], capture_output=True, text=True
    )
    assert bad.returncode in (1, 2) and "Traceback" not in bad.stderr
    junk = tmp_path / "junk"
    junk.write_bytes(b"nope")
    unusable = subprocess.run([*ir, "bundle", "verify", str(junk)], capture_output=True, text=True)
    assert (
        unusable.returncode == 2
        and "ir: error:" in unusable.stderr
        and "Traceback" not in unusable.stderr
    )


@pytest.mark.parametrize(
    "junk",
    [b"x", b"\0" * 1024, b"not a tar" * 200, b"ustar".rjust(512, b"a") * 3],
    ids=["one-byte", "zeros", "text", "bad-checksum"],
)
def test_refused_bundle_leaves_no_open_file(tmp_path: Path, junk: bytes) -> None:
    """A file that is no bundle is refused and its descriptor closed (atheris found the leak:
    a long-running process refusing ~1000 of them ran out of descriptors)."""
    path = tmp_path / "junk.tar"
    path.write_bytes(junk)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(BundleFormatError):
            BundleReader.open(path)
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("kind", ["directory", "FIFO", "socket", "character device"])
def test_a_path_that_is_no_file_is_bad_input(tmp_path: Path, kind: str) -> None:
    """A directory, FIFO (never waited on), socket or device given as a bundle: exit 2 naming
    what it is, no traceback, no internal error."""
    import socket
    import sys

    path = tmp_path / "thing"
    held = None
    if kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "socket":
        held = socket.socket(socket.AF_UNIX)
        held.bind(str(path))
    else:
        path = Path("/dev/zero")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ir.cli.main", "bundle", "verify", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if held is not None:
            held.close()
    assert done.returncode == 2, done.stderr
    assert f"is a {kind}, not a bundle file" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.s3
def test_kms_signing_against_a_local_kms(make_bundle, moto_s3, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An AWS KMS ECC_NIST_P256 key signs manifests and custody records (moto's KMS server: no
    real KMS is reachable here); `ir keys public awskms:ID` gives the key investigators trust;
    with it the bundle is valid, without it untrusted.

    Mocked, and what that hides: moto's Sign ignores MessageType=DIGEST (it hashes the digest
    again), so this test keeps every signed message within the 4096 bytes KMS signs RAW; the
    DIGEST path ir uses for longer manifests follows the KMS documentation and is not run here."""
    from ir.bundle.custody import append_record, check_chain
    from ir.bundle.signing import KmsSigner
    from ir.bundle.trust import load_trust
    from ir.bundle.verify import UNTRUSTED

    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    kms = moto_s3.client("kms")
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    signer = load_signer(f"awskms:{arn}")
    assert isinstance(signer, KmsSigner) and signer.key_id.startswith("ecdsa-p256:")
    sealed = make_bundle({"x": b"evidence" * 100}, signer=signer)
    with BundleReader.open(sealed.path) as reader:
        assert len(reader.manifest_bytes) <= 4096  # signed RAW (see above)
    env = {**os.environ, **moto_s3.env()}
    public = subprocess.run(
        [sys.executable, "-m", "ir.cli.main", "keys", "public", f"awskms:{arn}"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    pub = tmp_path / "kms.pub"
    pub.write_text(public.stdout)
    assert signer.key_id in public.stderr
    trust = load_trust([str(pub)], environment=False)
    report = _verify(sealed.path, trust=trust)
    assert report.verdict == VALID and report.signature.key_id == signer.key_id
    assert _verify(sealed.path).verdict == UNTRUSTED
    log = FileCustody(tmp_path / "c.jsonl")
    append_record(
        log, action="created", bundle_id="b", bundle_digest=sealed.root_digest, signer=signer
    )
    chain = check_chain(log.read_lines(), sealed.root_digest, trust, "b")
    assert chain.ok and chain.trusted == 1, chain.errors
    wrong = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    with pytest.raises(UsageError, match="ECC_NIST_P256"):
        load_signer(f"awskms:{wrong}")


# -- damaged or unfinished: a finished bundle altered afterwards is not "a capture that did not
# finish" -----------------------------------------------------------------------------------------


def _ir(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ir.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _members(path: Path) -> dict[str, Any]:
    with BundleReader.open(path) as reader:
        return dict(reader.members)


def _three_artifacts(make_bundle, signer):  # type: ignore[no-untyped-def]
    return make_bundle(
        {"one": os.urandom(30_000), "two": os.urandom(30_000), "three": os.urandom(30_000)},
        signer=signer,
    )


def test_a_corrupt_header_in_a_finished_bundle_is_damage_not_an_unfinished_capture(
    make_bundle, signer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A byte flipped in the tar header of an artifact in the middle of a sealed bundle stops the
    index there, so the manifest is out of reach; the seal at the end of the file shows the
    capture had finished: tampered ("damaged"), never "the capture did not finish"."""
    sealed = _three_artifacts(make_bundle, signer)
    header = _members(sealed.path)["artifacts/two.zst"].header_offset
    _flip(sealed.path, header + 20)  # inside the member name: the header checksum fails
    report = _verify(sealed.path)
    assert report.verdict == TAMPERED, report.to_dict()
    assert report.summary and report.summary.startswith("bundle is damaged: corrupt tar header")
    assert "after its capture had finished (its seal is still there" in report.summary
    assert not any("did not finish" in e for e in report.errors), report.errors
    assert report.cause() == report.summary
    # the command: one verdict line first, the cause last; exit 1
    done = _ir("bundle", "verify", str(sealed.path))
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1 and lines[0] == f"TAMPERED: {sealed.path}", done.stdout
    assert lines[-1].startswith("ir: exit 1: bundle is damaged: corrupt tar header"), lines[-1]
    # reading it (show, replay) names the damage too
    show = _ir("bundle", "show", str(sealed.path))
    assert show.returncode == 1 and "bundle is damaged" in show.stderr, show.stderr
    assert "did not finish" not in show.stderr


def test_a_finished_bundle_cut_short_is_damaged_an_unfinished_one_incomplete(
    make_bundle, signer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The same bytes cut in the middle of an artifact: named *.tar (the name ir gives a bundle
    only once sealed) it was damaged after its capture finished -- tampered; named *.tar.partial
    (the name while the capture runs) the capture did not finish -- incomplete."""
    sealed = _three_artifacts(make_bundle, signer)
    data = sealed.path.read_bytes()
    two = _members(sealed.path)["artifacts/two.zst"]
    cut = data[: two.offset + 1000]
    finished = tmp_path / "copy.tar"
    finished.write_bytes(cut)
    report = _verify(finished)
    assert report.verdict == TAMPERED and report.summary is not None
    assert report.summary.startswith("bundle is damaged: member 'artifacts/two.zst' is cut short")
    assert "it is named *.tar" in report.summary
    unfinished = tmp_path / "copy.tar.partial"
    unfinished.write_bytes(cut)
    report = _verify(unfinished)
    assert report.verdict == INCOMPLETE and report.summary is not None
    assert "the capture did not finish" in report.summary and "1 artifact(s)" in report.summary
    # cut inside the seal: a *.tar lost what was sealed; a *.tar.partial was killed while sealing
    seal = _members(sealed.path)["manifest.json.sha256"].header_offset
    finished.write_bytes(data[: seal + 700])
    report = _verify(finished)
    assert report.verdict == TAMPERED and "after its capture had finished (its manifest" in str(
        report.summary
    )
    unfinished.write_bytes(data[: seal + 700])
    report = _verify(unfinished)
    assert report.verdict == INCOMPLETE, report.to_dict()
    assert "stopped while it wrote the seal" in str(report.summary)
    assert not any("missing" in e and "never written" not in e for e in report.errors)


def test_an_unfinished_capture_stays_incomplete_even_named_tar(tmp_path: Path) -> None:
    """The writer stopped inside an artifact (its header still holds the placeholder size 0):
    nothing was sealed, whatever the file is called."""
    w = BundleWriter(
        tmp_path,
        case_id="C",
        target={"kind": "sample"},
        operator="t",
        host={},
        tool={"name": "ir", "version": "t"},
    )
    w.add_bytes("first", os.urandom(3000), kind="blob", media_type="x", collector="t")
    sink = w.artifact("second", kind="blob", media_type="x", collector="t")
    sink.write(os.urandom(200_000))
    w._fh.flush()
    renamed = tmp_path / "renamed.tar"
    shutil.copyfile(w.path, renamed)
    for path in (w.path, renamed):
        report = _verify(path)
        assert report.verdict == INCOMPLETE, (path, report.to_dict())
        assert "the capture did not finish" in str(report.summary)


def test_a_corrupt_header_in_an_unfinished_capture_is_both(tmp_path: Path) -> None:
    """Unfinished and altered: tampered (bytes changed), and the summary says the capture did
    not finish, then what is damaged."""
    w = BundleWriter(
        tmp_path,
        case_id="C",
        target={"kind": "sample"},
        operator="t",
        host={},
        tool={"name": "ir", "version": "t"},
    )
    for name in ("a", "b", "c"):
        w.add_bytes(name, os.urandom(3000), kind="blob", media_type="x", collector="t")
    w._fh.flush()
    header = _members(w.path)["artifacts/b.zst"].header_offset
    _flip(w.path, header + 10)
    report = _verify(w.path)
    assert report.verdict == TAMPERED
    assert "the capture did not finish" in str(report.summary)
    assert "and it is damaged: corrupt tar header" in str(report.summary)
    w.abandon()


def test_verify_text_puts_the_verdict_first_warnings_after_the_details(
    make_bundle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Unsigned: the verdict is the first line, the details follow, the cause of exit 6 is the
    last line; -o json carries it in errors. Accepted with --allow-unsigned: exit 0 and the
    origin warning comes after the details."""
    unsigned = make_bundle({"x": b"x" * 100}, directory=tmp_path / "u")
    done = _ir("bundle", "verify", str(unsigned.path))
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 6
    assert lines[0] == f"INTACT, UNSIGNED: {unsigned.path}"
    assert [line.split(":")[0].strip() for line in lines[1:-1]] == [
        "root digest",
        "bundle id",
        "artifacts",
        "signature",
        "custody",
    ], lines
    assert lines[-1].startswith("ir: exit 6: unsigned: every digest agrees"), lines[-1]
    assert "warning" not in done.stdout
    doc = json.loads(_ir("bundle", "verify", str(unsigned.path), "-o", "json").stdout)
    assert doc["exit_code"] == 6 and doc["errors"] and "unsigned" in doc["errors"][0]
    allowed = _ir("bundle", "verify", str(unsigned.path), "--allow-unsigned")
    assert allowed.returncode == 0 and "ir: exit" not in allowed.stdout
    assert allowed.stderr.strip().startswith("warning: origin not proven (unsigned)")
    ok = json.loads(
        _ir("bundle", "verify", str(unsigned.path), "--allow-unsigned", "-o", "json").stdout
    )
    assert ok["exit_code"] == 0 and ok["errors"] == []


@pytest.mark.parametrize(
    "command",
    [("bundle", "verify"), ("bundle", "show"), ("bundle", "cat"), ("replay",)],
    ids=["verify", "show", "cat", "replay"],
)
def test_every_command_that_opens_a_bundle_refuses_a_directory(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    args = {
        ("bundle", "cat"): [str(tmp_path), "x"],
        ("replay",): [str(tmp_path), "summary"],
    }.get(command, [str(tmp_path)])
    done = _ir(*command, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"ir: error: {tmp_path} is a directory, not a bundle file"
    )
    if command in (("bundle", "verify"), ("bundle", "show")):  # -o json: the error as JSON
        as_json = _ir(*command, *args, "-o", "json")
        doc = json.loads(as_json.stdout)
        assert doc == {"exit_code": 2, "errors": [f"{tmp_path} is a directory, not a bundle file"]}


def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    """ir looks at what a path is before it opens it: a writer waiting on the FIFO is never
    released (an open for reading would release it), and ir does not wait either."""
    import threading

    fifo = tmp_path / "evidence.tar"
    os.mkfifo(fifo)
    released = threading.Event()

    def writer() -> None:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until someone opens the FIFO for reading
        released.set()
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        for command in (("bundle", "verify"), ("bundle", "show")):
            done = _ir(*command, str(fifo))
            assert done.returncode == 2 and "is a FIFO, not a bundle file" in done.stderr
        assert not released.wait(0.5), "ir opened the FIFO"
    finally:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # let the writer go
        thread.join(5)
        os.close(fd)
