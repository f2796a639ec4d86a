"""Replay views, one module each, found by convention (a module here with `VIEW`, a `View`;
nothing else registers it), as playbook actions are in ir/playbook/steps/.

A view's VIEW is the only place it is declared: its command's name, help and options, and its
page function, which reads the evidence and lays the rows out. `ir replay BUNDLE <name>` is made
from it by ir.cli.replay, which opens and verifies the bundle, prints the page (the verdict
banners around a text page, notes on stderr, the problems) and sets the exit code; it names no
view but `fs`, to hang `fs cat` (a file's bytes, not a page) on. The modules here may import the rest of ir.replay (evidence, trust, the views'
rows and their rendering in ir/replay/render/), ir.errors and ir.clock; never click.

Adding a view (here `hashes`, for illustration):

1. `ir/replay/views/hashes.py`, opening with what the view shows, ending with its VIEW:

       from ir.replay.evidence import Evidence
       from ir.replay.processes import exe_path, process_rows
       from ir.replay.render.text import table_lines
       from ir.replay.trust import Trust
       from ir.replay.views.model import Document, Page, Text, View
       from ir.replay.views.options import CONTAINER, TEXT_OR_JSON

       COLUMNS = ("container", "sha256", "executable")

       def hashes_page(ev: Evidence, trust: Trust, *, container: str | None, output: str) -> Page:
           rows = sorted(
               {
                   (r.cited.container, r.record.exe_sha256 or "", exe_path(r.record) or "?")
                   for r in process_rows(ev, container)
               }
           )
           if output == "json":  # a document carries the verification and the problems itself
               return Document(
                   {
                       "verification": trust.to_dict(),
                       "executables": [dict(zip(COLUMNS, row, strict=True)) for row in rows],
                       "problems": ev.problems,
                   }
               )
           return Text(table_lines(rows, COLUMNS))

       VIEW = View(
           "hashes",  # ir replay BUNDLE hashes
           "Each executable the processes ran, with its sha256.",  # its --help
           (CONTAINER, TEXT_OR_JSON),  # its options, in --help's order
           hashes_page,  # takes one keyword per option
       )

   An option is an `Option` (model.py); options.py has the common ones and reads times and
   sizes. A page is a `Document` (-o json), `Text` lines, or `Rows` streamed to stdout or a
   file, with notes on stderr (fs, logs, timeline). The rows come from functions over
   `Evidence` that yield records `Cited`, bounded by a `MAX_...` constant; once the module
   grows, they move to ir/replay/<view>.py and the layout to ir/replay/render/<view>.py, as for
   the views here (STYLE.md, Habits 12: view / rendering).
2. Its test, `tests/views/test_hashes.py`: the rows on the synthetic bundles with planted facts
   (tests/replay_fixtures.py, fixtures in tests/views/conftest.py), through the real CLI entry
   point. tests/views/test_every_view.py fails, naming the view, until it is there.

ir.cli.replay needs no change.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ir.replay.views.model import Document, Option, Page, Rows, Text, View

__all__ = ["Document", "Option", "Page", "Rows", "Text", "View", "view_modules", "views"]


@cache
def view_modules() -> dict[str, View]:
    """Every view, by the module that declares it (`processes` for `ps`)."""
    found: dict[str, View] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        view = getattr(importlib.import_module(f"{__name__}.{info.name}"), "VIEW", None)
        if isinstance(view, View):
            found[info.name] = view
    names = [v.name for v in found.values()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"replay views declared twice: {', '.join(twice)}")
    return found


def views() -> tuple[View, ...]:
    """Every view, by name."""
    return tuple(sorted(view_modules().values(), key=lambda v: v.name))
