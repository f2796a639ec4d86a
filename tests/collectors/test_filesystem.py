"""The filesystem collector (ir/collect/filesystem.py) on the test bed's Docker engine: what the
container added, changed and deleted against its image, listed with hashes, and the content of
what it added in the tar; a container that has exited still has its filesystem."""

from __future__ import annotations

import hashlib

import pytest

from tests.collectors.conftest import BACKENDS, CaptureOf

pytestmark = pytest.mark.docker
PLANT = "echo planted > /tmp/dropped; rm /etc/group; echo up"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exited", [False, True], ids=["running", "exited"])
def test_added_and_deleted_paths_with_content(
    backend: str, exited: bool, capture_of: CaptureOf
) -> None:
    command = ["sh", "-c", PLANT + ("" if exited else "; while :; do sleep 1; done")]
    with capture_of("filesystem", command, backend, exited=exited) as got:
        got.ok("filesystem")
        changes = {r["path"]: r for r in got.bundle.records("fs-changes.jsonl")}
        dropped = changes["/tmp/dropped"]
        assert dropped["change"] == "added" and dropped["captured"] is True
        assert dropped["sha256"] == hashlib.sha256(b"planted\n").hexdigest()
        assert changes["/etc/group"]["change"] == "deleted"
        members = got.bundle.tar_members("fs-files.tar")
        assert members[b"tmp/dropped"][1] == b"planted\n"
        assert got.bundle.entry("fs-files.tar").meta["limits"]["max_file_size"] > 0
