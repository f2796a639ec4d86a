"""Binary-safe `pods/exec` through the apiserver: run a command in a pod ir started (the node
collector) and stream its stdout, byte for byte, into a file-like sink.

The apiserver's exec speaks the Kubernetes streaming protocol over a WebSocket
(`v4.channel.k8s.io`): every binary message starts with one byte naming the channel (1 stdout,
2 stderr, 3 the final Status as JSON, with the exit code). Nothing is decoded as text, so a bundle
(a tar of zstd frames) arrives exactly as written; the caller hashes what arrives and compares it
with what the collector says it wrote. ir never execs into a suspect: only into its own pods.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from ir.cluster.kube import ApiError, Kube

STDOUT, STDERR, ERROR = 1, 2, 3
PROTOCOL = "v4.channel.k8s.io"
MAX_STDERR = 256 * 1024


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...


@dataclass
class ExecResult:
    exit_code: int | None  # None when the stream ended without a Status
    stdout_bytes: int = 0
    stderr: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def exec_stream(
    kube: Kube,
    namespace: str,
    pod: str,
    command: list[str],
    sink: Sink,
    *,
    container: str | None = None,
    timeout: float = 3600.0,
    on_bytes: Callable[[int], None] | None = None,
) -> ExecResult:
    """Run `command` in `pod` and write its stdout to `sink`; returns the exit code and stderr.
    Raises ApiError when the exec cannot start (permission, pod gone) or the stream breaks."""
    import websocket  # websocket-client: a dependency of the kubernetes client

    cfg = kube.api_client.configuration
    query: list[tuple[str, str]] = [("command", c) for c in command]
    query += [("stdout", "true"), ("stderr", "true"), ("stdin", "false"), ("tty", "false")]
    if container:
        query.append(("container", container))
    path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/exec"
    url = cfg.host.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    url += path + "?" + urlencode(query)
    headers = []
    auth = cfg.auth_settings().get("BearerToken")
    if auth and auth.get("value"):
        headers.append(f"Authorization: {auth['value']}")
    if kube.acting_as:  # the same identity as every other request of this connection
        headers.append(f"Impersonate-User: {kube.acting_as}")
    sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED if cfg.verify_ssl else ssl.CERT_NONE}
    if cfg.ssl_ca_cert:
        sslopt["ca_certs"] = cfg.ssl_ca_cert
    if cfg.cert_file:
        sslopt["certfile"] = cfg.cert_file
    if cfg.key_file:
        sslopt["keyfile"] = cfg.key_file
    if not cfg.assert_hostname and cfg.assert_hostname is not None:
        sslopt["check_hostname"] = False
    started = time.monotonic()
    try:
        ws = websocket.create_connection(
            url, header=headers, sslopt=sslopt, subprotocols=[PROTOCOL], timeout=60
        )
    except websocket.WebSocketBadStatusException as exc:
        raise ApiError(
            f"exec into pod {namespace}/{pod} refused: HTTP {exc.status_code} "
            f"{_reason(exc.resp_body)}",
            int(exc.status_code),
            "GET",
            path,
        ) from None
    except (OSError, websocket.WebSocketException) as exc:
        raise ApiError(f"exec into pod {namespace}/{pod} failed: {exc}", 0, "GET", path) from None
    result = ExecResult(None)
    stderr = bytearray()
    deadline = started + timeout
    try:
        ws.settimeout(max(1.0, min(60.0, timeout)))
        while True:
            if time.monotonic() > deadline:
                raise ApiError(
                    f"exec into pod {namespace}/{pod} ran over {timeout:.0f} s", 0, "GET", path
                )
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketConnectionClosedException:
                break
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDOUT and payload:
                sink.write(payload)
                result.stdout_bytes += len(payload)
                if on_bytes:
                    on_bytes(len(payload))
            elif channel == STDERR and payload and len(stderr) < MAX_STDERR:
                stderr += payload[: MAX_STDERR - len(stderr)]
            elif channel == ERROR and payload:
                try:
                    result.status = json.loads(payload)
                except ValueError:
                    result.status = {"message": payload.decode("utf-8", "replace")}
    except OSError as exc:
        raise ApiError(f"exec stream from {namespace}/{pod} broke: {exc}", 0, "GET", path) from None
    finally:
        ws.close()
    result.stderr = stderr.decode("utf-8", "replace")
    result.exit_code = _exit_code(result.status)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _exit_code(status: dict[str, Any]) -> int | None:
    if not status:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    return None


def _reason(body: Any) -> str:
    try:
        return str(json.loads(body).get("message", ""))
    except (TypeError, ValueError, AttributeError):
        return str(body or "")[:200]
