"""What the bundle's records and documents put on the timeline, one producer per source: k8s
(events and pod status), container (inspect, image), process (start times), file (mtime, ctime,
deletions), alert, ir (manifest and custody). Each yields `TimelineEvent`s in any order (the
timeline sorts them) with the time at its source's precision and the clock that made it.
Read-only; imports ir.records, ir.clock and the replay modules below it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ir.records import FileChange, ProcessRecord
from ir.replay import clocks
from ir.replay.clocks import Stamp, from_parsed
from ir.replay.event import TimelineEvent
from ir.replay.evidence import Evidence, as_list, dig
from ir.replay.files import DELETION_LABELS, UNKNOWN_TIME, DeletionTimes
from ir.replay.processes import exe_path, is_deleted

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
            from_parsed(first),
            "k8s",
            "Kubernetes event first seen",
            text,
            artifact,
            pointer=f"{pointer}/{first_name}",
            fields=fields,
            time_original=first.original,
            clock=clocks.KUBERNETES,
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
                    from_parsed(last),
                    "k8s",
                    f"Kubernetes event last seen (count {count})",
                    text,
                    artifact,
                    pointer=f"{pointer}/{name}",
                    fields=fields,
                    time_original=last.original,
                    clock=clocks.KUBERNETES,
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
                from_parsed(parsed),
                "k8s",
                description,
                text,
                artifact,
                pointer=pointer,
                container=container,
                fields={"k8s_kind": "Pod", "pod": name},
                time_original=parsed.original,
                clock=clocks.KUBERNETES,
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
                        from_parsed(parsed),
                        "container",
                        description,
                        f"{description.lower()}: {container} ({image})",
                        entry.name,
                        pointer="/" + "/".join(path),
                        container=container,
                        time_original=parsed.original,
                        clock=clocks.RUNTIME,
                    )
        found = ev.document("image-inspect", None, container)
        if found and isinstance(found[1], dict):
            entry, doc = found
            # ir writes {"inspect": ..., "history": [...]}; a bare inspect document reads too
            prefix, image_doc = ("/inspect", doc["inspect"]) if "inspect" in doc else ("", doc)
            parsed = ev.parse_time(dig(image_doc, "Created"))
            if parsed is not None:
                tags = (
                    ", ".join(str(t) for t in as_list(dig(image_doc, "RepoTags")))
                    or str(dig(image_doc, "Id") or "")[:19]
                )
                yield TimelineEvent(
                    from_parsed(parsed),
                    "container",
                    "Image created",
                    f"image {tags} created",
                    entry.name,
                    pointer=f"{prefix}/Created",
                    container=container,
                    time_original=parsed.original,
                    clock=clocks.IMAGE,
                )


def process_events(ev: Evidence) -> Iterator[TimelineEvent]:
    for cited in ev.records(ProcessRecord):
        r = cited.record
        parsed = ev.parse_time(r.start_time)
        if parsed is None:
            continue
        stamp, clock = from_parsed(parsed), clocks.HOST
        if r.source == "procfs":  # boot time + ticks since boot: see ir.replay.clocks
            stamp, clock = clocks.tick_precision(stamp), clocks.BOOT
        flags = " [deleted executable]" if is_deleted(r) else ""
        text = f"pid {r.pid} ppid {r.ppid} user {r.user or r.uid}: {exe_path(r) or '?'}{flags}: {' '.join(r.cmdline) or r.name or ''}"
        yield TimelineEvent(
            stamp,
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
            clock=clock,
        )


def file_events(ev: Evidence) -> Iterator[TimelineEvent]:
    captured = ev.parse_time(ev.manifest.started_at)
    deletions = DeletionTimes()
    for cited in ev.records(FileChange):
        c = cited.record
        deletions.see(cited)
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
            details = [f"mode {c.mode}"] if c.mode else []
            details += [f"{c.size} bytes"] if c.size is not None else []
            what += f" ({', '.join(details)})" if details else ""

        rows: list[tuple[Stamp, str]] = []  # (time, what the time means)
        if c.change == "deleted":
            # never the deleted file's mtime (the image's): see ir.replay.files.DeletionTimes
            kind = deletions.kind(cited)
            if ctime is not None and kind != UNKNOWN_TIME:
                rows.append((from_parsed(ctime), DELETION_LABELS[kind][1]))
            elif captured is not None:
                yield TimelineEvent(
                    from_parsed(captured),
                    "file",
                    DELETION_LABELS[UNKNOWN_TIME][1],
                    what,
                    cited.artifact,
                    cited.line,
                    container=cited.container,
                    fields=fields,
                    time_note="no time: placed at capture start",
                    clock=_ir_clock(ev),
                    timed=False,
                )
        elif mtime is not None and ctime is not None and from_parsed(mtime) == from_parsed(ctime):
            rows.append((from_parsed(mtime), "File modified and inode changed (mtime = ctime)"))
        else:
            if mtime is not None:
                rows.append((from_parsed(mtime), "File content modified (mtime)"))
            if ctime is not None:
                rows.append((from_parsed(ctime), "File inode changed (ctime)"))
        for when_stamp, description in rows:
            yield TimelineEvent(
                when_stamp,
                "file",
                description,
                what,
                cited.artifact,
                cited.line,
                container=cited.container,
                fields=fields,
                clock=clocks.HOST,
            )


def _ir_clock(ev: Evidence) -> str:
    """ir's own times are the capture host's clock when ir captured on that host (a container
    capture); a pod capture's bundle is written on the machine that ran `ir capture pod`."""
    return clocks.HOST if ev.manifest.target.get("kind") == "container" else clocks.IR


# -- the alert and ir itself ---------------------------------------------------------------------


def alert_events(ev: Evidence) -> Iterator[TimelineEvent]:
    found = ev.alert()
    if not found:
        return
    entry, alert = found
    raw = alert.get("raw") if isinstance(alert.get("raw"), dict) else {}
    parsed, pointer = None, None
    for path in _ALERT_TIMES:
        parsed = ev.parse_time(dig(alert, *path))
        if parsed is not None:
            pointer = "/" + "/".join(path)
            break
    if parsed is None:
        ev.problem(f"{entry.name}: the alert has no readable time; not on the timeline")
        return
    stamp, original = from_parsed(parsed), parsed.original
    exact = _alert_ns(alert) if pointer == "/time" else None
    if exact is not None and exact.ns // 1000 == stamp.ns // 1000:
        stamp = exact  # the alert parser's own record of the digits the sender gave
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
        stamp,
        "alert",
        "Alert fired",
        text,
        entry.name,
        pointer=pointer,
        container=target.get("container"),
        time_original=original,
        fields={
            "alert_source": alert.get("source"),
            "rule": rule,
            "priority": alert.get("priority") or alert.get("severity"),
        },
        clock=clocks.ALERT,
    )


_PRECISION_NS = {"s": clocks.SECOND, "ms": clocks.MS, "us": clocks.US, "ns": clocks.NS}


def _alert_ns(alert: dict[str, Any]) -> Stamp | None:
    """`time_ns` and `time_precision`, which the alert parsers record beside `time` (a time
    written with six digits may have been milliseconds)."""
    ns, precision = alert.get("time_ns"), _PRECISION_NS.get(str(alert.get("time_precision")))
    if isinstance(ns, int) and not isinstance(ns, bool) and precision is not None and ns >= 0:
        return Stamp(ns - ns % precision, precision)
    return None


_ALERT_TIMES = (
    ("time",),
    ("timestamp",),
    ("startsAt",),
    ("raw", "time"),
    ("raw", "startsAt"),
    ("raw", "updatedAt"),
)


def ir_events(ev: Evidence) -> Iterator[TimelineEvent]:
    m = ev.manifest
    own = _ir_clock(ev)
    started = ev.parse_time(m.started_at)
    if started is not None:
        yield TimelineEvent(
            from_parsed(started),
            "ir",
            "ir capture started",
            f"capture started by {m.operator}: case {m.case_id}"
            + (f", reason: {m.reason}" if m.reason else ""),
            "manifest.json",
            pointer="/started_at",
            clock=own,
        )
    ended = ev.parse_time(m.ended_at)
    if ended is not None:
        yield TimelineEvent(
            from_parsed(ended),
            "ir",
            "ir capture sealed",
            f"bundle sealed: outcome {m.outcome}",
            "manifest.json",
            pointer="/ended_at",
            clock=own,
        )
    for i, action in enumerate(m.actions):
        parsed = ev.parse_time(action.time)
        if parsed is not None:
            detail = json.dumps(action.detail, sort_keys=True, default=str) if action.detail else ""
            yield TimelineEvent(
                from_parsed(parsed),
                "ir",
                "ir action during capture",
                f"{action.action} on {action.target}: {action.outcome} {detail}".strip(),
                "manifest.json",
                pointer=f"/actions/{i}",
                fields={"action": action.action, "outcome": action.outcome},
                clock=own,
            )
    for i, collector in enumerate(m.collectors):
        if collector.status in ("failed", "partial"):
            parsed = ev.parse_time(collector.ended_at or collector.started_at)
            if parsed is not None:
                yield TimelineEvent(
                    from_parsed(parsed),
                    "ir",
                    f"ir collector {collector.status}",
                    f"collector {collector.name} {collector.status}: {collector.error}",
                    "manifest.json",
                    pointer=f"/collectors/{i}",
                    container=collector.container,
                    clock=own,
                )
    writer_host = m.host.get("hostname") if isinstance(m.host, dict) else None
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
        host = record.get("host")
        hostname = host.get("hostname") if isinstance(host, dict) else host
        text = f"{record.get('action')} by {record.get('actor')} on {hostname}"
        if record.get("detail"):
            text += ": " + json.dumps(record["detail"], sort_keys=True, default=str)
        yield TimelineEvent(
            from_parsed(parsed),
            "ir",
            f"ir custody: {record.get('action')}",
            text,
            "custody",
            number,
            fields={"action": record.get("action"), "actor": record.get("actor")},
            clock=own if hostname and hostname == writer_host else clocks.CUSTODY,
        )
