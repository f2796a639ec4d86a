"""Network: the sockets of the container's network namespace (TCP/UDP v4/v6, unix) with state and
owning pid, interfaces and addresses, routes, and the container's resolv.conf, hosts and
hostname as the container sees them (read without following links).

network.json also records the namespace's id (`netns`) and, when the source tells, what became
of each /proc/net table (`socket_tables`: "read", "absent" or "unreadable: why"): replay gives a
connection its direction from the listeners of the same namespace, and must know "no listener"
from "listeners not seen" (docs/replay.md, "Direction")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ir.collect.base import Artifact, ContainerContext, Scope, json_bytes
from ir.errors import IrError, Unsupported
from ir.records import SocketRecord, encode_path
from ir.runtime.procfs import ProcessGone

SMALL_FILE = 1024 * 1024


class NetworkCollector:
    name = "network"
    scope: Scope = "container"

    def check(self, ctx: ContainerContext) -> None:
        target = ctx.target
        if not target.was_running:
            raise Unsupported(
                f"the container was {target.state_at_start.status} when the capture started: no sockets"
            )

    def collect(self, ctx: ContainerContext) -> Iterator[Artifact]:
        target = ctx.target
        handle = target.handle
        try:
            source = handle.network()
        except Unsupported as exc:
            if handle.state().running:
                raise
            yield Artifact(
                "sockets.jsonl",
                kind="sockets",
                media_type=SocketRecord.media_type(),
                chunks=[],
                status="partial",
                error=f"container exited during capture: {exc}",
            )
            return
        target.sources[self.name] = source.description
        sockets = Artifact(
            "sockets.jsonl",
            kind="sockets",
            media_type=SocketRecord.media_type(),
            meta={"source": source.description.get("source"), "netns": source.netns},
        )

        def lines() -> Iterator[bytes]:
            count = listening = 0
            try:
                for record in source.sockets():
                    count += 1
                    listening += record.listening
                    yield record.to_line()
            except ProcessGone as exc:
                sockets.status, sockets.error = "partial", f"container exited during capture: {exc}"
            if sockets.status == "ok" and not _still_alive(handle, source):
                # The init exited (its pid may even be reused): what was read may be incomplete.
                sockets.status, sockets.error = "partial", "container exited during capture"
            ctx.note(f"{count} socket(s), {listening} listening")

        sockets.chunks = lines()
        yield sockets
        document: dict[str, Any] = {
            "netns": source.netns,
            "source": source.description.get("source"),
        }
        tables = getattr(source, "tables", None)  # sources that can say so (procfs)
        if isinstance(tables, dict) and tables:
            document["socket_tables"] = dict(tables)
        status, error = "ok", None
        try:
            document["interfaces"] = source.interfaces()
            document["routes"] = source.routes()
        except (OSError, ProcessGone) as exc:
            status, error = "partial", f"interfaces/routes unreadable: {exc}"
        for key, path in (
            ("resolv_conf", "/etc/resolv.conf"),
            ("hosts", "/etc/hosts"),
            ("hostname", "/etc/hostname"),
        ):
            try:
                data = handle.read_file(path, SMALL_FILE)
            except (OSError, ValueError, IrError) as exc:
                document[f"{key}_error"] = str(exc)
                continue
            document[key] = None if data is None else encode_path(data)[0]
        yield Artifact(
            "network.json",
            kind="network",
            media_type="application/json",
            chunks=[json_bytes(document)],
            status=status,
            error=error,
        )


def _still_alive(handle: Any, source: Any) -> bool:
    check = getattr(handle, "init_alive", None)
    if callable(check):
        return bool(check())
    procs_pid = getattr(source, "init_pid", None)
    if procs_pid is None:
        return True
    state = handle.state()
    return bool(state.running and state.pid == procs_pid)


COLLECTOR = NetworkCollector()
