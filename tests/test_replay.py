"""`ir replay` and `ir bundle diff` on synthetic bundles with planted facts (tests/replay_fixtures.py)
and on the committed samples: every planted fact shows in the right view, time lands in UTC in
order, a tampered bundle is refused, hostile text stays inert. No mocks: real bundle files, the
real CLI entry point."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.reader import BundleReader
from ir.bundle.signing import load_signer
from ir.clock import rfc3339
from ir.errors import ExitCode
from ir.records import FileChange, LogLine, ProcessRecord, SocketRecord
from ir.replay.evidence import Evidence
from ir.replay.files import FsFilter, iter_changes, locate_file, stream_file
from ir.replay.findings import find_all
from ir.replay.network import Namespace, connection_rows, socket_direction
from ir.replay.ordering import LateCounter, external_sorted, reorder_window
from ir.replay.processes import process_rows
from ir.replay.timeline import SOURCES, build_timeline
from ir.store.local import custody_path
from tests.replay_fixtures import (
    MESSAGE_TIMES,
    PAYLOAD,
    PLANTED,
    SAMPLE,
    BundleSpec,
    ContainerSpec,
    build_bundle,
    clean_spec,
    compromised_spec,
    ir,
    log,
    sample_container_spec,
    t,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "bundles"


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


# -- the planted facts, view by view ------------------------------------------------------------


def test_findings_name_every_planted_fact(evidence: Evidence) -> None:
    found = find_all(evidence)
    by_kind: dict[str, list[Any]] = {}
    for f in found.items:
        by_kind.setdefault(f.kind, []).append(f)
    assert [f.detail["pid"] for f in by_kind["deleted-exe"]] == [PLANTED["deleted_exe"]["pid"]]
    assert sorted(f.detail["pid"] for f in by_kind["started-late"]) == PLANTED["late_processes"]
    assert [f.detail["local_port"] for f in by_kind["undeclared-listener"]] == [
        PLANTED["undeclared_listener"]
    ]
    assert "5133 .kworker" in by_kind["undeclared-listener"][0].summary  # owner found through fds
    assert by_kind["undeclared-listener"][0].container == "web"  # the owner's container, once
    assert [(f.detail["remote_addr"], f.detail["remote_port"]) for f in by_kind["outbound"]] == [
        PLANTED["outbound"]
    ]
    assert sorted(f.detail["path"] for f in by_kind["binary-dir-file"]) == sorted(
        PLANTED["bin_dir_files"]
    )
    assert sorted(f.detail["path"] for f in by_kind["temp-executable"]) == sorted(
        PLANTED["temp_executables"]
    )
    assert sorted(f.detail["pid"] for f in by_kind["temp-dir-process"]) == [5133, 5140]
    for f in found.items:  # every finding cites a real line
        artifact, line = f.cited.rsplit(":", 1)
        assert (
            1 <= int(line) <= sum(1 for _ in evidence.json_lines(evidence.reader.entry(artifact)))
        )


def test_summary_cli_text_and_json(bundles: dict[str, Path], cache: Path) -> None:
    ran = ir("replay", bundles["bad"], "summary", cache=cache)
    assert ran.code == 0
    for text in (
        "pod shop/web-7f9c on node node-1",
        "falco: Terminal shell in container [Warning]",
        "Deleted executables running (1)",
        "Listeners not declared in the pod spec (1)",
        "0.0.0.0:31337",
        "203.0.113.7:4444",
        "/usr/bin/.sysupdate",
        "/dev/shm/.x/miner",
        "image-history  agent      failed",
    ):
        assert text in ran.out, text
    # the verdict in one line, first; its details only when asked
    assert (
        ran.lines[0] == "verdict: unsigned (no signature: origin not proven, intact; verified now)"
    )
    assert "cached verdict" not in ran.out + ran.err
    assert not [line for line in ran.lines if line.startswith(("verified:", "signature:"))]
    doc = json.loads(ir("replay", bundles["bad"], "summary", "-o", "json", cache=cache).out)
    assert doc["verification"]["verdict"] == "unsigned"
    assert doc["findings"]["counts"]["outbound"] == 1
    assert {c["name"]: c["started"] for c in doc["containers"]} == {
        "web": "2025-03-14T08:00:05.123456Z",  # inspect State.StartedAt, nanoseconds cut
        "agent": "2025-03-14T08:30:02.000000Z",
    }


def test_ps_is_a_tree_with_flags_and_hashes(
    evidence: Evidence, bundles: dict[str, Path], cache: Path
) -> None:
    rows = [r for r in process_rows(evidence) if r.cited.container == "web"]
    assert [(r.record.pid, r.depth) for r in rows] == [
        (4101, 0),
        (4130, 1),
        (5120, 2),
        (5133, 3),
        (5140, 4),
    ]
    flags = {r.record.pid: r.flags for r in rows}
    assert flags[5133] == ["deleted-exe", "started-late", "temp-dir"]
    assert flags[4101] == [] and flags[4130] == []  # start-up processes are not "late"
    out = ir("replay", bundles["bad"], "ps", "--container", "web", cache=cache).out
    kworker = next(line for line in out.splitlines() if "5133" in line)
    assert (
        " DLT " in kworker
        and "/tmp/.kworker" in kworker
        and hashlib.sha256(b"").hexdigest()[:4] not in kworker
    )
    assert hashlib.sha256(compromised_kworker()).hexdigest()[:12] in kworker


def compromised_kworker() -> bytes:
    from tests.replay_fixtures import KWORKER

    return KWORKER


def test_net_directions_and_owners(
    evidence: Evidence, bundles: dict[str, Path], cache: Path
) -> None:
    rows = {
        (r.record.local_port, r.record.remote_port): r for r in connection_rows(evidence, "web")
    }
    assert rows[(31337, 0)].direction == "listen" and rows[(31337, 0)].flags == [
        "undeclared-listener"
    ]
    assert rows[(80, 0)].flags == [] and rows[(9090, 0)].flags == []  # declared in the pod spec
    assert rows[(80, 51234)].direction == "inbound"
    assert (
        rows[(40112, 4444)].direction == "outbound"
        and rows[(40112, 4444)].process == "5133 .kworker"
        and rows[(40112, 4444)].basis == "no listener on port 40112; an ephemeral port"
    )
    # the agent's probe of nginx over loopback: both ends here, the listener on 80 decides
    probe, served = rows[(45678, 80)], rows[(80, 45678)]
    assert (probe.direction, served.direction) == ("outbound", "inbound")
    assert probe.peer_here and served.peer_here
    assert probe.basis == "connected to a listener of this network namespace (port 80)"
    assert probe.flags == []  # a call to a declared port of the pod is the workload's own
    out = ir("replay", bundles["bad"], "net", "--direction", "outbound", cache=cache).out
    assert "203.0.113.7:4444" in out and "10.244.0.5" not in out
    local = ir("replay", bundles["bad"], "net", "--direction", "local", "-o", "json", cache=cache)
    assert {(c["local_port"], c["direction"]) for c in json.loads(local.out)["connections"]} == {
        (45678, "outbound"),
        (80, "inbound"),
    }


def test_fs_filters(evidence: Evidence, bundles: dict[str, Path], cache: Path) -> None:
    def paths(**kw: Any) -> list[str]:
        return [c.record.path for c in iter_changes(evidence, FsFilter(**kw))]

    assert paths(glob="/usr/*") == ["/usr/bin/.sysupdate", "/usr/local/bin/helper"]
    assert paths(changes={"deleted"}) == ["/var/log/nginx/access.log"]
    assert paths(types={"symlink"}) == ["/usr/local/bin/helper"]
    assert paths(executable=True) == ["/tmp/payload.sh", "/usr/bin/.sysupdate", "/dev/shm/.x/miner"]
    assert paths(min_size=120) == ["/tmp/payload.sh", "/usr/bin/.sysupdate"]
    window = ir(
        "replay",
        bundles["bad"],
        "fs",
        "--since",
        "14/Mar/2025:10:13:00 +0100",
        "--until",
        "2025-03-14T09:13:31Z",
        cache=cache,
    )
    shown = column(window.out, "path")
    # /usr/bin/.sysupdate: mtime forged to 2019, its ctime (09:13:00) puts it in the window
    assert shown == [
        "/usr/bin/.sysupdate",
        "/usr/local/bin/helper -> /dev/shm/.x/miner",
        "/etc/passwd",
    ]
    jsonl = ir(
        "replay",
        bundles["bad"],
        "fs",
        "--type",
        "file",
        "--min-size",
        "1k",
        "-o",
        "jsonl",
        cache=cache,
    )
    assert jsonl.out == ""  # nothing of 1 KiB or more
    assert (
        ir("replay", bundles["bad"], "fs", "--min-size", "lots", cache=cache).code == ExitCode.USAGE
    )


def test_fs_cat_streams_one_file(evidence: Evidence, bundles: dict[str, Path], cache: Path) -> None:
    located = locate_file(evidence, "/tmp/payload.sh")
    assert b"".join(stream_file(evidence, located, "/tmp/payload.sh")) == PAYLOAD
    ran = ir("replay", bundles["bad"], "fs", "cat", "/tmp/payload.sh", cache=cache)
    assert ran.code == 0 and ran.out.encode() == PAYLOAD
    assert (
        ir("replay", bundles["bad"], "fs", "cat", "usr/local/bin/helper", cache=cache).out
        == "-> /dev/shm/.x/miner\n"
    )
    skipped = ir("replay", bundles["bad"], "fs", "cat", "/var/lib/big.db", cache=cache)
    assert skipped.code == ExitCode.USAGE and "over --max-file-size" in skipped.err
    kworker = ir(
        "replay", bundles["bad"], "fs", "cat", "/tmp/.kworker", cache=cache
    )  # deleted, kept
    assert (
        kworker.code == 0
        and kworker.out.encode("utf-8", "surrogateescape") == compromised_kworker()
    )
    assert "deleted executable of pid 5133" in kworker.err
    missing = ir("replay", bundles["bad"], "fs", "cat", "/nope", cache=cache)
    assert missing.code == ExitCode.USAGE and "no captured content" in missing.err


def test_logs_merge_containers_and_instances_in_time_order(
    bundles: dict[str, Path], cache: Path
) -> None:
    rows = [
        json.loads(line)
        for line in ir("replay", bundles["bad"], "logs", "-o", "jsonl", cache=cache).lines
    ]
    times = [r["time"] for r in rows]
    assert times == sorted(times)  # nine digits always: sortable as text
    assert [r["time_ns"] for r in rows] == sorted(r["time_ns"] for r in rows)
    assert {(r["container"], r["fields"]["instance"]) for r in rows} == {
        ("web", "current"),
        ("agent", "current"),
        ("agent", "previous"),
    }
    web_only = ir(
        "replay",
        bundles["bad"],
        "logs",
        "--container",
        "web",
        "--since",
        "2025-03-14T09:12:00Z",
        cache=cache,
    )
    assert column(web_only.out, "container") == ["web"] * 4
    assert set(column(web_only.out, "instance/stream")) == {"current/stdout", "current/stderr"}
    assert set(column(web_only.out, "time from")) == {"runtime"}
    assert_aligned(web_only.out)
    previous = ir(
        "replay", bundles["bad"], "logs", "--instance", "previous", "-o", "csv", cache=cache
    )
    assert len(list(csv.DictReader(io.StringIO(previous.out)))) == len(MESSAGE_TIMES) + 1
    text = ir("replay", bundles["bad"], "logs", "--instance", "previous", cache=cache).out
    assert column(text, "time from") == ["application"] * len(MESSAGE_TIMES) + ["none"]
    assert "2025-03-14T08:20:00.500Z" in column(
        text, "time (UTC)"
    )  # the digits it was written with
    assert_aligned(text)


# -- the timeline ---------------------------------------------------------------------------------


def test_timeline_is_sorted_covers_every_source_and_cites_real_records(evidence: Evidence) -> None:
    rows = list(build_timeline(evidence))
    assert [r.key for r in rows] == sorted(r.key for r in rows)
    assert {r.source for r in rows} == set(SOURCES)
    manifest = json.loads(evidence.reader.read_member("manifest.json"))
    for row in rows:
        if row.line is not None and row.artifact != "custody":
            lines = [
                line
                for n, line in evidence.json_lines(evidence.reader.entry(row.artifact))
                if n == row.line
            ]
            assert len(lines) == 1, row.cited
        elif row.pointer is not None:
            doc = (
                manifest
                if row.artifact == "manifest.json"
                else evidence.reader.read_json(row.artifact)
            )
            for part in row.pointer.strip("/").split("/"):
                doc = doc[int(part)] if isinstance(doc, list) else doc[part]
            if isinstance(doc, str) and row.time_original:
                assert doc == row.time_original, row.cited
    descriptions = {(r.source, r.description) for r in rows}
    for expected in [
        ("ir", "ir custody: respond"),
        ("ir", "ir action during capture"),
        ("alert", "Alert fired"),
        ("k8s", "Kubernetes event first seen"),
        ("k8s", "Kubernetes event last seen (count 3)"),
        ("file", "File inode changed (ctime)"),
        ("file", "File content modified (mtime)"),
        ("process", "Process started"),
        ("container", "Container started"),
        ("ir", "ir collector failed"),
    ]:
        assert expected in descriptions, expected


def test_message_timestamps_in_five_formats_land_in_utc(evidence: Evidence) -> None:
    previous = [
        r
        for r in build_timeline(evidence, sources=["log"])
        if r.fields.get("instance") == "previous"
    ]
    by_message = {r.message: r for r in previous}
    for message, fmt, expected in MESSAGE_TIMES:
        row = by_message[message]
        assert rfc3339(row.time) == expected, message
        assert row.fields["message_time_format"] == fmt
        assert row.description == "Time written in the log message"
    untimed = by_message["a line with no time at all"]
    assert (
        rfc3339(untimed.time) == MESSAGE_TIMES[-1][2] and untimed.time_note == "no time in the line"
    )
    # lines the runtime stamped keep its time; the message's own time rides along
    current = {
        r.message[:5]: r
        for r in build_timeline(evidence, sources=["log"])
        if r.container == "agent"
    }
    cpu = current["2025-"]
    assert rfc3339(cpu.time) == "2025-03-14T09:14:01.300000Z"
    assert cpu.fields["message_time"] == "2025-03-14T09:14:01.250Z"  # the digits it had


def test_timeline_filters_and_outputs(bundles: dict[str, Path], cache: Path) -> None:
    # --since/--until in any format parse_timestamp reads: common log with offset, epoch millis
    ran = ir(
        "replay",
        bundles["bad"],
        "timeline",
        "--since",
        "14/Mar/2025:10:12:00 +0100",
        "--until",
        str(int(1741943525 * 1000)),
        "--source",
        "log,process",
        "--source",
        "alert",
        "-o",
        "csv",
        cache=cache,
    )
    rows = list(csv.DictReader(io.StringIO(ran.out)))
    assert [r["source"] for r in rows] == ["log", "log", "process", "alert", "log"]
    assert rows[3]["cited"] == "alert.json#/time"
    assert rows[3]["time"] == PLANTED["alert_time"][:-1] + "000Z"  # nine digits, as the source's
    assert rows[3]["precision"] == "1us"  # six were given
    assert rows[3]["clock"] == "alert-sender" and rows[3]["other_clock"] == "yes"
    assert all(r["bundle_verdict"] == "unsigned" for r in rows)
    table = ir("replay", bundles["bad"], "timeline", "--source", "ir", cache=cache)
    assert "respond by alice" in table.out and "[custody:2]" in table.out
    assert (
        ir("replay", bundles["bad"], "timeline", "--source", "nope", cache=cache).code
        == ExitCode.USAGE
    )
    assert (
        ir("replay", bundles["bad"], "timeline", "--since", "yesterday-ish", cache=cache).code
        == ExitCode.USAGE
    )


def test_timesketch_export(bundles: dict[str, Path], cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "ts.jsonl"
    assert ir("replay", bundles["bad"], "export", "timesketch", "--out", out, cache=cache).code == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) > 50
    for e in events:
        assert {
            "message",
            "datetime",
            "timestamp_desc",
            "timestamp",
            "data_type",
            "cited",
            "bundle_id",
        } <= set(e)
        assert e["datetime"].endswith("Z") and e["bundle_verdict"] == "unsigned"
        assert all(not isinstance(v, dict | list) for v in e.values())  # flat fields
    alert = next(e for e in events if e["data_type"] == "ir:alert")
    assert alert["timestamp"] == 1741943523512000 and alert["rule"] == "Terminal shell in container"
    assert alert["time_exact"] == "2025-03-14T09:12:03.512000000Z"
    assert alert["precision"] == "1us" and alert["clock"] == "alert-sender"


# -- trust: verification, refusal, the cache ------------------------------------------------------


def _flip_byte(path: Path, artifact: str) -> None:
    with BundleReader.open(path) as reader:
        entry = reader.entry(artifact)
    with open(path, "r+b") as fh:
        fh.seek(entry.offset + entry.stored_size // 2)
        byte = fh.read(1)
        fh.seek(entry.offset + entry.stored_size // 2)
        fh.write(bytes([byte[0] ^ 0x01]))


def test_tampered_bundle_is_refused_unless_forced(
    bundles: dict[str, Path], cache: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "x.tar"
    shutil.copyfile(bundles["bad"], bad)
    _flip_byte(bad, "containers/web/logs-current.jsonl")
    for view in (
        ["summary"],
        ["ps"],
        ["timeline"],
        ["fs", "cat", "/etc/passwd"],
        ["export", "html", "--out", tmp_path / "r.html"],
    ):
        refused = ir("replay", bad, *view, cache=cache)
        assert (
            refused.code == ExitCode.FAILED
            and "refusing to replay a tampered bundle" in refused.err
        )
        assert "logs-current.jsonl" in refused.err and refused.out == ""
    forced = ir("replay", bad, "ps", "--force", cache=cache)
    assert forced.code == ExitCode.FAILED  # shown, but never mistaken for good evidence
    assert forced.lines[1].startswith("TAMPERED BUNDLE") and forced.lines[-2].startswith(
        "TAMPERED BUNDLE"
    )
    assert "5133" in forced.out  # the views still work
    also = ir(
        "replay", bad, "--force", "timeline", "-o", "jsonl", "--source", "process", cache=cache
    )
    assert (
        all(json.loads(line)["bundle_verdict"] == "tampered" for line in also.lines)
        and "TAMPERED" in also.err
    )
    ir("replay", bad, "export", "html", "--out", tmp_path / "r.html", "--force", cache=cache)
    assert html_text(tmp_path / "r.html").count("TAMPERED BUNDLE, shown because of --force") == 2
    diff = ir("bundle", "diff", bad, bundles["clean"], cache=cache)
    assert diff.code == ExitCode.FAILED and "refusing" in diff.err


def test_broken_custody_chain_is_refused(
    bundles: dict[str, Path], cache: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "c.tar"
    shutil.copyfile(bundles["bad"], copy)
    lines = custody_path(bundles["bad"]).read_bytes().splitlines()
    custody_path(copy).write_bytes(b"\n".join(lines[:1] + lines[2:]) + b"\n")  # a record removed
    ran = ir("replay", copy, "summary", cache=cache)
    assert ran.code == ExitCode.FAILED and "chain broken" in ran.err


def test_verdict_cache_skips_rehash_only_while_file_unchanged(
    bundles: dict[str, Path], cache: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "v.tar"
    shutil.copyfile(bundles["bad"], copy)
    shutil.copyfile(custody_path(bundles["bad"]), custody_path(copy))
    first = ir("replay", copy, "summary", cache=cache)
    assert first.lines[0].endswith("; verified now)")
    assert len(list((cache / "ir" / "verified").glob("5d0c1b2a-*.json"))) == 1
    again = ir("replay", copy, "ps", cache=cache)
    assert again.err.splitlines()[0].endswith("; cached)")
    details = ir("replay", copy, "ps", "--verdict-details", cache=cache)
    assert "cached verdict" in details.err and "size and mtime unchanged" in details.err
    assert "verified now" in ir("replay", copy, "ps", "--reverify", cache=cache).err
    os.utime(copy, ns=(1, 1))  # a changed mtime: hash again
    assert "verified now" in ir("replay", copy, "ps", cache=cache).err
    # the custody chain is checked on every open, cached verdict or not
    custody_path(copy).write_bytes(
        custody_path(copy).read_bytes().replace(b"quarantine", b"quarantinE")
    )
    assert ir("replay", copy, "ps", cache=cache).code == ExitCode.FAILED


def test_signature_checked_with_a_given_key(cache: Path) -> None:
    ran = ir(
        "replay",
        SAMPLES / "compromised.tar",
        "--public-key",
        SAMPLES / "demo-signing.pub",
        "summary",
        cache=cache,
    )
    assert ran.code == 0 and ran.lines[0].startswith("verdict: valid (signed by ed25519:")
    other = ir(
        "replay",
        SAMPLES / "clean.tar",
        "summary",
        "--public-key",
        SAMPLES / "demo-signing.pub",
        cache=cache,
    )
    assert other.code == 0


# -- diff -----------------------------------------------------------------------------------------


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


# -- hostile content --------------------------------------------------------------------------------


def test_terminal_output_never_carries_control_characters(
    bundles: dict[str, Path], cache: Path
) -> None:
    for view in (["logs"], ["fs"], ["timeline"], ["summary"], ["ps"], ["net"]):
        ran = ir("replay", bundles["bad"], *view, cache=cache)
        assert "\x1b" not in ran.out and "\x1b" not in ran.err, view
    assert "\\x1b[2J\\x1b[31mALL CLEAR" in ir("replay", bundles["bad"], "logs", cache=cache).out
    assert "/tmp/evil\\x1b[31mname\\nline2" in ir("replay", bundles["bad"], "fs", cache=cache).out


def test_hostile_records_become_problems_not_crashes(tmp_path: Path, cache: Path) -> None:
    spec = BundleSpec(
        bundle_id="0badc0de-0000-4000-8000-000000000000",
        case_id="X",
        target={"kind": "pod", "name": "p"},
        containers={"c": ContainerSpec(logs={"current": [log(t("09:00:00"), "ok")]})},
        k8s={
            "events": "not a list",
            "pod": {"spec": {"containers": "nope"}, "status": {"containerStatuses": [7]}},
        },
        alert={"rule": "no time"},
    )
    sealed = build_bundle(tmp_path, spec)
    # rewrite processes/sockets/fs-changes with malformed lines through a second bundle
    hostile = {
        "processes": b'{"pid": "12", "cmdline": "not a list", "start_time": 5}\n{"pid": null}\nnot json\n[1,2]\n'
        + b'{"pid": 7, "ppid": 7, "exe": "/x (deleted)"}\n{"pid": 8, "ppid": 9}\n{"pid": 9, "ppid": 8}\n',
        "sockets": b'{"proto": "tcp", "local_port": "x", "state": "LISTEN"}\n{"local_port": 1}\n',
        "fs-changes": b'{"path": "/etc/x", "change": "added", "mode": "9z9", "size": "big", "mtime": "never"}\n',
    }
    from ir.bundle.writer import BundleWriter

    writer = BundleWriter(
        tmp_path / "h",
        case_id="X",
        target={"kind": "pod", "name": "p"},
        operator="o",
        host={},
        tool={"name": "ir", "version": "t"},
    )
    for kind, data in hostile.items():
        writer.add_bytes(
            f"containers/c/{kind}.jsonl",
            data,
            kind=kind,
            media_type="x",
            collector="t",
            container="c",
        )
    writer.add_bytes(
        "containers/c/logs-current.jsonl",
        b'{"time": "garbage", "message": 5, "stream": []}\n',
        kind="logs",
        media_type="x",
        collector="t",
        container="c",
    )
    writer.add_bytes(
        "containers/c/fs-files.tar",
        b"not a tar at all" * 100,
        kind="fs-files",
        media_type="x",
        collector="t",
        container="c",
    )
    writer.add_json(
        "k8s/events.json",
        [{"firstTimestamp": "soon"}, 3, {"involvedObject": "x"}],
        kind="k8s-events",
        collector="t",
    )
    writer.add_json("alert.json", ["not", "an", "object"], kind="alert", collector="t")
    hostile_path = writer.seal().path
    for path in (sealed.path, hostile_path):
        for view in (
            ["summary"],
            ["ps"],
            ["net"],
            ["fs"],
            ["logs"],
            ["timeline", "-o", "jsonl"],
            ["export", "html", "--out", tmp_path / "h.html"],
            ["summary", "-o", "json"],
        ):
            ran = ir("replay", path, *view, cache=cache)
            assert ran.code == 0, (view, ran.err)
    problems = json.loads(ir("replay", hostile_path, "summary", "-o", "json", cache=cache).out)[
        "problems"
    ]
    assert any("not valid ir.process/1 records" in p for p in problems)
    assert any("not JSON" in p for p in problems)
    ps = ir("replay", hostile_path, "ps", cache=cache).out
    assert "12" in ps and "/x" in ps and " 8 " in ps and " 9 " in ps  # ppid cycle shown, not lost
    cat = ir("replay", hostile_path, "fs", "cat", "/etc/x", "--container", "c", cache=cache)
    assert cat.code in (ExitCode.USAGE, ExitCode.FAILED) and "not captured" in cat.err


# -- streaming ------------------------------------------------------------------------------------


def test_first_timeline_row_comes_before_the_log_is_read(tmp_path: Path) -> None:
    lines = [
        log(t(f"{9 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}"), f"line {i}")
        for i in range(40_000)
    ]
    spec = BundleSpec(
        bundle_id="5eeded00-0000-4000-8000-000000000000",
        case_id="S",
        target={"kind": "pod", "name": "p"},
        containers={"c": ContainerSpec(logs={"current": lines})},
    )
    path = build_bundle(tmp_path, spec).path
    read = [0]

    class Counting(Evidence):
        def json_lines(self, entry: Any) -> Iterator[tuple[int, Any]]:
            for item in super().json_lines(entry):
                read[0] += 1
                yield item

    with BundleReader.open(path) as reader:
        rows = build_timeline(Counting(reader, display="s"), sources=["log"])
        first = next(rows)
        assert first.message == "line 0"
        assert read[0] < 15_000  # the reorder window, not the whole artifact
        assert sum(1 for _ in rows) == 39_999


def test_unselected_sources_are_not_read(
    evidence: Evidence, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real = evidence.reader.open_artifact

    def spy(entry: Any) -> Any:
        opened.append(entry if isinstance(entry, str) else entry.name)
        return real(entry)

    monkeypatch.setattr(evidence.reader, "open_artifact", spy)
    list(build_timeline(evidence, sources=["k8s", "alert"]))
    assert opened == []  # small JSON documents only: no JSONL stream, no tar
    list(build_timeline(evidence, sources=["process"]))
    assert opened and all(name.endswith("processes.jsonl") for name in opened)


def test_ordering_tools() -> None:
    import random

    rng = random.Random(3)
    rows = [rng.randrange(10_000) for _ in range(5_000)]
    # spilled: 17 runs
    assert list(external_sorted(rows, key=lambda x: x, chunk=300)) == sorted(rows)
    assert list(external_sorted([3, 1, 2], key=lambda x: x)) == [1, 2, 3]
    jittered = [i + rng.choice([-2, -1, 0, 1, 2]) for i in range(1000)]
    assert list(reorder_window(jittered, key=lambda x: x, window=10)) == sorted(jittered)
    counter = LateCounter()
    assert list(reorder_window([5, 6, 7, 1], key=lambda x: x, window=1, counter=counter)) == [
        5,
        6,
        1,
        7,
    ]
    assert counter.late == 1


# -- the committed samples ----------------------------------------------------------------------------


def test_committed_samples_match_make_samples(tmp_path: Path) -> None:
    signer = load_signer(str(SAMPLES / "demo-signing.key"))
    for name, spec in (("compromised", compromised_spec()), ("clean", clean_spec())):
        sealed = build_bundle(tmp_path, spec, signer=signer)
        assert sealed.path.read_bytes() == (SAMPLES / f"{name}.tar").read_bytes(), (
            f"samples/bundles/{name}.tar is stale: run python samples/bundles/make_samples.py"
        )
        assert (
            custody_path(sealed.path).read_bytes()
            == custody_path(SAMPLES / f"{name}.tar").read_bytes()
        )


def test_committed_tampered_sample_is_refused(cache: Path) -> None:
    ran = ir("replay", SAMPLES / "tampered.tar", "summary", cache=cache)
    assert ran.code == ExitCode.FAILED and "processes.jsonl" in ran.err


# -- helpers --------------------------------------------------------------------------------------


def html_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_records_are_read_typed(evidence: Evidence) -> None:
    assert all(isinstance(c.record, ProcessRecord) for c in evidence.records(ProcessRecord))
    assert all(isinstance(c.record, SocketRecord) for c in evidence.records(SocketRecord))
    assert all(isinstance(c.record, FileChange) for c in evidence.records(FileChange))
    assert sum(1 for _ in evidence.records(LogLine)) == 7 + 5 + len(MESSAGE_TIMES) + 1
    assert re.fullmatch(r"[0-9a-f]{64}", evidence.reader.root_digest)


def test_timeline_table_leaves_irs_own_actions_out_unless_asked(
    bundles: dict[str, Path], cache: Path
) -> None:
    """The table an investigator reads first shows the workload's events; ir's own capture
    actions are counted on stderr and shown with --all (or --source ir); exports keep them."""
    bad = bundles["bad"]
    every = ir("replay", bad, "timeline", "-o", "jsonl", cache=cache)
    own = sum(1 for line in every.out.splitlines() if json.loads(line)["source"] == "ir")
    assert own > 0
    table = ir("replay", bad, "timeline", cache=cache)
    assert table.code == 0 and "ir" not in column(table.out, "source")
    assert f"{own} of ir's own capture actions not shown" in table.err
    full = ir("replay", bad, "timeline", "--all", cache=cache)
    assert column(full.out, "source").count("ir") == own


def table_columns(out: str) -> list[tuple[int, int]]:
    """(start, end) of each column of a text table, from its dash line (the second line)."""
    dashes = out.splitlines()[1]
    return [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]


def column(out: str, name: str) -> list[str]:
    """The values of one column of a text table (found by its header), one per row."""
    lines = out.splitlines()
    spans = table_columns(out)
    index = next(i for i, (a, b) in enumerate(spans) if lines[0][a:].startswith(name))
    a, b = spans[index]
    last = index == len(spans) - 1
    rows = [line for line in lines[2:] if not line.startswith("flags: ")]  # ps: its legend
    return [line[a:] if last else line[a:b].strip() for line in rows]


def assert_aligned(out: str) -> None:
    """Every cell of every row stays in its column: the two spaces after each column but the
    last are blank on every line (a wider value would spill into them)."""
    lines = out.splitlines()
    spans = table_columns(out)
    assert len(lines) > 2 and len(spans) > 2, out
    for line in lines[2:]:
        if line.startswith("flags: "):  # ps: the legend under the table
            continue
        for a, b in spans[:-1]:
            assert line[b : b + 2] == "  ", (line, a, b)


# -- the sample compromised container (samples/compromised/, as ir captures it) -------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, signer: Any) -> Path:
    """The bundle `ir capture container` makes of samples/compromised/ (shapes of a real
    capture, times of the reported run), signed with the key the tests trust."""
    return build_bundle(
        tmp_path_factory.mktemp("sample"), sample_container_spec(), signer=signer
    ).path


def _jsonl(ran: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ran.lines]


def test_sample_deletion_is_at_its_whiteout_never_at_the_image_mtime(
    sample: Path, cache: Path
) -> None:
    rows = _jsonl(ir("replay", sample, "timeline", "-o", "jsonl", cache=cache))
    motd = [r for r in rows if r["fields"].get("path") == "/etc/motd"]
    assert [(r["description"], r["time"], r["precision"], r["clock"]) for r in motd] == [
        ("File deleted (whiteout created: its ctime)", SAMPLE["motd_deleted"], "1ns", "host")
    ]
    assert not motd[0]["other_clock"]
    assert not [r for r in rows if r["time"].startswith("2025-03-14T06:00:00.000")]  # image mtime
    fs = ir("replay", sample, "fs", "--change", "deleted", cache=cache)
    assert column(fs.out, "time (UTC)") == [SAMPLE["motd_deleted"]]
    assert column(fs.out, "time is") == ["deleted: whiteout ctime"]
    # --since/--until see a deletion at its ctime only
    window = ir("replay", sample, "fs", "--until", "2025-03-14T09:00:00Z", cache=cache)
    assert "/etc/motd" not in window.out


def test_deletion_times_opaque_unknown_and_old_records(tmp_path: Path, cache: Path) -> None:
    """Unit fixture: a path hidden by an opaque directory is deleted at or before the directory's
    ctime; a deletion without a ctime has no time (placed at capture start, said so); an older
    bundle's deletion that kept the image's mtime is never placed there."""
    hidden_at = "2025-03-14T10:05:00.250000001Z"
    spec = BundleSpec(
        bundle_id="0a0a0a0a-0000-4000-8000-000000000001",
        case_id="D",
        target={"kind": "container", "name": "c"},
        containers={
            "c": ContainerSpec(
                changes=[
                    FileChange(
                        "/opt/app",
                        "changed",
                        "dir",
                        mode="0755",
                        mtime=hidden_at,
                        ctime=hidden_at,
                        opaque=True,
                    ),
                    FileChange("/opt/app/app.conf", "deleted", "file", ctime=hidden_at),
                    FileChange("/var/log/old.log", "deleted", "file", mtime="2019-06-01T12:00:00Z"),
                ]
            )
        },
    )
    path = build_bundle(tmp_path, spec).path
    rows = {
        r["fields"]["path"]: r
        for r in _jsonl(
            ir("replay", path, "timeline", "--source", "file", "-o", "jsonl", cache=cache)
        )
        if r["fields"]["change"] == "deleted"
    }
    conf, old = rows["/opt/app/app.conf"], rows["/var/log/old.log"]
    assert conf["description"].startswith("File deleted at or before this (ctime of the opaque")
    assert conf["time"] == hidden_at
    assert old["description"] == "File deleted before capture; time unknown"
    assert old["precision"] == "none" and old["time"].startswith("2025-03-14T10:30:00.")
    fs = ir("replay", path, "fs", cache=cache)
    assert column(fs.out, "time is") == [
        "mtime",
        "deleted at or before: opaque dir ctime",
        "deleted: time unknown",
    ]
    assert "2019" not in fs.out


def test_sample_direction_from_listeners_and_pairs(sample: Path, cache: Path) -> None:
    """`nc -l -p 4444` closed its listener after accepting: its end is inbound (its peer's port
    is the kernel's, its own the listener's), the busybox client's end outbound; findings list
    only the client."""
    net = json.loads(ir("replay", sample, "net", "-o", "json", cache=cache).out)["connections"]
    by_port = {c["local_port"]: c for c in net}
    addr, port, peer = SAMPLE["accepted"]
    accepted = by_port[port]
    assert (accepted["local_addr"], accepted["remote_port"]) == (addr, peer)
    assert (
        accepted["direction"] == "inbound"
        and accepted["peer_here"]
        and accepted["owner"] == "9121 nc"
    )
    client = by_port[SAMPLE["connected"][1]]
    assert client["direction"] == "outbound" and client["flags"] == ["outbound"]
    assert by_port[SAMPLE["listener"]]["direction"] == "listen"
    assert all(c["netns"] == "net:[4026532401]" for c in net)
    found = find_all_of(sample)
    assert [(f["detail"]["local_port"], f["detail"]["remote_port"]) for f in found["outbound"]] == [
        (50778, 4444)
    ]
    summary = ir("replay", sample, "summary", cache=cache).out
    outbound = summary.split("Outbound connections (1)")[1].split("[high]")[0]
    assert "127.0.0.1:50778 -> 127.0.0.1:4444" in outbound and ":4444 -> " not in outbound
    table = ir("replay", sample, "net", cache=cache).out
    assert column(table, "direction") == ["outbound", "listen", "inbound"]


def find_all_of(path: Path) -> dict[str, list[dict[str, Any]]]:
    with BundleReader.open(path) as reader:
        found = find_all(Evidence(reader, display="s"))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for f in found.items:
        grouped.setdefault(f.kind, []).append(f.to_dict())
    return grouped


def test_sample_timeline_default_tail_is_the_attack(sample: Path, cache: Path) -> None:
    """`ir replay BUNDLE timeline | tail -n 25` (the demo): the attack, not ir's capture."""
    default = ir("replay", sample, "timeline", cache=cache)
    tail = default.lines[-25:]
    assert not [line for line in tail if "ir capture" in line or "ir action" in line]
    assert "ir" not in column(default.out, "source")
    for fact in (
        "/tmp/.x/busybox nc 127.0.0.1 4444",
        "nc -l -p 4444",
        "/var/tmp/.cache/stage2.sh",
        "deleted file /etc/motd",
    ):
        assert any(fact in line for line in tail), fact
    assert "of ir's own capture actions not shown (--all shows them)" in default.err
    full = ir("replay", sample, "timeline", "--all", cache=cache)
    sources = column(full.out, "source")
    assert "ir" in sources and sources[-1] == "ir"  # ir acted after the events it captured


def test_sample_rows_keep_precision_and_clock(sample: Path, cache: Path) -> None:
    """Process starts (boot clock, 10 ms ticks) read before the runtime's "Container started"
    (nanoseconds): both kept as given, and marked as clocks other than the capture host's."""
    rows = _jsonl(ir("replay", sample, "timeline", "-o", "jsonl", cache=cache))
    started = next(r for r in rows if r["description"] == "Container started")
    init = next(r for r in rows if r["fields"].get("pid") == 9101)
    assert (started["time"], started["precision"], started["clock"]) == (
        SAMPLE["started"],
        "1ns",
        "runtime",
    )
    assert (init["time"], init["precision"], init["clock"]) == (
        "2025-03-14T10:00:45.130000000Z",
        "10ms",
        "host-boot",
    )
    assert started["other_clock"] and init["other_clock"]
    assert rows.index(init) < rows.index(started)  # by time, as given: not reordered
    image = next(r for r in rows if r["description"] == "Image created")
    assert image["time"] == SAMPLE["image_created"] and image["clock"] == "image-builder"
    keys = [(r["time_ns"], r["source"]) for r in rows]
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)
    # the tie rule: /etc changed and /etc/motd deleted at the same nanosecond: artifact order
    same = [r["fields"]["path"] for r in rows if r["time"] == SAMPLE["motd_deleted"]]
    assert same == ["/etc", "/etc/motd"]
    table = ir("replay", sample, "timeline", cache=cache)
    times = column(table.out, "time (UTC)")
    assert SAMPLE["started"] in times and "2025-03-14T10:00:45.13Z" in times
    assert "runtime*" in column(table.out, "clock") and "host" in column(table.out, "clock")
    assert "clock*: not the capture host's clock" in table.err


def test_tables_size_columns_to_their_values(sample: Path, cache: Path) -> None:
    """The container is called ir-compromised (14 characters): the fs and timeline tables used
    12-character columns for it; every table sizes its columns to its values."""
    for view in (["fs"], ["timeline"], ["timeline", "--all"], ["net"], ["ps"]):
        ran = ir("replay", sample, *view, cache=cache)
        assert_aligned(ran.out)
        assert set(column(ran.out, "container")) <= {SAMPLE["container"], "-"}, view


def test_each_page_has_the_verdict_in_one_line(sample: Path, cache: Path) -> None:
    ir("replay", sample, "summary", cache=cache)  # verdict cached
    key = "signed by ed25519:"
    for view in (["ps"], ["net"], ["fs"], ["timeline"], ["logs"], ["summary", "-o", "json"]):
        ran = ir("replay", sample, *view, cache=cache)
        verdicts = [line for line in ran.err.splitlines() if "verdict" in line]
        assert len(verdicts) == 1, (view, ran.err)
        assert re.fullmatch(
            r"ir: verdict: valid \(signed by ed25519:[0-9a-f]+, intact; cached\)", verdicts[0]
        )
        assert "cached verdict from" not in ran.err and "signature" not in ran.err
    summary = ir("replay", sample, "summary", cache=cache)
    assert summary.lines[0].startswith(f"verdict: valid ({key}") and "verdict" not in summary.err
    assert sum("verdict" in line for line in summary.lines) == 1
    details = ir("replay", sample, "ps", "--verdict-details", cache=cache)
    assert "cached verdict from" in details.err and "custody:" in details.err


# -- direction: the rule on its own ------------------------------------------------------------------


def _ns(*sockets: SocketRecord, complete: bool = True) -> Namespace:
    ns = Namespace(complete=complete)
    for s in sockets:
        ns.add(s)
    return ns


def _conn(proto: str, addr: str, port: int, raddr: str, rport: int) -> SocketRecord:
    return SocketRecord(proto, addr, port, raddr, rport, "ESTABLISHED")


def _listen(proto: str, addr: str, port: int) -> SocketRecord:
    return SocketRecord(proto, addr, port, "::" if ":" in addr else "0.0.0.0", 0, "LISTEN")


@pytest.mark.parametrize(
    "listener, sock, expected",
    [
        # a wildcard listener: 0.0.0.0 takes IPv4, :: takes every address (v4-mapped too)
        (
            _listen("tcp", "0.0.0.0", 8080),
            _conn("tcp", "10.0.0.2", 8080, "10.0.0.9", 51000),
            "inbound",
        ),
        (
            _listen("tcp6", "::", 8080),
            _conn("tcp6", "::ffff:10.0.0.2", 8080, "::ffff:10.0.0.9", 51000),
            "inbound",
        ),
        (_listen("tcp6", "::", 8080), _conn("tcp6", "fd00::2", 8080, "fd00::9", 51000), "inbound"),
        (
            _listen("tcp", "0.0.0.0", 8080),
            _conn("tcp6", "fd00::2", 8080, "fd00::9", 51000),
            "unknown",
        ),
        # v4-mapped: the same address written either way
        (
            _listen("tcp6", "::ffff:127.0.0.1", 8080),
            _conn("tcp", "127.0.0.1", 8080, "127.0.0.1", 51000),
            "inbound",
        ),
        (
            _listen("tcp", "127.0.0.1", 8080),
            _conn("tcp6", "::ffff:127.0.0.1", 8080, "::ffff:127.0.0.1", 51000),
            "inbound",
        ),
        # a listener on another address of the namespace did not accept it
        (
            _listen("tcp", "127.0.0.1", 8080),
            _conn("tcp", "10.0.0.2", 8080, "10.0.0.9", 51000),
            "unknown",
        ),
        # no listener: the kernel's port says it connected; a fixed port cannot tell
        (
            _listen("tcp", "0.0.0.0", 80),
            _conn("tcp", "10.0.0.2", 51000, "203.0.113.7", 443),
            "outbound",
        ),
        (
            _listen("tcp", "0.0.0.0", 80),
            _conn("tcp", "10.0.0.2", 4444, "203.0.113.7", 51000),
            "unknown",
        ),
    ],
)
def test_direction_rule(listener: SocketRecord, sock: SocketRecord, expected: str) -> None:
    assert socket_direction(sock, _ns(listener, sock))[0] == expected


def test_direction_without_listener_data_is_unknown() -> None:
    sock = _conn("tcp", "10.0.0.2", 51000, "203.0.113.7", 443)
    direction, basis, _ = socket_direction(sock, _ns(sock, complete=False))
    assert direction == "unknown" and "incomplete" in basis
    served = _conn("tcp", "10.0.0.2", 80, "10.0.0.9", 51000)  # a listener seen still counts
    assert (
        socket_direction(served, _ns(_listen("tcp", "0.0.0.0", 80), served, complete=False))[0]
        == "inbound"
    )
    probe = _conn("tcp", "127.0.0.1", 51000, "127.0.0.1", 80)  # so does one connected to it
    listener = _listen("tcp", "0.0.0.0", 80)
    assert socket_direction(probe, _ns(listener, probe, complete=False))[0] == "outbound"


def test_direction_same_port_other_network_namespace(tmp_path: Path, cache: Path) -> None:
    """A listener on 8080 in one network namespace says nothing of a socket on 8080 in another;
    containers sharing a namespace (a pod) share its listeners, whichever table lists them."""

    def container(netns: str, *sockets: SocketRecord) -> ContainerSpec:
        return ContainerSpec(
            sockets=list(sockets), network={"netns": netns, "interfaces": [], "routes": []}
        )

    spec = BundleSpec(
        bundle_id="0a0a0a0a-0000-4000-8000-000000000002",
        case_id="N",
        target={"kind": "pod", "name": "p"},
        containers={
            "server": container("net:[1]", _listen("tcp", "0.0.0.0", 8080)),
            "sidecar": container("net:[1]", _conn("tcp", "10.0.0.2", 8080, "10.0.0.9", 51000)),
            "other": container("net:[2]", _conn("tcp", "10.0.0.3", 8080, "10.0.0.9", 51001)),
        },
    )
    path = build_bundle(tmp_path, spec).path
    net = json.loads(ir("replay", path, "net", "-o", "json", cache=cache).out)["connections"]
    by = {c["container"]: c for c in net if c["state"] == "ESTABLISHED"}
    assert by["sidecar"]["direction"] == "inbound" and by["sidecar"]["netns"] == "net:[1]"
    assert by["other"]["direction"] == "unknown" and by["other"]["netns"] == "net:[2]"


# -- the real sample container, captured on the test engine ----------------------------------------


@pytest.mark.docker
def test_real_sample_capture_replays_what_happened(
    compromised_container: Any,
    compromised_expected: dict[str, Any],
    docker_env: None,
    tmp_path: Path,
    cache: Path,
) -> None:
    """samples/compromised/ captured for real: the deletion at its whiteout's nanosecond ctime,
    the accepted end of `nc -l` inbound and the C2 client outbound, the attack at the timeline's
    tail, aligned tables, one verdict line."""
    captured = ir(
        "capture", "container", compromised_container.name, "--store", tmp_path, "--case", "T",
        "-o", "json", cache=cache,
    )  # fmt: skip
    assert captured.code == 0, captured.err
    bundle = json.loads(captured.out)["bundle"]
    rows = _jsonl(ir("replay", bundle, "timeline", "-o", "jsonl", cache=cache))
    motd = [r for r in rows if r["fields"].get("path") == compromised_expected["deleted_file"]]
    assert [r["description"] for r in motd] == ["File deleted (whiteout created: its ctime)"]
    assert motd[0]["precision"] == "1ns" and re.fullmatch(r".*\.\d{9}Z", motd[0]["time"])
    created = next(r for r in rows if r["description"] == "Container created")
    assert motd[0]["time_ns"] > created["time_ns"]  # deleted in the container, not in the image
    # process starts come from boot time + start ticks: boot time is the kernel's to the
    # microsecond (not /proc/stat's whole-second btime), so none reads before the container
    starts = [r["time_ns"] for r in rows if r["description"] == "Process started"]
    assert starts and min(starts) >= created["time_ns"] - 10_000_000, (starts, created)
    net = json.loads(ir("replay", bundle, "net", "-o", "json", cache=cache).out)["connections"]
    port = compromised_expected["connection"]["remote_port"]
    pair = {c["local_port"] == port: c for c in net if port in (c["local_port"], c["remote_port"])}
    assert pair[True]["direction"] == "inbound" and pair[True]["owner"].endswith(" nc")
    assert pair[False]["direction"] == "outbound" and pair[False]["flags"] == ["outbound"]
    listener = compromised_expected["listener"]["port"]
    assert [c["direction"] for c in net if c["local_port"] == listener] == ["listen"]
    summary = ir("replay", bundle, "summary", cache=cache)
    outbound = summary.out.split("Outbound connections (1)")[1].split("[high]")[0]
    assert f"-> 127.0.0.1:{port}" in outbound and f":{port} -> " not in outbound
    table = ir("replay", bundle, "timeline", cache=cache)
    tail = "\n".join(table.lines[-25:])
    for fact in (
        compromised_expected["deleted_file"],
        "/tmp/.x/busybox nc 127.0.0.1 4444",
        compromised_expected["dropped_file"]["path"],
    ):
        assert fact in tail, fact
    assert "ir" not in column(table.out, "source")
    for view in (["timeline"], ["fs"], ["net"]):
        ran = ir("replay", bundle, *view, cache=cache)
        assert_aligned(ran.out)
        verdicts = [line for line in ran.err.splitlines() if "verdict" in line]
        assert len(verdicts) == 1 and verdicts[0].startswith("ir: verdict: valid (signed by")
