"""The Docker backend's socket view when the local /proc cannot be used: `/proc/net/*` read by
running `cat` inside the container (only with --allow-exec), parsed as the node backend does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ir.records import SocketRecord
from ir.runtime.docker_api import EngineContainer
from ir.runtime.procfs import parse_inet_sockets, parse_unix_sockets


class DockerExecNetwork:
    """NetworkSource read by running `cat /proc/net/...` inside the container (--allow-exec)."""

    def __init__(self, container: EngineContainer) -> None:
        self.container = container
        self.netns = None
        self.description: dict[str, Any] = {
            "source": "docker-exec",
            "warning": "ran cat inside the container",
        }

    def _cat(self, path: str) -> str:
        return self.container.runtime.exec_read(self.container.id, ["cat", path]).decode(
            "utf-8", "replace"
        )

    def sockets(self) -> Iterator[SocketRecord]:
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            try:
                text = self._cat(f"/proc/net/{proto}")
            except OSError:
                continue
            yield from parse_inet_sockets(text, proto)
        try:
            yield from parse_unix_sockets(self._cat("/proc/net/unix"))
        except OSError:
            return

    def interfaces(self) -> list[dict[str, Any]]:
        names = []
        for line in self._cat("/proc/net/dev").splitlines()[2:]:
            names.append({"name": line.partition(":")[0].strip(), "addresses": []})
        return names

    def routes(self) -> list[dict[str, Any]]:
        return []
