"""The `notify` step: one JSON POST to a webhook with urllib (no shell, no templating), a timeout,
no redirects followed, headers static or read from the environment, the response not trusted."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from ir import __version__
from ir.playbook.actions import FAILED, OK, SKIPPED, ApiRequest, StepResult

DEFAULT_TIMEOUT = 5.0
MAX_RESPONSE = 64 * 1024


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a notify webhook; None when it can."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed: use headers_from_env"
    if any(ch in url for ch in "\r\n\0 "):
        return "must not contain spaces or control characters"
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        return None  # a redirect is reported as the HTTP error it is


class WebhookNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if env is None else env
        self._opener = urllib.request.build_opener(_NoRedirect)

    def headers(self, params: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
        """Request headers from the step's params; also the names of missing env variables."""
        headers = {"Content-Type": "application/json", "User-Agent": f"ir/{__version__}"}
        headers.update(params.get("headers", {}))
        missing = []
        for header, variable in params.get("headers_from_env", {}).items():
            value = self.env.get(variable)
            if value is None or any(ch in value for ch in "\r\n\0"):
                missing.append(variable)
            else:
                headers[header] = value
        return headers, missing

    def url(self, params: dict[str, Any]) -> tuple[str | None, str]:
        """(URL, "") or (None, why not): params["url"], or the variable params["url_from_env"]."""
        if "url" in params:
            return params["url"], ""
        variable = params.get("url_from_env", "")
        url = self.env.get(variable)
        if not url:
            return None, f"{variable} is not set: no webhook configured"
        problem = url_problem(url)
        if problem:
            return None, f"{variable}: {problem}"
        return url, ""

    def send(self, params: dict[str, Any], document: dict[str, Any]) -> StepResult:
        """POST `document` to the webhook. Never raises: failures are StepResult "failed"; an
        unset url_from_env variable is "skipped"."""
        url, why = self.url(params)
        if url is None:
            return StepResult("notify", SKIPPED if "not set" in why else FAILED, why)
        body = json.dumps(document, sort_keys=True, ensure_ascii=True, default=str).encode()
        request_record = ApiRequest("POST", url, {"bytes": len(body)})
        headers, missing = self.headers(params)
        if missing:
            return StepResult(
                "notify",
                FAILED,
                f"environment variable(s) not set: {', '.join(missing)}",
                requests=[request_record],
            )
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        timeout = float(params.get("timeout_seconds", DEFAULT_TIMEOUT))
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(MAX_RESPONSE)
                status = response.status
        except urllib.error.HTTPError as exc:
            return StepResult(
                "notify",
                FAILED,
                f"webhook answered HTTP {exc.code}",
                requests=[request_record],
                data={"http_status": exc.code},
            )
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return StepResult(
                "notify", FAILED, f"webhook unreachable: {reason}", requests=[request_record]
            )
        return StepResult(
            "notify",
            OK,
            f"webhook answered HTTP {status}",
            requests=[request_record],
            data={"http_status": status},
        )
