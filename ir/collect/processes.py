"""Processes: every process of the container with its executable's SHA-256 (via /proc/PID/exe,
which also reads binaries deleted from disk: flagged `exe_deleted`), command line, user, cwd,
start time, state, descriptors and (redacted) environment. The binaries of processes running
from a deleted file are kept too (`deleted-exes.tar`), within --max-file-size."""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
from collections.abc import Iterator
from typing import IO, Any

from ir.collect.base import Artifact, ContainerContext, Scope
from ir.errors import Unsupported
from ir.records import ProcessRecord
from ir.runtime.procfs import ProcessGone

READ_CHUNK = 1024 * 1024


class ProcessesCollector:
    name = "processes"
    scope: Scope = "container"

    def check(self, ctx: ContainerContext) -> None:
        target = ctx.target
        if not target.was_running:
            raise Unsupported(
                f"the container was {target.state_at_start.status} when the capture started: no processes"
            )

    def collect(self, ctx: ContainerContext) -> Iterator[Artifact]:
        target = ctx.target
        opts = target.options
        try:
            source = target.handle.processes()
        except Unsupported as exc:
            # Running at the start, not now: the container exited under us. Say so.
            yield Artifact(
                "processes.jsonl",
                kind="processes",
                media_type=ProcessRecord.media_type(),
                chunks=[],
                status="partial",
                error=f"container exited during capture: {exc}",
            )
            return
        target.sources[self.name] = source.description
        deleted: list[tuple[int, str, str | None]] = []
        artifact = Artifact(
            "processes.jsonl",
            kind="processes",
            media_type=ProcessRecord.media_type(),
            meta={"source": source.description.get("source")},
        )

        def lines() -> Iterator[bytes]:
            count = 0
            try:
                for record in source.processes(
                    include_env=opts.include_env, hash_limit=opts.hash_limit
                ):
                    count += 1
                    if record.exe_deleted and record.exe_sha256:
                        deleted.append((record.pid, record.exe_sha256, record.exe))
                    yield record.to_line()
            except ProcessGone as exc:
                artifact.status, artifact.error = (
                    "partial",
                    f"container exited during capture: {exc}",
                )
            if artifact.status == "ok" and not source.init_alive():
                artifact.status = "partial"
                artifact.error = "container exited during capture: the list may be incomplete"
            if count == 0 and artifact.status == "ok":
                artifact.status, artifact.error = "partial", "no process found"
            ctx.note(
                f"{count} process(es) from {source.description.get('source')}"
                + (
                    ""
                    if opts.include_env
                    else "; environment values redacted (--include-env to keep)"
                )
            )

        artifact.chunks = lines()
        yield artifact
        if deleted:
            yield deleted_exes_artifact(ctx, source, deleted, opts.max_file_size)


def deleted_exes_artifact(
    ctx: ContainerContext, source: Any, deleted: list[tuple[int, str, str | None]], limit: int
) -> Artifact:
    """A tar of the binaries that processes run from deleted files, named by SHA-256."""
    kept: list[dict[str, Any]] = []
    artifact = Artifact(
        "deleted-exes.tar", kind="deleted-exes", media_type="application/x-tar", meta={"exes": kept}
    )

    def write(sink: IO[bytes]) -> None:
        seen: set[str] = set()
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for pid, sha, exe in deleted:
                if sha in seen:
                    continue
                try:
                    fh = source.open_exe(pid)
                except (OSError, Unsupported) as exc:
                    kept.append(
                        {"pid": pid, "sha256": sha, "exe": exe, "error": f"cannot open: {exc}"}
                    )
                    continue
                with fh:
                    size = _fstat_size(fh)
                    if size > limit:
                        kept.append(
                            {
                                "pid": pid,
                                "sha256": sha,
                                "exe": exe,
                                "error": f"larger than --max-file-size ({size} bytes)",
                            }
                        )
                        continue
                    info = tarfile.TarInfo(sha)
                    info.size, info.mode, info.mtime = size, 0o444, int(time.time())
                    info.pax_headers = {"comment": f"pid {pid} exe {exe}"}
                    reader = _HashingReader(fh, size)
                    tar.addfile(info, reader)
                    ok = reader.hexdigest() == sha
                    kept.append(
                        {"pid": pid, "sha256": sha, "exe": exe, "size": size, "verified": ok}
                    )
                    if not ok:
                        ctx.note(f"pid {pid}: executable changed between hashing and copying")
                seen.add(sha)
        sink_entry = getattr(sink, "entry", None)
        if sink_entry is not None:
            sink_entry.meta["exes"] = kept

    artifact.write = write
    return artifact


def _fstat_size(fh: Any) -> int:
    return os.fstat(fh.fileno()).st_size


class _HashingReader:
    """Reads exactly `size` bytes (zero-padded if the source ends early), hashing them."""

    def __init__(self, fh: Any, size: int) -> None:
        self.fh, self.left = fh, size
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if n < 0 else min(n, self.left)
        data = self.fh.read(min(want, READ_CHUNK)) or b""
        if not data:
            data = b"\0" * min(want, READ_CHUNK)
        self.left -= len(data)
        self.h.update(data)
        return data

    def hexdigest(self) -> str:
        return self.h.hexdigest()


COLLECTOR = ProcessesCollector()
