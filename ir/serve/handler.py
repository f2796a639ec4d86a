"""The request handler of `ir serve`'s listeners: POST /v1/alerts[/<source>] (checks in order:
path, draining, credentials, framing, size, type, body, signature, then the intake's decisions),
GET /healthz, /readyz, /metrics. Every refusal has its status and reason and is audited; no
traceback reaches a client. Bound per listener to its AlertServer and role (ir.serve.server)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from ir.playbook.alerts import AlertError, parse_alerts, source_names
from ir.serve.intake import response_status
from ir.serve.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from ir.serve.server import AlertServer

ALERTS_PATH = "/v1/alerts"
MAX_DECISIONS_SHOWN = 100
ALERTS = "alerts"  # listener roles
METRICS = "metrics"


class Handler(BaseHTTPRequestHandler):
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
        decisions = app.intake.submit(alerts, request_id=request_id, remote=self.client_address[0])
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
