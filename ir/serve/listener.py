"""The listening side of `ir serve`: a threading HTTP server that bounds open connections (beyond
the bound, one 503 write and hang up, no thread spent), speaks TLS with the context current at each
new connection (ir.serve.tls: a rotated certificate serves the next connection), runs the handshake
in the connection's own thread under the request timeout, and prints no traceback for a client
that hangs up or breaks TLS.

May import ir.serve.metrics and ir.serve.tls; knows nothing of alerts.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ir.serve.metrics import Metrics
from ir.serve.tls import ReloadingContext

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
)


class Listener(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str,
        max_connections: int,
        request_timeout: float,
        metrics: Metrics,
        tls: ReloadingContext | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.name = name
        self.tls = tls
        self.metrics = metrics
        self.request_timeout = request_timeout
        self.connections = 0
        self._slots = threading.BoundedSemaphore(max_connections)
        self._count_lock = threading.Lock()
        # the socket timeout is a class attribute of the handler: bind it per listener
        bound = type(handler.__name__, (handler,), {"timeout": request_timeout})
        super().__init__(address, bound)

    @property
    def bound(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def url(self) -> str:
        host, port = self.bound
        scheme = "https" if self.tls else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # over the connection limit: answer in one write and hang up, no thread spent (over
            # TLS just hang up: a handshake here would let one slow client stall every accept)
            if self.tls is None:
                with contextlib.suppress(OSError):
                    request.sendall(_BUSY)
            self.shutdown_request(request)
            self.metrics.inc("ir_serve_http_requests_total", path="*", code="503")
            return
        with self._count_lock:
            self.connections += 1
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.tls is not None:
                request = self._handshake(request, self.tls)
            if request is not None:
                super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.connections -= 1
            self._slots.release()

    def _handshake(self, sock: socket.socket, tls: ReloadingContext) -> ssl.SSLSocket | None:
        """The TLS connection, with the context current now; None (counted, closed) when the
        handshake fails: scanners, plain HTTP, clients that do not trust the certificate."""
        sock.settimeout(self.request_timeout)
        connection: socket.socket = sock
        try:
            connection = tls.context().wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
            connection.do_handshake()
        except OSError:
            self.metrics.inc("ir_serve_tls_handshake_failures_total")
            self.shutdown_request(connection)
            return None
        return connection

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client hung up or broke TLS mid-request: nothing to report to anyone
        super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()  # returns once serve_forever has stopped
        self.server_close()
