"""The filesystem view: added/changed/deleted files with filters, and the content of one captured
file streamed out of the container's fs-files.tar (nothing else is extracted).

A deletion's time is its record's ctime, and what that means depends on what showed the deletion
(`DeletionTimes`): a whiteout's ctime is when the file was deleted; the ctime of an opaque
directory that hides it is a time the deletion happened at or before; without a ctime the time
is unknown. The deleted file's own mtime (an older bundle kept the image's there) never is."""

from __future__ import annotations

import fnmatch
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ir.errors import BundleFormatError, IntegrityError, UsageError
from ir.records import FileChange, ProcessRecord
from ir.replay.evidence import Cited, Evidence
from ir.replay.processes import exe_path, is_deleted

# Where a new or changed file is a finding: binaries, libraries and configuration.
BINARY_DIRS = (
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "/usr/local/sbin/",
    "/etc/",
)
LIBRARY_PREFIXES = ("/lib", "/usr/lib", "/usr/local/lib")  # /lib, /lib64, /lib32, /usr/lib64 ...
TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/")
CAT_CHUNK = 1024 * 1024
MAX_OPAQUE_DIRS = 100_000  # opaque directories remembered while streaming a diff (a few, usually)

#: What a deletion's time is: (key, short label for tables, timeline description).
WHITEOUT_CTIME = "whiteout"
OPAQUE_CTIME = "opaque"
UNKNOWN_TIME = "unknown"
DELETION_LABELS = {
    WHITEOUT_CTIME: ("deleted: whiteout ctime", "File deleted (whiteout created: its ctime)"),
    OPAQUE_CTIME: (
        "deleted at or before: opaque dir ctime",
        "File deleted at or before this (ctime of the opaque directory that hides it)",
    ),
    UNKNOWN_TIME: (
        "deleted: time unknown",
        "File deleted before capture; time unknown",
    ),
}


class DeletionTimes:
    """What each deletion's time is, learnt while streaming fs-changes in the order they were
    written: the walk lists an opaque directory before the deletions it shows. `see` every record
    (filtered out or not), then ask `kind` of a deletion."""

    def __init__(self) -> None:
        self._opaque: dict[str | None, set[str]] = {}

    def see(self, cited: Cited[FileChange]) -> None:
        c = cited.record
        if c.opaque and c.type == "dir" and c.change != "deleted":
            seen = self._opaque.setdefault(cited.container, set())
            if len(seen) < MAX_OPAQUE_DIRS:
                seen.add(c.path)

    def kind(self, cited: Cited[FileChange]) -> str:
        c = cited.record
        if c.ctime is None:
            return UNKNOWN_TIME
        parent = c.path.rpartition("/")[0]
        return OPAQUE_CTIME if parent in self._opaque.get(cited.container, ()) else WHITEOUT_CTIME


@dataclass
class FsFilter:
    """What `ir replay fs` shows. Empty means everything."""

    glob: str | None = None  # fnmatch on the absolute path; `*` also crosses `/`
    types: set[str] = field(default_factory=set)  # file, dir, symlink, ...
    changes: set[str] = field(default_factory=set)  # added, changed, deleted
    min_size: int | None = None
    max_size: int | None = None
    since: datetime | None = None  # mtime or ctime within the window
    until: datetime | None = None
    executable: bool | None = None

    def accepts(self, ev: Evidence, change: FileChange) -> bool:
        if self.glob and not fnmatch.fnmatchcase(change.path, self.glob):
            return False
        if self.types and change.type not in self.types:
            return False
        if self.changes and change.change not in self.changes:
            return False
        if self.min_size is not None and (change.size is None or change.size < self.min_size):
            return False
        if self.max_size is not None and (change.size is None or change.size > self.max_size):
            return False
        if self.executable is not None and is_executable(change) != self.executable:
            return False
        if self.since or self.until:
            # a deletion's only time is its ctime (see DeletionTimes); its mtime is the image's
            stamps = (change.ctime,) if change.change == "deleted" else (change.mtime, change.ctime)
            times = [t for t in (ev.time_of(v) for v in stamps) if t is not None]
            if not any(
                (self.since is None or t >= self.since) and (self.until is None or t <= self.until)
                for t in times
            ):
                return False
        return True


def is_executable(change: FileChange) -> bool:
    if change.executable:
        return True
    try:
        return (
            change.type == "file" and change.mode is not None and int(change.mode, 8) & 0o111 != 0
        )
    except ValueError:
        return False


def in_binary_dir(path: str) -> bool:
    if path.startswith(BINARY_DIRS):
        return True
    return any(path.startswith(p) and "/" in path[len(p) :] for p in LIBRARY_PREFIXES)


def in_temp_dir(path: str) -> bool:
    return path.startswith(TEMP_DIRS)


def iter_changes(
    ev: Evidence,
    flt: FsFilter | None = None,
    container: str | None = None,
    deletions: DeletionTimes | None = None,
) -> Iterator[Cited[FileChange]]:
    """File changes in artifact order (streamed), filtered; `deletions` sees every record."""
    flt = flt or FsFilter()
    for name in [container] if container else ev.containers() or [None]:  # type: ignore[list-item]
        for cited in ev.records(FileChange, name):
            if deletions is not None:
                deletions.see(cited)
            if flt.accepts(ev, cited.record):
                yield cited


@dataclass
class CapturedFile:
    container: str | None
    change: Cited[FileChange] | None  # the fs-changes record, when there is one
    tar_artifact: str
    member: str | None = None  # the tar member, when not the path (deleted-exes.tar: by SHA-256)
    note: str = ""


def locate_file(ev: Evidence, path: str, container: str | None = None) -> CapturedFile:
    """Which container's fs-files.tar holds `path`. Raises UsageError when none or ambiguous."""
    path = "/" + path.lstrip("/")
    containers = [container] if container else ev.containers()
    candidates: list[CapturedFile] = []
    reasons: list[str] = []
    for name in containers:
        tars = ev.artifacts("fs-files", name)
        record = next((c for c in ev.records(FileChange, name) if c.record.path == path), None)
        if record is not None and not record.record.captured:
            why = record.record.skipped or (
                "deleted" if record.record.change == "deleted" else "not captured"
            )
            reasons.append(
                f"{name}: listed in {record.citation} but its content was not captured ({why})"
            )
            continue
        if tars and (record is not None or container is not None or len(containers) == 1):
            candidates.append(CapturedFile(name, record, tars[0].name))
    if not candidates:
        preserved = _deleted_exe(ev, path, containers)
        if preserved is not None:
            return preserved
        detail = "; ".join(reasons) or "no fs-changes record names it"
        raise UsageError(f"{path}: no captured content in this bundle ({detail})")
    if len(candidates) > 1:
        raise UsageError(
            f"{path} was captured in several containers ({', '.join(str(c.container) for c in candidates)}); "
            "choose one with --container"
        )
    return candidates[0]


def _deleted_exe(ev: Evidence, path: str, containers: list[str]) -> CapturedFile | None:
    """A process ran `path` after it was deleted: the processes collector keeps such binaries
    in deleted-exes.tar, named by SHA-256."""
    for name in containers:
        tars = ev.artifacts("deleted-exes", name)
        if not tars:
            continue
        for cited in ev.records(ProcessRecord, name):
            r = cited.record
            if is_deleted(r) and exe_path(r) == path and r.exe_sha256:
                note = (
                    f"deleted executable of pid {r.pid} ({cited.citation}), kept as {r.exe_sha256}"
                )
                return CapturedFile(name, None, tars[0].name, r.exe_sha256, note)
    return None


def stream_file(ev: Evidence, located: CapturedFile, path: str) -> Iterator[bytes]:
    """The captured content of `path`, streamed from the tar (read sequentially up to it).
    A symlink yields its target as `-> target`. Raises UsageError when the tar lacks it."""
    wanted = located.member or path.lstrip("/")
    try:
        with (
            ev.reader.open_artifact(ev.reader.entry(located.tar_artifact)) as raw,
            tarfile.open(fileobj=raw, mode="r|") as tar,
        ):
            for member in tar:
                if member.name.removeprefix("./").lstrip("/") != wanted:
                    continue
                if member.issym() or member.islnk():
                    yield f"-> {member.linkname}\n".encode("utf-8", "surrogateescape")
                    return
                if not member.isfile():
                    raise UsageError(
                        f"{path}: not a regular file in the capture (type {member.type!r})"
                    )
                fh = tar.extractfile(member)
                if fh is None:
                    raise UsageError(f"{path}: no content in the capture")
                while chunk := fh.read(CAT_CHUNK):
                    yield chunk
                return
    except tarfile.TarError as exc:
        raise BundleFormatError(
            f"{located.tar_artifact}: not a readable tar stream: {exc}"
        ) from None
    except (IntegrityError, BundleFormatError) as exc:
        raise IntegrityError(f"{located.tar_artifact}: {exc.message}") from None
    raise UsageError(f"{path}: listed as captured but not in {located.tar_artifact}")
