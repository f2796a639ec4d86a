"""The `net` view declared: sockets with their owning processes and the direction of each
connection (`ir.replay.network`), as a text table (`ir.replay.render.network`) or JSON."""

from __future__ import annotations

from ir.replay.evidence import Evidence
from ir.replay.network import connection_rows
from ir.replay.render.network import connection_lines
from ir.replay.trust import Trust
from ir.replay.views.model import Document, Option, Page, Text, View
from ir.replay.views.options import CONTAINER, TEXT_OR_JSON

HELP = """Sockets with their owning processes: listeners, and connections inbound (a listener of the
same network namespace has their port), outbound or unknown, each with the reason."""

DIRECTION = Option(
    "--direction",
    "Only these directions (repeatable); local: connections whose peer is a socket of the "
    "same network namespace, either direction.",
    choices=("listen", "inbound", "outbound", "unknown", "unix", "other", "local"),
    multiple=True,
)


def connection_page(
    ev: Evidence, trust: Trust, *, container: str | None, direction: tuple[str, ...], output: str
) -> Page:
    rows = [
        r
        for r in connection_rows(ev, container)
        if not direction or r.direction in direction or ("local" in direction and r.peer_here)
    ]
    if output == "json":
        return Document(
            {
                "verification": trust.to_dict(),
                "connections": [r.to_dict() for r in rows],
                "problems": ev.problems,
            }
        )
    return Text(connection_lines(rows))


VIEW = View("net", HELP, (CONTAINER, DIRECTION, TEXT_OR_JSON), connection_page)
