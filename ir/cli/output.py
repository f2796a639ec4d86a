"""How commands print: text for people, JSON for machines (`-o json`), progress on a terminal.

The pure text helpers (`printable`, the table layout) live in `ir.replay.render.text`, below the
CLI, so the replay views render without it; `printable` is importable from here as before."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from ir.replay.render.text import Emphasis, Line, printable, table_lines

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
    echo_lines(table_lines(rows, headers))


def echo_lines(lines: Iterable[Line]) -> None:
    """Print rendered lines (`ir.replay.render`) to stdout, styling the emphasised ones."""
    for line in lines:
        if isinstance(line, Emphasis):
            click.echo(click.style(line.text, fg=line.color, bold=line.bold or None))
        else:
            click.echo(line)


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
