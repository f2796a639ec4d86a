"""The case index of a capture of many pods: one small JSON document (`ir.case-index/1`) that
lists what was selected, by whom and when, and per pod its bundle (location and root digest),
its outcome, what was done to it and what went wrong. It is stored in the same store as the
bundles, beside them (`<case>/case-index-<id>.json`, written once: ir.store's `put_document`),
and signed with the key that signs the bundles: a detached signature document beside it
(`….json.sig`, the same fields as a bundle's manifest.sig: algorithm, key id, public key,
base64 signature, and the name of the document it signs).

Since every bundle's root digest is in the signed index, the index binds the bundles of one run
together; each bundle stays whole and verifiable on its own.

By hand (Ed25519, OpenSSL 3):
    jq -r .signature case-index-ID.json.sig | base64 -d > index.sig
    openssl pkeyutl -verify -pubin -inkey ir-signing.pub -rawin -in case-index-ID.json -sigfile index.sig

`verify_index` reads one back: the index's signature, then every bundle it lists, end to end,
against the root digest the index records (`ir bundle verify-case`).

May import ir.bundle (signing, verify), ir.clock, ir.errors and ir.store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ir.bundle import signing
from ir.bundle.signing import KeyLookup, SignatureCheck, Signer
from ir.bundle.verify import origin_accepted
from ir.clock import utcnow
from ir.errors import BundleFormatError, ExitCode, IrError
from ir.store import open_bundle
from ir.store.base import Store

SCHEMA = "ir.case-index/1"
PREFIX = "case-index-"
SIGNATURE_SUFFIX = ".sig"


def new_index_id() -> str:
    """UTC time (sortable) and a random part: case-index-20261203T101500Z-3f2a9c1b.json."""
    return f"{utcnow():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def index_name(index_id: str) -> str:
    return f"{PREFIX}{index_id}.json"


def index_bytes(document: dict[str, Any]) -> bytes:
    """The stored form: sorted keys, two-space indent, one trailing newline (what is signed)."""
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return (text + "\n").encode()


def check_signature(
    signature: bytes | None, data: bytes, name: str, trust: KeyLookup | None
) -> SignatureCheck:
    """The same verdicts as a bundle's signature: valid (a trusted key), untrusted (intact, by a
    key not trusted), invalid, unsigned."""
    return signing.check_signature(signature, data, trust, signed=name, what="the case index")


@dataclass
class StoredIndex:
    """Where the index went, and whether the store confirmed it (and its signature)."""

    location: str
    sha256: str
    confirmed: bool
    spooled: str | None = None
    signature: str | None = None  # location of the signature document, when signed
    key_id: str | None = None
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return dict(vars(self))


def store_index(
    store: Store,
    case_id: str,
    index_id: str,
    document: dict[str, Any],
    signer: Signer | None,
) -> StoredIndex:
    """Write the index (then its signature) into the store, each once. Raises StoreError when
    neither the store nor the spool could take it."""
    name = index_name(index_id)
    data = index_bytes(document)
    stored = store.put_document(case_id, name, data)
    result = StoredIndex(
        stored.location,
        stored.root_digest,
        stored.confirmed,
        stored.spooled,
        warnings=list(stored.warnings),
    )
    if signer is not None:
        signed = store.put_document(
            case_id, name + SIGNATURE_SUFFIX, signing.signature_document(signer, data, name)
        )
        result.signature, result.key_id = signed.location, signer.key_id
        result.confirmed = result.confirmed and signed.confirmed
        result.warnings.extend(signed.warnings)
    return result


# -- reading one back: the index and every bundle it lists ----------------------------------------

MAX_INDEX_BYTES = 64 * 1024 * 1024  # an index of thousands of pods is a few MiB
NOT_CAPTURED, MISSING, UNREADABLE = "not-captured", "missing", "unreadable"


@dataclass
class PodCheck:
    """One pod of the index and what its bundle proved to be: a bundle verdict (valid, unsigned,
    untrusted, incomplete, tampered), or not-captured (the index records no bundle), missing (not
    found where the index says, nor beside the index) or unreadable (not a bundle)."""

    pod: str  # namespace/name
    recorded: str  # the outcome the index records for it
    verdict: str
    exit_code: int
    cause: str | None = None  # why exit_code is not 0
    location: str | None = None  # where the bundle was read
    report: dict[str, Any] | None = None  # `ir bundle verify -o json`'s document

    def describe(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class CaseCheck:
    """A case index checked: its signature, then every bundle against the root digest it records."""

    index: str
    document: dict[str, Any]
    signature: SignatureCheck
    pods: list[PodCheck]
    exit_code: int = 0
    errors: list[str] = field(default_factory=list)  # the causes, the deciding one last

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for pod in self.pods:
            found[pod.verdict] = found.get(pod.verdict, 0) + 1
        return found

    def describe(self) -> dict[str, Any]:
        doc = self.document
        return {
            "index": self.index,
            "index_id": doc.get("index_id"),
            "case_id": doc.get("case_id"),
            "signature": vars(self.signature),
            "pods": [p.describe() for p in self.pods],
            "counts": self.counts(),
            "exit_code": self.exit_code,
            "errors": self.errors,
        }


def read_index(path: Path) -> tuple[bytes, dict[str, Any], bytes | None]:
    """The index's bytes, its document, and its signature document (`<index>.sig` beside it;
    None when there is none). Raises BundleFormatError for what is not a case index."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_INDEX_BYTES + 1)
    except OSError as exc:
        raise BundleFormatError(f"{path}: cannot read the case index: {exc.strerror}") from None
    if len(data) > MAX_INDEX_BYTES:
        raise BundleFormatError(f"{path}: over {MAX_INDEX_BYTES} bytes: not a case index")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleFormatError(f"{path}: not JSON ({exc}): not a case index") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise BundleFormatError(f"{path}: not a case index (schema {SCHEMA} expected)")
    if not isinstance(document.get("pods"), list):
        raise BundleFormatError(f"{path}: case index without a list of pods")
    signature_path = path.with_name(path.name + SIGNATURE_SUFFIX)
    try:
        with signature_path.open("rb") as fh:
            signature: bytes | None = fh.read(1024 * 1024)
    except FileNotFoundError:
        signature = None
    except OSError as exc:
        raise BundleFormatError(f"{signature_path}: cannot read: {exc.strerror}") from None
    return data, document, signature


def verify_index(
    path: Path,
    trust: KeyLookup | None,
    *,
    allow_unsigned: bool = False,
    allow_untrusted: bool = False,
    progress: Callable[[int, int, PodCheck], None] | None = None,
    endpoint_url: str | None = None,
) -> CaseCheck:
    """Check the case index at `path` (its signature against `trust`) and every bundle it lists,
    end to end as `ir bundle verify` does, against the root digest the index records for it.
    A bundle is read where the index says (a path or an s3:// URI), or beside the index by its
    file name (a case directory copied elsewhere). The exit code is the worst: 1 when the index
    or a bundle is tampered, incomplete, missing or unreadable; 6 when every digest agrees but
    an origin is not proven (unless allowed); else 0. Raises BundleFormatError (exit 2) for an
    unusable index. `endpoint_url`: the S3 endpoint for bundles listed as s3:// URIs."""
    data, document, signature_doc = read_index(path)
    check = CaseCheck(
        str(path), document, check_signature(signature_doc, data, path.name, trust), []
    )
    pods = document["pods"]
    for number, pod in enumerate(pods, 1):
        result = _check_pod(pod, path.parent, trust, allow_unsigned, allow_untrusted, endpoint_url)
        check.pods.append(result)
        if progress is not None:
            progress(number, len(pods), result)
    failed: list[str] = []
    unproven: list[str] = []
    status = check.signature.status
    if status == "invalid":
        failed.append(f"the case index: {check.signature.detail}")
    elif not origin_accepted(
        status, allow_unsigned=allow_unsigned, allow_untrusted=allow_untrusted
    ):
        unproven.append(f"the case index: {check.signature.detail}")
    for pod in check.pods:
        if pod.exit_code == ExitCode.FAILED:
            failed.append(f"{pod.pod}: {pod.cause}")
        elif pod.exit_code:
            unproven.append(f"{pod.pod}: {pod.cause}")
    if failed:
        check.exit_code = int(ExitCode.FAILED)
        check.errors = unproven + failed
    elif unproven:
        check.exit_code = int(ExitCode.UNTRUSTED)
        check.errors = unproven
    return check


def _check_pod(
    pod: Any,
    here: Path,
    trust: KeyLookup | None,
    allow_unsigned: bool,
    allow_untrusted: bool,
    endpoint_url: str | None,
) -> PodCheck:
    if not isinstance(pod, dict):
        return PodCheck("?", "?", UNREADABLE, int(ExitCode.FAILED), "a pod entry is not an object")
    name = f"{pod.get('namespace')}/{pod.get('name')}"
    recorded = str(pod.get("outcome") or "unknown")
    bundle = pod.get("bundle")
    if not isinstance(bundle, dict) or not bundle.get("location"):
        return PodCheck(name, recorded, NOT_CAPTURED, 0)
    location = str(bundle["location"])
    digest = str(bundle.get("root_digest") or "")
    if not digest:
        return PodCheck(
            name, recorded, UNREADABLE, int(ExitCode.FAILED), "the index records no root digest"
        )
    where = _locate(location, here)
    if where is None:
        return PodCheck(
            name,
            recorded,
            MISSING,
            int(ExitCode.FAILED),
            f"bundle not found at {location} nor beside the index ({here / Path(location).name})",
        )
    try:
        with open_bundle(where, endpoint_url=endpoint_url) as handle:
            report = handle.verify(trust=trust, expected_digest=digest)
    except IrError as exc:
        return PodCheck(name, recorded, UNREADABLE, int(ExitCode.FAILED), str(exc), where)
    except OSError as exc:  # a read failing half-way (EIO): this bundle's verdict, not the run's
        cause = f"{where}: read failed: {exc.strerror or exc}"
        return PodCheck(name, recorded, UNREADABLE, int(ExitCode.FAILED), cause, where)
    policy = {"allow_unsigned": allow_unsigned, "allow_untrusted": allow_untrusted}
    return PodCheck(
        name,
        recorded,
        report.verdict,
        report.exit_code_for(**policy),
        report.cause(**policy),
        where,
        report.to_dict(),
    )


def _locate(location: str, here: Path) -> str | None:
    """Where to read a bundle the index lists: an s3:// URI as it is; a path beside the index
    (by its file name: one component, never a way out of the directory), else as recorded."""
    if "://" in location:
        return location
    try:
        beside = here / Path(location).name
        if beside.is_file():
            return str(beside)
        return location if Path(location).is_file() else None
    except (ValueError, OSError):  # a NUL byte, a name too long: not a file there
        return None
