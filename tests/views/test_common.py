"""What every view shares, on synthetic bundles with planted facts (tests/replay_fixtures.py)
and on the committed samples: a tampered bundle or broken custody chain is refused unless forced,
the verdict (cached while the file is unchanged) in one line on each page, hostile text stays
inert, records are read typed, tables size their columns to their values, the ordering tools;
and the real sample container captured on the test engine, replayed. No mocks: real bundle
files, the real CLI entry point."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.reader import BundleReader
from ir.bundle.signing import load_signer
from ir.errors import ExitCode
from ir.records import FileChange, LogLine, ProcessRecord, SocketRecord
from ir.replay.evidence import Evidence
from ir.replay.ordering import LateCounter, external_sorted, reorder_window
from ir.store.local import custody_path
from tests.replay_fixtures import (
    MESSAGE_TIMES,
    SAMPLE,
    BundleSpec,
    ContainerSpec,
    build_bundle,
    clean_spec,
    compromised_spec,
    ir,
    log,
    t,
)
from tests.views import _jsonl, assert_aligned, column

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "bundles"


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
