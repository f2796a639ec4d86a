"""notify (ir/playbook/steps/notify.py): exactly one of url / url_from_env, headers, the rest;
sent by the engine itself, needing nothing of the target."""

from __future__ import annotations

import pytest

from ir.playbook.steps.notify import SPEC
from tests.steps import NO_TARGET, given, params, problems, refusals

GOOD = (
    "url_from_env: IR_NOTIFY_URL, headers: {X-Team: ir}, headers_from_env: "
    "{Authorization: IR_NOTIFY_AUTH}, timeout_seconds: 2.5, include_raw: true"
)
URL = "url: 'https://hooks.example/ir'"
BAD = refusals(f"""
{URL}, url_from_env: HOOK                        | 8:5: steps[0]: needs exactly one of 'url' or 'url_from_env'
url: 'ftp://hooks.example/ir'                    | 8:27: steps[0].url: must be an http:// or https:// URL with a host
url: 'https://u:p@hooks.example/ir'              | 8:27: steps[0].url: credentials in the URL are not allowed: use headers_from_env
url_from_env: hook                               | 8:36: steps[0].url_from_env: must name an environment variable (A-Z, 0-9, '_')
{URL}, headers: {{'X Team': ir}}                 | 8:65: steps[0].headers.X Team: header names are letters, digits and '-'
{URL}, headers: {{X-Team: 5}}                    | 8:73: steps[0].headers.X-Team: must be a single-line string
{URL}, headers_from_env: {{Authorization: auth}} | 8:89: steps[0].headers_from_env.Authorization: must name an environment variable (A-Z, 0-9, '_')
{URL}, timeout_seconds: 31                       | 8:72: steps[0].timeout_seconds: must be between 0.1 and 30, got 31
{URL}, include_raw: 'yes'                        | 8:68: steps[0].include_raw: must be true or false, got a string
""")


def test_good_steps_pass_and_a_url_is_required() -> None:
    assert params(f"{{action: notify, {GOOD}}}") == given(GOOD)
    assert params(f"{{action: notify, {URL}}}") == given(URL)
    assert problems("{action: notify}") == [
        "t.yaml:8:5: steps[0]: needs exactly one of 'url' or 'url_from_env'"
    ]


@pytest.mark.parametrize(("param", "problem"), BAD)
def test_each_bad_param_is_refused_with_its_message(param: str, problem: str) -> None:
    assert problems(f"{{action: notify, {param}}}") == [f"t.yaml:{problem}"]


def test_the_engine_sends_it_for_any_target() -> None:
    assert SPEC.sent_by_engine and not SPEC.destructive and SPEC.need({}, NO_TARGET) is None
    assert [p.name for p in SPEC.params if not p.in_plan] == ["url_from_env", "headers_from_env"]
