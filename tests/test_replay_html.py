"""The HTML report: self-contained (no URL, a CSP that forbids loading anything), hostile text
inert, and it renders in headless Chromium with the timeline chart on screen (checked by counting
the chart's colours in a screenshot, decoded with zlib/struct)."""

from __future__ import annotations

import html.parser
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from ir.replay.report import COLORS
from tests.replay_fixtures import XSS, build_bundle, compromised_spec, ir

REPO = Path(__file__).resolve().parents[1]
WINDOW = (1280, 1000)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("html")
    bundle = build_bundle(directory, compromised_spec()).path
    out = directory / "report.html"
    ran = ir("replay", bundle, "export", "html", "--out", out, cache=directory / "cache")
    assert ran.code == 0, ran.err
    return out


def test_report_ties_itself_to_the_evidence(tmp_path: Path) -> None:
    """The report hashes the bundle again (even with a cached verdict at hand), and carries the
    bundle file's SHA-256, the root digest, the method, every artifact's digests and the custody
    records; printed, every page has a footer naming the bundle and a page number."""
    import hashlib

    bundle = build_bundle(tmp_path, compromised_spec()).path
    cache = tmp_path / "cache"
    assert ir("replay", bundle, "summary", cache=cache).code == 0  # a verdict is now cached
    out = tmp_path / "r.html"
    assert ir("replay", bundle, "export", "html", "--out", out, cache=cache).code == 0
    text = out.read_text(encoding="utf-8")
    assert "verified now:" in text and "cached verdict" not in text
    # the verdict in one line at the top; how it was reached under "Method"
    assert (
        '<p class="verified">verdict: unsigned (no signature: origin not proven, intact; '
        "verified now)</p>" in text
    )
    # timeline rows: the time as precise as its source, the precision, the clock (starred when
    # not the capture host's)
    assert "<th>precision</th>" in text and "2025-03-14T08:00:05.123456789Z" in text
    assert ">runtime*<" in text and ">1ns<" in text
    assert f"bundle file SHA-256 {hashlib.sha256(bundle.read_bytes()).hexdigest()}" in text
    assert 'id="tbl-inventory"' in text and 'id="tbl-custody"' in text
    assert "counter(pages)" in text
    cached = tmp_path / "c.html"
    ran = ir("replay", bundle, "export", "html", "--out", cached, "--cached-verdict", cache=cache)
    assert ran.code == 0 and "cached verdict" in cached.read_text(encoding="utf-8")


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []
        self.tags: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attrs.extend((tag, k, v or "") for k, v in attrs)


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    for tag, name, value in parser.attrs:
        if name in ("src", "href", "action", "formaction", "poster", "srcset", "data"):
            assert value.startswith("#"), (tag, name, value)  # in-page anchors only
        if name == "xmlns":
            continue  # the SVG namespace name is an identifier, never fetched
        assert not re.search(r"(https?:|ftp:|//)", value) or name in ("placeholder", "title"), (
            tag,
            name,
            value,
        )
    assert parser.tags["script"] == 1 and parser.tags["link"] == 0 and parser.tags["iframe"] == 0
    assert parser.tags["img"] == 0 and parser.tags["object"] == 0
    assert "url(" not in text and "@import" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_hostile_text_is_escaped(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert XSS not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in text
    assert "\x1b" in text  # kept as data, harmless in HTML (escaped for terminals only)
    assert text.count("<script>") == 1


def test_report_sections_hold_the_planted_facts(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    for needle in (
        "Deleted executables running",
        "/tmp/.kworker",
        "0.0.0.0:31337",
        "203.0.113.7:4444",
        "/usr/bin/.sysupdate",
        "/dev/shm/.x/miner",
        "Terminal shell in container",
        'id="tbl-ps"',
        'id="tbl-net"',
        'id="tbl-fs"',
        'id="tbl-rows"',
        "<svg",
    ):
        assert needle in text, needle


# -- rendering in Chromium ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by scripts/install-chromium if missing (part of the setup)."""
    if shutil.which("chromium") is None:
        subprocess.run([str(REPO / "scripts" / "install-chromium")], check=True, timeout=900)
    path = shutil.which("chromium")
    assert path, "scripts/install-chromium did not provide chromium"
    return path


def screenshot(chromium: str, page: Path, out: Path, profile: Path) -> Path:
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--force-color-profile=srgb",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--screenshot={out}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.as_uri(),
    ]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    assert out.exists()
    return out


def decode_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        previous = line
        rows.append(
            bytes(line) if channels == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3)
        )
    return width, height, rows


def count_colors(rows: list[bytes], colors: dict[str, str]) -> dict[str, int]:
    wanted = {bytes.fromhex(hexa.lstrip("#")): name for name, hexa in colors.items()}
    counts = dict.fromkeys(colors, 0)
    for row in rows:
        for x in range(0, len(row), 3):
            name = wanted.get(row[x : x + 3])
            if name:
                counts[name] += 1
    return counts


def chart_area(text: str, color: str) -> int:
    """Pixels the SVG asks to paint in `color` (bar rects), for the expected count."""
    area = 0
    for m in re.finditer(
        r'<rect x="\d+" y="\d+" width="(\d+)" height="(\d+)" fill="' + color + '"', text
    ):
        area += int(m.group(1)) * int(m.group(2))
    return area


def test_report_renders_in_chromium_with_the_timeline(
    report: Path, chromium: str, tmp_path: Path
) -> None:
    shot = screenshot(chromium, report, tmp_path / "report.png", tmp_path / "profile")
    width, height, rows = decode_png(shot)
    assert (width, height) == WINDOW
    text = report.read_text(encoding="utf-8")
    lanes = {s: COLORS[s] for s in ("log", "k8s", "process", "file", "alert")}
    counts = count_colors(rows, lanes)
    for source, hexa in lanes.items():
        expected = chart_area(text, hexa)
        assert expected > 0, source
        # the bars are on screen, painted as asked (legend swatches add a few pixels)
        assert counts[source] >= 0.9 * expected, (source, counts[source], expected)
    # Control: the same page without its chart shows none of those colours, so the test can fail.
    no_chart = re.sub(r'<div class="chart">.*?</p>', "", text, count=1, flags=re.S)
    assert no_chart != text
    bare = tmp_path / "bare.html"
    bare.write_text(no_chart, encoding="utf-8")
    _, _, bare_rows = decode_png(
        screenshot(chromium, bare, tmp_path / "bare.png", tmp_path / "profile2")
    )
    assert all(n == 0 for n in count_colors(bare_rows, lanes).values())
