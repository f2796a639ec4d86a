"""Fixtures for bundle tests: a signing key pair and a helper to write bundles from byte blobs."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.signing import Ed25519Signer, generate_keypair, load_signer
from ir.bundle.writer import BundleWriter, SealedBundle


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session", autouse=True)
def signing_environment(keypair: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    """Every `ir` the tests start signs with the test key ($IR_SIGNING_KEY) and trusts it
    ($IR_TRUST), as a deployment configured with its key would: bundles made through the CLI are
    authentic (`valid`). Tests of unsigned or untrusted bundles build them without a signer or
    take these variables out of their subprocess's environment."""
    saved = {k: os.environ.get(k) for k in ("IR_SIGNING_KEY", "IR_TRUST", "IR_VERIFY_KEY")}
    os.environ["IR_SIGNING_KEY"] = str(keypair[0])
    os.environ["IR_TRUST"] = str(keypair[1])
    os.environ.pop("IR_VERIFY_KEY", None)
    try:
        yield keypair
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def signer(keypair: tuple[Path, Path]) -> Ed25519Signer:
    s = load_signer(str(keypair[0]))
    assert s is not None
    return s


MakeBundle = Callable[..., SealedBundle]


@pytest.fixture
def make_bundle(tmp_path: Path) -> MakeBundle:
    """make_bundle({"name": bytes_or_iterable, ...}, signer=None) -> SealedBundle in tmp_path."""

    def make(
        artifacts: dict[str, bytes | Iterable[bytes]],
        signer: Any = None,
        directory: Path | None = None,
        **kw: Any,
    ) -> SealedBundle:
        writer = BundleWriter(
            directory or tmp_path / "evidence",
            case_id=kw.pop("case_id", "TEST-1"),
            target=kw.pop("target", {"kind": "sample", "name": "unit"}),
            operator="tester",
            host={"hostname": "test"},
            tool={"name": "ir", "version": "test"},
            **kw,
        )
        for name, data in artifacts.items():
            chunks = [data] if isinstance(data, bytes) else data
            writer.add_stream(
                name, chunks, kind="blob", media_type="application/octet-stream", collector="test"
            )
        return writer.seal(signer)

    return make


def write_seed_bundle(directory: Path) -> Path:
    """A small sealed, signed bundle of several artifact kinds (log lines, random bytes, zeros),
    the same bytes each time: the seed the bundle fuzzers (hypothesis, atheris) mutate."""
    signer = load_signer(str(generate_keypair(directory / "key")[0]))
    writer = BundleWriter(
        directory,
        case_id="FUZZ",
        target={"kind": "sample"},
        operator="fuzz",
        host={},
        tool={"name": "ir", "version": "fuzz"},
    )
    log = b'{"time": "2026-01-01T00:00:00Z", "message": "x"}\n' * 200
    writer.add_bytes(
        "a/log.jsonl", log, kind="logs", media_type="application/x-ndjson", collector="fuzz"
    )
    for name, data in (("b.bin", random.Random(7).randbytes(3000)), ("zeros", bytes(100_000))):
        writer.add_bytes(name, data, kind="blob", media_type="x", collector="fuzz")
    return writer.seal(signer).path
