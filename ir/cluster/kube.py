"""A connection to one Kubernetes API server, the standard way (kubeconfig, $KUBECONFIG, context,
in-cluster), and raw JSON requests whose failures become precise ClusterErrors.

Objects are handled as the JSON the API serves (camelCase dicts), so what lands in a bundle is
exactly what the server said, with resourceVersion and uid.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from urllib3 import exceptions as u3
from urllib3.util.retry import Retry

from ir.errors import ClusterError, UsageError

RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)
MAX_RETRY_AFTER = 10.0  # a server's Retry-After is honoured up to this many seconds
RETRY_BUDGET = 60.0  # no new attempt of one request starts after this many seconds
REQUEST_TIMEOUT = (5, 30)  # connect, read seconds


class ApiError(ClusterError):
    """An API request failed; `status` is the HTTP status (0 when the server was unreachable).
    `kubernetes` is False when the answer did not come from a Kubernetes API server (no Status
    object): then a 404 says nothing about the object asked for."""

    def __init__(
        self,
        message: str,
        status: int,
        method: str,
        path: str,
        body: Any = None,
        retry_after: float | None = None,
        kubernetes: bool = True,
        unsent: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.body = body
        self.retry_after = retry_after  # seconds, from the server's Retry-After header
        self.kubernetes = kubernetes
        #: the request never reached the server (connection refused, or no connection in time):
        #: nothing was done, so sending it again is safe whatever its method
        self.unsent = unsent

    @property
    def not_found(self) -> bool:
        """The API server itself said 404: the object (or its namespace) does not exist."""
        return self.status == 404 and self.kubernetes


@dataclass
class Kube:
    api_client: Any
    namespace: str  # the default namespace of the context (or the one given)
    context: str | None
    server: str
    #: the identity every request acts as (Impersonate-User, kubectl's --as), when not our own
    acting_as: str | None = None
    #: seconds to keep sending a request the server never received (it is restarting: refused
    #: connections); 0, the default, fails at once with the cause (a person at a terminal).
    #: ir serve sets it so a playbook step rides out a control plane restart.
    outage_wait: float = 0.0

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
        retry: bool | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON. GETs and requests marked `retry` are
        retried with backoff on 429/5xx and connection failures; any request is retried on 429
        (the server refused it before acting, as client-go assumes). A Retry-After header is
        honoured (up to MAX_RETRY_AFTER); no attempt starts after RETRY_BUDGET seconds."""
        outage_end = time.monotonic() + self.outage_wait
        while True:
            try:
                return self._request(method, path, body, query, content_type, retry)
            except ApiError as exc:
                if not exc.unsent or time.monotonic() >= outage_end:
                    raise
                time.sleep(min(1.0, max(0.0, outage_end - time.monotonic())))

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        query: dict[str, Any] | None,
        content_type: str,
        retry: bool | None,
    ) -> Any:
        retry = method == "GET" if retry is None else retry
        url_path = path + (("&" if "?" in path else "?") + urlencode(query) if query else "")
        deadline = time.monotonic() + RETRY_BUDGET
        for attempt in range(len(RETRY_DELAYS) + 1):
            try:
                return self._send(method, url_path, body, content_type)
            except ApiError as exc:
                retriable = exc.status == 429 or (
                    retry and (exc.status in RETRY_STATUSES or exc.status == 0)
                )
                if not retriable or attempt >= len(RETRY_DELAYS):
                    raise
                delay = min(max(RETRY_DELAYS[attempt], exc.retry_after or 0.0), MAX_RETRY_AFTER)
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _open(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        """Send a request; return the raw urllib3 response of a 2xx, else raise ApiError."""
        from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped]
        from urllib3.exceptions import HTTPError

        try:
            method_, url, header_params, body_, post = self.api_client.param_serialize(
                method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            response = self.api_client.call_api(
                method_,
                url,
                header_params=header_params,
                body=body_,
                post_params=post,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if not exc.status:  # the client's own wrapping of a transport failure
                cause = exc.__context__ or exc.reason
                raise _unreachable(self.server, cause, method, path) from None
            headers = exc.headers or {}
            raise _api_error(
                exc.status,
                exc.body or exc.reason,
                method,
                path,
                server=self.server,
                content_type=headers.get("Content-Type"),
            ) from None
        except (HTTPError, OSError) as exc:
            raise _unreachable(self.server, exc, method, path) from None
        raw = response.response
        if not 200 <= response.status < 300:
            try:
                data = raw.data
            finally:
                raw.release_conn()
            error = _api_error(
                response.status,
                data,
                method,
                path,
                server=self.server,
                content_type=raw.headers.get("Content-Type"),
            )
            error.retry_after = _seconds(raw.headers.get("Retry-After"))
            raise error
        return raw

    def _send(self, method: str, path: str, body: Any, content_type: str) -> Any:
        raw = self._open(
            method, path, body, {"Accept": "application/json", "Content-Type": content_type}
        )
        try:
            data = raw.data
        finally:
            raw.release_conn()
        if not data:
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            # an API server answers JSON to a JSON request: whatever answered is something else
            raise ApiError(
                _not_kubernetes(self.server, raw.status, raw.headers.get("Content-Type")),
                int(raw.status),
                method,
                path,
                data,
                kubernetes=False,
            ) from None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def get_optional(self, path: str) -> Any:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def get_text(self, path: str, **query: Any) -> str:
        """A GET whose answer is text, not JSON (a pod's log); no retries."""
        raw = self._open(
            "GET", path + ("?" + urlencode(query) if query else ""), None, {"Accept": "*/*"}
        )
        try:
            data = raw.data
        finally:
            raw.release_conn()
        return bytes(data or b"").decode("utf-8", "replace")

    def stream_text(self, path: str, query: dict[str, Any]) -> Iterator[bytes]:
        """A streaming GET (pod logs): yields bytes chunks."""
        raw = self._open("GET", path + "?" + urlencode(query), None, {"Accept": "*/*"})
        try:
            yield from raw.stream(64 * 1024)
        finally:
            raw.release_conn()


def _api_error(
    status: int,
    body: Any,
    method: str,
    path: str,
    *,
    server: str = "",
    content_type: str | None = None,
) -> ApiError:
    """The error of a non-2xx answer. An API server answers with a Status object (JSON, "kind":
    "Status", "apiVersion": "v1"); any other answer came from something else at that address (a
    web server, a proxy, a load balancer) and is named so, whatever its HTTP status. Answers the
    API server proxies (`.../proxy/...`: a kubelet, a pod) are the proxied party's own."""
    reason = ""
    doc: Any = None
    try:
        doc = json.loads(body)
        reason = str(doc.get("message", "")) if isinstance(doc, dict) else str(doc)
    except (TypeError, ValueError):
        reason = (
            body.decode("utf-8", "replace")[:500]
            if isinstance(body, bytes)
            else str(body or "")[:500]
        )
    status = int(status or 0)
    proxied = "/proxy/" in path.split("?")[0] or path.split("?")[0].endswith("/proxy")
    if status and not proxied and not _is_status(doc):
        return ApiError(
            _not_kubernetes(server, status, content_type),
            status,
            method,
            path,
            body,
            kubernetes=False,
        )
    verb = _verb(method, path)
    resource = _resource(path)
    if status == 403:
        message = f"permission denied: cannot {verb} {resource} ({reason})"
    elif status == 401:
        message = (
            f"not authenticated to the Kubernetes API ({method} {path}): {reason or 'Unauthorized'}"
        )
    elif status == 404:
        message = f"not found: {resource} ({reason})"
    elif status == 409:
        message = f"conflict on {resource}: {reason}"
    elif status == 0:
        message = f"Kubernetes API server {server} unreachable: {reason}"
    else:
        message = f"Kubernetes API {method} {path} failed with HTTP {status}: {reason}"
    return ApiError(message, status, method, path, body)


def _is_status(doc: Any) -> bool:
    """A Kubernetes Status object: how an API server answers every failed request."""
    return isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("apiVersion") == "v1"


def _not_kubernetes(server: str, status: int, content_type: str | None) -> str:
    what = (content_type or "no content type").split(";")[0].strip() or "no content type"
    gateway = "; or a proxy in front of one could not reach it" if status in (502, 503, 504) else ""
    return (
        f"the server at {server or 'the API address'} is not a Kubernetes API server "
        f"(HTTP {status}, {what}){gateway}"
    )


def _unreachable(server: str, failure: Any, method: str, path: str) -> ApiError:
    """A transport failure as one short sentence: the server, and refused, timed out, TLS, DNS or
    reset, never urllib3's nested reprs."""
    cause, after_connect = _transport_cause(failure)
    request = f" ({method} {path.split('?')[0]})" if after_connect else ""
    return ApiError(
        f"Kubernetes API server {server} unreachable: {cause}{request}",
        0,
        method,
        path,
        unsent=cause == "connection refused" or cause.startswith("timed out connecting"),
    )


def _transport_cause(failure: Any) -> tuple[str, bool]:
    """(what failed, in a few words; whether it failed after the connection was made)."""
    chain: list[BaseException] = []
    current: Any = failure
    while isinstance(current, BaseException) and len(chain) < 10:
        chain.append(current)
        inner: Any = None
        if isinstance(current, u3.MaxRetryError):
            inner = current.reason
        elif isinstance(current, (u3.ProtocolError, u3.SSLError)) and current.args:
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = inner or current.__cause__ or current.__context__

    def find(*kinds: type[BaseException]) -> Any:
        return next((e for e in chain if isinstance(e, kinds)), None)

    if (cert := find(ssl.SSLCertVerificationError)) is not None:
        return f"TLS: certificate verify failed: {cert.verify_message}", False
    if (tls := find(ssl.SSLError)) is not None:
        return f"TLS: {_ssl_text(str(tls))}", False
    if find(u3.NameResolutionError, socket.gaierror) is not None:
        return "its host name does not resolve", False
    if find(ConnectionRefusedError) is not None:
        return "connection refused", False
    if any(
        isinstance(e, u3.ConnectTimeoutError) and not isinstance(e, u3.NewConnectionError)
        for e in chain
    ):
        return f"timed out connecting (after {REQUEST_TIMEOUT[0]} s)", False
    if find(u3.ReadTimeoutError) is not None:
        return f"timed out: no answer within {REQUEST_TIMEOUT[1]} s", True
    if find(ConnectionResetError) is not None:
        return "the connection was reset", True
    if find(u3.ProtocolError, ConnectionAbortedError) is not None:
        return "the connection closed without an answer", True
    text = str(failure)
    verify = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if verify:  # the client wrapped it into text
        return f"TLS: certificate verify failed: {verify.group(1).strip()}", False
    if "Connection refused" in text:
        return "connection refused", False
    system = next((e for e in reversed(chain) if isinstance(e, OSError) and e.strerror), None)
    if system is not None:  # no route to host, network unreachable, ...
        return str(system.strerror).lower(), False
    if find(TimeoutError) is not None:
        return "timed out", False
    return (text.splitlines()[-1][:200] if text else type(failure).__name__), False


def _ssl_text(text: str) -> str:
    """`[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)` -> `wrong version
    number`, with a hint where it usually means plain HTTP."""
    words = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", re.sub(r"^\[[^]]*\]\s*", "", text)).strip()
    if "wrong version number" in words or "record layer failure" in words:
        words += " (is the server speaking plain HTTP?)"
    return words or text


def _seconds(value: str | None) -> float | None:
    """A Retry-After header in delta-seconds (the form the apiserver sends); None otherwise."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _verb(method: str, path: str) -> str:
    tail = path.split("?")[0].rstrip("/").split("/")
    named = len(tail) % 2 == 1 if "namespaces" in tail else True
    return {
        "GET": "get" if named else "list",
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete",
    }.get(method, method.lower())


def _resource(path: str) -> str:
    """`pods "web-1" in namespace shop` from /api/v1/namespaces/shop/pods/web-1."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    ns = None
    if "namespaces" in parts:
        i = parts.index("namespaces")
        if i + 1 < len(parts):
            ns = parts[i + 1]
            parts = parts[i + 2 :]
        else:
            parts = parts[i:]
    else:
        parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    text = "/".join(parts[:1]) or "namespaces"
    if len(parts) >= 2:
        text += f' "{parts[1]}"' + (f" ({'/'.join(parts[2:])})" if len(parts) > 2 else "")
    if ns:
        text += f" in namespace {ns}"
    return text


# urllib3 retries only what never reached the server (connection not established); everything
# else is Kube.request's to decide. Its default, Retry(3) on reads too, multiplied ir's own six
# attempts: a hung apiserver cost 24 read timeouts (12 minutes) per GET.
_TRANSPORT_RETRIES = Retry(
    total=2, connect=2, read=0, status=0, other=0, redirect=0, raise_on_status=False
)


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    *,
    act_as: str | None = None,
) -> Kube:
    """Load credentials the standard way: --kubeconfig, else $KUBECONFIG, else ~/.kube/config,
    else the in-cluster service account. Raises ClusterError when none works.

    `act_as` (kubectl's --as): every request impersonates that user, e.g. ir serve's own service
    account acting as the responder's (system:serviceaccount:ir-system:ir-responder), so the
    apiserver's RBAC and admission policies for that identity bound what ir does."""
    kube = _connect(kubeconfig, context, namespace)
    if act_as:
        kube.api_client.set_default_header("Impersonate-User", act_as)
        kube.acting_as = act_as
    return kube


def _connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Kube:
    from kubernetes import client, config  # type: ignore[import-untyped]
    from kubernetes.config.config_exception import ConfigException  # type: ignore[import-untyped]

    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    paths = [p for p in path.split(os.pathsep) if p]
    try:
        if any(os.path.exists(p) for p in paths):
            cfg = client.Configuration()
            loader_kw: dict[str, Any] = {"client_configuration": cfg, "persist_config": False}
            config.load_kube_config(
                config_file=paths[0] if len(paths) == 1 else None, context=context, **loader_kw
            )
            cfg.retries = _TRANSPORT_RETRIES
            contexts, active = config.list_kube_config_contexts(
                config_file=paths[0] if len(paths) == 1 else None
            )
            chosen = (
                next((c for c in contexts if c["name"] == context), active) if context else active
            )
            default_ns = (chosen or {}).get("context", {}).get("namespace") or "default"
            api = client.ApiClient(configuration=cfg)
            return Kube(api, namespace or default_ns, (chosen or {}).get("name"), cfg.host)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            cfg.retries = _TRANSPORT_RETRIES
            ns_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
            default_ns = Path(ns_file).read_text().strip() if os.path.exists(ns_file) else "default"
            return Kube(
                client.ApiClient(configuration=cfg), namespace or default_ns, "in-cluster", cfg.host
            )
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"cannot load Kubernetes credentials ({path}, context {context or 'current'}): {exc}"
        ) from None
    raise UsageError(
        f"no Kubernetes credentials: {path} does not exist and not running in a cluster"
    )
