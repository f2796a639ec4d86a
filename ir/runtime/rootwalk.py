"""A running container's files changed since it started, when its overlay upperdir is out of reach.

ir inside the suspect's pod (an ephemeral debug container sharing the suspect container's process
namespace) sees the container's root filesystem through /proc/PID/root, but not the node's overlay
directories: there is no image to compare with, so no diff. What it can say truthfully: which paths
of the root filesystem have a ctime at or after the container's start (created, written, renamed,
chmod'ed, or copied up since), with their contents. Files deleted since the start are invisible,
and a change whose ctime was forged back (only by changing the clock) is missed; the source's
description and notes say so, and the filesystem collector is partial (``truncated``).

Only the root filesystem is walked: a directory on another device (``/proc``, ``/sys``, ``/dev``,
volumes, the kubelet's mounts) is neither listed nor descended. Every open is relative to an open
directory with O_NOFOLLOW, as in ir.runtime.overlay: the container's links are never followed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ir.clock import from_epoch, rfc3339
from ir.runtime.base import FsEntry, file_type
from ir.runtime.overlay import (
    MAX_DEPTH,
    OverlayFile,
    open_dir,
    open_regular,
    same_file,
    stat_entry,
)

NOT_A_DIFF = (
    "not an image diff: the overlay upperdir is out of reach from here, so the root filesystem "
    "(/proc/PID/root) was walked for paths whose ctime is at or after the container's start; "
    "deletions are not seen and 'changed' means changed since the start, not against the image"
)


class RootWalk:
    """FsDiffSource over /proc/PID/root: paths with ctime >= `since` (epoch seconds)."""

    opens_ahead = True  # a walk of directories: an opened file stays readable

    def __init__(self, root: str, since: float) -> None:
        self.root = root
        self.since = since
        self.description: dict[str, Any] = {
            "source": "root-walk",
            "diff": False,
            "root": root,
            "changed_since": rfc3339(from_epoch(since)),
            "method": "ctime >= container start, root filesystem only",
        }
        self.notes: list[str] = [NOT_A_DIFF]
        # a diff against the image it is not: the filesystem collector says partial, with why
        self.truncated: str | None = NOT_A_DIFF

    def open(self, entry: FsEntry) -> OverlayFile:
        dir_fd, name = entry.token
        return open_regular(dir_fd, name)

    def entries(self) -> Iterator[FsEntry]:
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the magic link
        try:
            device = os.fstat(root_fd).st_dev
            yield from self._walk(root_fd, b"", device, 0)
        finally:
            os.close(root_fd)

    def _walk(self, dir_fd: int, rel_dir: bytes, device: int, depth: int) -> Iterator[FsEntry]:
        with os.scandir(dir_fd) as it:
            names = sorted(os.fsencode(d.name) for d in it)
        for name in names:
            rel = rel_dir + b"/" + name if rel_dir else name
            path = b"/" + rel
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                yield FsEntry(path, "changed", "unknown", error=f"lstat failed: {exc.strerror}")
                continue
            kind = file_type(st.st_mode)
            recent = st.st_ctime >= self.since
            if kind != "dir" and not recent:
                continue
            entry = stat_entry(path, "changed", st, dir_fd, name)
            if kind != "dir":
                yield entry
                continue
            if st.st_dev != device:
                continue  # another filesystem mounted here: not the container's root
            if recent:
                yield entry
            if depth + 1 >= MAX_DEPTH:
                self.notes.append(f"not descended below {depth + 1} levels: {path!r}")
                continue
            try:
                sub = open_dir(name, dir_fd)
            except OSError as exc:
                self.notes.append(f"cannot open directory {path!r}: {exc.strerror}")
                continue
            try:
                if not same_file(sub, st):
                    self.notes.append(f"directory replaced while walking, not descended: {path!r}")
                    continue
                yield from self._walk(sub, rel, device, depth + 1)
            finally:
                os.close(sub)


__all__ = ["NOT_A_DIFF", "RootWalk"]
