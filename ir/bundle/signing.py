"""Signatures over manifests and custody records.

A `Signer` is anything with `key_id`, `algorithm`, `sign(data)` and `public_key_raw()`: an Ed25519
key file or environment variable (`Ed25519Signer`), or an AWS KMS asymmetric key that never leaves
KMS (`KmsSigner`: ECC_NIST_P256, ECDSA with SHA-256; `--signing-key awskms:KEY-ID-OR-ARN`).
Verification takes either kind of public key (`verify_with`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ir.errors import IrError, UsageError


class SigningError(IrError):
    """The signer (e.g. KMS) could not sign."""


ALGORITHM = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"  # what an AWS KMS ECC_NIST_P256 key signs with
ALGORITHMS = (ALGORITHM, ECDSA_P256)
KMS_PREFIX = "awskms:"
KMS_RAW_LIMIT = 4096
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
ENV_SIGNING_KEY = "IR_SIGNING_KEY"  # a path to a PEM private key, or the PEM text itself
ENV_VERIFY_KEY = "IR_VERIFY_KEY"  # a path to a PEM public key, or the PEM text itself


class Signer(Protocol):
    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key_raw(self) -> bytes: ...


def key_id_of(public_key: PublicKey) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        der = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "ecdsa-p256:" + hashlib.sha256(der).hexdigest()[:32]
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def verify_with(public_key: PublicKey, signature: bytes, data: bytes) -> None:
    """Raise InvalidSignature unless `signature` is the key's signature of `data`."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(signature, data)


def embedded_key(algorithm: str, raw: bytes) -> PublicKey:
    """The public key a signature document carries (raw Ed25519, or DER SPKI for ECDSA)."""
    if algorithm == ECDSA_P256:
        key = serialization.load_der_public_key(raw)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ValueError("not a P-256 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(raw)


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


def public_key_of(signer: Signer) -> PublicKey:
    """The public half of any signer (file or KMS key), as a verifier holds it."""
    return embedded_key(signer.algorithm, signer.public_key_raw())


class KmsSigner:
    """An AWS KMS asymmetric key (KeySpec ECC_NIST_P256, KeyUsage SIGN_VERIFY): ir sends the
    SHA-256 digest, KMS signs it (ECDSA_SHA_256); the private key never leaves KMS. Credentials,
    region and endpoint come the boto3 way ($AWS_PROFILE, $AWS_REGION, $AWS_ENDPOINT_URL...)."""

    algorithm = ECDSA_P256

    def __init__(self, key: str, client: Any = None) -> None:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        self.key = key
        self.client = client or boto3.client("kms")
        self._errors = (BotoCoreError, ClientError)
        try:
            doc = self.client.get_public_key(KeyId=key)
        except self._errors as exc:
            raise UsageError(f"KMS key {key}: {exc}") from None
        spec = doc.get("KeySpec") or doc.get("CustomerMasterKeySpec")  # older name, still sent
        if spec != "ECC_NIST_P256" or doc.get("KeyUsage") != "SIGN_VERIFY":
            raise UsageError(
                f"KMS key {key} is {spec}/{doc.get('KeyUsage')}: ir signs with "
                "ECC_NIST_P256 / SIGN_VERIFY keys"
            )
        self._der = bytes(doc["PublicKey"])
        self._public = embedded_key(ECDSA_P256, self._der)

    @property
    def key_id(self) -> str:
        return key_id_of(self._public)

    def public_key_raw(self) -> bytes:
        return self._der

    def sign(self, data: bytes) -> bytes:
        # KMS takes at most 4096 bytes RAW (it hashes them); longer data goes as its digest
        raw = len(data) <= KMS_RAW_LIMIT
        try:
            answer = self.client.sign(
                KeyId=self.key,
                Message=data if raw else hashlib.sha256(data).digest(),
                MessageType="RAW" if raw else "DIGEST",
                SigningAlgorithm="ECDSA_SHA_256",
            )
        except self._errors as exc:
            raise SigningError(f"KMS could not sign with {self.key}: {exc}") from None
        return bytes(answer["Signature"])


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


def load_signer(source: str | None) -> Ed25519Signer | KmsSigner | None:
    """A signer from a key path, PEM text or `awskms:KEY-ID-OR-ARN`, else from $IR_SIGNING_KEY,
    else None (unsigned)."""
    source = source or os.environ.get(ENV_SIGNING_KEY)
    if not source:
        return None
    if source.startswith(KMS_PREFIX):
        return KmsSigner(source[len(KMS_PREFIX) :])
    try:
        key = serialization.load_pem_private_key(_pem_from(source), password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"signing key is not a PEM Ed25519 private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError("signing key is not an Ed25519 key")
    return Ed25519Signer(key)


def load_public_key(source: str | None) -> PublicKey | None:
    source = source or os.environ.get(ENV_VERIFY_KEY)
    if not source:
        return None
    try:
        key = serialization.load_pem_public_key(_pem_from(source))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"public key is not a PEM public key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return key
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError("public key is neither Ed25519 nor ECDSA P-256 (AWS KMS ECC_NIST_P256)")
    return key


def signature_document(signer: Signer, data: bytes, signed: str = "manifest.json") -> bytes:
    """The `manifest.sig` member (or the detached signature of another document named
    `signed`, e.g. a case index): algorithm, key id, the public key (so the signature can be
    checked for consistency even without a trusted key at hand), and the signature in base64."""
    doc = {
        "algorithm": signer.algorithm,
        "key_id": signer.key_id,
        "public_key": base64.b64encode(signer.public_key_raw()).decode(),
        "signature": base64.b64encode(signer.sign(data)).decode(),
        "signed": signed,
    }
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


class KeyLookup(Protocol):
    """A trust store (ir.bundle.trust.TrustStore): the trusted key with this id, if any."""

    def get(self, key_id: str | None) -> PublicKey | None: ...


@dataclass
class SignatureCheck:
    # "valid": signed by a key of the verifier's trust store; "untrusted": the signature matches
    # the key embedded in the bundle, which is not a trusted key (proves integrity, not origin:
    # anyone can sign with a key of their own); "invalid"; "unsigned".
    status: str
    key_id: str | None = None
    detail: str = ""


def check_signature(
    sig_doc: bytes | None,
    data: bytes,
    trust: KeyLookup | None,
    signed: str = "manifest.json",
    what: str = "bundle",
) -> SignatureCheck:
    """The signature document `sig_doc` of `data` (the document named `signed`, the `what`'s):
    valid (a trusted key), untrusted (intact, by a key not trusted), invalid or unsigned."""
    if sig_doc is None:
        return SignatureCheck("unsigned", detail=f"{what} is unsigned: its origin cannot be proven")
    try:
        doc = json.loads(sig_doc)
        key_id = str(doc["key_id"])
        signature = base64.b64decode(doc["signature"], validate=True)
        algorithm = doc["algorithm"]
        if algorithm not in ALGORITHMS:
            return SignatureCheck(
                "invalid", key_id, f"unsupported signature algorithm {algorithm!r}"
            )
        embedded = embedded_key(algorithm, base64.b64decode(doc["public_key"], validate=True))
        if doc.get("signed") != signed:
            raise ValueError(f"signature does not name {signed}")
    except (ValueError, KeyError, TypeError) as exc:
        return SignatureCheck("invalid", detail=f"signature document is malformed: {exc}")
    if key_id_of(embedded) != key_id:
        return SignatureCheck("invalid", key_id, "key id does not match the embedded public key")
    trusted = trust.get(key_id) if trust is not None else None
    try:
        verify_with(trusted or embedded, signature, data)
    except InvalidSignature:
        return SignatureCheck("invalid", key_id, f"signature does not match {signed}")
    if trusted is None:
        return SignatureCheck(
            "untrusted",
            key_id,
            f"signed by {key_id}, which is not a trusted key"
            + ("" if trust else " (no trust store given: --trust FILE|DIR or $IR_TRUST)")
            + ": intact, origin not proven",
        )
    return SignatureCheck("valid", key_id, f"signed by trusted key {key_id}")
