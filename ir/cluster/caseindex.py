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

May import ir.bundle.signing, ir.clock, ir.errors and the store protocol.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from ir.bundle import signing
from ir.bundle.signing import KeyLookup, SignatureCheck, Signer
from ir.clock import utcnow
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
