"""`ir bundle verify-case` (ir/cluster/caseindex.py: verify_index): a case index of many pods
read back -- its signature, then every bundle it lists, end to end, against the root digest
the signed index records. Real bundles and a real directory store, signed with the test key;
the cluster itself is not needed (the index is what `ir capture pod -l` stores: its fields are
filled here as the run fills them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.signing import Ed25519Signer, generate_keypair
from ir.bundle.trust import load_trust
from ir.bundle.writer import SealedBundle
from ir.cluster.caseindex import SCHEMA, store_index, verify_index
from ir.errors import BundleFormatError
from ir.store import open_store
from tests.fixtures_bundle import MakeBundle

CASE = "INC-7"


def _case(
    tmp_path: Path, make_bundle: MakeBundle, signer: Ed25519Signer | None
) -> tuple[Path, dict[str, SealedBundle]]:
    """Two captured pods and one refused, as one run stores them: the bundles and the signed
    index in <store>/<case>/."""
    store = open_store(str(tmp_path / "evidence"))
    case_dir = store.staging_dir(CASE)
    bundles = {
        name: make_bundle({"fs-files.tar": name.encode() * 1000}, signer, case_dir, case_id=CASE)
        for name in ("web-a", "web-b")
    }

    def pod(name: str) -> dict[str, Any]:
        sealed = bundles.get(name)
        return {
            "namespace": "shop",
            "name": name,
            "outcome": "complete" if sealed else "not-captured",
            "bundle": None
            if sealed is None
            else {
                "location": str(sealed.path),
                "root_digest": sealed.root_digest,
                "bundle_id": sealed.manifest.bundle_id,
                "outcome": "complete",
                "stored": True,
                "spooled": None,
            },
            "exit_code": 0 if sealed else 5,
        }

    document = {
        "schema": SCHEMA,
        "index_id": "20261204T120000Z-0badcafe",
        "case_id": CASE,
        "pods": [pod("web-a"), pod("web-b"), pod("web-c")],
    }
    stored = store_index(store, CASE, document["index_id"], document, signer)
    return Path(stored.location), bundles


def test_every_bundle_valid_against_the_signed_index(
    tmp_path: Path, make_bundle: MakeBundle, signer: Ed25519Signer, keypair: tuple[Path, Path]
) -> None:
    index, _ = _case(tmp_path, make_bundle, signer)
    seen: list[tuple[int, int, str]] = []
    check = verify_index(
        index,
        load_trust([str(keypair[1])], environment=False),
        progress=lambda n, total, pod: seen.append((n, total, pod.verdict)),
    )
    assert check.signature.status == "valid"
    assert [(p.pod, p.verdict, p.exit_code) for p in check.pods] == [
        ("shop/web-a", "valid", 0),
        ("shop/web-b", "valid", 0),
        ("shop/web-c", "not-captured", 0),  # listed, not failed: the index says why
    ]
    assert check.exit_code == 0 and check.errors == []
    assert seen == [(1, 3, "valid"), (2, 3, "valid"), (3, 3, "not-captured")]


def test_origin_not_proven_is_6_unless_allowed(
    tmp_path: Path, make_bundle: MakeBundle, signer: Ed25519Signer
) -> None:
    index, _ = _case(tmp_path, make_bundle, signer)
    other_key = generate_keypair(tmp_path / "other")[1]  # not the key that signed
    other = load_trust([str(other_key)], environment=False)
    check = verify_index(index, other)
    assert check.signature.status == "untrusted"
    assert [p.verdict for p in check.pods] == ["untrusted", "untrusted", "not-captured"]
    assert check.exit_code == 6
    assert check.errors[0].startswith("the case index: signed by")
    assert verify_index(index, other, allow_untrusted=True).exit_code == 0


def test_unsigned_index_and_bundles(tmp_path: Path, make_bundle: MakeBundle) -> None:
    index, _ = _case(tmp_path, make_bundle, None)
    assert not index.with_name(index.name + ".sig").exists()
    check = verify_index(index, None)
    assert check.signature.status == "unsigned" and check.exit_code == 6
    assert verify_index(index, None, allow_unsigned=True).exit_code == 0


def test_a_bundle_swapped_for_another_valid_one_is_found(
    tmp_path: Path, make_bundle: MakeBundle, signer: Ed25519Signer, keypair: tuple[Path, Path]
) -> None:
    """Each bundle alone still verifies; only the index's root digest shows the swap."""
    index, bundles = _case(tmp_path, make_bundle, signer)
    a, b = bundles["web-a"].path, bundles["web-b"].path
    shutil.copyfile(a, b)
    check = verify_index(index, load_trust([str(keypair[1])], environment=False))
    by_pod = {p.pod: p for p in check.pods}
    assert by_pod["shop/web-a"].verdict == "valid"
    assert by_pod["shop/web-b"].verdict == "tampered"
    assert "root digest" in str(by_pod["shop/web-b"].cause)
    assert check.exit_code == 1 and check.errors[-1].startswith("shop/web-b: ")


def test_a_copied_case_directory_is_read_beside_the_index(
    tmp_path: Path, make_bundle: MakeBundle, signer: Ed25519Signer, keypair: tuple[Path, Path]
) -> None:
    index, _ = _case(tmp_path, make_bundle, signer)
    moved = tmp_path / "examiner" / CASE
    shutil.copytree(index.parent, moved)
    shutil.rmtree(index.parent)  # the locations the index records are gone
    check = verify_index(moved / index.name, load_trust([str(keypair[1])], environment=False))
    assert check.exit_code == 0
    assert all(Path(str(p.location)).parent == moved for p in check.pods[:2])


def test_missing_bundle_and_altered_index_fail(
    tmp_path: Path, make_bundle: MakeBundle, signer: Ed25519Signer, keypair: tuple[Path, Path]
) -> None:
    index, bundles = _case(tmp_path, make_bundle, signer)
    trust = load_trust([str(keypair[1])], environment=False)
    bundles["web-a"].path.unlink()
    check = verify_index(index, trust)
    assert check.pods[0].verdict == "missing" and check.exit_code == 1
    assert "bundle not found" in str(check.pods[0].cause)
    # a hostile location: a NUL byte, a way out of the directory -- not found, never a traceback
    for location in ("x\0y.tar", "../../../../etc/passwd"):
        doc = json.loads(index.read_bytes())
        doc["pods"][1]["bundle"]["location"] = location
        hostile = index.with_name("case-index-hostile.json")
        hostile.write_text(json.dumps(doc))
        found = verify_index(hostile, trust).pods[1]
        assert found.exit_code == 1 and found.verdict in ("missing", "unreadable"), found
    # one byte of the index changed: its signature no longer holds
    data = index.read_bytes()
    index.chmod(0o644)
    index.write_bytes(data.replace(b'"web-b"', b'"web-x"'))
    check = verify_index(index, trust)
    assert check.signature.status == "invalid" and check.exit_code == 1
    assert any(e.startswith("the case index: signature does not match") for e in check.errors)


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", json.dumps({"schema": "ir.other/1"}).encode(), b"\xff" * 10],
    ids=["not-json", "a-list", "another-schema", "binary"],
)
def test_not_a_case_index_is_a_usage_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "case-index-x.json"
    path.write_bytes(content)
    with pytest.raises(BundleFormatError, match="case index"):
        verify_index(path, None)


def test_the_command(
    tmp_path: Path,
    make_bundle: MakeBundle,
    signer: Ed25519Signer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Text and -o json through the CLI (the test key is trusted through $IR_TRUST)."""
    from ir.cli.main import main

    index, bundles = _case(tmp_path, make_bundle, signer)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["bundle", "verify-case", str(index)])
    out = capsys.readouterr()
    assert exited.value.code in (0, None)
    assert out.out.startswith(f"VALID: case index {index}")
    assert "2 valid" in out.out and "1 not-captured" in out.out
    assert "[3/3] shop/web-c: not-captured" in out.err
    bundles["web-b"].path.write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exited:
        main(["bundle", "verify-case", str(index), "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert exited.value.code == 1 and doc["exit_code"] == 1
    assert doc["counts"] == {"valid": 1, "unreadable": 1, "not-captured": 1}
    assert doc["errors"][-1].startswith("shop/web-b: ")
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(SystemExit) as exited:
        main(["bundle", "verify-case", str(tmp_path / "junk.json")])
    assert exited.value.code == 2
    assert "not a case index" in capsys.readouterr().err


def test_a_read_failing_half_way_is_that_bundle_s_verdict(
    tmp_path: Path,
    make_bundle: MakeBundle,
    signer: Ed25519Signer,
    keypair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EIO from a failing disk: no real part here can fail a read half-way, so the verifier of
    one bundle is made to raise it (a stand-in, for this case only). The other pods still get
    their verdicts."""
    import errno

    import ir.store.base as store_base

    index, bundles = _case(tmp_path, make_bundle, signer)
    real = store_base.verify_bundle

    def failing(reader: Any, **kw: Any) -> Any:
        if Path(reader.source.name).name == bundles["web-a"].path.name:
            raise OSError(errno.EIO, "Input/output error")
        return real(reader, **kw)

    monkeypatch.setattr(store_base, "verify_bundle", failing)
    check = verify_index(index, load_trust([str(keypair[1])], environment=False))
    assert [(p.verdict, p.exit_code) for p in check.pods] == [
        ("unreadable", 1),
        ("valid", 0),
        ("not-captured", 0),
    ]
    assert "read failed: Input/output error" in str(check.pods[0].cause)
    assert check.exit_code == 1
