"""Should replay show this bundle? Verify it first (ir.bundle.verify), refuse a tampered or
incomplete one unless forced, and remember a verdict so a big bundle is not re-hashed on every view.

The cache (`$XDG_CACHE_HOME/ir/verified/`, default `~/.cache/ir/verified/`) holds one file per
bundle id + root digest, with the verdict per local file path, valid only while that file's size
and mtime are unchanged. Only the content checks are cached (every artifact's hashes, structure,
checksums, journal): the signature and the custody chain are cheap and are checked on every open,
because the trusted key given and the custody log beside the bundle may change. Remote (S3)
bundles are not cached: there is no local mtime to tie the verdict to.

Replay never writes to the bundle or its custody log: views are read-only (`ir bundle verify`
records custody).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ir import __version__
from ir.bundle import layout
from ir.bundle.custody import check_chain
from ir.bundle.signing import check_signature
from ir.bundle.trust import as_trust
from ir.bundle.verify import INCOMPLETE, TAMPERED, VALID, verify_bundle
from ir.clock import rfc3339, utcnow
from ir.errors import IntegrityError
from ir.store.base import BundleHandle

CACHE_VERSION = 1


@dataclass
class Trust:
    """The verdict replay acts on, and how it was reached."""

    verdict: str  # valid | incomplete | tampered: do the digests agree
    forced: bool = False
    signature_status: str = ""  # valid (a trusted key) | untrusted | unsigned | invalid
    key_id: str | None = None  # the key that signed it, when signed
    cached: bool = False
    how: str = (
        ""  # one line: "verified now: ..." or "cached verdict of ...: size and mtime unchanged"
    )
    bundle_id: str | None = None
    root_digest: str | None = None
    signature: str = ""  # status: detail
    custody: str = ""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.verdict == VALID

    @property
    def authentic(self) -> bool:
        """Signed by a key of the trust store."""
        return self.signature_status == "valid"

    @property
    def overall(self) -> str:
        """As `ir bundle verify` says it: valid (intact and authentic), unsigned, untrusted,
        incomplete or tampered."""
        if self.verdict != VALID or self.authentic:
            return self.verdict
        return "unsigned" if self.signature_status == "unsigned" else "untrusted"

    @property
    def label(self) -> str:
        return {
            VALID: "VERIFIED",
            "unsigned": "INTACT, UNSIGNED (origin not proven)",
            "untrusted": "INTACT, SIGNED BY A KEY NOT TRUSTED (origin not proven)",
            INCOMPLETE: "INCOMPLETE",
            TAMPERED: "TAMPERED",
        }.get(self.overall, "UNVERIFIED")

    def short(self) -> str:
        """The one line every page starts with: `verdict: valid (signed by <key id>, intact;
        cached)`. How it was reached, the signature's and the custody chain's details are for
        `--verdict-details` and `ir bundle verify`."""
        when = "cached" if self.cached else "verified now"
        if self.verdict != VALID:
            first = self.errors[0] if self.errors else "verification failed"
            more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            return f"verdict: {self.overall} ({first}{more}; shown because of --force; {when})"
        if self.authentic:
            who = f"signed by {self.key_id}"
        elif self.signature_status == "unsigned":
            who = "no signature: origin not proven"
        else:
            who = f"signed by {self.key_id}, not a trusted key: origin not proven"
        return f"verdict: {self.overall} ({who}, intact; {when})"

    def details(self) -> list[str]:
        """The long form: how the verdict was reached, the signature, the custody chain."""
        lines = [f"verified:  {self.label}: {self.how}", f"signature: {self.signature}"]
        lines.append(f"custody:   {self.custody}")
        lines += [f"FAIL:      {e}" for e in self.errors]
        lines += [f"warning:   {w}" for w in self.warnings]
        return lines

    def banner(self) -> str | None:
        """The warning every page carries when a bad bundle is shown anyway (None when valid)."""
        if self.valid:
            return None
        first = self.errors[0] if self.errors else "verification failed"
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return (
            f"{self.label} BUNDLE, shown because of --force: what follows may have been altered "
            f"or be incomplete. {first}{more}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.overall,
            "short": self.short(),
            "intact": self.verdict == VALID,
            "authentic": self.authentic,
            "forced": self.forced,
            "cached": self.cached,
            "how": self.how,
            "bundle_id": self.bundle_id,
            "root_digest": self.root_digest,
            "signature": self.signature,
            "key_id": self.key_id,
            "custody": self.custody,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ir" / "verified"


def establish_trust(
    handle: BundleHandle,
    *,
    public_key: Any = None,  # a TrustStore, one key, or None
    force: bool = False,
    use_cache: bool = True,
    directory: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Trust:
    """Verify (or recall the verdict of) one bundle. Raises IntegrityError (exit 1) for a bundle
    that is not valid unless `force`, and for a bundle without a manifest (nothing to replay)."""
    reader = handle.reader
    if not reader.sealed:
        raise IntegrityError(
            f"{handle.display}: bundle is incomplete: no manifest (the capture did not finish), so "
            "there is no index to replay; `ir bundle verify` lists what was journaled"
        )
    directory = directory or cache_dir()
    identity = _file_identity(handle)
    digest = reader.root_digest
    bundle_id = reader.manifest.bundle_id
    cached = _recall(directory, bundle_id, digest, identity) if use_cache and identity else None
    if cached is not None:
        trust = Trust(
            cached["verdict"],
            cached=True,
            bundle_id=bundle_id,
            root_digest=digest,
            errors=list(cached["errors"]),
            warnings=list(cached["warnings"]),
        )
        trust.how = (
            f"cached verdict from {cached['verified_at']} (no re-hash: file size and mtime "
            "unchanged; --reverify to hash again)"
        )
    else:
        started = time.monotonic()
        report = verify_bundle(reader, progress=progress)  # content only: key and custody below
        elapsed = time.monotonic() - started
        trust = Trust(
            report.integrity,  # who signed it is checked below, against the trust store
            bundle_id=bundle_id,
            root_digest=digest,
            errors=list(report.errors),
            warnings=list(report.warnings),
        )
        trust.how = (
            f"verified now: {report.artifacts_checked} artifacts, "
            f"{_size(report.bytes_checked)} hashed in {elapsed:.1f}s"
        )
        if identity is not None and use_cache:
            _remember(
                directory,
                bundle_id,
                digest,
                identity,
                {**report.to_dict(), "verdict": trust.verdict},
            )
    _check_signature_and_custody(handle, trust, public_key, digest)
    if not trust.valid:
        if not force:
            raise IntegrityError(
                f"{handle.display}: refusing to replay a {trust.verdict} bundle: "
                + "; ".join(trust.errors[:5])
                + ("; ..." if len(trust.errors) > 5 else "")
                + ". Use --force to view it anyway (every page will say so)."
            )
        trust.forced = True
    return trust


def _check_signature_and_custody(
    handle: BundleHandle, trust: Trust, public_key: Any, digest: str
) -> None:
    reader = handle.reader
    keys = as_trust(public_key)
    sig = check_signature(reader.signature_document(), reader.manifest_bytes, keys)
    trust.signature, trust.signature_status = f"{sig.status}: {sig.detail}", sig.status
    trust.key_id = sig.key_id
    if sig.status == "invalid":
        _fail(trust, TAMPERED, f"signature: {sig.detail}")
    try:
        lines = handle.custody.read_lines()
    except Exception as exc:  # noqa: BLE001 -- any store error: custody unknown, not fatal
        trust.custody = f"unreadable: {exc}"
        trust.warnings.append(f"custody log could not be read: {exc}")
        return
    chain = check_chain(lines, digest, keys, reader.manifest.bundle_id)
    chain.errors.extend(getattr(handle.custody, "rewritten", None) or [])  # seen by the store
    trust.custody = chain.summary()
    trust.warnings.extend(chain.warnings)
    for error in chain.errors:
        _fail(trust, TAMPERED, error)


def _fail(trust: Trust, verdict: str, message: str) -> None:
    trust.errors.append(message)
    if verdict == TAMPERED or trust.verdict == VALID:
        trust.verdict = verdict


def _file_identity(handle: BundleHandle) -> dict[str, Any] | None:
    if handle.local_path is None:
        return None
    try:
        path = handle.local_path.resolve()
        st = path.stat()
    except OSError:
        return None
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cache_file(directory: Path, bundle_id: str, digest: str) -> Path:
    return directory / f"{layout.safe_component(bundle_id)}-{digest}.json"


def _recall(
    directory: Path, bundle_id: str, digest: str, identity: dict[str, Any]
) -> dict[str, Any] | None:
    try:
        doc = json.loads(_cache_file(directory, bundle_id, digest).read_text())
        entry = doc["files"][identity["path"]]
        if (
            doc.get("version") != CACHE_VERSION
            or entry["size"] != identity["size"]
            or entry["mtime_ns"] != identity["mtime_ns"]
        ):
            return None
        if entry["verdict"] not in (VALID, INCOMPLETE, TAMPERED):
            return None
        return {
            "verdict": entry["verdict"],
            "errors": [str(e) for e in entry.get("errors", [])],
            "warnings": [str(w) for w in entry.get("warnings", [])],
            "verified_at": str(entry.get("verified_at")),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or one we cannot trust to be ours: verify again


def _remember(
    directory: Path, bundle_id: str, digest: str, identity: dict[str, Any], report: dict[str, Any]
) -> None:
    path = _cache_file(directory, bundle_id, digest)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            doc = json.loads(path.read_text())
            if not isinstance(doc.get("files"), dict):
                raise ValueError
        except (OSError, ValueError, AttributeError):
            doc = {
                "version": CACHE_VERSION,
                "bundle_id": bundle_id,
                "root_digest": digest,
                "files": {},
            }
        doc["files"][identity["path"]] = {
            "size": identity["size"],
            "mtime_ns": identity["mtime_ns"],
            "verdict": report["verdict"],
            "errors": report["errors"],
            "warnings": report["warnings"],
            "verified_at": rfc3339(utcnow()),
            "tool": f"ir {__version__}",
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home is no reason to refuse a view; the next open verifies again


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
