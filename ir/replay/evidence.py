"""Lenient, typed access to what one bundle holds: its containers, the records of each artifact
with their line numbers, and the JSON documents (inspect, pod, events, alert).

A bundle may be damaged or hostile (and replayed anyway with --force): a malformed line, a field
of the wrong type or an artifact that stops decompressing becomes a line in `problems`, never an
exception out of a view. Records are streamed; only small JSON documents are loaded whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypeVar

from ir.bundle.manifest import ArtifactEntry, Manifest
from ir.bundle.reader import BundleReader
from ir.clock import ParsedTime, parse_timestamp
from ir.errors import BundleFormatError, IntegrityError
from ir.records import FileChange, LogLine, ProcessRecord, Record, SocketRecord

R = TypeVar("R", bound=Record)

MAX_LINE = 16 * 1024 * 1024  # longer JSON lines are skipped (and reported), never buffered whole
MAX_DOCUMENT = 64 * 1024 * 1024  # pod.json, events.json, inspect.json: loaded whole, so bounded
# Docker reports "0001-01-01T00:00:00Z" for "never"; anything before this is treated as unset.
_EARLIEST_REAL = datetime(1980, 1, 1, tzinfo=UTC)


class Cited(NamedTuple, Generic[R]):
    """A record with where it came from: artifact name and 1-based line number. (A named tuple:
    one is made per log line, and a frozen dataclass costs twice as much.)"""

    record: R
    artifact: str
    line: int
    container: str | None

    @property
    def citation(self) -> str:
        return f"{self.artifact}:{self.line}"


class Evidence:
    """One opened bundle as replay sees it. `reader` must stay open while this is used."""

    def __init__(
        self, reader: BundleReader, *, display: str, custody_lines: list[bytes] | None = None
    ) -> None:
        self.reader = reader
        self.display = display
        self.custody_lines = custody_lines or []
        self.problems: list[str] = []
        self._documents: dict[str, Any] = {}

    # -- the manifest -------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self.reader.manifest

    @property
    def reference_time(self) -> datetime | None:
        """When the capture started: the year for year-less log stamps is taken from it."""
        return self.time_of(self.manifest.started_at)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def containers(self) -> list[str]:
        """Container labels: the `<name>` of `containers/<name>/...` artifacts (the pod's
        container name in a pod capture, whatever the runtime calls the container), plus
        containers that have collector entries but no artifacts (a capture that failed)."""
        labels = {label_of(a) for a in self.manifest.artifacts}
        aliases = {a.container for a in self.manifest.artifacts if a.container}
        labels |= {
            c.container
            for c in self.manifest.collectors
            if c.container and c.container not in aliases
        }
        return sorted(label for label in labels if label)

    def artifacts(self, kind: str, container: str | None = None) -> list[ArtifactEntry]:
        return [
            a
            for a in self.manifest.artifacts
            if a.kind == kind and (container is None or label_of(a) == container)
        ]

    def artifact(
        self, kind: str, name: str | None = None, container: str | None = None
    ) -> ArtifactEntry | None:
        """The artifact of `kind` (for a container), else the one named `name`, else None."""
        found = self.artifacts(kind, container)
        if found:
            return found[0]
        if name is not None:
            for entry in self.manifest.artifacts:
                if entry.name == name:
                    return entry
        return None

    # -- records ------------------------------------------------------------------------------
    def records(self, cls: type[R], container: str | None = None) -> Iterator[Cited[R]]:
        """Every record of `cls.KIND` (of one container, or all), artifact by artifact."""
        for entry in self.artifacts(cls.KIND, container):
            yield from self.records_of(cls, entry)

    def records_upto(
        self, cls: type[R], container: str | None, limit: int, what: str
    ) -> list[Cited[R]]:
        """The first `limit` records of `cls` (of one container, or all); past it, a problem
        says the rest of `what` is not shown."""
        kept: list[Cited[R]] = []
        for cited in self.records(cls, container):
            if len(kept) >= limit:
                self.problem(f"{cited.artifact}: more than {limit} {what}; the rest is not shown")
                break
            kept.append(cited)
        return kept

    def records_of(self, cls: type[R], entry: ArtifactEntry) -> Iterator[Cited[R]]:
        loader = _loader_for(cls)
        label = label_of(entry)
        bad: list[int] = []
        for number, raw in self.json_lines(entry):
            record = loader(raw) if isinstance(raw, dict) else None
            if record is None:
                bad.append(number)
                continue
            yield Cited(record, entry.name, number, label)
        if bad:
            self.problem(
                f"{entry.name}: {len(bad)} line(s) are not valid {cls.SCHEMA} records and were "
                f"skipped (first: line {bad[0]})"
            )

    def json_lines(self, entry: ArtifactEntry) -> Iterator[tuple[int, Any]]:
        """(line number, parsed JSON) of a JSON Lines artifact; bad lines are counted, skipped."""
        number = 0
        bad_json: list[int] = []
        try:
            with self.reader.open_artifact(entry) as fh:
                while True:
                    line = fh.readline(MAX_LINE)
                    if not line:
                        break
                    number += 1
                    if not line.endswith(b"\n") and len(line) >= MAX_LINE:
                        self.problem(
                            f"{entry.name}: line {number} is over {MAX_LINE} bytes; skipped"
                        )
                        while line and not line.endswith(b"\n"):
                            line = fh.readline(MAX_LINE)
                        continue
                    if not line.strip():
                        continue
                    try:
                        # str, not bytes: json.loads(bytes) sniffs the encoding every time; a line
                        # that is not UTF-8 is a bad line (UnicodeDecodeError is a ValueError)
                        value = json.loads(line.decode("utf-8"))
                    except (ValueError, RecursionError):
                        bad_json.append(number)
                        continue
                    yield number, value
        except (IntegrityError, BundleFormatError) as exc:
            self.problem(f"{entry.name}: read stopped at line {number}: {exc.message}")
        if bad_json:
            self.problem(
                f"{entry.name}: {len(bad_json)} line(s) are not JSON (first: line {bad_json[0]})"
            )

    # -- documents ----------------------------------------------------------------------------
    def document(
        self, kind: str, name: str | None = None, container: str | None = None
    ) -> tuple[ArtifactEntry, Any] | None:
        """A small JSON artifact, parsed (cached); None when absent or unreadable (a problem)."""
        entry = self.artifact(kind, name, container)
        if entry is None:
            return None
        if entry.name not in self._documents:
            try:
                self._documents[entry.name] = self.reader.read_json(entry, limit=MAX_DOCUMENT)
            except (IntegrityError, BundleFormatError) as exc:
                self.problem(f"{entry.name}: unreadable: {exc.message}")
                self._documents[entry.name] = None
        value = self._documents[entry.name]
        return None if value is None else (entry, value)

    def pod(self) -> dict[str, Any] | None:
        found = self.document("k8s-pod", "k8s/pod.json")
        return found[1] if found and isinstance(found[1], dict) else None

    def inspect(self, container: str) -> dict[str, Any] | None:
        found = self.document("container-inspect", None, container)
        return found[1] if found and isinstance(found[1], dict) else None

    def image(self, container: str) -> dict[str, Any] | None:
        found = self.document("image-inspect", None, container)
        return found[1] if found and isinstance(found[1], dict) else None

    def alert(self) -> tuple[ArtifactEntry, dict[str, Any]] | None:
        found = self.document("alert", "alert.json")
        return (found[0], found[1]) if found and isinstance(found[1], dict) else None

    def events(self) -> tuple[ArtifactEntry, list[tuple[str, dict[str, Any]]]] | None:
        """Kubernetes Event objects as served (a list, or an EventList with `items`), each with
        its JSON pointer in the document."""
        found = self.document("k8s-events", "k8s/events.json")
        if not found:
            return None
        entry, doc = found
        if isinstance(doc, dict) and isinstance(doc.get("items"), list):
            items, prefix = doc["items"], "/items/"
        elif isinstance(doc, list):
            items, prefix = doc, "/"
        else:
            self.problem(f"{entry.name}: neither a list of events nor an EventList")
            return None
        return entry, [(f"{prefix}{i}", e) for i, e in enumerate(items) if isinstance(e, dict)]

    # -- derived facts --------------------------------------------------------------------------
    def container_started(self, container: str) -> tuple[datetime, str] | None:
        """When the container (this instance) started, and where that was read."""
        inspect = self.inspect(container)
        started = self.time_of(dig(inspect, "State", "StartedAt"))
        if started is not None:
            return started, "inspect.json State.StartedAt"
        status = self.pod_container_status(container)
        for state in ("running", "terminated"):
            started = self.time_of(dig(status, "state", state, "startedAt"))
            if started is not None:
                return started, f"pod status containerStatuses[{container}].state.{state}.startedAt"
        return None

    def pod_container_status(self, container: str) -> dict[str, Any] | None:
        status = dig(self.pod(), "status")
        for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
            for item in as_list(dig(status, key)):
                if isinstance(item, dict) and item.get("name") == container:
                    return item
        return None

    def time_of(self, value: Any) -> datetime | None:
        """UTC time of an API or ir timestamp; None for absent, unparseable or "zero" times."""
        parsed = self.parse_time(value)
        return parsed.utc if parsed else None

    def parse_time(self, value: Any) -> ParsedTime | None:
        if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
            return None
        try:
            parsed = parse_timestamp(str(value))
        except ValueError:
            return None
        return parsed if parsed.utc >= _EARLIEST_REAL else None


def label_of(entry: ArtifactEntry) -> str | None:
    """The container an artifact belongs to, as replay names it: `web` for
    `containers/web/processes.jsonl` (the scope the capture chose), else the entry's container."""
    parts = entry.name.split("/")
    if len(parts) >= 3 and parts[0] == "containers":
        return parts[1]
    return entry.container


def dig(doc: Any, *path: str) -> Any:
    """doc[a][b]... for nested JSON objects, None as soon as a step is missing or not an object."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# -- typed records from untrusted dicts -------------------------------------------------------
# Record.from_dict trusts field types; a bundle is not trusted. Each field is checked against its
# annotation and replaced by its default when wrong (a required field that is wrong drops the
# record). Checks are precomputed per class: this runs on every log line.

_Check = tuple[str, str, Any, bool]  # name, base type, default (or MISSING), optional


def _checks_for(cls: type[Record]) -> list[_Check]:
    checks = []
    for f in fields(cls):  # type: ignore[arg-type]
        annotation = str(f.type)
        base = annotation.split("|")[0].strip().split("[")[0]
        if f.default is not MISSING:
            default: Any = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory
        else:
            default = MISSING
        checks.append((f.name, base, default, "None" in annotation))
    return checks


def _coerce(value: Any, base: str, optional: bool) -> tuple[bool, Any]:
    if value is None:
        return optional, None
    kind = type(value)
    if base == "str":
        if kind is str:
            return True, value
        if kind in (int, float):
            return True, str(value)
        return False, None
    if base == "int":
        if kind is int:
            return True, value
        if kind is str and value.strip().lstrip("-").isdigit():
            return True, int(value)
        return False, None
    if base == "bool":
        return (True, value) if kind is bool else (False, None)
    if base == "list":
        return (True, [str(v) for v in value]) if kind is list else (False, None)
    if base == "dict":
        return (True, {str(k): str(v) for k, v in value.items()}) if kind is dict else (False, None)
    return True, value


_LOADERS: dict[type[Record], Any] = {}


def _loader_for(cls: type[R]) -> Any:
    loader = _LOADERS.get(cls)
    if loader is None:
        checks = _checks_for(cls)

        def load(raw: dict[str, Any]) -> R | None:
            kwargs: dict[str, Any] = {}
            for name, base, default, optional in checks:
                if name in raw:
                    ok, value = _coerce(raw[name], base, optional)
                    if ok:
                        kwargs[name] = value
                        continue
                if default is MISSING:
                    if optional:
                        kwargs[name] = None
                        continue
                    return None
                # default factories (lists) are produced by the dataclass itself
            return cls(**kwargs)

        _LOADERS[cls] = loader = load
    return loader


def load_record(cls: type[R], raw: Any) -> R | None:
    """One record of `cls` from untrusted JSON, or None when a required field is unusable."""
    return _loader_for(cls)(raw) if isinstance(raw, dict) else None


__all__ = [
    "Cited",
    "Evidence",
    "FileChange",
    "LogLine",
    "ProcessRecord",
    "SocketRecord",
    "as_list",
    "dig",
    "load_record",
]
