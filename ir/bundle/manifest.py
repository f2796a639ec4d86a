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
        if r.str("format") != FORMAT_NAME:
            raise BundleFormatError(f"not an ir bundle manifest (format {raw.get('format')!r})")
        version = r.int("format_version")
        if version != FORMAT_VERSION:
            raise BundleFormatError(f"unsupported bundle format version {version}")
        manifest = cls(
            bundle_id=r.str("bundle_id"),
            case_id=r.str("case_id"),
            target=r.dict("target"),
            tool={k: str(v) for k, v in r.dict("tool").items()},
            operator=r.str("operator"),
            host=r.dict("host"),
            started_at=r.str("started_at"),
            ended_at=r.opt_str("ended_at"),
            outcome=r.choice("outcome", OUTCOMES),
            reason=r.opt_str("reason"),
            labels={str(k): str(v) for k, v in r.dict("labels", {}).items()},
            header_sha256=r.hex64("header_sha256"),
            artifacts=[_artifact_from(a, i) for i, a in enumerate(r.list("artifacts"))],
            collectors=[_collector_from(c, i) for i, c in enumerate(r.list("collectors"))],
            actions=[_action_from(a, i) for i, a in enumerate(r.list("actions", []))],
        )
        names = [a.name for a in manifest.artifacts]
        if len(set(names)) != len(names):
            raise BundleFormatError("manifest lists an artifact name twice")
        return manifest


def _artifact_from(raw: Any, index: int) -> ArtifactEntry:
    r = _Fields(raw, f"artifacts[{index}]")
    entry = ArtifactEntry(
        name=check_artifact_name(r.str("name")),
        kind=r.str("kind"),
        media_type=r.str("media_type"),
        collector=r.str("collector"),
        status=r.choice("status", ARTIFACT_STATUSES),
        error=r.opt_str("error"),
        started_at=r.opt_str("started_at"),
        ended_at=r.opt_str("ended_at"),
        size=r.int("size"),
        sha256=r.hex64("sha256"),
        stored_size=r.int("stored_size"),
        stored_sha256=r.hex64("stored_sha256"),
        offset=r.int("offset"),
        compression=r.choice("compression", ("zstd",)),
        container=r.opt_str("container"),
        meta=r.dict("meta", {}),
    )
    return entry


def _collector_from(raw: Any, index: int) -> CollectorEntry:
    r = _Fields(raw, f"collectors[{index}]")
    return CollectorEntry(
        name=r.str("name"),
        status=r.choice("status", COLLECTOR_STATUSES),
        started_at=r.opt_str("started_at"),
        ended_at=r.opt_str("ended_at"),
        error=r.opt_str("error"),
        artifacts=[str(a) for a in r.list("artifacts", [])],
        container=r.opt_str("container"),
        notes=[str(n) for n in r.list("notes", [])],
    )


def _action_from(raw: Any, index: int) -> ActionEntry:
    r = _Fields(raw, f"actions[{index}]")
    return ActionEntry(
        time=r.str("time"),
        action=r.str("action"),
        target=r.str("target"),
        detail=r.dict("detail", {}),
        outcome=r.str("outcome") if "outcome" in raw else "ok",
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

    def str(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self._get(key, None)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def int(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 2**62:
            raise self._bad(key, "a non-negative integer")
        return value

    def hex64(self, key: str) -> str:
        value = self.str(key)
        if not _HEX64.match(value):
            raise self._bad(key, "a lowercase hex SHA-256")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.str(key)
        if value not in allowed:
            raise self._bad(key, "one of " + ", ".join(allowed))
        return value

    def dict(self, key: str, default: Any = _MISSING) -> dict[str, Any]:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return value

    def list(self, key: str, default: Any = _MISSING) -> list[Any]:
        value = self._get(key, default)
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value
