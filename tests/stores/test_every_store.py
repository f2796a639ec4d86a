"""Every store has its tests: each URI scheme of ir.store.STORES has its file here,
tests/stores/test_<scheme>.py, and the local directory store (a reference without a scheme)
has test_dir.py."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ir.store import STORES

HERE = Path(__file__).resolve().parent
DIRECTORY = "dir"  # the store of a reference without a scheme: LocalStore


def file_of(scheme: str) -> str:
    """The test file of the store of `scheme` ("s3" -> test_s3.py)."""
    return f"test_{re.sub(r'[^a-z0-9]', '_', scheme)}.py"


def untested(schemes: Iterable[str], here: Path) -> list[str]:
    """The stores of `schemes` without their test file in `here`, each as the file to add."""
    return [
        f"tests/stores/{file_of(scheme)} (store {scheme})"
        for scheme in schemes
        if not (here / file_of(scheme)).is_file()
    ]


def test_every_store_has_its_test_file() -> None:
    assert STORES, "no store scheme: ir.store.STORES is empty"
    missing = untested([DIRECTORY, *STORES], HERE)
    assert not missing, f"a store comes with its test (docs/architecture.md): {missing}"


def test_the_check_itself_names_the_store_without_a_test(tmp_path: Path) -> None:
    (tmp_path / "test_s3.py").write_text("")
    assert untested(["s3", "gs", "azure+blob"], tmp_path) == [
        "tests/stores/test_gs.py (store gs)",
        "tests/stores/test_azure_blob.py (store azure+blob)",
    ]
