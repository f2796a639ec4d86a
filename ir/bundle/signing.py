"""Ed25519 signatures over manifests and custody records.

A `Signer` is anything with `key_id`, `algorithm` and `sign(data)`: today a key file or
environment variable; a KMS-held key only needs another class with the same three members.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ir.errors import UsageError

ALGORITHM = "ed25519"
ENV_SIGNING_KEY = "IR_SIGNING_KEY"  # a path to a PEM private key, or the PEM text itself
ENV_VERIFY_KEY = "IR_VERIFY_KEY"  # a path to a PEM public key, or the PEM text itself


class Signer(Protocol):
    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key_raw(self) -> bytes: ...


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


@dataclass
class Ed25519Signer:
    private_key: Ed25519PrivateKey
    algorithm: str = ALGORITHM

    @property
    def key_id(self) -> str:
        return key_id_of(self.private_key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def public_key_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


def generate_keypair(directory: Path, name: str = "ir-signing") -> tuple[Path, Path]:
    """Write NAME.key (PEM PKCS#8, mode 0600) and NAME.pub; refuse to overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise UsageError(f"{path} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


def _pem_from(source: str) -> bytes:
    if source.lstrip().startswith("-----BEGIN"):
        return source.encode()
    path = Path(source).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read key {path}: {exc.strerror}") from None


def load_signer(source: str | None) -> Ed25519Signer | None:
    """A signer from a key path or PEM text, else from $IR_SIGNING_KEY, else None (unsigned)."""
    source = source or os.environ.get(ENV_SIGNING_KEY)
    if not source:
        return None
    try:
        key = serialization.load_pem_private_key(_pem_from(source), password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"signing key is not a PEM Ed25519 private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError("signing key is not an Ed25519 key")
    return Ed25519Signer(key)


def load_public_key(source: str | None) -> Ed25519PublicKey | None:
    source = source or os.environ.get(ENV_VERIFY_KEY)
    if not source:
        return None
    try:
        key = serialization.load_pem_public_key(_pem_from(source))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"public key is not a PEM Ed25519 public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError("public key is not an Ed25519 key")
    return key


def signature_document(signer: Signer, data: bytes) -> bytes:
    """The `manifest.sig` member: algorithm, key id, the public key (so the signature can be
    checked for consistency even without a trusted key at hand), and the signature in base64."""
    doc = {
        "algorithm": signer.algorithm,
        "key_id": signer.key_id,
        "public_key": base64.b64encode(signer.public_key_raw()).decode(),
        "signature": base64.b64encode(signer.sign(data)).decode(),
        "signed": "manifest.json",
    }
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


class KeyLookup(Protocol):
    """A trust store (ir.bundle.trust.TrustStore): the trusted key with this id, if any."""

    def get(self, key_id: str | None) -> Ed25519PublicKey | None: ...


@dataclass
class SignatureCheck:
    # "valid": signed by a key of the verifier's trust store; "untrusted": the signature matches
    # the key embedded in the bundle, which is not a trusted key (proves integrity, not origin:
    # anyone can sign with a key of their own); "invalid"; "unsigned".
    status: str
    key_id: str | None = None
    detail: str = ""


def check_signature(sig_doc: bytes | None, data: bytes, trust: KeyLookup | None) -> SignatureCheck:
    if sig_doc is None:
        return SignatureCheck("unsigned", detail="bundle is unsigned: its origin cannot be proven")
    try:
        doc = json.loads(sig_doc)
        key_id = str(doc["key_id"])
        signature = base64.b64decode(doc["signature"], validate=True)
        embedded = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(doc["public_key"], validate=True)
        )
        algorithm = doc["algorithm"]
        if doc.get("signed") != "manifest.json":
            raise ValueError("signature does not name manifest.json")
    except (ValueError, KeyError, TypeError) as exc:
        return SignatureCheck("invalid", detail=f"signature document is malformed: {exc}")
    if algorithm != ALGORITHM:
        return SignatureCheck("invalid", key_id, f"unsupported signature algorithm {algorithm!r}")
    if key_id_of(embedded) != key_id:
        return SignatureCheck("invalid", key_id, "key id does not match the embedded public key")
    trusted = trust.get(key_id) if trust is not None else None
    try:
        (trusted or embedded).verify(signature, data)
    except InvalidSignature:
        return SignatureCheck("invalid", key_id, "signature does not match manifest.json")
    if trusted is None:
        return SignatureCheck(
            "untrusted",
            key_id,
            f"signed by {key_id}, which is not a trusted key"
            + ("" if trust else " (no trust store given: --trust FILE|DIR or $IR_TRUST)")
            + ": intact, origin not proven",
        )
    return SignatureCheck("valid", key_id, f"signed by trusted key {key_id}")
