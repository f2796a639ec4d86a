"""The Docker Engine API backend: `DockerContainer`, a container reached through the engine (the
`docker` package; local socket or DOCKER_HOST), and `open_docker`, which finds it.

Filesystem: the archive endpoint (`ir.runtime.docker_archive`). Processes: /proc of the host when
the engine is local and ir is root (the same reader as the node backend), else `top`
(`ir.runtime.docker_processes`). Sockets: the local /proc, else `cat /proc/net/*` inside the
container with --allow-exec (`ir.runtime.docker_network`). Logs: the multiplexed stream,
demultiplexed (`ir.runtime.docker_logs`). Every request goes through the API client
(`ir.runtime.docker_api`) and is recorded in the handle's ActionLog. The public names of those
modules are importable from here too (`__all__`)."""

from __future__ import annotations

import os
import tarfile
from typing import Any

import docker.errors

from ir.errors import ClusterError, IrError, Unsupported, UsageError
from ir.runtime.base import ActionLog, ContainerHandle, ContainerState
from ir.runtime.docker_api import (
    API_TIMEOUT,
    READ_CHUNK,
    WIDE_PS_ARGS,
    DockerRuntime,
    ResponseReader,
)
from ir.runtime.docker_archive import (
    RECENT_SECONDS,
    SUBTREE_SKIP_LIMIT,
    DockerArchiveDiff,
    DockerArchiveFile,
    added_roots,
    go_mode,
)
from ir.runtime.docker_logs import DockerLogs
from ir.runtime.docker_network import DockerExecNetwork
from ir.runtime.docker_processes import DockerTopProcesses
from ir.runtime.procfs import ProcfsNetwork, ProcfsProcesses, parse_passwd, pid_in_container

__all__ = [
    "API_TIMEOUT",
    "MAX_SMALL_FILE",
    "READ_CHUNK",
    "RECENT_SECONDS",
    "SUBTREE_SKIP_LIMIT",
    "WIDE_PS_ARGS",
    "DockerArchiveDiff",
    "DockerArchiveFile",
    "DockerContainer",
    "DockerExecNetwork",
    "DockerLogs",
    "DockerRuntime",
    "DockerTopProcesses",
    "added_roots",
    "go_mode",
    "open_docker",
    "state_of",
]

MAX_SMALL_FILE = 1024 * 1024


class DockerContainer(ContainerHandle):
    """A container reached through the Docker API (optionally helped by the local /proc)."""

    backend = "docker"

    def __init__(
        self,
        runtime: DockerRuntime,
        inspect: dict[str, Any],
        *,
        allow_exec: bool = False,
        use_procfs: bool | None = None,
    ) -> None:
        self.runtime = runtime
        self.actions = runtime.actions
        self._inspect = inspect
        self.id = str(inspect["Id"])
        self.name = str(inspect.get("Name") or self.id[:12]).lstrip("/")
        self.image = (inspect.get("Config") or {}).get("Image")
        self.image_id = inspect.get("Image")
        self.allow_exec = allow_exec
        self.decisions: dict[str, Any] = {"engine": runtime.base_url}
        self._procfs_pid = self._local_pid() if use_procfs is not False else None
        if use_procfs is False:
            self.decisions["procfs"] = "not used: asked not to"

    def removal_seen(self) -> str | None:
        return self.runtime.removal_sign

    @property
    def first_inspect(self) -> dict[str, Any]:
        """The inspect document fetched when the container was resolved."""
        return self._inspect

    def _local_pid(self) -> int | None:
        """The container's init pid if this host's /proc shows it (local engine, root)."""
        pid = int((self._inspect.get("State") or {}).get("Pid") or 0)
        why = None
        if not self.runtime.local:
            why = "the engine is remote"
        elif os.geteuid() != 0:
            why = "ir is not root"
        elif not pid:
            why = "the container is not running"
        elif not pid_in_container(pid, self.id):
            why = f"/proc/{pid} is not in the container's cgroup (other pid namespace?)"
        if why:
            self.decisions["procfs"] = f"not used: {why}"
            return None
        self.decisions["procfs"] = f"used: local engine, root, /proc/{pid} is the container's init"
        return pid

    def state(self) -> ContainerState:
        try:
            doc = self.runtime.inspect_container(self.id)
        except docker.errors.NotFound:
            return ContainerState("gone")
        self._latest = doc
        return state_of(doc)

    def inspect(self) -> dict[str, Any] | None:
        return self.runtime.inspect_container(self.id)

    def image_details(self) -> dict[str, Any] | None:
        ref = self.image_id or self.image
        if not ref:
            return None
        details: dict[str, Any] = {"inspect": self.runtime.inspect_image(ref)}
        try:
            details["history"] = self.runtime.image_history(ref)
        except (docker.errors.NotFound, ClusterError) as exc:
            details["history_error"] = str(exc)
        return details

    def engine_details(self) -> dict[str, Any] | None:
        return {
            "version": self.runtime.version(),
            "info": self.runtime.info(),
            "url": self.runtime.base_url,
        }

    def fs_diff(self) -> DockerArchiveDiff:
        return DockerArchiveDiff(self.runtime, self.id)

    def processes(self) -> Any:
        if self._procfs_pid:
            return ProcfsProcesses(self._procfs_pid, users=self._users, actions=self.actions)
        state = self.state()
        if not state.running:
            raise Unsupported(f"the container is {state.status}: no processes")
        return DockerTopProcesses(self)

    def network(self) -> Any:
        if self._procfs_pid:
            return ProcfsNetwork(self._procfs_pid, actions=self.actions)
        if self.allow_exec:
            return DockerExecNetwork(self)
        raise Unsupported(
            "sockets need the local /proc (engine on this host, ir as root) or --allow-exec"
        )

    def logs(self) -> DockerLogs:
        return DockerLogs(self, bool((self._inspect.get("Config") or {}).get("Tty")))

    def previous_logs_note(self) -> str | None:
        restarts = int(self._inspect.get("RestartCount") or 0)
        if restarts:
            return None
        return "no previous instance: the container has not restarted (RestartCount 0)"

    def started_at(self) -> str | None:
        return (self._inspect.get("State") or {}).get("StartedAt")

    def previous_until(self) -> str | None:
        # Docker sets StartedAt a little AFTER the process starts (its first lines can predate
        # it); while running after a restart, FinishedAt is the previous instance's exit: the
        # exact boundary. For an exited container only StartedAt is left.
        st = self._inspect.get("State") or {}
        finished, started = st.get("FinishedAt"), st.get("StartedAt")
        if st.get("Running") and finished and not str(finished).startswith("0001-"):
            return str(finished)
        return str(started) if started and not str(started).startswith("0001-") else None

    def read_file(self, path: str, limit: int = MAX_SMALL_FILE) -> bytes | None:
        try:
            res = self.runtime.archive(self.id, path)
        except FileNotFoundError:
            return None
        reader = ResponseReader(res)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                member = tar.next()
                if member is None or not member.isreg():
                    return None
                if member.size > limit:
                    raise ValueError(f"{path} is larger than {limit} bytes")
                fh = tar.extractfile(member)
                return fh.read(limit) if fh else None
        except tarfile.TarError:
            return None
        finally:
            reader.close()

    def _users(self) -> dict[int, str]:
        try:
            return parse_passwd(self.read_file("/etc/passwd"))
        except (OSError, ValueError, IrError):
            return {}

    def close(self) -> None:
        self.runtime.close()


def state_of(doc: dict[str, Any]) -> ContainerState:
    st = doc.get("State") or {}
    return ContainerState(
        status=str(st.get("Status") or "unknown"),
        pid=int(st.get("Pid") or 0) or None,
        started_at=st.get("StartedAt"),
        finished_at=st.get("FinishedAt"),
        exit_code=st.get("ExitCode"),
    )


def open_docker(
    ref: str,
    *,
    docker_host: str | None = None,
    allow_exec: bool = False,
    actions: ActionLog | None = None,
    use_procfs: bool | None = None,
) -> DockerContainer:
    """Find container `ref` (id, id prefix or name) on the engine. `use_procfs`: None = use the
    local /proc for processes and sockets when it shows the container, False = never (`top`).
    Raises ClusterError when the engine is unreachable, UsageError when there is no such container."""
    runtime = DockerRuntime(docker_host, actions or ActionLog())
    try:
        doc = runtime.inspect_container(ref)
    except docker.errors.NotFound:
        runtime.close()
        raise UsageError(f"no such container: {ref}") from None
    return DockerContainer(runtime, doc, allow_exec=allow_exec, use_procfs=use_procfs)
