"""Settings of `ir serve`, checked once at start (unsafe combinations are refused, not warned):
alerts reach a non-loopback address only over TLS (or with allow_insecure_http), and
unauthenticated alerts only a loopback address."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from ir.errors import UsageError
from ir.playbook.alerts.decode import MAX_BYTES, MAX_DEPTH
from ir.playbook.k8snames import PROTECTED_NAMESPACES


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tokens: tuple[str, ...] = ()
    hmac_secrets: tuple[bytes, ...] = ()
    allow_unauthenticated: bool = False  # only ever honoured on a loopback address
    hmac_tolerance: float = 300.0
    max_body: int = MAX_BYTES
    max_depth: int = MAX_DEPTH
    max_connections: int = 256
    request_timeout: float = 10.0  # per socket read/write: slow clients are cut off
    queue_size: int = 1000
    workers: int = 4
    dedupe_window: float = 600.0
    rate_limit: int = 5  # runs per target per rate_window; 0 disables
    rate_window: float = 60.0
    shutdown_grace: float = 30.0
    protected_namespaces: tuple[str, ...] = field(default_factory=lambda: PROTECTED_NAMESPACES)
    operator: str = "ir-serve"
    tls_cert: str | None = None  # PEM chain and key: HTTPS, reloaded when the files change
    tls_key: str | None = None
    allow_insecure_http: bool = False  # plain HTTP on a non-loopback address (TLS ends earlier)
    metrics_listen: tuple[str, int] | None = None  # plain HTTP /metrics /healthz /readyz
    replay_state: str | None = None  # journal of used HMAC signatures, survives a restart
    cluster_name: str | None = None  # this cluster's name: node actions on alerts naming one
    # durable runs (ir.playbook.runstate): this replica's name (the pod's), how long a claim
    # lasts without renewal, how often the run store is scanned, how long finished runs are kept
    replica: str = field(default_factory=socket.gethostname)
    run_lease: float = 60.0
    run_scan_interval: float = 5.0
    run_ttl: float = 7 * 86400.0

    def validate(self) -> None:
        """Raise UsageError on settings that would make the server unsafe or unusable."""
        if self.allow_unauthenticated and not is_loopback(self.host):
            # also with tokens: the flag would let requests without credentials through
            raise UsageError(f"--insecure-no-auth refused: {self.host} is not a loopback address")
        if not (self.tokens or self.hmac_secrets or self.allow_unauthenticated):
            raise UsageError(
                "ir serve needs a bearer token (IR_SERVE_TOKEN / --token-file) or an HMAC "
                "secret (IR_SERVE_HMAC_SECRET / --hmac-secret-file); "
                "--insecure-no-auth is accepted only on a loopback address"
            )
        self._validate_transport()
        if any(len(t) < 16 for t in self.tokens):
            raise UsageError("bearer tokens must be at least 16 characters")
        if any(len(s) < 16 for s in self.hmac_secrets):
            raise UsageError("HMAC secrets must be at least 16 bytes")
        checks = [
            (0 <= self.port <= 65535, "port must be 0-65535"),
            (1 <= self.workers <= 256, "workers must be 1-256"),
            (1 <= self.queue_size <= 1_000_000, "queue size must be 1-1000000"),
            (1024 <= self.max_body <= 64 * 1024 * 1024, "max body must be 1 KiB - 64 MiB"),
            (1 <= self.max_connections <= 10_000, "max connections must be 1-10000"),
            (self.dedupe_window >= 0, "dedupe window must be >= 0"),
            (
                self.rate_limit >= 0 and self.rate_window > 0,
                "rate limit must be >= 0 per a window > 0",
            ),
            (self.shutdown_grace >= 0, "shutdown grace must be >= 0"),
            (self.request_timeout > 0, "request timeout must be > 0"),
            (2.0 <= self.run_lease <= 3600, "run lease must be 2-3600 seconds"),
            (
                0.1 <= self.run_scan_interval <= self.run_lease,
                "run scan interval must be 0.1 s up to the run lease",
            ),
            (self.run_ttl >= 60, "run TTL must be >= 60 seconds"),
            (
                bool(self.replica) and "/" not in self.replica and len(self.replica) <= 253,
                "replica name must be 1-253 characters without '/'",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def _validate_transport(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise UsageError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
        if not self.tls_cert and not self.allow_insecure_http and not is_loopback(self.host):
            raise UsageError(
                f"refusing plain HTTP on {self.host}: alerts and credentials would cross the "
                "network unencrypted; give --tls-cert and --tls-key (or --tls-dir), or "
                "--allow-insecure-http when TLS ends before ir serve (e.g. a mesh sidecar)"
            )
        if self.metrics_listen is not None:
            port = self.metrics_listen[1]
            if not 0 <= port <= 65535:
                raise UsageError("metrics port must be 0-65535")
            if port and port == self.port:
                raise UsageError(f"--metrics-listen port {port} is the alert listener's port")
