"""The Docker backend's log source: the container's stdout/stderr as the engine keeps them, with
timestamps; the multiplexed stream (8-byte frame headers) is demultiplexed here so stdout and
stderr stay apart (a TTY container's stream has no frames: it is all stdout)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from ir.runtime.docker_api import READ_CHUNK, EngineContainer


class DockerLogs:
    """LogSource: the container's stdout/stderr as the engine keeps them, with timestamps."""

    def __init__(self, container: EngineContainer, tty: bool) -> None:
        self.container = container
        self.tty = tty
        self.description: dict[str, Any] = {"source": "docker-logs", "tty": tty}

    def frames(
        self, *, since: str | None, until: str | None, tail: int | None
    ) -> Iterator[tuple[str, bytes]]:
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": 0,
            "tail": "all" if tail is None else str(tail),
        }
        if since:
            params["since"] = since
        if until:
            params["until"] = until
        res = self.container.runtime.logs(self.container.id, params)
        try:
            raw = res.raw
            if self.tty:
                while chunk := raw.read(READ_CHUNK):
                    yield "stdout", chunk
                return
            while True:
                header = _read_exact(raw, 8)
                if len(header) < 8:
                    return
                kind, length = struct.unpack(">BxxxL", header)
                stream = "stderr" if kind == 2 else "stdout"
                while length > 0:
                    piece = raw.read(min(length, READ_CHUNK))
                    if not piece:
                        return
                    length -= len(piece)
                    yield stream, piece
        finally:
            res.close()


def _read_exact(raw: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        piece = raw.read(n - len(buf))
        if not piece:
            break
        buf += piece
    return buf
