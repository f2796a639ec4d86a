"""The network view (`ir replay net`) as text: one table row per socket, with its direction,
owning process, flags and the reason the direction was decided."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ir.replay.network import NET_COLUMNS, ConnectionRow, endpoint
from ir.replay.render.text import table_lines


def connection_lines(rows: Iterable[ConnectionRow]) -> Iterator[str]:
    """The connections table (columns: `NET_COLUMNS`, shared with the HTML report)."""
    yield from table_lines(
        [
            (
                r.cited.container,
                r.record.proto,
                endpoint(r.record.local_addr, r.record.local_port),
                endpoint(r.record.remote_addr, r.record.remote_port)
                if r.record.remote_port
                else (r.record.path or ""),
                r.record.state,
                r.direction,
                r.process,
                ",".join(r.flags),
                r.basis + (" (peer: a socket here)" if r.peer_here else ""),
            )
            for r in rows
        ],
        list(NET_COLUMNS),
    )
