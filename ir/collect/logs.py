"""Logs: the container's stdout and stderr, kept apart, one LogLine per line with the runtime's
timestamp, streamed (never the whole log in memory). `--since`/`--tail` bound them; the default
is everything. When the container restarted, the lines up to the previous exit are the
previous instance(s) (`logs-previous.jsonl`); otherwise a note says why there is none."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from ir.clock import parse_timestamp, rfc3339
from ir.collect.base import Artifact, ContainerContext, Scope, to_epoch_text
from ir.records import LogLine

MAX_LINE = 1024 * 1024  # a longer line is cut into pieces of this size


class LogsCollector:
    name = "logs"
    scope: Scope = "container"

    def check(self, ctx: ContainerContext) -> None:
        ctx.target.handle.logs()  # raises Unsupported without a runtime that keeps logs

    def collect(self, ctx: ContainerContext) -> Iterator[Artifact]:
        target = ctx.target
        handle = target.handle
        source = handle.logs()
        target.sources[self.name] = source.description
        opts = target.options
        since = opts.since_epoch()
        started = handle.started_at()
        boundary = handle.previous_until()  # end of the previous instance's lines
        started_epoch = to_epoch_text(boundary) if boundary else None
        note = handle.previous_logs_note()
        split = note is None and started_epoch is not None
        if split and since is not None and float(since) >= float(started_epoch or 0):
            split = False
            note = "no previous-instance lines: --since is after the current instance started"
        if source.tty:
            ctx.note("the container has a TTY: the runtime merges stderr into stdout")
        meta = {"since": opts.since, "tail": opts.tail, "tty": source.tty}
        if split:
            # The engine applies `tail` to the whole log before `until`: tail the previous
            # instance here instead (memory bounded by the N lines asked for).
            previous = log_lines(
                source.frames(since=since, until=started_epoch, tail=None), handle.name, "previous"
            )
            yield Artifact(
                "logs-previous.jsonl",
                kind="logs",
                media_type=LogLine.media_type(),
                chunks=previous if opts.tail is None else iter(deque(previous, maxlen=opts.tail)),
                meta={**meta, "instance": "previous", "until": boundary},
            )
            current_since = (
                started_epoch if since is None else max(since, started_epoch or since, key=float)
            )
        else:
            if note:
                ctx.note(f"previous instance not available: {note}")
            current_since = since
        yield Artifact(
            "logs-current.jsonl",
            kind="logs",
            media_type=LogLine.media_type(),
            chunks=log_lines(
                source.frames(since=current_since, until=None, tail=opts.tail),
                handle.name,
                "current",
            ),
            meta={**meta, "instance": "current", "started_at": started},
        )


def log_lines(
    frames: Iterator[tuple[str, bytes]], container: str, instance: str
) -> Iterator[bytes]:
    """(stream, bytes) pieces -> LogLine JSON lines, one per log line, per stream."""
    pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    for stream, data in frames:
        buf = pending.setdefault(stream, bytearray())
        buf += data
        while True:
            cut = buf.find(b"\n")
            if cut < 0:
                if len(buf) >= MAX_LINE:
                    yield _line(bytes(buf[:MAX_LINE]), stream, container, instance)
                    del buf[:MAX_LINE]
                    continue
                break
            yield _line(bytes(buf[:cut]), stream, container, instance)
            del buf[: cut + 1]
    for stream, buf in pending.items():
        if buf:
            yield _line(bytes(buf), stream, container, instance)


def _line(raw: bytes, stream: str, container: str, instance: str) -> bytes:
    stamp, sep, rest = raw.partition(b" ")
    time: Any = None
    message = raw
    if sep and stamp[:1].isdigit():
        try:
            time = rfc3339(parse_timestamp(stamp.decode("ascii")).utc)
            message = rest
        except (ValueError, UnicodeDecodeError):
            time = None
    return LogLine(
        time=time,
        stream=stream,
        message=message.decode("utf-8", "backslashreplace"),
        container=container,
        instance=instance,
    ).to_line()


COLLECTOR = LogsCollector()
