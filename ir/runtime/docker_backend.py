"""The Docker Engine API backend (the `docker` package; local socket or DOCKER_HOST).

Filesystem: `diff` lists the changes; the archive endpoint streams each top-most added path as one
tar (its headers are the stats), and a HEAD of it stats each other path before it streams that
one file (Docker resolves paths inside the container and never follows the final symlink). Processes: /proc of the host when the engine is local and ir is root (the
same reader as the node backend), else `top`. Logs: the multiplexed stream, demultiplexed here
so stdout and stderr stay apart. Every request is recorded in the handle's ActionLog."""

from __future__ import annotations

import os
import posixpath
import re
import struct
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.utils import decode_json_header

from ir.clock import parse_utc
from ir.errors import ClusterError, IrError, Unsupported, UsageError
from ir.records import ProcessRecord, SocketRecord
from ir.runtime.base import ActionLog, ContainerHandle, ContainerState, FileContent, FsEntry
from ir.runtime.procfs import (
    ProcfsNetwork,
    ProcfsProcesses,
    parse_inet_sockets,
    parse_passwd,
    parse_unix_sockets,
    pid_in_container,
)

API_TIMEOUT = 60
# How the engine words a refusal for a container being removed: "can not get logs from container
# which is dead or marked for removal", "removal of container ... is already in progress".
_REMOVAL = re.compile(r"marked for removal|removal of container|removal in progress|is dead")
READ_CHUNK = 1024 * 1024
MAX_SMALL_FILE = 1024 * 1024

# Go's os.FileMode bits, as the archive stat header carries them.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
_GO_SOCKET, _GO_SETUID, _GO_SETGID, _GO_CHAR, _GO_STICKY = (
    1 << 24,
    1 << 23,
    1 << 22,
    1 << 21,
    1 << 20,
)
_DIFF_KINDS = {0: "changed", 1: "added", 2: "deleted"}


def go_mode(mode: int) -> tuple[str, int]:
    """(FileChange.type, permission bits) of a Go os.FileMode."""
    if mode & _GO_DIR:
        kind = "dir"
    elif mode & _GO_SYMLINK:
        kind = "symlink"
    elif mode & _GO_DEVICE:
        kind = "char" if mode & _GO_CHAR else "block"
    elif mode & _GO_PIPE:
        kind = "fifo"
    elif mode & _GO_SOCKET:
        kind = "socket"
    else:
        kind = "file"
    perm = mode & 0o777
    perm |= 0o4000 if mode & _GO_SETUID else 0
    perm |= 0o2000 if mode & _GO_SETGID else 0
    perm |= 0o1000 if mode & _GO_STICKY else 0
    return kind, perm


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


# -- filesystem --------------------------------------------------------------------------------


class _ResponseReader:
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


class DockerArchiveFile:
    """One regular file streamed out of the container by the archive endpoint."""

    def __init__(self, response: Any, entry: FsEntry) -> None:
        self._reader = _ResponseReader(response)
        self.entry = entry
        self.short = False
        self.why = ""
        try:
            self._tar = tarfile.open(fileobj=self._reader, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115
            member = self._tar.next()
        except (tarfile.TarError, OSError) as exc:
            self._reader.close()
            raise OSError(f"unreadable archive stream: {exc}") from None
        if member is None or not member.isreg():
            self._reader.close()
            kind = "nothing" if member is None else "not a regular file"
            raise OSError(f"archive holds {kind}: the path changed type")
        self.member = member
        self.size = member.size
        entry.uid, entry.gid = member.uid, member.gid
        self._fh = self._tar.extractfile(member)

    def read(self, n: int) -> bytes:
        if self._fh is None or self.short:
            return b""
        try:
            return self._fh.read(n) or b""
        except (tarfile.TarError, OSError) as exc:
            # the engine cut the stream (the file shrank or vanished, or the engine died)
            self.short = True
            self.why = f"the archive stream ended early ({exc})"
            return b""

    def changed(self) -> str | None:
        if self.short:
            return self.why
        e = self.entry
        if e.size is not None and e.size != self.member.size:
            return f"size changed between stat and read ({e.size} -> {self.member.size} bytes)"
        if e.mtime is not None and abs(e.mtime - self.member.mtime) >= 1:
            return "mtime changed between stat and read"
        return None

    def close(self) -> None:
        self._reader.close()


class DockerArchiveDiff:
    """FsDiffSource over the Docker API: diff, then one archive stream per top-most *added* path
    (everything below an added directory is new, so one request brings the whole subtree), and a
    HEAD stat + archive per remaining path (changed paths, and what a subtree stream did not
    deliver). Each archive request costs the engine a mount and a chrooted tar (~50-100 ms), so
    per-path requests made the docker backend 10-20x slower than the node backend."""

    def __init__(self, runtime: DockerRuntime, cid: str) -> None:
        self.runtime = runtime
        self.cid = cid
        self.description: dict[str, Any] = {
            "source": "docker-api",
            "calls": "diff, GET archive per top-most added path, HEAD/GET archive per other path",
        }
        self.notes: list[str] = []
        # Files found to have changed while read once it was possible to ask (see RECENT_SECONDS).
        self.late_changes: dict[str, str] = {}

    def entries(self) -> Iterator[FsEntry]:
        changes = self.runtime.diff(self.cid)
        self.description["changes_listed"] = len(changes)
        pending: dict[str, str] = {}  # path -> change, not yet stat'ed
        for change in changes:
            path = str(change.get("Path", ""))
            kind = _DIFF_KINDS.get(int(change.get("Kind", 0)), "changed")
            raw = path.encode("utf-8", "surrogateescape")
            if kind == "deleted":
                yield FsEntry(raw, "deleted", "unknown")
            elif "\ufffd" in path:
                # Docker's JSON replaced bytes that are not UTF-8: this name cannot be addressed.
                yield FsEntry(
                    raw,
                    kind,
                    "unknown",
                    error="the name is not valid UTF-8 and the Docker API mangles it; "
                    "use the node backend for exact names",
                )
            else:
                pending[path] = kind
        unlisted = 0
        for root in added_roots(pending):
            tree = _SubtreeStream(self.runtime, self.cid, root)
            yield from tree.entries(pending)
            unlisted += tree.unlisted
            if tree.stopped:
                self.notes.append(tree.stopped)
            self.late_changes.update(tree.recheck())
        if unlisted:
            self.notes.append(
                f"{unlisted} path(s) in added directories were not in docker diff (created after "
                "the listing, or not UTF-8): not captured"
            )
        self.description["per_path"] = len(pending)
        for path, kind in list(pending.items()):
            yield self._stat_entry(path, kind)

    def _stat_entry(self, path: str, kind: str) -> FsEntry:
        raw = path.encode("utf-8", "surrogateescape")
        st = self.runtime.stat_path(self.cid, path)
        if st is None:
            return FsEntry(raw, kind, "unknown", error="vanished before it could be stat'ed")
        ftype, perm = go_mode(int(st.get("mode", 0)))
        mtime = parse_utc(st.get("mtime"))
        entry = FsEntry(
            raw,
            kind,
            ftype,
            size=int(st.get("size", 0)),
            mode=perm,
            mtime=mtime.timestamp() if mtime else None,
            token=path,
        )
        if ftype not in ("file", "dir", "socket"):
            self._header_details(entry, path)
        return entry

    def _header_details(self, entry: FsEntry, path: str) -> None:
        """Symlinks and special files: the tar header has the raw link text, owner and device
        numbers; the engine writes no content for them, and opens nothing."""
        try:
            res = self.runtime.archive(self.cid, path)
        except (OSError, IrError) as exc:
            entry.error = f"archive header: {exc}"
            return
        reader = _ResponseReader(res)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                member = tar.next()
                if member is None:
                    return
                entry.uid, entry.gid = member.uid, member.gid
                if member.issym():
                    entry.link_target = member.linkname.encode("utf-8", "surrogateescape")
                elif member.ischr() or member.isblk():
                    entry.rdev = f"{member.devmajor}:{member.devminor}"
        except (tarfile.TarError, OSError) as exc:
            entry.error = f"archive header: {exc}"
        finally:
            reader.close()

    def open(self, entry: FsEntry) -> FileContent:
        if isinstance(entry.token, _SubtreeFile):
            return entry.token
        return DockerArchiveFile(self.runtime.archive(self.cid, entry.token), entry)


def added_roots(pending: dict[str, str]) -> list[str]:
    """The added paths whose parent is not itself added: the tops of new subtrees."""
    return [
        path
        for path, kind in pending.items()
        if kind == "added" and pending.get(posixpath.dirname(path)) != "added" and path != "/"
    ]


# A file whose mtime is this close to the moment the engine read it was being written around the
# capture: it is stat'ed again once the stream is closed (the engine holds the container's lock
# while an archive streams: no other request on it can run meanwhile). A file first modified in
# years exactly while the engine reads it is not caught this way; the node backend re-stats all.
RECENT_SECONDS = 2
# Past this many unread bytes of one file (one ir will not capture: over its limits), a subtree
# stream is dropped and the rest of the subtree stat'ed path by path, so a huge or sparse file
# costs a HEAD request, not gigabytes of zeros through the API.
SUBTREE_SKIP_LIMIT = 32 * 1024 * 1024


class _SubtreeStream:
    """One GET archive of an added path, read as a tar stream; its members become FsEntries
    (headers carry type, size, mode, owner, mtime, link text and device numbers)."""

    def __init__(self, runtime: DockerRuntime, cid: str, root: str) -> None:
        self.runtime, self.cid, self.root = runtime, cid, root
        self.unlisted = 0
        self.stopped: str | None = None
        self.recent: list[tuple[str, int, float]] = []  # regular files modified just before read

    def entries(self, pending: dict[str, str]) -> Iterator[FsEntry]:
        """Entries of the subtree that `pending` lists (removed from it as they are yielded);
        what is not delivered stays in `pending`, for the per-path requests."""
        try:
            res = self.runtime.archive(self.cid, self.root, action="docker.archive-get-tree")
        except (OSError, IrError):
            return  # the per-path requests report what is wrong
        reader = _ResponseReader(res)
        base = posixpath.dirname(self.root)
        try:
            tar = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115
                fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape"
            )
            while (member := tar.next()) is not None:
                tar.members.clear()  # stream mode keeps every header otherwise: 1M files, 500 MB
                path = _subtree_path(base, member.name)
                kind = pending.get(path) if path is not None else None
                if path is None or kind is None:
                    self.unlisted += 1
                    continue
                entry = _subtree_entry(path, kind, member)
                if entry is None:
                    continue  # a hard link: its content is elsewhere; per path
                del pending[path]
                content = None
                if member.isreg():
                    content = entry.token = _SubtreeFile(tar, member)
                    if member.mtime >= time.time() - RECENT_SECONDS:
                        self.recent.append((path, member.size, float(member.mtime)))
                yield entry
                if content is not None and content.unread > SUBTREE_SKIP_LIMIT:
                    self.stopped = (
                        f"archive of {self.root!r}: stopped at {path!r} ({content.unread} bytes "
                        "not captured); the rest of that directory was read path by path"
                    )
                    return
        except (tarfile.TarError, OSError) as exc:
            self.stopped = (
                f"archive of {self.root!r} broke ({exc}); the rest of it was read path by path"
            )
        finally:
            reader.close()

    def recheck(self) -> dict[str, str]:
        """Stat again, once the stream is closed, the files that were being modified when the
        engine read them: {path: why} for those that changed while read."""
        late: dict[str, str] = {}
        for path, size, mtime in self.recent:
            try:
                st = self.runtime.stat_path(self.cid, path)
            except (OSError, IrError) as exc:
                late[path] = f"modified just before it was read; could not stat it again ({exc})"
                continue
            if st is None:
                late[path] = "deleted while read"
                continue
            now_size, now_mtime = int(st.get("size", 0)), parse_utc(st.get("mtime"))
            if now_size != size:
                late[path] = (
                    f"size changed while read ({size} bytes in the archive, {now_size} after)"
                )
            elif now_mtime is not None and abs(now_mtime.timestamp() - mtime) >= 1:
                late[path] = "mtime changed while read"
        return late


def _subtree_path(base: str, name: str) -> str | None:
    """The absolute path of a member of an archive of a path under `base`; None for a name
    that is absolute or climbs (the engine writes neither; refused all the same)."""
    name = name.rstrip("/")
    parts = name.split("/")
    if not name or name.startswith("/") or ".." in parts:
        return None
    return posixpath.join(base, name)


def _subtree_entry(path: str, kind: str, member: tarfile.TarInfo) -> FsEntry | None:
    ftype = _TAR_TYPES.get(member.type)
    if ftype is None:
        return None
    entry = FsEntry(
        path.encode("utf-8", "surrogateescape"),
        kind,
        ftype,
        size=member.size,
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        mtime=float(member.mtime),
    )
    if member.issym():
        entry.link_target = member.linkname.encode("utf-8", "surrogateescape")
        entry.size = len(entry.link_target)
    elif member.ischr() or member.isblk():
        entry.rdev = f"{member.devmajor}:{member.devminor}"
    return entry


_TAR_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


class _SubtreeFile:
    """A regular file's content, read from the subtree stream while it is the current member."""

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.size = member.size
        self.unread = member.size
        self.why: str | None = None
        self._fh = tar.extractfile(member)

    def read(self, n: int) -> bytes:
        if self._fh is None or self.why:
            return b""
        try:
            data = self._fh.read(min(n, self.unread)) or b""
        except (tarfile.TarError, OSError) as exc:
            self.why = f"the archive stream ended early ({exc})"
            return b""
        self.unread -= len(data)
        return data

    def changed(self) -> str | None:
        return self.why

    def close(self) -> None:
        pass  # the stream belongs to the subtree; the next member follows


# -- processes, network, logs ----------------------------------------------------------------


class DockerTopProcesses:
    """ProcessSource from `docker top` (ps on the engine's host): no hashes, fds or env."""

    def __init__(self, container: DockerContainer) -> None:
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


class DockerExecNetwork:
    """NetworkSource read by running `cat /proc/net/...` inside the container (--allow-exec)."""

    def __init__(self, container: DockerContainer) -> None:
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


class DockerLogs:
    """LogSource: the container's stdout/stderr as the engine keeps them, with timestamps."""

    def __init__(self, container: DockerContainer, tty: bool) -> None:
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


# -- the handle ------------------------------------------------------------------------------


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
        reader = _ResponseReader(res)
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
