"""What a replay view is: `View`, declared once per view (`VIEW` in ir/replay/views/<view>.py),
the `Option`s of its command, and the `Page` it answers with -- a JSON `Document`, `Text` lines
or `Rows` streamed -- for `ir.cli.replay` to print.

Click-free, like the rest of ir.replay: ir.cli.replay makes each View's click command and prints
its Page (the verdict banners, the notes on stderr, the problems, the exit code). May import
ir.replay (evidence, trust, render.text), ir.errors and ir.clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import IO, Any

from ir.replay.render.text import Line


@dataclass(frozen=True)
class Option:
    """One option of a view's command, as `ir replay BUNDLE <view> --help` lists it."""

    spelling: str  # "--container"
    help: str | None = None  # its line in --help
    _: KW_ONLY
    short: str | None = None  # "-o"
    name: str | None = None  # the page function's keyword, when not the spelling's (min_size)
    metavar: str | None = None  # what --help shows for the value (TIME, SIZE, FILE)
    choices: tuple[str, ...] = ()  # the value is one of these
    default: str | None = None  # the value when the option is not given (else None)
    show_default: bool = False  # --help says the default
    multiple: bool = False  # repeatable: a tuple of the values given, () for none
    flag: bool = False  # takes no value: True when given, None when not

    @property
    def keyword(self) -> str:
        """The name its value is passed to the page function under."""
        return self.name or self.spelling.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Document:
    """The page as one JSON document (`-o json`). It carries the verification and the problems
    itself, so nothing else is printed."""

    content: dict[str, Any]


@dataclass(frozen=True)
class Text:
    """The page for people: lines (an `Emphasis` one is styled on a terminal), between the
    banners of a bundle shown although it failed verification; its problems on stderr after."""

    lines: Iterable[Line]


Note = Callable[[str], None]
"""Says one line on stderr, next to the rows (the CLI's `info`)."""


def _no_notes() -> Iterable[str]:
    return ()


@dataclass(frozen=True)
class Rows:
    """Rows streamed as they are read (a view can have millions). `write(out, note)` writes
    them to `out` and returns how many; what a reader of the rows must know about them goes to
    `note`. A text table (`-o text`/`table`) to stdout stands between the banners. With
    `out_path`, the rows go to that file ('-': stdout) without banners, and stderr says how many
    went there. `notes` are said on stderr after the rows (what was counted while they
    streamed), then the problems."""

    write: Callable[[IO[str], Note], int]
    out_path: str | None = None
    notes: Callable[[], Iterable[str]] = field(default=_no_notes)


Page = Document | Text | Rows
"""What a view shows; `ir.cli.replay` prints it."""

PageFunction = Callable[..., Page]
"""The view's work, called once the bundle is open and verified: `(evidence, trust, **values)`,
one keyword per option (`Option.keyword`), returning the page. It reads the evidence through
the view functions of ir.replay and lays the rows out through ir.replay.render; it never
prints. A bad value raises `UsageError` naming the option (exit 2)."""


@dataclass(frozen=True)
class View:
    """One replay view, declared once: `ir replay BUNDLE <name>` is made from it."""

    name: str  # the command: `ir replay BUNDLE <name>`
    help: str  # its --help text; its start is its line in `ir replay --help`
    options: tuple[Option, ...]  # in --help's order (the trust options follow); one is `output`
    page: PageFunction
    _: KW_ONLY
    # outputs whose page says the verdict itself (the summary's first line): not said on stderr
    verdict_on_page: tuple[str, ...] = ()
