"""The one interface every backend offers: a `ContainerHandle` and the sources it hands out
(filesystem diff, processes, network, logs), plus the log of what ir asked of the runtime."""

from __future__ import annotations

import stat as statmod
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ir.clock import rfc3339, utcnow
from ir.errors import Unsupported
from ir.records import ProcessRecord, SocketRecord

# -- what ir did ------------------------------------------------------------------------------


@dataclass
class RuntimeAction:
    """One request ir made of the runtime or the node (API call, command, /proc read set)."""

    time: str
    action: str
    outcome: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    last_time: str | None = None


class ActionLog:
    """Every API call and command a backend makes, with times; drained into the manifest.

    `count()` aggregates a call repeated per file (e.g. one archive request per changed path)
    into one entry with a count and first/last time, so a 100k-file diff does not bloat the
    manifest; `record()` keeps one entry per call."""

    def __init__(self) -> None:
        self._entries: list[RuntimeAction] = []
        self._counted: dict[tuple[str, str], RuntimeAction] = {}

    def record(self, action: str, outcome: str = "ok", **detail: Any) -> None:
        self._entries.append(RuntimeAction(rfc3339(utcnow()) or "", action, outcome, detail))

    def count(self, action: str, outcome: str = "ok", **detail: Any) -> None:
        now = rfc3339(utcnow()) or ""
        entry = self._counted.get((action, outcome))
        if entry is None:
            entry = RuntimeAction(now, action, outcome, detail, count=1, last_time=now)
            self._counted[(action, outcome)] = entry
            self._entries.append(entry)
        else:
            entry.count += 1
            entry.last_time = now

    def drain(self) -> list[RuntimeAction]:
        """Return and forget the actions recorded so far, oldest first."""
        entries, self._entries, self._counted = self._entries, [], {}
        return entries


# -- state -------------------------------------------------------------------------------------


@dataclass
class ContainerState:
    status: str  # running | paused | restarting | exited | created | dead | gone | unknown
    pid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting") and bool(self.pid)


# -- filesystem ----------------------------------------------------------------------------


@dataclass
class FsEntry:
    """One changed path of a container's filesystem, as the backend sees it (nothing opened)."""

    path: bytes  # absolute path inside the container, exact bytes
    change: str  # added | changed | deleted
    type: str  # file | dir | symlink | fifo | socket | char | block | whiteout | unknown
    size: int | None = None
    mode: int | None = None  # permission bits (incl. setuid/setgid/sticky)
    uid: int | None = None
    gid: int | None = None
    mtime: float | None = None
    ctime: float | None = None
    blocks: int | None = None  # 512-byte blocks allocated (sparse detection), when known
    link_target: bytes | None = None
    rdev: str | None = None  # "major:minor" of device nodes
    opaque: bool = False  # overlay: the directory hides everything below it in the image
    error: str | None = None  # the backend could not stat the path
    token: Any = None  # backend-private: how to open it (valid only while iterating)


def file_type(mode: int) -> str:
    """FileChange.type of an st_mode."""
    for test, name in (
        (statmod.S_ISREG, "file"),
        (statmod.S_ISDIR, "dir"),
        (statmod.S_ISLNK, "symlink"),
        (statmod.S_ISFIFO, "fifo"),
        (statmod.S_ISSOCK, "socket"),
        (statmod.S_ISCHR, "char"),
        (statmod.S_ISBLK, "block"),
    ):
        if test(mode):
            return name
    return "unknown"


class FileContent(Protocol):
    """An opened regular file: read up to `size` bytes, then ask whether it changed meanwhile."""

    size: int

    def read(self, n: int) -> bytes: ...

    def changed(self) -> str | None:
        """After reading: why the file is known to have changed while read, or None."""
        ...

    def close(self) -> None: ...


class FsDiffSource(Protocol):
    description: dict[str, Any]
    # True when the walk and the opens may run in a thread ahead of the writer: a file opened
    # before the iterator advanced stays readable after it (an open file of a directory walk);
    # False when content must be read before advancing (one archive stream).
    opens_ahead: bool

    def entries(self) -> Iterator[FsEntry]:
        """Changed paths. `open()` an entry before advancing the iterator."""
        ...

    def open(self, entry: FsEntry) -> FileContent:
        """Open a regular file's content without following links; raises OSError and friends."""
        ...


# -- processes and network ----------------------------------------------------------------


class ProcessSource(Protocol):
    description: dict[str, Any]

    def processes(self, *, include_env: bool, hash_limit: int) -> Iterator[ProcessRecord]: ...

    def open_exe(self, pid: int) -> Any:
        """A binary stream of the process's executable (works for deleted binaries)."""
        ...

    def init_alive(self) -> bool:
        """Is the container's init process still the one seen at the start of the capture?"""
        ...


class NetworkSource(Protocol):
    description: dict[str, Any]
    netns: str | None

    def sockets(self) -> Iterator[SocketRecord]: ...

    def interfaces(self) -> list[dict[str, Any]]: ...

    def routes(self) -> list[dict[str, Any]]: ...


class LogSource(Protocol):
    description: dict[str, Any]
    tty: bool  # stdout and stderr are merged by the runtime

    def frames(
        self, *, since: str | None, until: str | None, tail: int | None
    ) -> Iterator[tuple[str, bytes]]:
        """(stream, bytes) pieces in order, stream being stdout or stderr; lines may span pieces."""
        ...


# -- the handle ----------------------------------------------------------------------------


class ContainerHandle(ABC):
    """One container as a backend reaches it. Sources raise `Unsupported` when the backend
    cannot provide them here (the collector is then recorded as skipped, with the reason)."""

    backend: str  # docker | node
    id: str
    name: str
    image: str | None
    actions: ActionLog
    decisions: dict[str, Any]  # what each source uses and why (goes into the capture metadata)

    @abstractmethod
    def state(self) -> ContainerState:
        """The container's state now (asks the runtime, or looks at /proc)."""

    def inspect(self) -> dict[str, Any] | None:
        """The runtime's full description of the container, or None without a runtime API."""
        return None

    def image_details(self) -> dict[str, Any] | None:
        """{"inspect": ..., "history": [...]} of the container's image, or None."""
        return None

    def engine_details(self) -> dict[str, Any] | None:
        """Runtime and host facts (version, info), or None."""
        return None

    def fs_diff(self) -> FsDiffSource:
        raise Unsupported(f"the {self.backend} backend has no filesystem view here")

    def processes(self) -> ProcessSource:
        raise Unsupported(f"the {self.backend} backend has no process view here")

    def network(self) -> NetworkSource:
        raise Unsupported(f"the {self.backend} backend has no network view here")

    def logs(self) -> LogSource:
        raise Unsupported(f"the {self.backend} backend has no log source here")

    def started_at(self) -> str | None:
        """When the current instance started (RFC 3339 from the runtime), if known."""
        return None

    def removal_seen(self) -> str | None:
        """The runtime's own words, during the capture, that the container is being removed
        (an error it answered a request with), or None. A container can still be running when
        it is already marked for removal: its state alone does not tell."""
        return None

    def previous_until(self) -> str | None:
        """The instant (RFC 3339) that ends the previous instance's log lines, if known."""
        return None

    def previous_logs_note(self) -> str | None:
        """Why there is no separate previous-instance log (None when there is one)."""
        return "the runtime keeps no previous instance"

    def read_file(self, path: str, limit: int) -> bytes | None:
        """A small file of the container (e.g. /etc/passwd), never following a link; None if
        absent or not a regular file; raises ValueError when over `limit` bytes."""
        return None

    def close(self) -> None:  # noqa: B027 -- optional hook: most handles hold nothing
        """Release clients and descriptors."""

    @property
    def label(self) -> str:
        return f"container {self.name} ({self.id[:12]})"

    def target(self) -> dict[str, Any]:
        """The capture target for the manifest."""
        return {
            "kind": "container",
            "name": self.name,
            "id": self.id,
            "image": self.image,
            "backend": self.backend,
        }
