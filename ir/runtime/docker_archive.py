"""The Docker backend's filesystem view, streamed through the archive endpoint: `diff` lists the
changes; the archive endpoint streams each top-most added path as one tar (its headers are the
stats), and a HEAD of it stats each other path before it streams that one file (Docker resolves
paths inside the container and never follows the final symlink)."""

from __future__ import annotations

import posixpath
import tarfile
import time
from collections.abc import Iterator
from typing import Any

from ir.clock import parse_utc
from ir.errors import IrError
from ir.runtime.base import FileContent, FsEntry
from ir.runtime.docker_api import DockerRuntime, ResponseReader

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


class DockerArchiveFile:
    """One regular file streamed out of the container by the archive endpoint."""

    def __init__(self, response: Any, entry: FsEntry) -> None:
        self._reader = ResponseReader(response)
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

    opens_ahead = False  # a file's content is the archive stream's next bytes: read it first

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
        reader = ResponseReader(res)
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
        reader = ResponseReader(res)
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
