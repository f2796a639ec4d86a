"""The HTML report: one self-contained file (inline CSS, a few lines of inline JS, an inline SVG
timeline chart; no URL of any kind, and a Content-Security-Policy that forbids loading anything)
with the summary, findings, process/network/file tables and the timeline.

Every value from the bundle is untrusted and goes through `html.escape`. The timeline is read
once: the chart counts every row (per source, per second, coarsened when the range is long) and
the table keeps the first rows of each source, so memory stays bounded for any bundle size.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import IO, Any

from ir import __version__
from ir.clock import EPOCH, rfc3339, utcnow
from ir.replay.evidence import Evidence
from ir.replay.files import DELETION_LABELS, DeletionTimes, FsFilter, iter_changes
from ir.replay.findings import TITLES, Findings, find_all
from ir.replay.network import NET_COLUMNS, connection_rows, endpoint
from ir.replay.processes import exe_path, process_rows
from ir.replay.summary import build_summary
from ir.replay.timeline import SOURCES, TimelineEvent, build_timeline
from ir.replay.trust import Trust

# One colour per source; the chart is the only place these exact colours are drawn (the
# screenshot test looks for them).
COLORS = {
    "alert": "#d7191c",
    "ir": "#2c3e50",
    "k8s": "#326ce5",
    "container": "#17a589",
    "process": "#8e44ad",
    "file": "#e67e22",
    "log": "#7cb342",
}
TABLE_ROWS = 5000  # per table
TIMELINE_ROWS = {"log": 1500}  # per source, in the rows table; others: DEFAULT_TIMELINE_ROWS
DEFAULT_TIMELINE_ROWS = 3000
MAX_SECONDS = 200_000  # distinct seconds counted per source before coarsening to minutes
CHART_BUCKETS = 160
OUTLIER_SHARE = 0.05  # of all rows, at most, left out of the chart's range as isolated outliers
CHART_WIDTH = 1100
LANE_HEIGHT = 34
LABEL_WIDTH = 92

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def esc(value: Any) -> str:
    return "-" if value is None else html.escape(str(value), quote=True)


@dataclass
class _ChartData:
    """Row counts per source per time cell (seconds, or coarser), filled in one pass."""

    cell: int = 1  # seconds per cell
    counts: dict[str, Counter[int]] = field(default_factory=dict)
    markers: list[tuple[datetime, str, str]] = field(default_factory=list)  # alert / ir actions

    def add(self, event: TimelineEvent) -> None:
        counter = self.counts.setdefault(event.source, Counter())
        seconds = event.timestamp_micros // 1_000_000
        counter[seconds - seconds % self.cell] += 1
        if len(counter) > MAX_SECONDS:
            self._coarsen()
        if event.source in ("alert", "ir") and len(self.markers) < 50:
            self.markers.append((event.time, event.source, event.description))

    def _coarsen(self) -> None:
        self.cell *= 60
        for source, counter in self.counts.items():
            coarse: Counter[int] = Counter()
            for second, n in counter.items():
                coarse[second - second % self.cell] += n
            self.counts[source] = coarse


def write_report(
    ev: Evidence,
    trust: Trust,
    out: IO[str],
    *,
    findings: Findings | None = None,
    file_sha256: str | None = None,
) -> dict[str, int]:
    """Write the whole report to `out`; returns row counts per section. `file_sha256`: of the
    bundle file as read for the report (None for a bundle read from S3)."""
    findings = findings if findings is not None else find_all(ev)
    summary = build_summary(ev, trust, findings)
    chart = _ChartData()
    kept: list[TimelineEvent] = []
    kept_per_source: Counter[str] = Counter()
    seen_per_source: Counter[str] = Counter()
    for event in build_timeline(ev):
        chart.add(event)
        seen_per_source[event.source] += 1
        if kept_per_source[event.source] < TIMELINE_ROWS.get(event.source, DEFAULT_TIMELINE_ROWS):
            kept_per_source[event.source] += 1
            kept.append(event)
    banner = trust.banner()
    values = {
        "title": esc(f"ir report: {summary['target']}"),
        # inside CSS (the printed page footer): only characters that need no escaping there
        "print_footer": re.sub(
            r"[^A-Za-z0-9 ._:-]",
            "_",
            f"ir {__version__} - bundle {summary['bundle_id']} - root sha256:{trust.root_digest}",
        ),
        "banner": f'<div class="banner" role="alert">{esc(banner)}</div>' if banner else "",
        "heading": esc(f"Evidence report: {summary['target']}"),
        "header_lines": _header_lines(summary, trust) + _identity(trust, file_sha256),
        "facts": _facts(summary),
        "timeline_count": esc(f"{sum(seen_per_source.values())} rows"),
        "chart": _chart_svg(chart),
        "findings_count": esc(f"{len(findings.items) + sum(findings.omitted.values())}"),
        "findings": _findings_html(findings),
        **_inventory(ev),
        **_custody(ev),
        **_process_table(ev),
        **_network_table(ev),
        **_files_table(ev),
        "rows_count": esc(_kept_note(kept_per_source, seen_per_source)),
        "rows": _rows_table(kept),
        "collectors": _collectors_table(summary),
        "problems_count": esc(len(ev.problems)),
        "problems": "".join(f'<p class="note mono">{esc(p)}</p>' for p in ev.problems)
        or '<p class="note">none</p>',
        "footer": esc(
            f"Generated by ir {__version__} at {rfc3339(utcnow())} from {ev.display} "
            f"(bundle {summary['bundle_id']}, root digest sha256:{trust.root_digest}). "
            "Read-only view; the bundle is the evidence."
        ),
    }
    template = resources.files("ir.replay").joinpath("report.html").read_text(encoding="utf-8")
    # One pass: text put in place is never scanned again for placeholders.
    out.write(_PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template))
    return {
        "timeline_rows": sum(seen_per_source.values()),
        "timeline_rows_in_table": len(kept),
        "findings": len(findings.items),
    }


def _header_lines(summary: dict[str, Any], trust: Trust) -> str:
    # one line; how it was reached, the signature and the custody chain are under "Method"
    status = f'<p class="verified">{esc(trust.short())}</p>'
    if not trust.valid:
        status = (
            f'<p class="meta"><b>Verification: {esc(trust.label)}</b>: '
            + esc("; ".join(trust.errors[:10]))
            + "</p>"
        )
    return (
        f'<p class="meta">Case {esc(summary["case_id"])} · bundle {esc(summary["bundle_id"])} · captured '
        f"{esc(summary['started_at'])} → {esc(summary['ended_at'])} (UTC) by {esc(summary['operator'])} on "
        f"{esc(summary['host'])} · outcome {esc(summary['outcome'])}</p>" + status
    )


def _identity(trust: Trust, file_sha256: str | None) -> str:
    """What an examiner needs to tie the report to the evidence and to how it was checked."""
    file_line = (
        f"bundle file SHA-256 {file_sha256}"
        if file_sha256
        else "bundle file SHA-256: not computed (read from S3; see the custody's upload record)"
    )
    return (
        f'<p class="meta mono">root digest (SHA-256 of manifest.json) {esc(trust.root_digest)} · '
        f"{esc(file_line)}</p>"
        f'<p class="meta">Method: ir {esc(__version__)} {esc(trust.how)}; signature '
        f"{esc(trust.signature)}; custody {esc(trust.custody)}</p>"
    )


def _inventory(ev: Evidence) -> dict[str, str]:
    """Every artifact with both digests: the whole hash inventory, never truncated."""
    artifacts = ev.reader.manifest.artifacts
    rows = [
        (
            [
                _cell(a.name, "mono"),
                _cell(a.size, "nw"),
                _cell(a.sha256, "mono"),
                _cell(a.stored_sha256, "mono"),
                _cell(a.status),
            ],
            a.status != "ok",
        )
        for a in artifacts
    ]
    table = _table(
        "tbl-inventory",
        ["artifact", "bytes", "SHA-256 (content)", "SHA-256 (stored zstd frame)", "status"],
        rows,
        len(rows),
        "artifacts",
        limit=None,
    )
    return {"inventory_count": esc(len(rows)), "inventory": table}


def _custody(ev: Evidence) -> dict[str, str]:
    rows = []
    for index, line in enumerate(ev.custody_lines, 1):
        try:
            r = json.loads(line)
            if not isinstance(r, dict):
                raise ValueError("not an object")
        except ValueError:
            rows.append(([_cell(index), _cell("(not a JSON record)")] + [_cell("")] * 5, True))
            continue
        sig = r.get("sig") if isinstance(r.get("sig"), dict) else None
        rows.append(
            (
                [
                    _cell(r.get("seq"), "nw"),
                    _cell(r.get("time"), "nw"),
                    _cell(r.get("action")),
                    _cell(r.get("actor")),
                    _cell(r.get("host")),
                    _cell(sig.get("key_id") if sig else "unsigned", "mono"),
                    _cell(r.get("bundle_digest"), "mono"),
                ],
                sig is None,
            )
        )
    table = _table(
        "tbl-custody",
        ["seq", "time (UTC)", "action", "actor", "host", "signed by", "bundle digest seen"],
        rows,
        len(rows),
        "records",
        limit=None,
    )
    return {"custody_count": esc(len(rows)), "custody": table}


def _facts(summary: dict[str, Any]) -> str:
    items: list[tuple[str, Any]] = [
        ("Target", summary["target"]),
        ("Node", summary["node"]),
        ("Reason", summary["reason"]),
        (
            "Alert",
            None
            if not summary["alert"]
            else f"{summary['alert']['source']}: {summary['alert']['rule']} [{summary['alert']['priority']}] at {summary['alert']['time']}",
        ),
        (
            "Containers",
            "; ".join(
                f"{c['name']} ({c['image']}, started {c['started']})" for c in summary["containers"]
            ),
        ),
        ("Artifacts", f"{summary['artifacts']['count']} ({summary['artifacts']['bytes']} bytes)"),
        ("K8s context", ", ".join(summary["k8s_context"]) or None),
        ("Custody", f"{summary['custody_records']} record(s)"),
    ]
    body = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in items)
    return f'<dl class="facts">{body}</dl>'


def _findings_html(findings: Findings) -> str:
    parts = []
    for kind, items in findings.by_kind().items():
        omitted = findings.omitted.get(kind, 0)
        if not items:
            continue
        parts.append(
            f'<h3>{esc(TITLES[kind])} <span class="count">{len(items) + omitted}</span></h3>'
        )
        for f in items:
            parts.append(
                f'<div class="finding sev-{esc(f.severity)}"><span class="mono">{esc(f.summary)}</span> '
                f'<span class="cite">[{esc(f.container)}] {esc(f.cited)}</span></div>'
            )
        if omitted:
            parts.append(
                f'<p class="note">{omitted} more not shown (ir replay summary -o json lists all)</p>'
            )
    if not parts:
        parts.append('<p class="note">No finding rule matched. That is not proof of innocence.</p>')
    parts.extend(f'<p class="note">{esc(n)}</p>' for n in findings.notes)
    return "".join(parts)


def _table(
    table_id: str,
    headers: list[str],
    rows: Iterable[tuple[list[str], bool]],
    total: int,
    what: str,
    limit: int | None = TABLE_ROWS,
) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    flagged_tr, plain_tr = '<tr class="flagged">', "<tr>"
    body = "".join(
        (flagged_tr if flagged else plain_tr) + "".join(cells) + "</tr>" for cells, flagged in rows
    )
    note = (
        f'<p class="note">first {TABLE_ROWS} of {total} {what}; the CLI shows all</p>'
        if limit is not None and total > limit
        else ""
    )
    return (
        f'<input class="filter" type="search" placeholder="filter rows" data-table="{table_id}">{note}'
        f'<div><table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _cell(value: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{esc(value)}</td>' if cls else f"<td>{esc(value)}</td>"


def _flags(flags: list[str]) -> str:
    return "<td>" + "".join(f'<span class="flag">{esc(f)}</span>' for f in flags) + "</td>"


def _process_table(ev: Evidence) -> dict[str, str]:
    rows: list[tuple[list[str], bool]] = []
    total = 0
    for row in process_rows(ev):
        total += 1
        if len(rows) >= TABLE_ROWS:
            continue
        r = row.record
        indent = (
            '<span class="indent">'
            + "  " * min(row.depth, 30)
            + ("└ " if row.depth else "")
            + "</span>"
        )
        rows.append(
            (
                [
                    _cell(row.cited.container),
                    _cell(r.pid, "mono nw"),
                    _cell(r.ppid, "mono nw"),
                    _cell(r.user or r.uid),
                    _cell(rfc3339(row.started) if row.started else r.start_time, "mono nw"),
                    _flags(row.flags),
                    f'<td class="mono">{indent}{esc(exe_path(r))}</td>',
                    _cell((r.exe_sha256 or "")[:16], "mono"),
                    _cell(" ".join(r.cmdline), "mono"),
                ],
                bool(row.flags),
            )
        )
    headers = [
        "container",
        "pid",
        "ppid",
        "user",
        "started (UTC)",
        "flags",
        "executable",
        "sha256",
        "command line",
    ]
    return {"ps_count": esc(total), "ps": _table("tbl-ps", headers, rows, total, "processes")}


def _network_table(ev: Evidence) -> dict[str, str]:
    all_rows = connection_rows(ev)
    rows = [
        (
            [
                _cell(c.cited.container),
                _cell(c.record.proto),
                _cell(endpoint(c.record.local_addr, c.record.local_port), "mono"),
                _cell(
                    endpoint(c.record.remote_addr, c.record.remote_port)
                    if c.record.remote_port
                    else (c.record.path or ""),
                    "mono",
                ),
                _cell(c.record.state),
                _cell(c.direction),
                _cell(c.process),
                _flags(c.flags),
                _cell(c.basis + (" (peer: a socket here)" if c.peer_here else "")),
            ],
            bool(c.flags),
        )
        for c in all_rows[:TABLE_ROWS]
    ]
    headers = list(NET_COLUMNS)
    return {
        "net_count": esc(len(all_rows)),
        "net": _table("tbl-net", headers, rows, len(all_rows), "sockets"),
    }


def _files_table(ev: Evidence) -> dict[str, str]:
    from ir.replay.files import in_binary_dir, in_temp_dir, is_executable

    rows: list[tuple[list[str], bool]] = []
    total = 0
    deletions = DeletionTimes()
    for cited in iter_changes(ev, FsFilter(), deletions=deletions):
        total += 1
        if len(rows) >= TABLE_ROWS:
            continue
        c = cited.record
        flags = []
        if c.change != "deleted" and c.type != "dir" and in_binary_dir(c.path):
            flags.append("binary/config dir")
        if c.change != "deleted" and in_temp_dir(c.path) and is_executable(c):
            flags.append("temp executable")
        target = f" -> {c.link_target}" if c.link_target else ""
        mtime, ctime = c.mtime, c.ctime
        if c.change == "deleted":  # never the deleted file's old mtime; what its ctime means
            kind = deletions.kind(cited)
            mtime = None
            ctime = f"{c.ctime} ({DELETION_LABELS[kind][0]})" if c.ctime else "time unknown"
        rows.append(
            (
                [
                    _cell(cited.container),
                    _cell(c.change),
                    _cell(c.type),
                    _cell(c.mode, "mono nw"),
                    _cell(c.size, "mono nw"),
                    _cell(mtime, "mono nw"),
                    _cell(ctime, "mono nw"),
                    _flags(flags),
                    _cell(c.path + target, "mono"),
                    _cell((c.sha256 or "")[:16], "mono"),
                    _cell("yes" if c.captured else (c.skipped or "no")),
                ],
                bool(flags),
            )
        )
    headers = [
        "container",
        "change",
        "type",
        "mode",
        "size",
        "mtime (UTC)",
        "ctime (UTC)",
        "flags",
        "path",
        "sha256",
        "captured",
    ]
    return {"fs_count": esc(total), "fs": _table("tbl-fs", headers, rows, total, "changes")}


def _rows_table(kept: list[TimelineEvent]) -> str:
    rows = [
        (
            [
                _cell(e.stamp.text, "mono nw"),
                _cell(e.precision, "nw"),
                _cell(e.clock + ("*" if e.other_clock else ""), "nw"),
                f'<td class="nw"><i style="background:{COLORS.get(e.source, "#999")};display:inline-block;'
                f'width:8px;height:8px"></i> {esc(e.source)}</td>',
                _cell(e.description),
                _cell(e.container),
                _cell(e.message, "msg mono"),
                _cell(e.cited, "mono"),
            ],
            e.source == "alert",
        )
        for e in kept
    ]
    return _table(
        "tbl-rows",
        [
            "time (UTC)",
            "precision",
            "clock (*: not the capture host's)",
            "source",
            "what the time is",
            "container",
            "message",
            "cited",
        ],
        rows,
        len(rows),
        "rows",
    )


def _kept_note(kept: Counter[str], seen: Counter[str]) -> str:
    total = sum(seen.values())
    shown = sum(kept.values())
    if shown == total:
        return f"{total} rows"
    cut = ", ".join(f"{s}: first {kept[s]} of {seen[s]}" for s in SOURCES if seen[s] > kept[s])
    return f"{shown} of {total} rows ({cut}; `ir replay BUNDLE timeline` shows all)"


def _collectors_table(summary: dict[str, Any]) -> str:
    rows = [
        (
            [
                _cell(c["name"]),
                _cell(c["container"]),
                _cell(c["status"]),
                _cell(c["error"], "mono"),
                _cell("; ".join(c.get("notes") or [])),
            ],
            c["status"] not in ("ok", "skipped"),
        )
        for c in summary["collectors"]
    ]
    return _table(
        "tbl-collectors",
        ["collector", "container", "status", "error", "notes"],
        rows,
        len(rows),
        "collectors",
    )


# -- the chart ---------------------------------------------------------------------------------


def _chart_svg(chart: _ChartData) -> str:
    lanes = [s for s in SOURCES if chart.counts.get(s)]
    if not lanes:
        return '<p class="note">Nothing in this bundle has a time.</p>'
    start, end = _focus_range(chart, lanes)
    if end - start < 60:
        start, end = start - 30, end + 30
    span = end - start
    plot_w = CHART_WIDTH - LABEL_WIDTH - 12
    bucket_w = plot_w / CHART_BUCKETS
    height = 24 + LANE_HEIGHT * len(lanes) + 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="timeline chart" width="{CHART_WIDTH}" '
        f'height="{height}" viewBox="0 0 {CHART_WIDTH} {height}" shape-rendering="crispEdges" '
        'font-family="system-ui, DejaVu Sans, sans-serif" font-size="11">'
    ]
    for i, source in enumerate(lanes):
        top = 20 + i * LANE_HEIGHT
        parts.append(
            f'<rect x="{LABEL_WIDTH}" y="{top}" width="{plot_w}" height="{LANE_HEIGHT - 2}" '
            f'fill="{"#f4f6f9" if i % 2 == 0 else "#fbfcfd"}"/>'
        )
        buckets: Counter[int] = Counter()
        before = after = 0
        for second, n in chart.counts[source].items():
            if second < start:
                before += n
            elif second >= end:
                after += n
            else:
                buckets[min(int((second - start) / span * CHART_BUCKETS), CHART_BUCKETS - 1)] += n
        total = sum(chart.counts[source].values())
        parts.append(
            f'<text x="4" y="{top + 14}" fill="#1d2330">{esc(source)}</text>'
            f'<text x="4" y="{top + 27}" fill="#5b6475" font-size="10">{total} rows</text>'
        )
        peak = max(buckets.values(), default=1)
        for b, n in sorted(buckets.items()):
            h = max(3, round((LANE_HEIGHT - 6) * math.log1p(n) / math.log1p(peak)))
            x = LABEL_WIDTH + round(b * bucket_w)
            w = max(2, round((b + 1) * bucket_w) - round(b * bucket_w) - 1)
            when = _fmt(start + b * span / CHART_BUCKETS)
            parts.append(
                f'<rect x="{x}" y="{top + LANE_HEIGHT - 3 - h}" width="{w}" height="{h}" '
                f'fill="{COLORS[source]}"><title>{n} {esc(source)} rows from {when}</title></rect>'
            )
        if before:
            parts.append(
                f'<text x="{LABEL_WIDTH + 3}" y="{top + 11}" fill="#5b6475" font-size="10">◀ {before} earlier</text>'
            )
        if after:
            parts.append(
                f'<text x="{CHART_WIDTH - 14}" y="{top + 11}" fill="#5b6475" font-size="10" '
                f'text-anchor="end">{after} later ▶</text>'
            )
    bottom = 20 + LANE_HEIGHT * len(lanes)
    for time, source, description in chart.markers:
        at = (time - EPOCH).total_seconds()
        if start <= at <= end:
            x = LABEL_WIDTH + round((at - start) / span * plot_w)
            color = "#d7191c" if source == "alert" else "#2c3e50"
            dash = "" if source == "alert" else ' stroke-dasharray="3,3"'
            parts.append(
                f'<line x1="{x}" y1="16" x2="{x}" y2="{bottom}" stroke="{color}" stroke-width="1"{dash}>'
                f"<title>{esc(description)} at {esc(rfc3339(time))}</title></line>"
            )
            if source == "alert":
                label_x, anchor = (x - 3, "end") if x > CHART_WIDTH - 60 else (x + 3, "start")
                parts.append(
                    f'<text x="{label_x}" y="12" fill="#d7191c" font-weight="bold" '
                    f'text-anchor="{anchor}">alert</text>'
                )
    for i in range(6):
        x = LABEL_WIDTH + round(i * plot_w / 5)
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        parts.append(
            f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="#5b6475"/>'
            f'<text x="{x}" y="{bottom + 16}" fill="#5b6475" text-anchor="{anchor}">{_fmt(start + i * span / 5)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{COLORS[s]}"></i>{esc(s)}</span>' for s in lanes)
    cell = "second" if chart.cell == 1 else f"{chart.cell // 60} minutes"
    return (
        f'<div class="chart">{"".join(parts)}</div><p class="legend">{legend} '
        f'<span class="note">UTC · bars: rows per interval (log scale) · counted per {cell} · red line: the alert · '
        f"dashed: ir actions · isolated outliers (an old image, a forged mtime) are counted at the edges</span></p>"
    )


def _focus_range(chart: _ChartData, lanes: list[str]) -> tuple[int, int]:
    """The x range: all rows, minus isolated outliers at either end. An image built weeks ago or
    a file with a forged 2019 mtime would otherwise squash the incident into one bar; trimmed
    rows (at most OUTLIER_SHARE of all) are counted at the chart's edges instead."""
    cells: Counter[int] = Counter()
    for source in lanes:
        cells.update(chart.counts[source])
    times = sorted(cells)
    budget = sum(cells.values()) * OUTLIER_SHARE
    lo, hi = 0, len(times) - 1
    while hi - lo >= 2:
        span = times[hi] - times[lo]
        if times[lo + 1] - times[lo] > span / 2 and cells[times[lo]] <= budget:
            budget -= cells[times[lo]]
            lo += 1
        elif times[hi] - times[hi - 1] > span / 2 and cells[times[hi]] <= budget:
            budget -= cells[times[hi]]
            hi -= 1
        else:
            break
    return times[lo], times[hi] + chart.cell


def _fmt(seconds: float) -> str:
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%SZ")
