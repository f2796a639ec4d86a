"""Hostile bundles: mutated real bundles fed to the reader, verifier and extractor.

Expectation for every input: a clean IrError (with a message) or a correct read -- never another
exception, a hang, or a file written outside the target directory. The budget grows with
IR_FUZZ_EXAMPLES (default 150) for long runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir.bundle.extract import extract_bundle
from ir.bundle.reader import BundleReader
from ir.bundle.verify import verify_bundle
from ir.errors import IrError
from tests.fixtures_bundle import write_seed_bundle
from tests.strategies import json_values

EXAMPLES = int(os.environ.get("IR_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def seed_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_seed_bundle(tmp_path_factory.mktemp("seed")).read_bytes()


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**9), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**9), st.integers(1, 600)),
    st.tuples(st.just("zero-block"), st.integers(0, 10**9), st.just(0)),
)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        if not buf:
            break
        pos %= len(buf)
        if op == "flip":
            buf[pos] ^= arg
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = bytes([arg]) * 17
        elif op == "delete":
            del buf[pos : pos + arg]
        elif op == "zero-block":
            start = pos - pos % 512
            buf[start : start + 512] = b"\0" * min(512, len(buf) - start)
    return bytes(buf)


@settings(
    max_examples=EXAMPLES,
    deadline=5000,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_bundles_fail_cleanly(
    seed_bundle: bytes, tmp_path: Path, ops: list[tuple[str, int, int]]
) -> None:
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    path = work / "b.tar"
    mutated = _mutate(seed_bundle, ops)
    path.write_bytes(mutated)
    target = work / "out"
    try:
        with BundleReader.open(path) as reader:
            report = verify_bundle(reader)
            if mutated == seed_bundle:
                assert report.intact
            if report.intact:
                # A valid verdict must mean a correct read: everything decompresses to its digest.
                extract_bundle(reader, target)
    except IrError as exc:
        assert exc.message
    # Nothing may appear outside the work directory's own files.
    outside = {p.name for p in work.iterdir()} - {"b.tar", "out"}
    assert not outside, outside
    if target.exists():
        for p in target.rglob("*"):
            assert p.resolve().is_relative_to(target.resolve())


@settings(max_examples=EXAMPLES * 2, deadline=2000)
@given(
    doc=st.dictionaries(
        st.sampled_from(
            [
                "format",
                "format_version",
                "bundle_id",
                "case_id",
                "target",
                "tool",
                "operator",
                "host",
                "started_at",
                "ended_at",
                "outcome",
                "artifacts",
                "collectors",
                "actions",
                "labels",
                "header_sha256",
                "reason",
            ]
        ),
        json_values(max_leaves=30),
    )
)
def test_manifest_parser_never_crashes(doc: dict) -> None:  # type: ignore[type-arg]
    import json

    from ir.bundle.manifest import Manifest

    doc.setdefault("format", "ir-bundle")
    try:
        Manifest.from_bytes(json.dumps(doc).encode())
    except IrError as exc:
        assert exc.message


@settings(max_examples=EXAMPLES, deadline=2000)
@given(raw=st.binary(max_size=2000))
def test_manifest_parser_on_raw_bytes(raw: bytes) -> None:
    from ir.bundle.manifest import Manifest

    try:
        Manifest.from_bytes(raw)
    except IrError as exc:
        assert exc.message


def test_deeply_nested_manifest_is_refused_cleanly() -> None:
    from ir.bundle.manifest import Manifest

    with pytest.raises(IrError):
        Manifest.from_bytes(b"[" * 100_000 + b"]" * 100_000)
