"""The `notify` action: one JSON POST of the run so far (alert, target, each step's outcome) to
a webhook. The engine sends it itself (ir.playbook.notify): it has the run's results, and no
cluster is involved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ir.playbook.notify import url_problem
from ir.playbook.steps.model import ActionSpec, At, Check, Checks, Param
from ir.playbook.steps.params import ENV_NAME, ENV_NAME_PROBLEM, boolean, matching, number

ENV = matching(ENV_NAME, ENV_NAME_PROBLEM)


def _one_url(c: Checks, params: Mapping[str, Any], at: At) -> None:
    if ("url" in params) == ("url_from_env" in params):
        c.error(at, "needs exactly one of 'url' or 'url_from_env'")


def _url(c: Checks, value: Any, at: At) -> Any:
    url = c.string(value, at)
    problem = url_problem(url) if url is not None else None
    if problem:
        c.error(at, problem)
    return value


def _headers(from_env: bool) -> Check:
    def check(c: Checks, value: Any, at: At) -> Any:
        for header, text in (c.mapping(value, at) or {}).items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
                c.error((*at, header), "header names are letters, digits and '-'", at_key=True)
            if not isinstance(text, str) or any(ch in text for ch in "\r\n\0"):
                c.error((*at, header), "must be a single-line string")
            elif from_env and not re.fullmatch(ENV_NAME, text):
                c.error((*at, header), ENV_NAME_PROBLEM)
        return value

    return check


SPEC = ActionSpec(
    "notify",
    "POST the run's report as JSON to a webhook; ok: the receiver answered",
    (
        Param("url", _url, "the webhook: http(s), no credentials in it"),
        Param("url_from_env", ENV, "the variable that holds the webhook", in_plan=False),
        Param("headers", _headers(from_env=False), "{name: value}, static"),
        Param("headers_from_env", _headers(from_env=True), "{name: variable}", in_plan=False),
        Param("timeout_seconds", number(0.1, 30), "how long to wait for the receiver (5)"),
        Param("include_raw", boolean, "add the alert as received (default false)"),
    ),
    rank=80,
    check=_one_url,
    sent_by_engine=True,
)
