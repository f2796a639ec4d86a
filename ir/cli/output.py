"""How commands print: text for people, JSON for machines (`-o json`), progress on a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

# The format the running command was asked for, so that ir.cli.main can answer an error that
# ends the command in that format (one command runs per process).
_requested = {"output": "text"}


def remember_output(value: str) -> str:
    """Note the output format of the command about to run (main resets it to text first)."""
    _requested["output"] = value
    return value


def _remember(ctx: click.Context, param: click.Parameter, value: str) -> str:
    return remember_output(value)


output_option = click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    callback=_remember,
    help="Output format: text for people, json for machines.",
)


def json_requested() -> bool:
    """The running command was given `-o json`."""
    return _requested["output"] == "json"


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str, ensure_ascii=False))


def emit(output: str, document: Any, render_text: Callable[[], None]) -> None:
    if output == "json":
        emit_json(document)
    else:
        render_text()


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table; cells are made printable (no control characters)."""
    cells = [[printable(h) for h in headers]] + [[printable(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))


def printable(value: Any) -> str:
    """Render untrusted text safely on a terminal: control characters escaped."""
    if value is None:
        return "-"
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def exit_line(code: int, cause: str | None) -> None:
    """The last line of a command's text output when it exits non-zero: the code and its cause
    (`ir: exit 4: replace: no ready replacement within 120 s; ...`)."""
    if code:
        click.echo(f"ir: exit {int(code)}: {printable(cause or 'see the messages above')}")


def warn(message: str) -> None:
    click.echo(click.style("warning: ", fg="yellow") + message, err=True)


def info(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def byte_progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not sys.stderr.isatty() or total <= 0:
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update
