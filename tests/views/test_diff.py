"""`ir bundle diff` (ir/replay/diff.py): a suspect bundle against its clean replacement."""

from __future__ import annotations

import json
from pathlib import Path

from tests.replay_fixtures import (
    PLANTED,
    ir,
)


def test_diff_suspect_against_clean_replacement(bundles: dict[str, Path], cache: Path) -> None:
    doc = json.loads(
        ir("bundle", "diff", bundles["bad"], bundles["clean"], "-o", "json", cache=cache).out
    )
    only_a = {f["path"] for f in doc["files"] if f["status"] == "only-a"}
    assert set(PLANTED["bin_dir_files"]) | set(PLANTED["temp_executables"]) <= only_a
    assert "/run/nginx.pid" not in {f["path"] for f in doc["files"]}  # same content: no difference
    changed = next(f for f in doc["files"] if f["path"] == "/var/log/nginx/access.log")
    assert changed["status"] == "differs" and "change" in changed["differs"]
    procs = {p["key"] for p in doc["processes"] if p["status"] == "only-a"}
    assert "/tmp/.kworker (deleted)  /tmp/.kworker -c 203.0.113.7:4444" in procs
    assert not [p for p in doc["processes"] if "nginx" in p["key"]]  # pids differ, processes do not
    assert "tcp outbound to 203.0.113.7:4444" in {
        c["key"] for c in doc["connections"] if c["status"] == "only-a"
    }
    # client ports differ, the service does not; only the agent's loopback probe is new in A
    assert [c["key"] for c in doc["connections"] if "inbound" in c["key"]] == [
        "tcp inbound to port 80 from 127.0.0.1"
    ]
    assert {c["key"] for c in doc["listeners"]} == {"tcp 0.0.0.0:31337"}
    text = ir("bundle", "diff", bundles["bad"], bundles["clean"], cache=cache).out
    assert "  - [web] /usr/bin/.sysupdate  added file" in text
    assert "  ~ [web] /var/log/nginx/access.log  (change, mode)" in text
