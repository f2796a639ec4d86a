"""The local directory store (ir/store/local.py: LocalStore), the one a reference without a
scheme names: ir.store.STORES maps a URI scheme to its class (imported when first used), a
reference without a scheme is a local directory, and any other scheme is refused naming the ones
known -- never taken for a directory called "gs:"."""

from __future__ import annotations

from pathlib import Path

import pytest

from ir.errors import UsageError
from ir.store import STORES, LocalStore, open_store, store_class


def test_each_scheme_names_its_class_and_a_path_is_a_directory(tmp_path: Path) -> None:
    from ir.store.s3 import S3Store

    assert store_class(str(tmp_path)) is LocalStore
    assert store_class("./evidence") is LocalStore
    assert store_class("s3://bucket/prefix") is S3Store
    for scheme, target in STORES.items():
        cls = store_class(f"{scheme}://x/y")
        assert f"{cls.__module__}:{cls.__name__}" == target
        assert callable(cls.from_uri) and callable(cls.open_bundle)
    store = open_store(str(tmp_path / "evidence"))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "evidence"


@pytest.mark.parametrize("uri", ["sftp://host/evidence", "gs://bucket/ir", "https://example/ir"])
def test_an_unknown_scheme_is_refused_naming_the_known_ones(uri: str) -> None:
    known = ", ".join(f"{scheme}://" for scheme in sorted(STORES))
    with pytest.raises(UsageError, match=rf"unknown store .*: use {known} or a path"):
        open_store(uri)
