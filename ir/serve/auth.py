"""Who may post alerts: a bearer token (`Authorization: Bearer …`), or an HMAC-SHA256 signature
of the body with a timestamp (`X-Ir-Timestamp: <unix seconds>`, `X-Ir-Signature: sha256=<hex>` of
"<timestamp>." + body), checked in constant time, with stale timestamps and replays refused
(ir.serve.journal: in memory, or in a journal that survives a restart). /metrics on the alert
listener takes the bearer token only (a GET has no body to sign)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ir.serve.journal import UsedSignatures

TIMESTAMP_HEADER = "X-Ir-Timestamp"
SIGNATURE_HEADER = "X-Ir-Signature"


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
    status: int = 200  # 401 unauthenticated, 403 replayed/stale, 503 replay journal unwritable
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
        used: UsedSignatures | None = None,
    ) -> None:
        self.tokens = tuple(t.encode() for t in tokens if t)
        self.secrets = tuple(s for s in hmac_secrets if s)
        self.allow_unauthenticated = allow_unauthenticated
        self.tolerance = tolerance
        self.used = used if used is not None else UsedSignatures(tolerance)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens or self.secrets)

    def check_headers(self, headers: Headers) -> AuthDecision:
        """First look, before the body is read: bearer tokens are settled here."""
        authorization = headers.get("Authorization")
        if authorization is not None:
            return self._bearer(authorization)
        if headers.get(SIGNATURE_HEADER) is not None:
            if not self.secrets:
                return AuthDecision(False, 401, "signed requests are not accepted by this server")
            return AuthDecision(True, scheme="hmac", needs_body=True)
        if self.allow_unauthenticated:
            return AuthDecision(True, scheme="none")
        return AuthDecision(False, 401, "authentication required (Bearer token or X-Ir-Signature)")

    def check_scrape(self, headers: Headers) -> AuthDecision:
        """GET /metrics on the alert listener: the bearer token, as for alerts."""
        authorization = headers.get("Authorization")
        if authorization is not None:
            return self._bearer(authorization)
        if self.allow_unauthenticated:
            return AuthDecision(True, scheme="none")
        return AuthDecision(
            False,
            401,
            "/metrics needs a bearer token here; serve it unauthenticated with --metrics-listen",
        )

    def _bearer(self, authorization: str) -> AuthDecision:
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

    def verify_body(self, headers: Headers, body: bytes, now: float | None = None) -> AuthDecision:
        """HMAC check of a signed request: signature, then freshness, then replay (a request
        signed before what the replay state covers counts as possibly replayed)."""
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
        try:
            refused = self.used.claim(offered, int(stamp), now)
        except OSError as exc:
            return AuthDecision(
                False,
                503,
                f"cannot record the signature in the replay journal ({exc.strerror or exc})",
            )
        if refused:
            return AuthDecision(False, 403, refused)
        return AuthDecision(True, scheme="hmac")

    def close(self) -> None:
        self.used.close()
