"""The manifest: what a bundle holds, how each artifact was made, and what was done to the target.

Parsing is strict: a manifest comes from a bundle that may have been tampered with.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ir.bundle.layout import FORMAT_NAME, FORMAT_VERSION, check_artifact_name
from ir.errors import BundleFormatError

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
ARTIFACT_STATUSES = ("ok", "partial", "failed")
COLLECTOR_STATUSES = ("ok", "partial", "failed", "skipped")
OUTCOMES = ("complete", "partial", "failed", "interrupted", "recovered")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class ArtifactEntry:
    """One artifact: how much, what digest, who made it, where it sits in the bundle file."""

    name: str
    kind: str
    media_type: str
    collector: str
    status: str = "ok"
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    size: int = 0  # uncompressed bytes
    sha256: str = ""  # of the uncompressed content
    stored_size: int = 0  # bytes of the zstd frame in the bundle
    stored_sha256: str = ""  # of the stored (compressed) bytes
    offset: int = 0  # where the stored bytes start in the bundle file
    compression: str = "zstd"
    container: str | None = None  # the container this artifact describes, if any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CollectorEntry:
    """One collector run: its status, the error text if it failed, the artifacts it made."""

    name: str
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    artifacts: list[str] = field(default_factory=list)
    container: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ActionEntry:
    """Something ir did to (or asked of) the target or its runtime while capturing."""

    time: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"


@dataclass
class Manifest:
    bundle_id: str
    case_id: str
    target: dict[str, Any]
    tool: dict[str, str]
    operator: str
    host: dict[str, Any]
    started_at: str
    ended_at: str | None = None
    outcome: str = "complete"
    reason: str | None = None
    artifacts: list[ArtifactEntry] = field(default_factory=list)
    collectors: list[CollectorEntry] = field(default_factory=list)
    actions: list[ActionEntry] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    header_sha256: str = ""  # of the header.json member, so every byte of the file is covered
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def artifact(self, name: str) -> ArtifactEntry:
        for entry in self.artifacts:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_bytes(self) -> bytes:
        return (
            json.dumps(asdict(self), indent=1, sort_keys=True, ensure_ascii=True) + "\n"
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise BundleFormatError(
                f"manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES} limit"
            )
        try:
            raw = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BundleFormatError(f"manifest is not valid JSON: {exc}") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> Manifest:
        r = _Fields(raw, "manifest")
        if r.text("format") != FORMAT_NAME:
            raise BundleFormatError(f"not an ir bundle manifest (format {raw.get('format')!r})")
        version = r.integer("format_version")
        if version != FORMAT_VERSION:
            raise BundleFormatError(f"unsupported bundle format version {version}")
        manifest = cls(
            bundle_id=r.text("bundle_id"),
            case_id=r.text("case_id"),
            target=r.obj("target"),
            tool={k: str(v) for k, v in r.obj("tool").items()},
            operator=r.text("operator"),
            host=r.obj("host"),
            started_at=r.text("started_at"),
            ended_at=r.opt_text("ended_at"),
            outcome=r.choice("outcome", OUTCOMES),
            reason=r.opt_text("reason"),
            labels={str(k): str(v) for k, v in r.obj("labels", {}).items()},
            header_sha256=r.hex64("header_sha256"),
            artifacts=[_artifact_from(a, i) for i, a in enumerate(r.seq("artifacts"))],
            collectors=[_collector_from(c, i) for i, c in enumerate(r.seq("collectors"))],
            actions=[_action_from(a, i) for i, a in enumerate(r.seq("actions", []))],
        )
        names = [a.name for a in manifest.artifacts]
        if len(set(names)) != len(names):
            raise BundleFormatError("manifest lists an artifact name twice")
        return manifest


def _artifact_from(raw: Any, index: int) -> ArtifactEntry:
    r = _Fields(raw, f"artifacts[{index}]")
    entry = ArtifactEntry(
        name=check_artifact_name(r.text("name")),
        kind=r.text("kind"),
        media_type=r.text("media_type"),
        collector=r.text("collector"),
        status=r.choice("status", ARTIFACT_STATUSES),
        error=r.opt_text("error"),
        started_at=r.opt_text("started_at"),
        ended_at=r.opt_text("ended_at"),
        size=r.integer("size"),
        sha256=r.hex64("sha256"),
        stored_size=r.integer("stored_size"),
        stored_sha256=r.hex64("stored_sha256"),
        offset=r.integer("offset"),
        compression=r.choice("compression", ("zstd",)),
        container=r.opt_text("container"),
        meta=r.obj("meta", {}),
    )
    return entry


def _collector_from(raw: Any, index: int) -> CollectorEntry:
    r = _Fields(raw, f"collectors[{index}]")
    return CollectorEntry(
        name=r.text("name"),
        status=r.choice("status", COLLECTOR_STATUSES),
        started_at=r.opt_text("started_at"),
        ended_at=r.opt_text("ended_at"),
        error=r.opt_text("error"),
        artifacts=[str(a) for a in r.seq("artifacts", [])],
        container=r.opt_text("container"),
        notes=[str(n) for n in r.seq("notes", [])],
    )


def _action_from(raw: Any, index: int) -> ActionEntry:
    r = _Fields(raw, f"actions[{index}]")
    return ActionEntry(
        time=r.text("time"),
        action=r.text("action"),
        target=r.text("target"),
        detail=r.obj("detail", {}),
        outcome=r.text("outcome") if "outcome" in raw else "ok",
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BundleFormatError(f"manifest has duplicate key {key!r}")
        result[key] = value
    return result


_MISSING = object()


class _Fields:
    """Typed access to a JSON object with errors that name the field."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            raise BundleFormatError(f"{where} must be an object")
        self.raw = raw
        self.where = where

    def _get(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self.raw:
            if default is _MISSING:
                raise BundleFormatError(f"{self.where}.{key} is missing")
            return default
        return self.raw[key]

    def _bad(self, key: str, what: str) -> BundleFormatError:
        return BundleFormatError(f"{self.where}.{key} must be {what}")

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, None)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 2**62:
            raise self._bad(key, "a non-negative integer")
        return value

    def hex64(self, key: str) -> str:
        value = self.text(key)
        if not _HEX64.match(value):
            raise self._bad(key, "a lowercase hex SHA-256")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise self._bad(key, "one of " + ", ".join(allowed))
        return value

    def obj(self, key: str, default: Any = _MISSING) -> dict[str, Any]:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return value

    def seq(self, key: str, default: Any = _MISSING) -> list[Any]:
        value = self._get(key, default)
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value
