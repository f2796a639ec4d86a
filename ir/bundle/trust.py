"""The keys a verifier trusts: who may have signed a bundle for it to be *authentic*.

A bundle is *intact* when every digest agrees; it is *authentic* only when its manifest is signed
by a key in the verifier's trust store. A signature by any other key proves nothing about origin
(anyone can sign a forged bundle with a key of their own), so it is reported as such, never as
valid. Keys come from files (PEM public keys), directories of them (`*.pub`, `*.pem`), or the
environment: $IR_TRUST (paths, `:`-separated) and $IR_VERIFY_KEY (a path or the PEM itself).
Keys are Ed25519 or ECDSA P-256 (AWS KMS), each known by its key id (`ed25519:` or `ecdsa-p256:`
and 32 hex of the key's SHA-256)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ir.bundle.signing import ENV_VERIFY_KEY, KeyLookup, PublicKey, key_id_of, load_public_key
from ir.errors import UsageError

ENV_TRUST = "IR_TRUST"
KEY_SUFFIXES = (".pub", ".pem")


@dataclass
class TrustStore:
    keys: dict[str, PublicKey] = field(default_factory=dict)  # by key id

    def add(self, key: PublicKey) -> None:
        self.keys[key_id_of(key)] = key

    def get(self, key_id: str | None) -> PublicKey | None:
        return self.keys.get(key_id or "")

    def __bool__(self) -> bool:
        return bool(self.keys)


def trust_of(key: PublicKey | None) -> TrustStore:
    """A trust store of one key (or none)."""
    store = TrustStore()
    if key is not None:
        store.add(key)
    return store


def as_trust(value: KeyLookup | PublicKey | None) -> KeyLookup | None:
    """What verifiers take: a trust store as it is, or one public key of either kind."""
    if isinstance(value, (Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        return trust_of(value)
    return value


def load_trust(sources: Iterable[str] = (), *, environment: bool = True) -> TrustStore:
    """Keys from each source (a PEM file, a directory of them, or PEM text), then, when
    `environment`, from $IR_TRUST and $IR_VERIFY_KEY. Raises UsageError for an unreadable key or
    one neither Ed25519 nor P-256, or a directory without keys."""
    store = TrustStore()
    given = list(sources)
    if environment:
        given += [p for p in os.environ.get(ENV_TRUST, "").split(os.pathsep) if p]
        if os.environ.get(ENV_VERIFY_KEY):
            given.append(os.environ[ENV_VERIFY_KEY])
    for source in given:
        path = Path(source).expanduser()
        if not source.lstrip().startswith("-----BEGIN") and path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in KEY_SUFFIXES and p.is_file())
            if not found:
                raise UsageError(f"trust directory {path} holds no *.pub or *.pem key")
            for key_path in found:
                store.add(_load(str(key_path)))
        else:
            store.add(_load(source))
    return store


def _load(source: str) -> PublicKey:
    key = load_public_key(source)
    assert key is not None  # a non-empty source always gives a key or raises
    return key


__all__ = ["ENV_TRUST", "TrustStore", "as_trust", "load_trust", "trust_of"]
