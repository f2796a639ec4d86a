"""Key findings: the facts an investigator checks first, each citing the record it comes from.

Deliberately simple rules over the captured records (no scoring): a finding is a pointer to look,
not a verdict. The rules and their limits:
- deleted executables running: the process's exe link ends in " (deleted)" or was flagged so;
- processes started after the container: later than its start (inspect State.StartedAt, else pod
  status) plus a start-up grace, excluding the container's init (pid 1 in its namespace);
- listeners not declared: LISTEN (or unconnected UDP) ports missing from the pod spec's
  containerPorts of any container of the pod (they share one network namespace), or from the
  image's ExposedPorts when there is no pod;
- outbound connections: ESTABLISHED sockets whose direction is outbound by the rule of
  ir.replay.network (no listener of the same network namespace on their local port, and evidence
  they connected: the remote end is a listener here, or the kernel picked their port); one whose
  peer is a socket of the same namespace (a loopback "C2") is listed too, marked so, unless its
  remote port is declared (a sidecar calling its app's port).
  The accepted end of a connection is never here, even after its listener closed (`nc -l`); an
  end whose direction ir cannot tell is "unknown" in `net`, not listed here;
- files added or changed in binary, library and configuration directories;
- executables in /tmp, /var/tmp, /dev/shm (files, and processes running from there).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ir.records import FileChange
from ir.replay.evidence import Evidence
from ir.replay.files import in_binary_dir, in_temp_dir, is_executable
from ir.replay.network import ConnectionRow, connection_rows, declared_ports, endpoint
from ir.replay.processes import exe_path, process_rows

MAX_PER_KIND = 500

TITLES = {
    "deleted-exe": "Deleted executables running",
    "started-late": "Processes started after the container",
    "temp-dir-process": "Processes running from /tmp, /var/tmp or /dev/shm",
    "undeclared-listener": "Listeners not declared in the pod spec",
    "outbound": "Outbound connections",
    "binary-dir-file": "Files added or changed in binary/library/config directories",
    "temp-executable": "Executable files in /tmp, /var/tmp or /dev/shm",
}
SEVERITY = {
    "deleted-exe": "high",
    "temp-dir-process": "high",
    "undeclared-listener": "high",
    "outbound": "medium",
    "binary-dir-file": "medium",
    "temp-executable": "high",
    "started-late": "medium",
}


@dataclass
class Finding:
    kind: str
    summary: str  # one line, untrusted text inside (print with printable / escape in HTML)
    container: str | None
    cited: str  # artifact:line
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "severity": self.severity,
            "summary": self.summary,
            "container": self.container,
            "cited": self.cited,
            "detail": self.detail,
        }


@dataclass
class Findings:
    items: list[Finding] = field(default_factory=list)
    omitted: dict[str, int] = field(default_factory=dict)  # kind -> count beyond MAX_PER_KIND
    notes: list[str] = field(default_factory=list)
    _kept: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, finding: Finding) -> None:
        kept = self._kept.get(finding.kind, 0)
        if kept >= MAX_PER_KIND:
            self.omitted[finding.kind] = self.omitted.get(finding.kind, 0) + 1
        else:
            self._kept[finding.kind] = kept + 1
            self.items.append(finding)

    def by_kind(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = {kind: [] for kind in TITLES}
        for f in self.items:
            grouped[f.kind].append(f)
        return grouped

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [f.to_dict() for f in self.items],
            "omitted": self.omitted,
            "notes": self.notes,
            "counts": {k: len(v) + self.omitted.get(k, 0) for k, v in self.by_kind().items()},
        }


def find_all(ev: Evidence) -> Findings:
    """Every rule over every container. Streams fs-changes; holds process/socket tables."""
    result = Findings()
    for container in ev.containers():
        if ev.container_started(container) is None:
            result.notes.append(
                f"{container}: start time unknown (no inspect.json or pod status): "
                "'started after the container' not checked"
            )
    for row in process_rows(ev):
        r = row.record
        cmd = " ".join(r.cmdline) or r.name or ""
        what = f"pid {r.pid} ({r.user or r.uid}) {exe_path(r) or '?'}: {cmd}"
        for flag, kind in (
            ("deleted-exe", "deleted-exe"),
            ("started-late", "started-late"),
            ("temp-dir", "temp-dir-process"),
        ):
            if flag in row.flags:
                detail = {
                    "pid": r.pid,
                    "exe": r.exe,
                    "sha256": r.exe_sha256,
                    "start_time": r.start_time,
                    "cmdline": r.cmdline,
                }
                result.add(Finding(kind, what, row.cited.container, row.cited.citation, detail))
    declared = declared_ports(ev)
    if declared.basis == "none":
        result.notes.append(
            "no pod spec or image ports in the bundle: every listener is reported as undeclared"
        )
    # A pod's containers share a network namespace: the same socket shows in several tables.
    # Report it once, preferably from the container whose process owns it.
    best: dict[tuple[Any, ...], ConnectionRow] = {}
    for conn in connection_rows(ev):
        sock = conn.record
        key = (
            sock.proto,
            sock.local_addr,
            sock.local_port,
            sock.remote_addr,
            sock.remote_port,
            sock.inode,
        )
        for flag in conn.flags:
            held = best.get((flag, *key))
            if held is None or (
                held.owner_container != held.cited.container
                and conn.owner_container == conn.cited.container
            ):
                best[(flag, *key)] = conn
    for (flag, *_), conn in sorted(
        best.items(), key=lambda item: (item[1].cited.artifact, item[1].cited.line)
    ):
        sock = conn.record
        owner = conn.process or "unknown process"
        if flag == "undeclared-listener":
            what = (
                f"{sock.proto} {endpoint(sock.local_addr, sock.local_port)} by {owner} "
                f"(declared: {_ports(declared.ports)}; {declared.basis})"
            )
        else:
            what = (
                f"{sock.proto} {endpoint(sock.local_addr, sock.local_port)} -> "
                f"{endpoint(sock.remote_addr, sock.remote_port)} by {owner}"
                + (" (the peer is a socket of this network namespace)" if conn.peer_here else "")
            )
        result.add(Finding(flag, what, conn.cited.container, conn.cited.citation, conn.to_dict()))
    for container in ev.containers():
        for finding in _file_findings(ev, container):
            result.add(finding)
    return result


def _file_findings(ev: Evidence, container: str) -> Iterator[Finding]:
    for cited in ev.records(FileChange, container):
        c = cited.record
        if c.change == "deleted" or c.type == "dir":
            continue
        detail = {
            "path": c.path,
            "change": c.change,
            "type": c.type,
            "mode": c.mode,
            "size": c.size,
            "sha256": c.sha256,
            "mtime": c.mtime,
            "ctime": c.ctime,
            "captured": c.captured,
        }
        if in_binary_dir(c.path):
            what = f"{c.change} {c.type} {c.path}" + (
                f" -> {c.link_target}" if c.link_target else ""
            )
            yield Finding("binary-dir-file", what, container, cited.citation, detail)
        if in_temp_dir(c.path) and is_executable(c):
            yield Finding(
                "temp-executable",
                f"{c.change} {c.path} (mode {c.mode})",
                container,
                cited.citation,
                detail,
            )


def _ports(ports: set[tuple[str, int]]) -> str:
    return ", ".join(f"{p}/{f}" for f, p in sorted(ports, key=lambda x: (x[1], x[0]))) or "none"
