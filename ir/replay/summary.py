"""The summary view: what was captured (target, times, collectors, containers) and key findings."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ir.clock import rfc3339
from ir.replay.evidence import Evidence, dig, label_of
from ir.replay.findings import Findings, find_all
from ir.replay.trust import Trust
from ir.store.local import describe_target


def build_summary(ev: Evidence, trust: Trust, findings: Findings | None = None) -> dict[str, Any]:
    """A JSON-ready document; `findings` computed here unless given."""
    m = ev.manifest
    findings = findings if findings is not None else find_all(ev)
    containers = []
    for name in ev.containers():
        inspect = ev.inspect(name)
        started = ev.container_started(name)
        status = ev.pod_container_status(name)
        containers.append(
            {
                "name": name,
                "image": dig(inspect, "Config", "Image") or dig(status, "image"),
                "image_id": dig(inspect, "Image") or dig(status, "imageID"),
                "started": rfc3339(started[0]) if started else None,
                "started_from": started[1] if started else None,
                "restarts": dig(status, "restartCount"),
                "artifacts": [a.name for a in m.artifacts if label_of(a) == name],
            }
        )
    pod = ev.pod()
    alert = ev.alert()
    return {
        "bundle": ev.display,
        "bundle_id": m.bundle_id,
        "case_id": m.case_id,
        "target": describe_target(m.target),
        "target_detail": m.target,
        "node": dig(pod, "spec", "nodeName"),
        "started_at": m.started_at,
        "ended_at": m.ended_at,
        "outcome": m.outcome,
        "operator": m.operator,
        "host": m.host.get("hostname"),
        "reason": m.reason,
        "tool": f"{m.tool.get('name', '')} {m.tool.get('version', '')}".strip(),
        "verification": trust.to_dict(),
        "collectors": [asdict(c) for c in m.collectors],
        "artifacts": {
            "count": len(m.artifacts),
            "bytes": sum(a.size for a in m.artifacts),
            "stored_bytes": sum(a.stored_size for a in m.artifacts),
            "not_ok": [
                {"name": a.name, "status": a.status, "error": a.error}
                for a in m.artifacts
                if a.status != "ok"
            ],
        },
        "containers": containers,
        "k8s_context": sorted(a.name for a in m.artifacts if a.name.startswith("k8s/")),
        "alert": None
        if alert is None
        else {
            "source": alert[1].get("source"),
            "rule": alert[1].get("rule"),
            "priority": alert[1].get("priority"),
            "time": alert[1].get("time"),
        },
        "actions": [asdict(a) for a in m.actions],
        "custody_records": len(ev.custody_lines),
        "findings": findings.to_dict(),
        "problems": list(ev.problems),
    }
