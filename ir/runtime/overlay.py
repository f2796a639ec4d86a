"""A container's overlay filesystem read from the node: the root mount's upperdir (found in
/proc/PID/mountinfo, or given by the runtime) is the container's filesystem diff; whiteouts are
deletions; lower layers tell added from changed.

The upperdir is written by the (possibly hostile) container, so every open is relative to an
already-open directory with O_NOFOLLOW, regular files are reopened from an O_PATH descriptor
only after fstat says they are regular (no FIFO, socket or device is ever opened for reading),
and O_NOATIME keeps reads from touching access times."""

from __future__ import annotations

import errno
import os
import re
import stat as statmod
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ir.runtime.base import FsEntry, file_type

_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 200  # two descriptors per level stay far below the usual 1024 limit
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass
class MountInfo:
    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    fstype: str
    source: str
    super_options: dict[str, str] = field(default_factory=dict)
    super_options_raw: str = ""


def unescape(text: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for space, \\054 for comma, ...)."""
    return os.fsdecode(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text).encode("latin-1"))


def parse_mountinfo(text: str) -> list[MountInfo]:
    mounts: list[MountInfo] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        a = left.split()
        b = right.split()
        if len(a) < 5 or len(b) < 3:
            continue
        options: dict[str, str] = {}
        raw = b[2]
        for item in raw.split(","):
            key, _, value = item.partition("=")
            if key in options and key.endswith("+"):
                options[key] += ":" + value
            else:
                options[key] = value
        mounts.append(
            MountInfo(
                int(a[0]),
                int(a[1]),
                unescape(a[3]),
                unescape(a[4]),
                b[0],
                unescape(b[1]),
                options,
                raw,
            )
        )
    return mounts


@dataclass
class OverlayMount:
    upperdir: str
    lowerdirs: list[str]
    workdir: str | None
    source: str  # where it was found: "mountinfo" | "runtime"

    def to_dict(self) -> dict[str, Any]:
        return {
            "upperdir": self.upperdir,
            "lowerdirs": self.lowerdirs,
            "workdir": self.workdir,
            "found_in": self.source,
        }


def _split_lower(value: str) -> list[str]:
    # ':' separates layers; '\:' is a literal colon; '::' marks data-only layers (skip nothing).
    parts = re.split(r"(?<!\\):+", value)
    return [unescape(p.replace("\\:", ":")) for p in parts if p]


def root_overlay(pid: int, proc: str = "/proc") -> OverlayMount:
    """The overlay mounted at `/` in the mount namespace of `pid`. Raises LookupError when the
    root is not an overlay (other storage drivers) and OSError when /proc/PID is unreadable."""
    with open(f"{proc}/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        mounts = parse_mountinfo(fh.read())
    roots = [m for m in mounts if m.mount_point == "/"]
    if not roots:
        raise LookupError(f"no root mount in /proc/{pid}/mountinfo")
    root = roots[-1]  # the last mount on / is the visible one
    if root.fstype != "overlay":
        raise LookupError(f"the container's root is {root.fstype}, not overlay")
    opts = root.super_options
    upper = unescape(opts.get("upperdir", ""))
    lowers = _split_lower(opts.get("lowerdir", "")) + _split_lower(opts.get("lowerdir+", ""))
    if not upper:
        raise LookupError("the root overlay has no upperdir (read-only container?)")
    return OverlayMount(
        upper, lowers, unescape(opts["workdir"]) if "workdir" in opts else None, "mountinfo"
    )


# -- the diff --------------------------------------------------------------------------------

#: What shows a deletion in the upperdir, and so what the deletion's `ctime` is.
WHITEOUT = "whiteout"  # a 0/0 character device overlayfs creates when the file is deleted: its
# ctime is the deletion's time
OPAQUE = "opaque directory"  # a directory made opaque hides everything below it; its ctime is when
# it was made or last changed: the deletion happened at or before it


@dataclass
class ExactEntry(FsEntry):
    """An FsEntry read from an lstat, with the times as the filesystem keeps them: nanoseconds
    (the float `mtime`/`ctime` keep only about 0.2 µs). A deletion also says what shows it
    (`deleted_by`, WHITEOUT or OPAQUE) and keeps the deleted file's own mtime apart
    (`deleted_mtime_ns`, the image's: never the deletion's time)."""

    mtime_ns: int | None = None
    ctime_ns: int | None = None
    deleted_by: str | None = None
    deleted_mtime_ns: int | None = None


class LayerLookup:
    """Looks paths up in the lower layers (top first), never following links."""

    def __init__(self, lowerdirs: list[str], cache_size: int = 64) -> None:
        self.roots: list[int] = []
        self.unusable: list[str] = []
        for path in lowerdirs:
            try:
                self.roots.append(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
            except OSError as exc:
                self.unusable.append(f"{path}: {exc.strerror}")
        self._dirs: OrderedDict[bytes, list[int | None]] = OrderedDict()
        self._cache_size = cache_size

    def close(self) -> None:
        for fds in self._dirs.values():
            for fd in fds:
                if fd is not None:
                    os.close(fd)
        self._dirs.clear()
        for fd in self.roots:
            os.close(fd)
        self.roots = []

    def _dir_fds(self, parent: bytes) -> list[int | None]:
        """O_PATH fds of `parent` (relative, no leading '/') in each layer (None: absent)."""
        if parent in self._dirs:
            self._dirs.move_to_end(parent)
            return self._dirs[parent]
        fds: list[int | None] = []
        parts = [p for p in parent.split(b"/") if p]
        for root in self.roots:
            fd: int | None = os.dup(root)
            for part in parts:
                assert fd is not None
                try:
                    nxt = os.open(
                        part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except OSError:
                    nxt = None
                os.close(fd)
                fd = nxt
                if fd is None:
                    break
            fds.append(fd)
        self._dirs[parent] = fds
        while len(self._dirs) > self._cache_size:
            _, old = self._dirs.popitem(last=False)
            for ofd in old:
                if ofd is not None:
                    os.close(ofd)
        return fds

    def lstat(self, rel: bytes) -> os.stat_result | None:
        """lstat of `rel` in the topmost layer that has it; None if absent or whited out."""
        parent, _, name = rel.rpartition(b"/")
        for fd in self._dir_fds(parent):
            if fd is None:
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            if statmod.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None  # whiteout in a lower layer: deleted below us already
            return st
        return None

    def names(self, rel: bytes) -> set[bytes]:
        """Names in directory `rel` across the lower layers (for opaque directories)."""
        found: set[bytes] = set()
        for pfd in self._dir_fds(rel):
            if pfd is None:
                continue
            try:
                fd = os.open(".", _DIR_FLAGS, dir_fd=pfd)
            except OSError:
                continue
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        found.add(os.fsencode(entry.name))
            finally:
                os.close(fd)
        return found


class OverlayFile:
    """A regular file of the upperdir, opened read-only without following links. `before` is
    the fstat taken when it was found regular (the same inode): no second stat to open it."""

    def __init__(self, fd: int, before: os.stat_result | None = None) -> None:
        self._fd = fd
        self._before = before if before is not None else os.fstat(fd)
        self.size = self._before.st_size

    def read(self, n: int) -> bytes:
        return os.read(self._fd, n)

    def changed(self) -> str | None:
        after = os.fstat(self._fd)
        b = self._before
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            b.st_size,
            b.st_mtime_ns,
            b.st_ctime_ns,
        ):
            return f"size/mtime/ctime changed while read ({b.st_size} -> {after.st_size} bytes)"
        return None

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


class OverlayDiff:
    """FsDiffSource over an overlay upperdir."""

    opens_ahead = True  # a walk of directories: an opened file stays readable

    def __init__(self, mount: OverlayMount) -> None:
        self.mount = mount
        self.description: dict[str, Any] = {"source": "overlay-upperdir", **mount.to_dict()}
        self.notes: list[str] = []
        self.truncated: str | None = None  # set when part of the tree was not walked

    def open(self, entry: FsEntry) -> OverlayFile:
        dir_fd, name = entry.token
        return open_regular(dir_fd, name)

    def entries(self) -> Iterator[FsEntry]:
        lowers = LayerLookup(self.mount.lowerdirs)
        if lowers.unusable:
            self.notes.append(
                "lower layers unreadable (added/changed may be wrong): "
                + "; ".join(lowers.unusable)
            )
        self.description["lower_layers_readable"] = len(lowers.roots)
        root_fd = open_dir(self.mount.upperdir)
        try:
            yield from self._walk(root_fd, b"", lowers, 0, True)
        finally:
            os.close(root_fd)
            lowers.close()

    def _walk(
        self, dir_fd: int, rel_dir: bytes, lowers: LayerLookup, depth: int, in_image: bool
    ) -> Iterator[FsEntry]:
        """Entries under `rel_dir`; `in_image`: the lower layers have that directory (when they
        do not, nothing under it can be there: no lookup per path)."""
        with os.scandir(dir_fd) as it:
            for dirent in it:
                name = os.fsencode(dirent.name)
                rel = rel_dir + b"/" + name if rel_dir else name
                path = b"/" + rel
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    yield FsEntry(path, "changed", "unknown", error=f"lstat failed: {exc.strerror}")
                    continue
                kind = file_type(st.st_mode)
                if kind == "char" and st.st_rdev == 0:
                    yield self._deleted(path, rel, lowers, whiteout=st)
                    continue
                below = lowers.lstat(rel) if in_image else None
                entry = stat_entry(
                    path, "changed" if below is not None else "added", st, dir_fd, name
                )
                if kind != "dir":
                    yield entry
                    continue
                try:
                    sub = open_dir(name, dir_fd)
                except OSError as exc:
                    entry.error = f"cannot open directory: {exc.strerror}"
                    yield entry
                    continue
                try:
                    if not same_file(sub, st):
                        entry.error = "directory replaced while walking; not descended"
                        yield entry
                        continue
                    entry.opaque = _is_opaque(sub)
                    if depth + 1 >= MAX_DEPTH:
                        entry.error = f"not descended: deeper than {MAX_DEPTH} levels, its contents are not listed"
                        self.notes.append(f"not descended below {depth + 1} levels: {path!r}")
                        self.truncated = f"directories deeper than {MAX_DEPTH} levels were not walked (e.g. {path!r})"
                    yield entry
                    if entry.opaque and below is not None:
                        yield from self._opaque_deletions(sub, rel, lowers, st)
                    if depth + 1 >= MAX_DEPTH:
                        continue
                    yield from self._walk(sub, rel, lowers, depth + 1, below is not None)
                finally:
                    os.close(sub)

    def _deleted(
        self,
        path: bytes,
        rel: bytes,
        lowers: LayerLookup,
        *,
        whiteout: os.stat_result | None = None,
        opaque: os.stat_result | None = None,
    ) -> ExactEntry:
        """A deletion, shown by a `whiteout` (its lstat) or by the `opaque` directory that hides
        the path (its lstat). Its `ctime` is the whiteout's -- overlayfs creates the whiteout when
        the file is deleted, so that is the deletion's time -- or the opaque directory's (the
        deletion happened at or before it). Type, size, mode and owner are the deleted file's,
        from the layer below; its mtime is kept apart (`deleted_mtime_ns`): it is the image's,
        never the deletion's time, and the entry's `mtime` stays empty."""
        shown_by = whiteout if whiteout is not None else opaque
        when = shown_by.st_ctime if shown_by is not None else None
        when_ns = shown_by.st_ctime_ns if shown_by is not None else None
        how = WHITEOUT if whiteout is not None else OPAQUE if opaque is not None else None
        below = lowers.lstat(rel)
        if below is None:
            return ExactEntry(
                path, "deleted", "whiteout", ctime=when, ctime_ns=when_ns, deleted_by=how
            )
        return ExactEntry(
            path,
            "deleted",
            file_type(below.st_mode),
            size=below.st_size,
            mode=statmod.S_IMODE(below.st_mode),
            uid=below.st_uid,
            gid=below.st_gid,
            ctime=when,
            ctime_ns=when_ns,
            deleted_by=how,
            deleted_mtime_ns=below.st_mtime_ns,
        )

    def _opaque_deletions(
        self, dir_fd: int, rel: bytes, lowers: LayerLookup, opaque: os.stat_result
    ) -> Iterator[FsEntry]:
        with os.scandir(dir_fd) as it:
            upper = {os.fsencode(e.name) for e in it}
        for name in sorted(lowers.names(rel) - upper):
            yield self._deleted(b"/" + rel + b"/" + name, rel + b"/" + name, lowers, opaque=opaque)


def stat_entry(
    path: bytes, change: str, st: os.stat_result, dir_fd: int, name: bytes
) -> ExactEntry:
    """The entry of `name` in the open directory `dir_fd` from its lstat (times in nanoseconds
    too): a link's target is read (never followed), a device's numbers kept; `token` opens it
    while the walk is there."""
    kind = file_type(st.st_mode)
    entry = ExactEntry(
        path=path,
        change=change,
        type=kind,
        size=st.st_size,
        mode=statmod.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime=st.st_mtime,
        ctime=st.st_ctime,
        blocks=st.st_blocks,
        token=(dir_fd, name),
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
    )
    if kind == "symlink":
        try:
            entry.link_target = os.fsencode(os.readlink(name, dir_fd=dir_fd))
        except OSError as exc:
            entry.error = f"readlink failed: {exc.strerror}"
    elif kind in ("char", "block"):
        entry.rdev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return entry


def open_dir(name: str | bytes, dir_fd: int | None = None) -> int:
    """Open a directory (relative to `dir_fd`) without following a link, and without touching
    its access time where the kernel allows it (O_NOATIME needs the owner or CAP_FOWNER)."""
    try:
        return os.open(name, _DIR_FLAGS | _O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def same_file(fd: int, st: os.stat_result) -> bool:
    """Is the open `fd` still the file lstat saw (not replaced while walking)?"""
    now = os.fstat(fd)
    return (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev)


def open_regular(dir_fd: int, name: bytes) -> OverlayFile:
    """Open `name` in `dir_fd` for reading only if it is a regular file now (never a link, FIFO,
    socket or device), without touching its access time where the kernel allows."""
    pfd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(pfd)
        if not statmod.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"no longer a regular file ({file_type(st.st_mode)})")
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        try:
            fd = os.open(f"/proc/self/fd/{pfd}", flags | _O_NOATIME)
        except PermissionError:
            fd = os.open(f"/proc/self/fd/{pfd}", flags)
    finally:
        os.close(pfd)
    return OverlayFile(fd, st)


def _is_opaque(dir_fd: int) -> bool:
    for attr in _OPAQUE_XATTRS:
        try:
            if os.getxattr(dir_fd, attr) == b"y":
                return True
        except OSError:
            continue
    return False
