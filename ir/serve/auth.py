"""Who may post alerts: a bearer token (`Authorization: Bearer …`), or an HMAC-SHA256 signature
of the body with a timestamp (`X-Ir-Timestamp: <unix seconds>`, `X-Ir-Signature: sha256=<hex>` of
"<timestamp>." + body), checked in constant time, with stale timestamps and replays refused."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

TIMESTAMP_HEADER = "X-Ir-Timestamp"
SIGNATURE_HEADER = "X-Ir-Signature"
MAX_REPLAY_ENTRIES = 200_000


def sign_body(secret: bytes, body: bytes, timestamp: float | None = None) -> dict[str, str]:
    """The headers a sender adds to sign `body` (for clients, tests and the benchmark)."""
    stamp = str(int(time.time() if timestamp is None else timestamp))
    digest = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"sha256={digest}"}


class Headers(Protocol):
    """Request headers (http.server's message object, or a dict in tests)."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class AuthDecision:
    ok: bool
    status: int = 200  # 401 unauthenticated, 403 replayed/stale
    reason: str = ""
    scheme: str = ""  # bearer | hmac | none
    needs_body: bool = False  # HMAC: call verify_body once the body is read


class Authenticator:
    def __init__(
        self,
        tokens: Sequence[str] = (),
        hmac_secrets: Sequence[bytes] = (),
        *,
        allow_unauthenticated: bool = False,
        tolerance: float = 300.0,
    ) -> None:
        self.tokens = tuple(t.encode() for t in tokens if t)
        self.secrets = tuple(s for s in hmac_secrets if s)
        self.allow_unauthenticated = allow_unauthenticated
        self.tolerance = tolerance
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.tokens or self.secrets)

    def check_headers(self, headers: Headers) -> AuthDecision:
        """First look, before the body is read: bearer tokens are settled here."""
        authorization = headers.get("Authorization")
        if authorization is not None:
            scheme, _, credential = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                return AuthDecision(False, 401, "unsupported Authorization scheme (use Bearer)")
            if not self.tokens:
                return AuthDecision(False, 401, "bearer tokens are not accepted by this server")
            offered = credential.strip().encode()
            # compare against every token, always, so timing says nothing about which matched
            matched = False
            for token in self.tokens:
                matched |= hmac.compare_digest(offered, token)
            if matched:
                return AuthDecision(True, scheme="bearer")
            return AuthDecision(False, 401, "invalid bearer token")
        if headers.get(SIGNATURE_HEADER) is not None:
            if not self.secrets:
                return AuthDecision(False, 401, "signed requests are not accepted by this server")
            return AuthDecision(True, scheme="hmac", needs_body=True)
        if self.allow_unauthenticated:
            return AuthDecision(True, scheme="none")
        return AuthDecision(False, 401, "authentication required (Bearer token or X-Ir-Signature)")

    def verify_body(self, headers: Headers, body: bytes, now: float | None = None) -> AuthDecision:
        """HMAC check of a signed request: signature, then freshness, then replay."""
        signature = (headers.get(SIGNATURE_HEADER) or "").strip()
        stamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
        if not signature.startswith("sha256=") or not stamp.isdigit() or len(stamp) > 12:
            return AuthDecision(False, 401, f"malformed {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
        offered = signature[len("sha256=") :].lower()
        matched = False
        for secret in self.secrets:
            expected = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            matched |= hmac.compare_digest(offered.encode(), expected.encode())
        if not matched:
            return AuthDecision(False, 401, "invalid signature")
        now = time.time() if now is None else now
        if abs(now - int(stamp)) > self.tolerance:
            return AuthDecision(
                False, 403, f"signature timestamp outside ±{self.tolerance:g}s (stale or replayed)"
            )
        with self._lock:
            self._expire(now)
            if offered in self._seen:
                return AuthDecision(False, 403, "replayed request (signature already used)")
            self._seen[offered] = int(stamp) + self.tolerance
            while len(self._seen) > MAX_REPLAY_ENTRIES:
                self._seen.popitem(last=False)
        return AuthDecision(True, scheme="hmac")

    def _expire(self, now: float) -> None:
        while self._seen:
            key, expiry = next(iter(self._seen.items()))
            if expiry >= now:
                break
            del self._seen[key]
