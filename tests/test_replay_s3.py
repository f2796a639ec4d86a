"""`ir replay s3://...`: a bundle in S3 (the test bed's SeaweedFS) is verified and replayed by
ranged reads, nothing downloaded to disk first; the verdict is not cached (no local mtime)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.replay_fixtures import PAYLOAD, build_bundle, compromised_spec, ir

pytestmark = pytest.mark.s3


def test_replay_a_bundle_in_s3(s3_env: dict[str, str], plain_bucket: str, tmp_path: Path) -> None:
    sealed = build_bundle(tmp_path / "local", compromised_spec())
    cache = tmp_path / "cache"
    pushed = ir(
        "bundle",
        "push",
        sealed.path,
        "--store",
        f"s3://{plain_bucket}/evidence",
        "-o",
        "json",
        cache=cache,
    )
    assert pushed.code == 0, pushed.err
    location = json.loads(pushed.out)[0]["location"]
    assert location.startswith("s3://")
    summary = ir("replay", location, "summary", "-o", "json", cache=cache)
    assert summary.code == 0, summary.err
    doc = json.loads(summary.out)
    assert doc["verification"]["verdict"] == "unsigned" and not doc["verification"]["cached"]
    assert doc["findings"]["counts"]["deleted-exe"] == 1
    cat = ir("replay", location, "fs", "cat", "/tmp/payload.sh", cache=cache)
    assert cat.code == 0 and cat.out.encode() == PAYLOAD
    again = ir("replay", location, "ps", cache=cache)
    assert "verified now" in again.err  # remote: verified on every open
    assert not (cache / "ir" / "verified").exists()
