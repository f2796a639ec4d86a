"""The HTTP side of `ir serve` (standard library http.server): POST /v1/alerts[/<source>],
GET /healthz, /readyz, /metrics. Every refusal has its status and reason, and is audited.

Listeners (ir.serve.listener): the alert listener (HTTPS when a certificate is configured, the
certificate reloaded on rotation) and, when configured, a plain-HTTP metrics listener for
Prometheus and probes (/metrics, /healthz, /readyz only; it takes no alerts). On the alert listener
/metrics then answers 404; without a metrics listener it needs the bearer token. /healthz and
/readyz never need credentials (kubelet probes).

Statuses: 202 queued; 200 nothing to do (duplicate, resolved, unmatched); 400 malformed body;
401 missing/bad credentials; 403 replayed or stale signature, or signed before what the replay
state covers; 404/405 wrong path or method; 411 no Content-Length (chunked refused); 413 body too
large; 415 not JSON; 422 target refused (invalid names, protected namespace); 429 rate-limited;
503 queue full, shutting down, or the replay journal not writable.
"""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from ir.errors import IrError, UsageError
from ir.playbook.actions import ResponseActions
from ir.playbook.alerts import AlertError, parse_alerts, source_names
from ir.playbook.audit import AuditLog
from ir.playbook.engine import Engine
from ir.playbook.notify import WebhookNotifier
from ir.playbook.spec import Playbook
from ir.serve.auth import Authenticator
from ir.serve.config import ServeConfig
from ir.serve.intake import Intake, Job, response_status
from ir.serve.journal import UsedSignatures
from ir.serve.listener import Listener
from ir.serve.metrics import CONTENT_TYPE, LATENCY_BUCKETS, RUN_BUCKETS, Metrics
from ir.serve.tls import ReloadingContext, TlsFiles, TlsLoad
from ir.serve.workers import WorkerPool

ALERTS_PATH = "/v1/alerts"
MAX_DECISIONS_SHOWN = 100
ALERTS = "alerts"  # listener roles
METRICS = "metrics"
MAX_METRICS_CONNECTIONS = 16  # Prometheus and probes; a flood there takes no alert connections


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # sender's delayed ACK hold each keep-alive response for ~40 ms
    disable_nagle_algorithm = True
    server_version = "ir-serve"
    sys_version = ""
    app: AlertServer  # app and role are bound per listener (AlertServer._bind)
    role: str

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- http.server's name
        pass  # every decision is in the audit log; no free-form access log with untrusted text

    # -- replies --------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # Counted before the answer leaves: a client that has its answer sees it counted (the
        # metrics test read /metrics between the two once the machine was busy).
        path = self.path.split("?", 1)[0]
        shown = (
            path
            if path in ("/healthz", "/readyz", "/metrics") or path.startswith(ALERTS_PATH)
            else "other"
        )
        self.app.metrics.inc("ir_serve_http_requests_total", path=shown[:40], code=str(status))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(
        self,
        status: int,
        document: dict[str, Any],
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        body = json.dumps(document, sort_keys=True, ensure_ascii=True).encode() + b"\n"
        self._send(status, body, "application/json", headers, close)

    def _refuse(
        self,
        status: int,
        reason: str,
        request_id: str,
        *,
        close: bool = True,
        headers: dict[str, str] | None = None,
        **audit: Any,
    ) -> None:
        self.app.audit.record(
            "request",
            request_id=request_id,
            remote=self.client_address[0],
            path=self.path[:200],
            status=status,
            decision="refused",
            reason=reason,
            **audit,
        )
        self._json(
            status,
            {"request_id": request_id, "error": reason},
            {"X-Request-Id": request_id, **(headers or {})},
            close=close,
        )

    # -- GET ------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        app = self.app
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok = app.workers.alive()
            self._json(200 if ok else 500, {"status": "ok" if ok else "workers died"})
        elif path == "/readyz":
            ready, reason = app.readiness()
            self._json(200 if ready else 503, {"ready": ready, "reason": reason})
        elif path == "/metrics":
            if self._may_scrape():
                self._send(200, app.metrics.render().encode(), CONTENT_TYPE)
        else:
            self._json(404, {"error": "not found"})

    def _may_scrape(self) -> bool:
        """True on the metrics listener; on the alert listener answers 404 (a metrics listener is
        configured) or checks the bearer token, and answers the refusal itself."""
        app = self.app
        if self.role == METRICS:
            return True
        if app.config.metrics_listen is not None:
            self._json(404, {"error": "not found"})
            return False
        auth = app.authenticator.check_scrape(self.headers)
        if not auth.ok:
            self._refuse(
                auth.status,
                auth.reason,
                uuid.uuid4().hex[:16],
                close=False,
                headers={"WWW-Authenticate": 'Bearer realm="ir"'},
            )
        return auth.ok

    do_HEAD = do_GET

    def do_PUT(self) -> None:  # noqa: N802
        self._json(405, {"error": "method not allowed"}, {"Allow": "GET, POST"}, close=True)

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    # -- POST -----------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        started = time.perf_counter()
        received = time.monotonic()
        request_id = uuid.uuid4().hex[:16]
        try:
            self._post(request_id, received)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 -- never a traceback to the client, never a dead thread
            self.app.audit.record(
                "internal-error", request_id=request_id, error=f"{type(exc).__name__}: {exc}"
            )
            print(
                f"ir serve: internal error on request {request_id}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            try:
                self._json(500, {"request_id": request_id, "error": "internal error"}, close=True)
            except OSError:
                self.close_connection = True
        finally:
            self.app.metrics.observe("ir_serve_accept_seconds", time.perf_counter() - started)

    def _post(self, request_id: str, received: float) -> None:
        app = self.app
        path = self.path.split("?", 1)[0].rstrip("/")
        source: str | None = None
        if self.role == METRICS:
            self._refuse(404, "the metrics listener takes no alerts", request_id)
            return
        if path != ALERTS_PATH:
            prefix = ALERTS_PATH + "/"
            if not path.startswith(prefix) or path[len(prefix) :] not in source_names():
                self._refuse(
                    404,
                    "unknown path; POST to /v1/alerts or /v1/alerts/<"
                    + "|".join(source_names())
                    + ">",
                    request_id,
                )
                return
            source = path[len(prefix) :]
        if app.intake.draining:
            self._refuse(503, "server is shutting down", request_id, headers={"Retry-After": "5"})
            return
        auth = app.authenticator.check_headers(self.headers)
        if not auth.ok:
            self._refuse(
                auth.status,
                auth.reason,
                request_id,
                headers={"WWW-Authenticate": 'Bearer realm="ir"'},
            )
            return
        if self.headers.get("Transfer-Encoding"):
            self._refuse(
                411, "chunked or encoded bodies are not accepted: send Content-Length", request_id
            )
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._refuse(411, "Content-Length required", request_id)
            return
        if not length_text.strip().isdigit():
            self._refuse(400, "invalid Content-Length", request_id)
            return
        length = int(length_text)
        if length > app.config.max_body:
            self._refuse(
                413,
                f"body of {length} bytes exceeds the limit of {app.config.max_body} bytes",
                request_id,
                bytes=length,
            )
            return
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            self._refuse(415, "Content-Type must be application/json", request_id)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self._refuse(400, f"body ended after {len(body)} of {length} bytes", request_id)
            return
        if auth.needs_body:
            verdict = app.authenticator.verify_body(self.headers, body)
            if not verdict.ok:
                retry = {"Retry-After": "5"} if verdict.status == 503 else {}
                self._refuse(verdict.status, verdict.reason, request_id, close=False, headers=retry)
                return
        try:
            alerts = parse_alerts(
                body, source, max_bytes=app.config.max_body, max_depth=app.config.max_depth
            )
        except AlertError as exc:
            self._refuse(400, exc.message, request_id, close=False, bytes=length, auth=auth.scheme)
            return
        decisions = app.intake.submit(
            alerts, request_id=request_id, remote=self.client_address[0], received_at=received
        )
        status = response_status(decisions)
        headers = {"X-Request-Id": request_id}
        if status in (429, 503):
            headers["Retry-After"] = "5" if status == 503 else str(int(app.config.rate_window))
        self._json(
            status,
            {
                "request_id": request_id,
                "accepted": sum(1 for d in decisions if d.decision == "queued"),
                "alerts": [d.to_dict() for d in decisions[:MAX_DECISIONS_SHOWN]],
                "truncated": max(0, len(decisions) - MAX_DECISIONS_SHOWN),
            },
            headers,
        )


class AlertServer:
    """The whole server: `start()`, then `shutdown()` (or `run_until_signal()` from the CLI)."""

    def __init__(
        self,
        config: ServeConfig,
        playbooks: Sequence[Playbook],
        actions: ResponseActions,
        *,
        audit: AuditLog | None = None,
        metrics: Metrics | None = None,
        dry_run_actions: ResponseActions | None = None,
        notifier: WebhookNotifier | None = None,
        dry_run: bool = False,
    ) -> None:
        config.validate()
        if not playbooks:
            raise UsageError("ir serve needs at least one playbook")
        self.config = config
        self.playbooks = list(playbooks)
        self.audit = audit or AuditLog()
        self.metrics = metrics or _metrics()
        self.engine = Engine(
            actions,
            dry_run_actions=dry_run_actions,
            notifier=notifier,
            audit=self.audit,
            operator=config.operator,
            protected_namespaces=config.protected_namespaces,
            dry_run=dry_run,
            cluster_name=config.cluster_name,
        )
        self.work: queue.Queue[Job] = queue.Queue(config.queue_size)
        self.intake = Intake(config, self.playbooks, self.work, self.audit, self.metrics)
        self.workers = WorkerPool(self.engine, self.work, config.workers, self.audit, self.metrics)
        self.tls = (
            ReloadingContext(TlsFiles(Path(config.tls_cert), Path(config.tls_key)), self._tls_load)
            if config.tls_cert and config.tls_key
            else None
        )
        self.authenticator = Authenticator(  # opened last: it holds the journal open
            config.tokens,
            config.hmac_secrets,
            allow_unauthenticated=config.allow_unauthenticated,
            tolerance=config.hmac_tolerance,
            used=UsedSignatures(config.hmac_tolerance, config.replay_state),
        )
        self._httpd: Listener | None = None  # the alert listener
        self._metrics_httpd: Listener | None = None
        self._stopped = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shutdown_report: dict[str, Any] | None = None
        self.metrics.gauge("ir_serve_queue_depth", "Runs waiting for a worker.", self.work.qsize)
        self.metrics.gauge(
            "ir_serve_queue_capacity", "Size of the bounded work queue.", lambda: config.queue_size
        )
        self.metrics.gauge(
            "ir_serve_workers_busy", "Workers running a playbook.", lambda: self.workers.busy
        )
        self.metrics.gauge("ir_serve_workers", "Size of the worker pool.", lambda: config.workers)
        self.metrics.gauge(
            "ir_serve_ready",
            "1 when accepting alerts.",
            lambda: 1.0 if self.readiness()[0] else 0.0,
        )
        self.metrics.gauge(
            "ir_serve_connections",
            "Open client connections.",
            lambda: self._httpd.connections if self._httpd else 0,
        )
        self.metrics.gauge(
            "ir_serve_dedupe_entries",
            "Keys in the dedupe window.",
            lambda: len(self.intake.deduper),
        )
        self.metrics.gauge(
            "ir_serve_replay_entries",
            "HMAC signatures held against replay.",
            lambda: len(self.authenticator.used),
        )

    @property
    def address(self) -> tuple[str, int]:
        return self._alerts().bound

    @property
    def url(self) -> str:
        return self._alerts().url()

    @property
    def metrics_url(self) -> str | None:
        """The metrics listener, once started (None when there is none)."""
        return self._metrics_httpd.url() if self._metrics_httpd else None

    def transport(self) -> dict[str, Any]:
        """How the server is reached, for the start record: scheme, certificate, metrics
        listener, replay state."""
        tls: dict[str, str] | None = None
        if self.tls is not None:
            files = self.tls.files
            tls = {
                "cert": str(files.cert),
                "key": str(files.key),
                "fingerprint": self.tls.fingerprint,
            }
        used = self.authenticator.used
        replay = used.loaded.to_dict() if used.loaded else {"path": None, "since": used.since}
        return {
            "scheme": "https" if self.tls else "http",
            "tls": tls,
            "metrics_address": self.metrics_url,
            "replay_state": replay,
        }

    def _alerts(self) -> Listener:
        if self._httpd is None:
            raise IrError("server not started")
        return self._httpd

    def readiness(self) -> tuple[bool, str]:
        if self._httpd is None or self.intake.draining:
            return False, "shutting down" if self.intake.draining else "not started"
        if self.work.qsize() >= self.config.queue_size:
            return False, "work queue full"
        if not self.workers.alive():
            return False, "workers died"
        return True, "ok"

    def start(self) -> None:
        """Bind, start the workers and the HTTP threads. Raises UsageError when it cannot bind."""
        config = self.config
        alerts = self._bind((config.host, config.port), ALERTS, config.max_connections, self.tls)
        if config.metrics_listen is not None:
            try:
                self._metrics_httpd = self._bind(
                    config.metrics_listen, METRICS, MAX_METRICS_CONNECTIONS, None
                )
            except UsageError:
                alerts.server_close()
                raise
        self._httpd = alerts
        self.workers.start()
        for httpd in (self._httpd, self._metrics_httpd):
            if httpd is not None:
                threading.Thread(
                    target=httpd.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name=f"ir-serve-{httpd.name}",
                    daemon=True,
                ).start()
        self.audit.record(
            "start",
            address=self.url,
            **self.transport(),
            playbooks=[p.name for p in self.playbooks],
            workers=self.config.workers,
            queue_size=self.config.queue_size,
            auth=("bearer " if self.config.tokens else "")
            + ("hmac" if self.config.hmac_secrets else "")
            or "none (loopback only)",
            dedupe_window=self.config.dedupe_window,
            rate_limit=f"{self.config.rate_limit}/{self.config.rate_window:g}s",
            protected_namespaces=list(self.config.protected_namespaces),
        )

    def shutdown(self, grace: float | None = None) -> dict[str, Any]:
        """Stop accepting (503 and /readyz down), stop listening, let the workers finish queued and
        running work for up to `grace` seconds, audit what is left. Idempotent."""
        with self._shutdown_lock:
            if self._shutdown_report is not None:
                return self._shutdown_report
            grace = self.config.shutdown_grace if grace is None else grace
            began = time.monotonic()
            self.intake.draining = True
            self.audit.record(
                "shutdown-begin", queued=self.work.qsize(), running=self.workers.busy, grace=grace
            )
            if self._httpd is not None:
                self._httpd.stop()
            report = self.workers.drain(began + grace)
            if self._metrics_httpd is not None:
                self._metrics_httpd.stop()  # scraped and probed (not ready) until the drain ends
            self.authenticator.close()
            report["seconds"] = round(time.monotonic() - began, 3)
            self.audit.record("shutdown", **report)
            self._shutdown_report = report
            self._stopped.set()
            return report

    def run_until_signal(self) -> dict[str, Any]:
        """Serve until SIGTERM or SIGINT (main thread only), then shut down gracefully."""
        requested = threading.Event()

        def _on_signal(signum: int, frame: Any) -> None:
            requested.set()

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not requested.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.shutdown()

    def _bind(
        self,
        address: tuple[str, int],
        role: str,
        max_connections: int,
        tls: ReloadingContext | None,
    ) -> Listener:
        handler = type(f"_{role.title()}Handler", (_Handler,), {"app": self, "role": role})
        try:
            return Listener(
                address,
                handler,
                name=role,
                max_connections=max_connections,
                request_timeout=self.config.request_timeout,
                metrics=self.metrics,
                tls=tls,
            )
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {address[0]}:{address[1]} ({role}): {exc.strerror or exc}"
            ) from None

    def _tls_load(self, load: TlsLoad) -> None:
        """A rotated certificate was loaded, or refused (the previous one stays in use)."""
        record = load.to_dict()
        self.audit.record("tls-reload", **record)
        self.metrics.inc("ir_serve_tls_reloads_total", result=record["status"])
        if not load.loaded:
            print(
                f"ir serve: TLS: refused the changed {load.cert} and {load.key}, still serving "
                f"the previous certificate: {load.reason}",
                file=sys.stderr,
            )


def _metrics() -> Metrics:
    metrics = Metrics()
    metrics.counter("ir_serve_http_requests_total", "HTTP requests by path and status code.")
    metrics.counter("ir_serve_alerts_total", "Alerts by source and intake decision.")
    metrics.counter("ir_serve_runs_total", "Playbook runs by playbook and outcome.")
    metrics.counter("ir_serve_steps_total", "Playbook steps by action and status.")
    metrics.histogram("ir_serve_accept_seconds", "Time to answer an alert POST.", LATENCY_BUCKETS)
    metrics.histogram("ir_serve_queue_wait_seconds", "Time a run waited in the queue.", RUN_BUCKETS)
    metrics.histogram("ir_serve_run_seconds", "Duration of a playbook run.", RUN_BUCKETS)
    metrics.histogram(
        "ir_serve_alert_to_step_seconds",
        "From alert received to the end of each step (e.g. action=quarantine).",
        RUN_BUCKETS,
    )
    metrics.counter("ir_serve_tls_reloads_total", "Rotated TLS pairs by result (loaded, refused).")
    metrics.counter(
        "ir_serve_tls_handshake_failures_total", "TLS handshakes that failed or timed out."
    )
    return metrics
