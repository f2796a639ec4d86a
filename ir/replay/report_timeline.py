"""The HTML report's timeline: the inline SVG chart (rows per source per time cell, counted in
one pass over the timeline by `ChartData`, on a range that leaves isolated outliers at its edges)
and the table of the rows kept for the report, coloured by source.

Part of `ir.replay.report`; imports the timeline view and the report's table builders.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ir.clock import EPOCH, rfc3339
from ir.replay.report_tables import cell, esc, table
from ir.replay.timeline import SOURCES, TimelineEvent

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
MAX_SECONDS = 200_000  # distinct seconds counted per source before coarsening to minutes
CHART_BUCKETS = 160
OUTLIER_SHARE = 0.05  # of all rows, at most, left out of the chart's range as isolated outliers
CHART_WIDTH = 1100
LANE_HEIGHT = 34
LABEL_WIDTH = 92


@dataclass
class ChartData:
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


def rows_table(kept: list[TimelineEvent]) -> str:
    rows = [
        (
            [
                cell(e.stamp.text, "mono nw"),
                cell(e.precision, "nw"),
                cell(e.clock + ("*" if e.other_clock else ""), "nw"),
                f'<td class="nw"><i style="background:{COLORS.get(e.source, "#999")};display:inline-block;'
                f'width:8px;height:8px"></i> {esc(e.source)}</td>',
                cell(e.description),
                cell(e.container),
                cell(e.message, "msg mono"),
                cell(e.cited, "mono"),
            ],
            e.source == "alert",
        )
        for e in kept
    ]
    return table(
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


# -- the chart ---------------------------------------------------------------------------------


def chart_svg(chart: ChartData) -> str:
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


def _focus_range(chart: ChartData, lanes: list[str]) -> tuple[int, int]:
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
