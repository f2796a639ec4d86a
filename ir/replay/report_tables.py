"""The HTML report's tables: the cell and table builders every section uses (`esc`, `cell`,
`table`), and the tables over the evidence: the hash inventory, the custody chain, processes,
sockets, filesystem changes and the collectors' outcomes. Each table shows at most `TABLE_ROWS`
rows and says how many more there are; the inventory and custody chain are never cut.

Every value from the bundle is untrusted and goes through `html.escape` (`esc`).
Part of `ir.replay.report`; imports the replay views it lays out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

from ir.clock import rfc3339
from ir.replay.evidence import Evidence
from ir.replay.files import (
    DELETION_LABELS,
    DeletionTimes,
    FsFilter,
    in_binary_dir,
    in_temp_dir,
    is_executable,
    iter_changes,
)
from ir.replay.network import NET_COLUMNS, connection_rows, endpoint
from ir.replay.processes import exe_path, process_rows

TABLE_ROWS = 5000  # per table


def esc(value: Any) -> str:
    return "-" if value is None else html.escape(str(value), quote=True)


def inventory(ev: Evidence) -> dict[str, str]:
    """Every artifact with both digests: the whole hash inventory, never truncated."""
    artifacts = ev.reader.manifest.artifacts
    rows = [
        (
            [
                cell(a.name, "mono"),
                cell(a.size, "nw"),
                cell(a.sha256, "mono"),
                cell(a.stored_sha256, "mono"),
                cell(a.status),
            ],
            a.status != "ok",
        )
        for a in artifacts
    ]
    return {
        "inventory_count": esc(len(rows)),
        "inventory": table(
            "tbl-inventory",
            ["artifact", "bytes", "SHA-256 (content)", "SHA-256 (stored zstd frame)", "status"],
            rows,
            len(rows),
            "artifacts",
            limit=None,
        ),
    }


def custody(ev: Evidence) -> dict[str, str]:
    rows = []
    for index, line in enumerate(ev.custody_lines, 1):
        try:
            r = json.loads(line)
            if not isinstance(r, dict):
                raise ValueError("not an object")
        except ValueError:
            rows.append(([cell(index), cell("(not a JSON record)")] + [cell("")] * 5, True))
            continue
        sig = r.get("sig") if isinstance(r.get("sig"), dict) else None
        rows.append(
            (
                [
                    cell(r.get("seq"), "nw"),
                    cell(r.get("time"), "nw"),
                    cell(r.get("action")),
                    cell(r.get("actor")),
                    cell(r.get("host")),
                    cell(sig.get("key_id") if sig else "unsigned", "mono"),
                    cell(r.get("bundle_digest"), "mono"),
                ],
                sig is None,
            )
        )
    return {
        "custody_count": esc(len(rows)),
        "custody": table(
            "tbl-custody",
            ["seq", "time (UTC)", "action", "actor", "host", "signed by", "bundle digest seen"],
            rows,
            len(rows),
            "records",
            limit=None,
        ),
    }


def table(
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


def cell(value: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{esc(value)}</td>' if cls else f"<td>{esc(value)}</td>"


def _flags(flags: list[str]) -> str:
    return "<td>" + "".join(f'<span class="flag">{esc(f)}</span>' for f in flags) + "</td>"


def process_table(ev: Evidence) -> dict[str, str]:
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
                    cell(row.cited.container),
                    cell(r.pid, "mono nw"),
                    cell(r.ppid, "mono nw"),
                    cell(r.user or r.uid),
                    cell(rfc3339(row.started) if row.started else r.start_time, "mono nw"),
                    _flags(row.flags),
                    f'<td class="mono">{indent}{esc(exe_path(r))}</td>',
                    cell((r.exe_sha256 or "")[:16], "mono"),
                    cell(" ".join(r.cmdline), "mono"),
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
    return {"ps_count": esc(total), "ps": table("tbl-ps", headers, rows, total, "processes")}


def network_table(ev: Evidence) -> dict[str, str]:
    all_rows = connection_rows(ev)
    rows = [
        (
            [
                cell(c.cited.container),
                cell(c.record.proto),
                cell(endpoint(c.record.local_addr, c.record.local_port), "mono"),
                cell(
                    endpoint(c.record.remote_addr, c.record.remote_port)
                    if c.record.remote_port
                    else (c.record.path or ""),
                    "mono",
                ),
                cell(c.record.state),
                cell(c.direction),
                cell(c.process),
                _flags(c.flags),
                cell(c.basis + (" (peer: a socket here)" if c.peer_here else "")),
            ],
            bool(c.flags),
        )
        for c in all_rows[:TABLE_ROWS]
    ]
    headers = list(NET_COLUMNS)
    return {
        "net_count": esc(len(all_rows)),
        "net": table("tbl-net", headers, rows, len(all_rows), "sockets"),
    }


def files_table(ev: Evidence) -> dict[str, str]:
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
                    cell(cited.container),
                    cell(c.change),
                    cell(c.type),
                    cell(c.mode, "mono nw"),
                    cell(c.size, "mono nw"),
                    cell(mtime, "mono nw"),
                    cell(ctime, "mono nw"),
                    _flags(flags),
                    cell(c.path + target, "mono"),
                    cell((c.sha256 or "")[:16], "mono"),
                    cell("yes" if c.captured else (c.skipped or "no")),
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
    return {"fs_count": esc(total), "fs": table("tbl-fs", headers, rows, total, "changes")}


def collectors_table(summary: dict[str, Any]) -> str:
    rows = [
        (
            [
                cell(c["name"]),
                cell(c["container"]),
                cell(c["status"]),
                cell(c["error"], "mono"),
                cell("; ".join(c.get("notes") or [])),
            ],
            c["status"] not in ("ok", "skipped"),
        )
        for c in summary["collectors"]
    ]
    return table(
        "tbl-collectors",
        ["collector", "container", "status", "error", "notes"],
        rows,
        len(rows),
        "collectors",
    )
