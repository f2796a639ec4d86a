"""One timeline of everything in a bundle that has a time, UTC, in order, each row citing the
artifact (and line, or JSON pointer) it comes from.

Sources (select with `sources`):
  log        container log lines: the runtime's time of each line; lines the runtime did not stamp
             take the time written in the message (RFC 3339, common log, syslog, klog, Go log,
             epoch..., see ir.clock.find_timestamp), else the previous line's. The message's own
             time is always kept in the row's fields (message_time) so a skewed or lying
             application clock shows next to the runtime's.
  k8s        Kubernetes events (first and last seen) and the pod's status times (created, started,
             conditions, container states and restarts)
  container  container created/started/finished (inspect.json), image created (image.json)
  process    process start times
  file       file mtime and ctime of added/changed files (one row when they are equal); a deletion
             at its whiteout's ctime, or "time unknown" at capture start (never the old mtime)
  alert      the alert that triggered the capture
  ir         what ir did: capture start and seal, actions recorded during capture (manifest),
             failed collectors, and the custody log beside the bundle (e.g. respond: quarantine)

Ordering: log artifacts are in time order already (see ir.replay.ordering.reorder_window); all
other sources go through an external merge sort; heapq.merge joins them. See ordering.py for why.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ir.bundle.manifest import ArtifactEntry
from ir.clock import EPOCH, ParsedTime, find_timestamp, rfc3339
from ir.records import FileChange, LogLine, ProcessRecord
from ir.replay.evidence import Evidence, as_list, dig, label_of
from ir.replay.ordering import LateCounter, external_sorted, reorder_window
from ir.replay.processes import exe_path, is_deleted

SOURCES = ("log", "k8s", "container", "process", "file", "alert", "ir")
MAX_MESSAGE = 8192  # characters of a log message kept in a row
SCAN_PREFIX = 4096  # a message's own timestamp is looked for in its first characters only
MAX_UNTIMED_HEAD = 10_000  # untimed lines held back until the first timed line of an artifact


@dataclass(slots=True)
class TimelineEvent:
    time: datetime  # UTC
    source: str
    description: str  # what the time means (Timesketch's timestamp_desc)
    message: str  # untrusted text: escape/print safely
    artifact: str
    line: int | None = None
    pointer: str | None = None  # JSON pointer inside a JSON document artifact
    container: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    time_original: str | None = None  # the text the time was read from, when not ir's own
    time_note: str | None = None  # "assumed UTC", "assumed year", "time of previous line"
    key: tuple[int, int, str, int] = (0, 0, "", 0)

    def __post_init__(self) -> None:
        self.retime(self.time)

    def retime(self, time: datetime) -> None:
        self.time = time
        delta = time - EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        self.key = (micros, _RANK[self.source], self.artifact, self.line or 0)

    @property
    def cited(self) -> str:
        if self.line is not None:
            return f"{self.artifact}:{self.line}"
        return f"{self.artifact}#{self.pointer}" if self.pointer else self.artifact

    @property
    def timestamp_micros(self) -> int:
        return self.key[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": rfc3339(self.time),
            "source": self.source,
            "description": self.description,
            "message": self.message,
            "container": self.container,
            "artifact": self.artifact,
            "line": self.line,
            "pointer": self.pointer,
            "cited": self.cited,
            "time_original": self.time_original,
            "time_note": self.time_note,
            "fields": self.fields,
        }


_RANK = {
    name: i for i, name in enumerate(("alert", "ir", "k8s", "container", "process", "file", "log"))
}


def _key(event: TimelineEvent) -> tuple[int, int, str, int]:
    return event.key


@dataclass
class TimelineStats:
    rows: int = 0
    late: LateCounter = field(default_factory=LateCounter)


def build_timeline(
    ev: Evidence,
    *,
    sources: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    containers: set[str] | None = None,
    spill_dir: str | None = None,
    stats: TimelineStats | None = None,
) -> Iterator[TimelineEvent]:
    """The merged timeline, streamed. Unselected sources (and other containers' logs, when
    `containers` is given) are not even read."""
    selected = set(sources or SOURCES)
    stats = stats or TimelineStats()

    def window(events: Iterable[TimelineEvent]) -> Iterator[TimelineEvent]:
        for e in events:
            if (
                (since is None or e.time >= since)
                and (until is None or e.time <= until)
                and (containers is None or e.container is None or e.container in containers)
            ):
                yield e

    streams: list[Iterator[TimelineEvent]] = []
    if "log" in selected:
        for entry in ev.artifacts("logs"):
            if containers is not None and label_of(entry) not in containers:
                continue
            streams.append(reorder_window(window(log_events(ev, entry)), _key, counter=stats.late))
    producers: dict[str, Callable[[Evidence], Iterator[TimelineEvent]]] = {
        "k8s": k8s_events,
        "container": container_events,
        "process": process_events,
        "file": file_events,
        "alert": alert_events,
        "ir": ir_events,
    }
    for name, produce in producers.items():
        if name in selected:
            streams.append(external_sorted(window(produce(ev)), _key, spill_dir=spill_dir))
    for event in heapq.merge(*streams, key=_key):
        stats.rows += 1
        yield event


# -- log lines -----------------------------------------------------------------------------------


def log_events(ev: Evidence, entry: ArtifactEntry) -> Iterator[TimelineEvent]:
    reference = ev.reference_time
    instance_default = str(entry.meta.get("instance") or "current")
    previous: datetime | None = None
    held: list[TimelineEvent] = []  # untimed lines before the first time in this artifact
    for cited in ev.records_of(LogLine, entry):
        rec = cited.record
        message = rec.message
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + f"... [{len(message) - MAX_MESSAGE} more characters]"
        fields: dict[str, Any] = {
            "stream": rec.stream,
            "instance": rec.instance or instance_default,
        }
        found = find_timestamp(rec.message[:SCAN_PREFIX], reference=reference)
        if found is not None:
            fields["message_time"] = rfc3339(found.parsed.utc)
            fields["message_time_format"] = found.format
            fields["message_time_original"] = found.parsed.original
            note = _time_note(found.parsed)
            if note:
                fields["message_time_note"] = note
        runtime = ev.parse_time(rec.time)
        container = cited.container or rec.container
        if runtime is not None:
            event = TimelineEvent(
                runtime.utc,
                "log",
                "Log line written (runtime time)",
                message,
                cited.artifact,
                cited.line,
                container=container,
                fields=fields,
            )
        elif found is not None:
            event = TimelineEvent(
                found.parsed.utc,
                "log",
                "Time written in the log message",
                message,
                cited.artifact,
                cited.line,
                container=container,
                fields=fields,
                time_original=found.parsed.original,
                time_note=_time_note(found.parsed),
            )
        else:
            event = TimelineEvent(
                previous or EPOCH,
                "log",
                "Log line (no time: placed after the previous line)",
                message,
                cited.artifact,
                cited.line,
                container=container,
                fields=fields,
                time_note="no time in the line",
            )
            if previous is None:
                if len(held) < MAX_UNTIMED_HEAD:
                    held.append(event)
                    continue
                event.time_note = "no time in the line; shown at the epoch"
        if held and previous is None and event.time != EPOCH:
            for waiting in held:
                waiting.retime(event.time)
                yield waiting
            held.clear()
        previous = event.time if event.time != EPOCH else previous
        yield event
    yield from held  # an artifact with no time at all: at the epoch, flagged


def _time_note(parsed: ParsedTime) -> str | None:
    notes = []
    if parsed.assumed_utc:
        notes.append("no offset in the text: UTC assumed")
    if parsed.assumed_year:
        notes.append("no year in the text: year of the capture assumed")
    return "; ".join(notes) or None


# -- Kubernetes ----------------------------------------------------------------------------------


def k8s_events(ev: Evidence) -> Iterator[TimelineEvent]:
    found = ev.events()
    if found:
        entry, items = found
        for pointer, e in items:
            yield from _event_rows(ev, entry.name, pointer, e)
    pod_doc = ev.document("k8s-pod", "k8s/pod.json")
    if pod_doc and isinstance(pod_doc[1], dict):
        yield from _pod_rows(ev, pod_doc[0].name, pod_doc[1])


def _event_rows(
    ev: Evidence, artifact: str, pointer: str, e: dict[str, Any]
) -> Iterator[TimelineEvent]:
    involved = e.get("involvedObject") or e.get("regarding") or {}
    obj = "/".join(
        str(x)
        for x in (dig(involved, "kind"), dig(involved, "namespace"), dig(involved, "name"))
        if x
    )
    text = f"{e.get('type') or '-'} {e.get('reason') or '-'} {obj}: {e.get('message') or e.get('note') or ''}".strip()
    source = (
        dig(e, "source", "component") or e.get("reportingComponent") or e.get("reportingController")
    )
    fields = {
        "type": e.get("type"),
        "reason": e.get("reason"),
        "object": obj,
        "count": e.get("count"),
        "component": source,
        "k8s_kind": "Event",
    }
    first = None
    for name in ("firstTimestamp", "eventTime", "deprecatedFirstTimestamp"):
        first = ev.parse_time(e.get(name))
        if first:
            first_name = name
            break
    if first is None:
        first = ev.parse_time(dig(e, "metadata", "creationTimestamp"))
        first_name = "metadata/creationTimestamp"
    if first is not None:
        yield TimelineEvent(
            first.utc,
            "k8s",
            "Kubernetes event first seen",
            text,
            artifact,
            pointer=f"{pointer}/{first_name}",
            fields=fields,
            time_original=first.original,
        )
    for name, path in (
        ("lastTimestamp", ("lastTimestamp",)),
        ("series/lastObservedTime", ("series", "lastObservedTime")),
    ):
        last = ev.parse_time(dig(e, *path))
        if last is not None:
            if first is None or last.utc != first.utc:
                count = e.get("count") or dig(e, "series", "count")
                yield TimelineEvent(
                    last.utc,
                    "k8s",
                    f"Kubernetes event last seen (count {count})",
                    text,
                    artifact,
                    pointer=f"{pointer}/{name}",
                    fields=fields,
                    time_original=last.original,
                )
            break


def _pod_rows(ev: Evidence, artifact: str, pod: dict[str, Any]) -> Iterator[TimelineEvent]:
    name = f"{dig(pod, 'metadata', 'namespace')}/{dig(pod, 'metadata', 'name')}"
    node = dig(pod, "spec", "nodeName")

    def row(
        value: Any, description: str, text: str, pointer: str, container: str | None = None
    ) -> Iterator[TimelineEvent]:
        parsed = ev.parse_time(value)
        if parsed is not None:
            yield TimelineEvent(
                parsed.utc,
                "k8s",
                description,
                text,
                artifact,
                pointer=pointer,
                container=container,
                fields={"k8s_kind": "Pod", "pod": name},
                time_original=parsed.original,
            )

    yield from row(
        dig(pod, "metadata", "creationTimestamp"),
        "Pod created",
        f"pod {name} created",
        "/metadata/creationTimestamp",
    )
    yield from row(
        dig(pod, "metadata", "deletionTimestamp"),
        "Pod deletion requested",
        f"pod {name} deleted",
        "/metadata/deletionTimestamp",
    )
    yield from row(
        dig(pod, "status", "startTime"),
        "Pod started",
        f"pod {name} started on node {node}",
        "/status/startTime",
    )
    for i, cond in enumerate(as_list(dig(pod, "status", "conditions"))):
        yield from row(
            dig(cond, "lastTransitionTime"),
            "Pod condition changed",
            f"pod {name} condition {dig(cond, 'type')}={dig(cond, 'status')} {dig(cond, 'reason') or ''}".strip(),
            f"/status/conditions/{i}/lastTransitionTime",
        )
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for i, status in enumerate(as_list(dig(pod, "status", key))):
            cname = str(dig(status, "name"))
            for which in ("state", "lastState"):
                prefix = f"/status/{key}/{i}/{which}"
                when = "previous instance " if which == "lastState" else ""
                running = dig(status, which, "running")
                yield from row(
                    dig(running, "startedAt"),
                    "Container started (pod status)",
                    f"container {cname} {when}running (restarts: {dig(status, 'restartCount')})",
                    f"{prefix}/running/startedAt",
                    cname,
                )
                term = dig(status, which, "terminated")
                yield from row(
                    dig(term, "startedAt"),
                    "Container started (pod status)",
                    f"container {cname} {when}started",
                    f"{prefix}/terminated/startedAt",
                    cname,
                )
                yield from row(
                    dig(term, "finishedAt"),
                    "Container terminated (pod status)",
                    f"container {cname} {when}terminated: exit code {dig(term, 'exitCode')} "
                    f"{dig(term, 'reason') or ''}".strip(),
                    f"{prefix}/terminated/finishedAt",
                    cname,
                )


# -- containers, processes, files ----------------------------------------------------------------


def container_events(ev: Evidence) -> Iterator[TimelineEvent]:
    for container in ev.containers():
        found = ev.document("container-inspect", None, container)
        if found and isinstance(found[1], dict):
            entry, doc = found
            image = dig(doc, "Config", "Image") or doc.get("Image")
            for path, description in (
                (("Created",), "Container created"),
                (("State", "StartedAt"), "Container started"),
                (("State", "FinishedAt"), "Container finished"),
            ):
                parsed = ev.parse_time(dig(doc, *path))
                if parsed is not None:
                    yield TimelineEvent(
                        parsed.utc,
                        "container",
                        description,
                        f"{description.lower()}: {container} ({image})",
                        entry.name,
                        pointer="/" + "/".join(path),
                        container=container,
                        time_original=parsed.original,
                    )
        found = ev.document("image-inspect", None, container)
        if found and isinstance(found[1], dict):
            entry, doc = found
            parsed = ev.parse_time(doc.get("Created"))
            if parsed is not None:
                tags = (
                    ", ".join(str(t) for t in as_list(doc.get("RepoTags")))
                    or str(doc.get("Id", ""))[:19]
                )
                yield TimelineEvent(
                    parsed.utc,
                    "container",
                    "Image created",
                    f"image {tags} created",
                    entry.name,
                    pointer="/Created",
                    container=container,
                    time_original=parsed.original,
                )


def process_events(ev: Evidence) -> Iterator[TimelineEvent]:
    for cited in ev.records(ProcessRecord):
        r = cited.record
        parsed = ev.parse_time(r.start_time)
        if parsed is None:
            continue
        flags = " [deleted executable]" if is_deleted(r) else ""
        text = f"pid {r.pid} ppid {r.ppid} user {r.user or r.uid}: {exe_path(r) or '?'}{flags}: {' '.join(r.cmdline) or r.name or ''}"
        yield TimelineEvent(
            parsed.utc,
            "process",
            "Process started",
            text,
            cited.artifact,
            cited.line,
            container=cited.container,
            fields={
                "pid": r.pid,
                "ppid": r.ppid,
                "user": r.user,
                "uid": r.uid,
                "exe": r.exe,
                "exe_sha256": r.exe_sha256,
                "exe_deleted": is_deleted(r),
                "cmdline": " ".join(r.cmdline),
            },
        )


def file_events(ev: Evidence) -> Iterator[TimelineEvent]:
    captured = ev.parse_time(ev.manifest.started_at)
    for cited in ev.records(FileChange):
        c = cited.record
        mtime, ctime = ev.parse_time(c.mtime), ev.parse_time(c.ctime)
        fields = {
            "path": c.path,
            "change": c.change,
            "type": c.type,
            "mode": c.mode,
            "size": c.size,
            "sha256": c.sha256,
            "uid": c.uid,
        }
        what = f"{c.change} {c.type} {c.path}" + (f" -> {c.link_target}" if c.link_target else "")
        if c.type == "file":
            what += f" (mode {c.mode}" + (f", {c.size} bytes)" if c.size is not None else ")")

        rows: list[tuple[Any, str]] = []  # (time, what the time means)
        if c.change == "deleted":
            # A deletion's only time is its whiteout's ctime (overlayfs made the whiteout when
            # the file was deleted); the mtime is the deleted file's old one, never the event.
            if ctime is not None:
                rows.append((ctime, "File deleted (whiteout created: its ctime)"))
            elif captured is not None:
                rows.append(
                    (
                        captured,
                        "File deleted before capture; time unknown (placed at capture start)",
                    )
                )
        elif mtime is not None and ctime is not None and mtime.utc == ctime.utc:
            rows.append((mtime, "File modified and inode changed (mtime = ctime)"))
        else:
            if mtime is not None:
                rows.append((mtime, "File content modified (mtime)"))
            if ctime is not None:
                rows.append((ctime, "File inode changed (ctime)"))
        for when, description in rows:
            yield TimelineEvent(
                when.utc,
                "file",
                description,
                what,
                cited.artifact,
                cited.line,
                container=cited.container,
                fields=fields,
            )


# -- the alert and ir itself ---------------------------------------------------------------------


def alert_events(ev: Evidence) -> Iterator[TimelineEvent]:
    found = ev.alert()
    if not found:
        return
    entry, alert = found
    raw = alert.get("raw") if isinstance(alert.get("raw"), dict) else {}
    parsed, pointer = None, None
    for path in (
        ("time",),
        ("timestamp",),
        ("startsAt",),
        ("raw", "time"),
        ("raw", "startsAt"),
        ("raw", "updatedAt"),
    ):
        parsed = ev.parse_time(dig(alert, *path))
        if parsed is not None:
            pointer = "/" + "/".join(path)
            break
    if parsed is None:
        ev.problem(f"{entry.name}: the alert has no readable time; not on the timeline")
        return
    rule = alert.get("rule") or alert.get("title") or alert.get("name") or "alert"
    target: dict[str, Any] = alert["target"] if isinstance(alert.get("target"), dict) else {}
    where = "/".join(str(target[k]) for k in ("namespace", "pod", "container") if target.get(k))
    detail = alert.get("message") or alert.get("output") or dig(raw, "output") or ""
    text = (
        f"{alert.get('source') or 'alert'}: {rule} [{alert.get('priority') or alert.get('severity') or '-'}]"
        + (f" on {where}" if where else "")
        + (f": {detail}" if detail else "")
    )
    yield TimelineEvent(
        parsed.utc,
        "alert",
        "Alert fired",
        text,
        entry.name,
        pointer=pointer,
        container=target.get("container"),
        time_original=parsed.original,
        fields={
            "alert_source": alert.get("source"),
            "rule": rule,
            "priority": alert.get("priority") or alert.get("severity"),
        },
    )


def ir_events(ev: Evidence) -> Iterator[TimelineEvent]:
    m = ev.manifest
    started = ev.parse_time(m.started_at)
    if started is not None:
        yield TimelineEvent(
            started.utc,
            "ir",
            "ir capture started",
            f"capture started by {m.operator}: case {m.case_id}"
            + (f", reason: {m.reason}" if m.reason else ""),
            "manifest.json",
            pointer="/started_at",
        )
    ended = ev.parse_time(m.ended_at)
    if ended is not None:
        yield TimelineEvent(
            ended.utc,
            "ir",
            "ir capture sealed",
            f"bundle sealed: outcome {m.outcome}",
            "manifest.json",
            pointer="/ended_at",
        )
    for i, action in enumerate(m.actions):
        parsed = ev.parse_time(action.time)
        if parsed is not None:
            detail = json.dumps(action.detail, sort_keys=True, default=str) if action.detail else ""
            yield TimelineEvent(
                parsed.utc,
                "ir",
                "ir action during capture",
                f"{action.action} on {action.target}: {action.outcome} {detail}".strip(),
                "manifest.json",
                pointer=f"/actions/{i}",
                fields={"action": action.action, "outcome": action.outcome},
            )
    for i, collector in enumerate(m.collectors):
        if collector.status in ("failed", "partial"):
            parsed = ev.parse_time(collector.ended_at or collector.started_at)
            if parsed is not None:
                yield TimelineEvent(
                    parsed.utc,
                    "ir",
                    f"ir collector {collector.status}",
                    f"collector {collector.name} {collector.status}: {collector.error}",
                    "manifest.json",
                    pointer=f"/collectors/{i}",
                    container=collector.container,
                )
    for number, line in enumerate(ev.custody_lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        parsed = ev.parse_time(record.get("time"))
        if parsed is None:
            continue
        text = f"{record.get('action')} by {record.get('actor')} on {record.get('host')}"
        if record.get("detail"):
            text += ": " + json.dumps(record["detail"], sort_keys=True, default=str)
        yield TimelineEvent(
            parsed.utc,
            "ir",
            f"ir custody: {record.get('action')}",
            text,
            "custody",
            number,
            fields={"action": record.get("action"), "actor": record.get("actor")},
        )
