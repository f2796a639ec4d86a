"""The chain-of-custody log: an append-only, hash-chained list of handlings of one bundle.

It lives beside the bundle (the bundle itself never changes after sealing): a `.custody.jsonl`
file locally, one object per record in S3. Each record names the bundle's root digest as seen by
the handler and the SHA-256 of the previous record, so a removed, reordered or edited record
breaks the chain. With a signing key each record is also signed.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature

from ir import TOOL_NAME, __version__
from ir.bundle.signing import KeyLookup, Signer, verify_with
from ir.clock import rfc3339, utcnow

LEGACY_GENESIS = "0" * 64  # before the first record was bound to its bundle


def genesis(bundle_id: str, root_digest: str) -> str:
    """What the first record's `prev` is: bound to the bundle, so a chain cannot be moved onto
    (re-rooted at) another bundle, nor a chain of another bundle passed off as this one's."""
    return hashlib.sha256(f"ir-custody-v1\0{bundle_id}\0{root_digest}".encode()).hexdigest()


MAX_RECORD = 1024 * 1024
ACTIONS = (
    "created",
    "stored",
    "uploaded",
    "copied",
    "downloaded",
    "verified",
    "extracted",
    "respond",
    "released",
    "opened",
)


class CustodyBackend(Protocol):
    def read_lines(self) -> list[bytes]: ...

    def append_line(self, line: bytes) -> None: ...


class FileCustody:
    """`<bundle>.custody.jsonl` beside a local bundle; appends are O_APPEND and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return [line for line in data.split(b"\n") if line]

    def append_line(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)


def operator_name(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("IR_OPERATOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def host_facts() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "pid": os.getpid()}


def append_record(
    backend: CustodyBackend,
    *,
    action: str,
    bundle_id: str,
    bundle_digest: str,
    actor: str | None = None,
    detail: dict[str, Any] | None = None,
    signer: Signer | None = None,
) -> dict[str, Any]:
    """Append one custody record and return it."""
    lines = backend.read_lines()
    prev = hashlib.sha256(lines[-1]).hexdigest() if lines else genesis(bundle_id, bundle_digest)
    record: dict[str, Any] = {
        "seq": len(lines) + 1,
        "time": rfc3339(utcnow()),
        "action": action,
        "actor": operator_name(actor),
        "host": socket.gethostname(),
        "tool": f"{TOOL_NAME} {__version__}",
        "bundle_id": bundle_id,
        "bundle_digest": bundle_digest,
        "detail": detail or {},
        "prev": prev,
    }
    if signer is not None:
        record["sig"] = {
            "key_id": signer.key_id,
            "signature": base64.b64encode(signer.sign(_canonical(record))).decode(),
        }
    backend.append_line(json.dumps(record, sort_keys=True, ensure_ascii=True, default=str).encode())
    return record


def _canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "sig"}
    return json.dumps(
        body, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str
    ).encode()


@dataclass
class CustodyCheck:
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signed: int = 0  # records carrying a signature
    trusted: int = 0  # ... by a key of the trust store, and it matches

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        unsigned = len(self.records) - self.signed
        return (
            f"{len(self.records)} record(s): {self.trusted} signed by a trusted key, "
            f"{self.signed - self.trusted} by other keys, {unsigned} unsigned"
            + ("" if self.ok else "; CHAIN BROKEN")
        )


def check_chain(
    lines: list[bytes],
    root_digest: str,
    trust: KeyLookup | None = None,
    bundle_id: str | None = None,
) -> CustodyCheck:
    """Check sequence, hash chain (from the bundle's genesis), digest and, for keys of the trust
    store, the signature of every record. A record signed by an unknown key or unsigned is not an
    error (anyone may handle a bundle) but is counted and named in the warnings."""
    result = CustodyCheck()
    prev = genesis(bundle_id, root_digest) if bundle_id else None
    for index, line in enumerate(lines, 1):
        where = f"custody record {index}"
        if len(line) > MAX_RECORD:
            result.errors.append(f"{where}: over {MAX_RECORD} bytes")
            break
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            result.errors.append(f"{where}: not valid JSON ({exc})")
            break
        result.records.append(record)
        if record.get("seq") != index:
            result.errors.append(
                f"{where}: sequence number {record.get('seq')!r}, expected {index}"
            )
        if index == 1 and record.get("prev") == LEGACY_GENESIS:
            result.warnings.append(
                "custody chain starts from the unbound all-zero genesis of older ir versions"
            )
        elif index == 1 and prev is not None and record.get("prev") != prev:
            result.errors.append(
                f"{where}: the chain does not start at this bundle's genesis (cut at its start, "
                "or re-rooted from another bundle)"
            )
        elif index > 1 and record.get("prev") != prev:
            result.errors.append(
                f"{where}: chain broken (previous record was removed, reordered or edited)"
            )
        if record.get("bundle_digest") != root_digest:
            result.errors.append(
                f"{where} ({record.get('action')} at {record.get('time')}): saw bundle digest "
                f"{record.get('bundle_digest')}, bundle has {root_digest}"
            )
        sig = record.get("sig")
        if sig is not None:
            result.signed += 1
            _check_record_signature(record, sig, trust, where, result)
        elif trust:
            result.warnings.append(f"{where} ({record.get('action')}) is unsigned")
        prev = hashlib.sha256(line).hexdigest()
    return result


def _check_record_signature(
    record: dict[str, Any], sig: Any, trust: KeyLookup | None, where: str, result: CustodyCheck
) -> None:
    try:
        key = trust.get(sig["key_id"]) if trust is not None else None
        if key is None:
            if trust:
                result.warnings.append(f"{where}: signed by a key not trusted ({sig['key_id']})")
            return
        verify_with(key, base64.b64decode(sig["signature"]), _canonical(record))
        result.trusted += 1
    except (InvalidSignature, KeyError, TypeError, ValueError):
        result.errors.append(f"{where}: signature does not match the record")
