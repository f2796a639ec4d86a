"""The Docker backend's process view when the local /proc cannot be used: `docker top`, ps run
by the engine on its own host (no hashes, file descriptors or environment)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ir.errors import Unsupported
from ir.records import ProcessRecord
from ir.runtime.docker_api import EngineContainer


class DockerTopProcesses:
    """ProcessSource from `docker top` (ps on the engine's host): no hashes, fds or env."""

    def __init__(self, container: EngineContainer) -> None:
        self.container = container
        self.description: dict[str, Any] = {"source": "docker-top"}
        self._pid = container.state().pid

    def init_alive(self) -> bool:
        state = self.container.state()
        return state.running and state.pid == self._pid

    def processes(self, *, include_env: bool, hash_limit: int) -> Iterator[ProcessRecord]:
        del include_env, hash_limit
        top = self.container.runtime.top(self.container.id)
        titles = [t.upper() for t in top.get("Titles") or []]
        for row in top.get("Processes") or []:
            fields = dict(zip(titles, row, strict=False))
            cmd = fields.get("CMD") or fields.get("COMMAND") or ""
            yield ProcessRecord(
                pid=int(fields.get("PID", 0)),
                ppid=int(fields["PPID"]) if str(fields.get("PPID", "")).isdigit() else None,
                user=fields.get("UID") or fields.get("USER"),
                cmdline=cmd.split(),
                name=(cmd.split() or [""])[0].rsplit("/", 1)[-1] or None,
                exe_error="docker top gives no executable",
                source="docker-top",
            )

    def open_exe(self, pid: int) -> Any:
        raise Unsupported("docker top cannot read executables")
