"""`ir replay BUNDLE timeline` (ir/replay/timeline.py): sorted, every source, each row citing a
real record; log message times in UTC; filters and outputs; streamed (the first row before the
log is read, unselected sources not read); ir's own actions left out of the table unless asked;
precision and clock kept as given."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.reader import BundleReader
from ir.clock import rfc3339
from ir.errors import ExitCode
from ir.replay.evidence import Evidence
from ir.replay.timeline import SOURCES, build_timeline
from tests.replay_fixtures import (
    MESSAGE_TIMES,
    PLANTED,
    SAMPLE,
    BundleSpec,
    ContainerSpec,
    build_bundle,
    ir,
    log,
    t,
)
from tests.views import _jsonl, column


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
