"""The Docker Engine API client (the `docker` package; local socket or DOCKER_HOST): every request
is recorded in the handle's ActionLog, API failures become ClusterErrors, and an engine error
saying the container is being removed is remembered. Also what the process, network and log
sources need of a container (`EngineContainer`) and a file-like view of a streamed response."""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.utils import decode_json_header

from ir.errors import ClusterError
from ir.runtime.base import ActionLog, ContainerState

API_TIMEOUT = 60
# How the engine words a refusal for a container being removed: "can not get logs from container
# which is dead or marked for removal", "removal of container ... is already in progress".
_REMOVAL = re.compile(r"marked for removal|removal of container|removal in progress|is dead")
READ_CHUNK = 1024 * 1024

_ARCHIVE_NOTES = {
    "docker.archive-get": "GET /containers/{id}/archive per captured path",
    "docker.archive-get-tree": "GET /containers/{id}/archive per top-most added path",
}
# ps arguments for `docker top`: the engine's default (-ef) plus unlimited width.
WIDE_PS_ARGS = "-ef -ww"


class DockerRuntime:
    """A Docker API client that records every request it makes."""

    def __init__(self, base_url: str | None, actions: ActionLog) -> None:
        self.actions = actions
        self.removal_sign: str | None = None  # the first engine error saying it is being removed
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            self.api = docker.APIClient(base_url=self.base_url, version="auto", timeout=API_TIMEOUT)
        except docker.errors.DockerException as exc:
            actions.record("docker.connect", "failed", url=self.base_url, error=str(exc))
            raise ClusterError(
                f"cannot reach the Docker engine at {self.base_url}: {exc}"
            ) from None
        actions.record("docker.connect", url=self.base_url, api_version=self.api.api_version)

    @property
    def local(self) -> bool:
        """The engine is reached over a local unix socket (so it runs on this host)."""
        return self.base_url.startswith("unix://") or self.base_url.startswith("/")

    def close(self) -> None:
        self.api.close()

    def _call(self, action: str, fn: Any, *args: Any, count: bool = False, **detail: Any) -> Any:
        record = self.actions.count if count else self.actions.record
        try:
            result = fn(*args)
        except docker.errors.NotFound:
            record(action, "not-found", **detail)
            raise
        except docker.errors.APIError as exc:
            record(action, "failed", error=str(exc), **detail)
            self._note_removal(action, exc)
            raise ClusterError(f"Docker API {action} failed: {exc.explanation or exc}") from None
        except (requests.exceptions.RequestException, OSError) as exc:
            record(action, "failed", error=str(exc), **detail)
            raise ClusterError(f"Docker API {action} failed: {exc}") from None
        record(action, **detail)
        return result

    def _note_removal(self, action: str, exc: docker.errors.APIError) -> None:
        text = str(exc.explanation or exc)
        if self.removal_sign is None and _REMOVAL.search(text):
            self.removal_sign = f"{action}: {text}"

    def inspect_container(self, ref: str) -> dict[str, Any]:
        return self._call("docker.inspect-container", self.api.inspect_container, ref, ref=ref)  # type: ignore[no-any-return]

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return self._call("docker.inspect-image", self.api.inspect_image, ref, ref=ref)  # type: ignore[no-any-return]

    def image_history(self, ref: str) -> list[dict[str, Any]]:
        return self._call("docker.image-history", self.api.history, ref, ref=ref)  # type: ignore[no-any-return]

    def version(self) -> dict[str, Any]:
        return self._call("docker.version", self.api.version)  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        return self._call("docker.info", self.api.info)  # type: ignore[no-any-return]

    def diff(self, cid: str) -> list[dict[str, Any]]:
        return self._call("docker.diff", self.api.diff, cid, id=cid) or []

    def top(self, cid: str) -> dict[str, Any]:
        """`docker top`, asking ps for unlimited width: the engine runs ps on its own host, and ps
        cuts every row at $COLUMNS when dockerd inherited it (started from a terminal), which
        loses the end of command lines. A host ps that refuses -ww (busybox) gets the defaults."""
        try:
            return self._call(  # type: ignore[no-any-return]
                "docker.top", self.api.top, cid, WIDE_PS_ARGS, id=cid, ps_args=WIDE_PS_ARGS
            )
        except ClusterError:
            return self._call("docker.top", self.api.top, cid, id=cid)  # type: ignore[no-any-return]

    def stat_path(self, cid: str, path: str) -> dict[str, Any] | None:
        """HEAD /containers/ID/archive: the path's stat (final link not followed); None if absent."""
        url = self.api._url("/containers/{0}/archive", cid)
        try:
            res = self.api.head(url, params={"path": path}, timeout=API_TIMEOUT)
        except requests.exceptions.RequestException as exc:
            self.actions.count("docker.archive-stat", "failed")
            raise ClusterError(f"Docker API archive stat failed: {exc}") from None
        if res.status_code == 404:
            self.actions.count("docker.archive-stat", "not-found")
            return None
        if res.status_code >= 400:
            self.actions.count("docker.archive-stat", "failed")
            raise OSError(f"archive stat of {path!r}: HTTP {res.status_code}")
        self.actions.count(
            "docker.archive-stat", note="HEAD /containers/{id}/archive per changed path"
        )
        header = res.headers.get("X-Docker-Container-Path-Stat")
        return decode_json_header(header) if header else {}

    def archive(self, cid: str, path: str, action: str = "docker.archive-get") -> Any:
        """GET /containers/ID/archive: a streamed response (tar of that path and what is below)."""
        url = self.api._url("/containers/{0}/archive", cid)
        try:
            res = self.api._get(
                url, params={"path": path}, stream=True, headers={"Accept-Encoding": "identity"}
            )
        except requests.exceptions.RequestException as exc:
            self.actions.count(action, "failed")
            raise ClusterError(f"Docker API archive failed: {exc}") from None
        if res.status_code == 404:
            res.close()
            self.actions.count(action, "not-found")
            raise FileNotFoundError(f"{path!r} not found in the container")
        if res.status_code >= 400:
            text = res.text[:500]
            res.close()
            self.actions.count(action, "failed")
            raise OSError(f"archive of {path!r}: HTTP {res.status_code}: {text}")
        self.actions.count(action, note=_ARCHIVE_NOTES.get(action, ""))
        return res

    def logs(self, cid: str, params: dict[str, Any]) -> Any:
        url = self.api._url("/containers/{0}/logs", cid)
        detail = {k: v for k, v in params.items() if k in ("since", "until", "tail")}
        try:
            res = self.api._get(url, params=params, stream=True)
            self.api._raise_for_status(res)
        except docker.errors.APIError as exc:
            self.actions.record("docker.logs", "failed", id=cid, error=str(exc), **detail)
            self._note_removal("docker.logs", exc)
            raise ClusterError(f"Docker API logs failed: {exc.explanation or exc}") from None
        except requests.exceptions.RequestException as exc:
            self.actions.record("docker.logs", "failed", id=cid, error=str(exc), **detail)
            raise ClusterError(f"Docker API logs failed: {exc}") from None
        self.actions.record("docker.logs", id=cid, timestamps=True, **detail)
        return res

    def exec_read(self, cid: str, cmd: list[str], limit: int = 64 * 1024 * 1024) -> bytes:
        """Run a read-only command inside the container (only with --allow-exec)."""
        exec_id = self._call("docker.exec-create", self.api.exec_create, cid, cmd, id=cid, cmd=cmd)[
            "Id"
        ]
        out = bytearray()
        stream = self.api.exec_start(exec_id, stream=True, demux=True)
        for stdout, _stderr in stream:
            if stdout:
                out += stdout
                if len(out) > limit:
                    raise ValueError(f"exec output over {limit} bytes")
        info = self.api.exec_inspect(exec_id)
        self.actions.record("docker.exec-start", id=cid, cmd=cmd, exit_code=info.get("ExitCode"))
        if info.get("ExitCode"):
            raise OSError(f"{' '.join(cmd)} exited {info.get('ExitCode')} in the container")
        return bytes(out)


class ResponseReader:
    """A file-like view of a streamed HTTP response body (for tarfile's stream mode)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.raw = response.raw

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n if n >= 0 else READ_CHUNK) or b""
        # urllib3's errors are not OSErrors: the engine went away mid-stream
        except urllib3.exceptions.HTTPError as exc:
            raise OSError(f"the Docker engine's stream broke: {exc}") from None

    def close(self) -> None:
        self.response.close()


class EngineContainer(Protocol):
    """What the process, network and log sources use of a container on the engine
    (`ir.runtime.docker_backend.DockerContainer`): its id, its runtime, its state."""

    @property
    def id(self) -> str: ...

    @property
    def runtime(self) -> DockerRuntime: ...

    def state(self) -> ContainerState: ...
