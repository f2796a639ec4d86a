"""Fixtures of the views' tests: `bundles`, the compromised and clean synthetic bundles with
planted facts (tests/replay_fixtures.py); `evidence`, the compromised one opened; `sample`, the
bundle `ir capture container` makes of samples/compromised/; `cache`, a verdict cache of the
test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.reader import BundleReader
from ir.replay.evidence import Evidence
from ir.store.local import custody_path
from tests.replay_fixtures import (
    build_bundle,
    clean_spec,
    compromised_spec,
    sample_container_spec,
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("replay")
    return {
        "bad": build_bundle(directory, compromised_spec()).path,
        "clean": build_bundle(directory, clean_spec()).path,
    }


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def evidence(bundles: dict[str, Path]) -> Iterator[Evidence]:
    with BundleReader.open(bundles["bad"]) as reader:
        yield Evidence(
            reader,
            display="bad",
            custody_lines=custody_path(bundles["bad"]).read_bytes().splitlines(),
        )


# -- the sample compromised container (samples/compromised/, as ir captures it) -------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, signer: Any) -> Path:
    """The bundle `ir capture container` makes of samples/compromised/ (shapes of a real
    capture, times of the reported run), signed with the key the tests trust."""
    return build_bundle(
        tmp_path_factory.mktemp("sample"), sample_container_spec(), signer=signer
    ).path
