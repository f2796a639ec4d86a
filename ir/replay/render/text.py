"""Plain-text building blocks of the replay pages: untrusted values made safe for a terminal
(`printable`), aligned tables (`table_lines` for small ones, `stream_table` for views that can
have millions of rows), and `Emphasis`, a line a terminal should make stand out (the CLI styles
it). The CLI's own tables use the same layout (`ir.cli.output.table`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

#: Rows a streamed table holds to size its columns (a view can have millions of rows).
SIZE_ROWS = 2000


@dataclass(frozen=True)
class Emphasis:
    """A line to stand out: in bold, or in a colour that says how bad it is ("red", "yellow")."""

    text: str
    color: str | None = None
    bold: bool = False


#: One line of a rendered page: plain text, or text to emphasise.
Line = str | Emphasis


def printable(value: Any) -> str:
    """Render untrusted text safely on a terminal: control characters escaped."""
    if value is None:
        return "-"
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def table_lines(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> Iterator[str]:
    """A plain aligned table, header and rule first; cells are made printable (no control
    characters) and trailing blanks dropped."""
    cells = [[printable(h) for h in headers]] + [[printable(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        yield "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        if index == 0:
            yield "  ".join("-" * w for w in widths)


def stream_table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    out: IO[str],
    *,
    right: Sequence[str] = (),
) -> int:
    """Write rows as a table whose columns are as wide as their values, streaming: the first
    SIZE_ROWS rows are held to size the columns; a wider value later widens its column from that
    row on. Cells are made printable; the last column is not padded. The one table layout of
    the streamed views (fs, logs, timeline), as `table_lines` is for the small ones."""
    iterator = iter(rows)
    held = [[printable(c) for c in row] for row in itertools.islice(iterator, SIZE_ROWS)]
    widths = [len(h) for h in headers]
    for cells in held:
        widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]
    aligned = [h in right for h in headers]

    def line(cells: Sequence[str]) -> str:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths[i], len(cell))
        padded = [
            c.rjust(w) if r else c.ljust(w)
            for c, w, r in zip(cells[:-1], widths, aligned, strict=False)
        ]
        return "  ".join([*padded, cells[-1]]).rstrip() + "\n"

    out.write(line(list(headers)))
    out.write("  ".join("-" * w for w in [*widths[:-1], len(headers[-1])]) + "\n")
    n = 0
    for cells in itertools.chain(held, ([printable(c) for c in row] for row in iterator)):
        out.write(line(cells))
        n += 1
    return n
