"""What differs between two bundles of the same workload (a suspect pod and its clean
replacement, or one pod captured twice): files, processes, connections and listeners.

Keys are chosen to survive what legitimately differs between two instances: files by container
and path (content compared by SHA-256, else size; mode, type and link target too; times never);
processes by executable and command line (never pid); outbound connections by protocol and
remote endpoint; inbound ones by local port and remote address (a client's ephemeral port always
differs); those of unknown direction by both endpoints; listeners by protocol and port. Containers pair by name, or as the only one.

Files stream: each side's fs-changes is sorted by (container, path) with bounded memory
(ir.replay.ordering.external_sorted) and merge-joined, so two huge diffs compare in one pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ir.records import FileChange, ProcessRecord
from ir.replay.evidence import Evidence
from ir.replay.network import connection_rows, endpoint, family, normal_addr
from ir.replay.ordering import external_sorted
from ir.replay.processes import exe_path, is_deleted

_COMPARED = ("change", "type", "sha256", "mode", "link_target")


@dataclass
class FileDelta:
    container: str
    path: str
    status: str  # only-a | only-b | differs
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    differs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "path": self.path,
            "status": self.status,
            "differs": self.differs,
            "a": self.a,
            "b": self.b,
        }


@dataclass
class CountDelta:
    kind: str  # process | connection | listener
    container: str
    key: str  # display form of the key
    a: int
    b: int

    @property
    def status(self) -> str:
        return "only-a" if not self.b else "only-b" if not self.a else "count"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "container": self.container,
            "key": self.key,
            "a": self.a,
            "b": self.b,
            "status": self.status,
        }


def pair_containers(a: Evidence, b: Evidence) -> list[tuple[str, str | None, str | None]]:
    """(label, container in A, container in B) for every container of either bundle."""
    names_a, names_b = a.containers(), b.containers()
    if len(names_a) == 1 and len(names_b) == 1:
        return [(names_a[0], names_a[0], names_b[0])]
    labels = sorted(set(names_a) | set(names_b))
    return [(n, n if n in names_a else None, n if n in names_b else None) for n in labels]


def diff_files(a: Evidence, b: Evidence, spill_dir: str | None = None) -> Iterator[FileDelta]:
    pairs = pair_containers(a, b)
    side_a = external_sorted(
        _file_rows(a, [(label, ca) for label, ca, _ in pairs]), _row_key, spill_dir=spill_dir
    )
    side_b = external_sorted(
        _file_rows(b, [(label, cb) for label, _, cb in pairs]), _row_key, spill_dir=spill_dir
    )
    ra, rb = next(side_a, None), next(side_b, None)
    while ra is not None or rb is not None:
        if rb is None or (ra is not None and _row_key(ra) < _row_key(rb)):
            assert ra is not None
            yield FileDelta(ra[0], ra[1], "only-a", ra[2], None)
            ra = next(side_a, None)
        elif ra is None or _row_key(rb) < _row_key(ra):
            yield FileDelta(rb[0], rb[1], "only-b", None, rb[2])
            rb = next(side_b, None)
        else:
            differs = [k for k in _COMPARED if ra[2].get(k) != rb[2].get(k)]
            if "sha256" in differs and (ra[2].get("sha256") is None or rb[2].get("sha256") is None):
                differs.remove("sha256")
                if ra[2].get("size") != rb[2].get("size"):
                    differs.append("size")
            if differs:
                yield FileDelta(ra[0], ra[1], "differs", ra[2], rb[2], differs)
            ra, rb = next(side_a, None), next(side_b, None)


_FileRow = tuple[str, str, dict[str, Any]]


def _row_key(row: _FileRow) -> tuple[str, str]:
    return row[0], row[1]


def _file_rows(ev: Evidence, containers: list[tuple[str, str | None]]) -> Iterator[_FileRow]:
    for label, name in containers:
        if name is None:
            continue
        for cited in ev.records(FileChange, name):
            c = cited.record
            yield (
                label,
                c.path,
                {
                    "change": c.change,
                    "type": c.type,
                    "sha256": c.sha256,
                    "size": c.size,
                    "mode": c.mode,
                    "link_target": c.link_target,
                    "mtime": c.mtime,
                    "cited": cited.citation,
                },
            )


def diff_processes(a: Evidence, b: Evidence) -> list[CountDelta]:
    deltas = []
    for label, ca, cb in pair_containers(a, b):
        count_a, count_b = _process_keys(a, ca), _process_keys(b, cb)
        deltas.extend(_count_deltas("process", label, count_a, count_b))
    return deltas


def _process_keys(ev: Evidence, container: str | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    if container is None:
        return counts
    for cited in ev.records(ProcessRecord, container):
        r = cited.record
        exe = (exe_path(r) or r.name or "?") + (" (deleted)" if is_deleted(r) else "")
        counts[f"{exe}  {' '.join(r.cmdline)}".rstrip()] += 1
    return counts


def diff_connections(a: Evidence, b: Evidence) -> list[CountDelta]:
    deltas = []
    for label, ca, cb in pair_containers(a, b):
        conns_a, listen_a = _connection_keys(a, ca)
        conns_b, listen_b = _connection_keys(b, cb)
        deltas.extend(_count_deltas("listener", label, listen_a, listen_b))
        deltas.extend(_count_deltas("connection", label, conns_a, conns_b))
    return deltas


def _connection_keys(ev: Evidence, container: str | None) -> tuple[Counter[str], Counter[str]]:
    conns: Counter[str] = Counter()
    listeners: Counter[str] = Counter()
    if container is None:
        return conns, listeners
    for row in connection_rows(ev, container):
        r = row.record
        fam = family(r.proto)
        if row.direction == "listen":
            listeners[f"{fam} {endpoint(r.local_addr, r.local_port)}"] += 1
        elif row.direction == "inbound":
            # the server side: the client's port is ephemeral, the served port is what matters
            conns[f"{fam} inbound to port {r.local_port} from {normal_addr(r.remote_addr)}"] += 1
        elif row.direction == "outbound":
            conns[f"{fam} outbound to {endpoint(r.remote_addr, r.remote_port)}"] += 1
        elif row.direction == "unknown":
            conns[
                f"{fam} unknown direction {endpoint(r.local_addr, r.local_port)} <-> "
                f"{endpoint(r.remote_addr, r.remote_port)}"
            ] += 1
    return conns, listeners


def _count_deltas(kind: str, label: str, a: Counter[str], b: Counter[str]) -> list[CountDelta]:
    return [
        CountDelta(kind, label, key, a[key], b[key])
        for key in sorted(set(a) | set(b))
        if a[key] != b[key]
    ]
