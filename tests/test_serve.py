"""`ir serve` against real HTTP on loopback: authenticated alerts run their playbook; malformed,
oversized, unauthenticated, replayed and hostile alerts are refused with the right status and run
nothing; dedupe, rate limits, back-pressure, graceful shutdown, audit, health and metrics."""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from ir.playbook.actions import RecordingActions
from ir.playbook.audit import AuditLog
from ir.playbook.k8snames import is_dns1123_subdomain
from ir.playbook.loader import load_playbooks_strict
from ir.serve.auth import sign_body
from ir.serve.config import ServeConfig
from ir.serve.server import AlertServer
from tests.resilience import ATHERIS_REGRESSIONS
from tests.strategies import json_values

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "alerts"
PLAYBOOKS = load_playbooks_strict([ROOT / "playbooks"])
TOKEN = "test-token-0123456789abcdef"
SECRET = b"test-hmac-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _falco(
    uuid: str = "u-1",
    pod: str = "web-7f9c6d8b5-x2kqp",
    namespace: str = "shop",
    rule: str = "Terminal shell in container",
    priority: str = "Notice",
) -> bytes:
    doc = json.loads(_sample("falco-terminal-shell.json"))
    doc["uuid"] = uuid
    doc["rule"] = rule
    doc["priority"] = priority
    doc["output_fields"]["k8s.pod.name"] = pod
    doc["output_fields"]["k8s.ns.name"] = namespace
    return json.dumps(doc).encode()


class Client:
    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def post(
        self, body: bytes, path: str = "/v1/alerts", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST with the bearer token, or with exactly `headers` when given."""
        status, _, data = self.request("POST", path, body, AUTH if headers is None else headers)
        return status, json.loads(data) if data else {}

    def get(self, path: str) -> tuple[int, bytes]:
        status, _, data = self.request("GET", path)
        return status, data


Start = Callable[..., tuple[AlertServer, Client, RecordingActions, AuditLog]]


def _serve(
    actions: RecordingActions | None = None, playbooks: Any = None, **overrides: Any
) -> tuple[AlertServer, Client, RecordingActions, AuditLog]:
    """A started server on a free loopback port, recording actions and keeping its audit."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "tokens": (TOKEN,),
        "hmac_secrets": (SECRET,),
        "workers": 2,
        "queue_size": 50,
        "shutdown_grace": 5.0,
        "cluster_name": "prod-eu",  # the GuardDuty samples' EKS cluster
    }
    settings.update(overrides)
    actions = actions or RecordingActions()
    audit = AuditLog(keep=True)
    server = AlertServer(ServeConfig(**settings), playbooks or PLAYBOOKS, actions, audit=audit)
    server.start()
    return server, Client(server.url), actions, audit


@pytest.fixture
def start() -> Iterator[Start]:
    servers: list[AlertServer] = []

    def _start(
        actions: RecordingActions | None = None, playbooks: Any = None, **overrides: Any
    ) -> tuple[AlertServer, Client, RecordingActions, AuditLog]:
        started = _serve(actions, playbooks, **overrides)
        servers.append(started[0])
        return started

    yield _start
    for server in servers:
        server.shutdown(grace=2.0)


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- good alerts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "path", "playbook", "actions", "target"),
    [
        (
            "falco-terminal-shell.json",
            "/v1/alerts/falco",
            "shell-in-container",
            ["capture", "quarantine", "replace"],
            ("shop", "web-7f9c6d8b5-x2kqp"),
        ),
        (
            "alertmanager-falcosidekick-shell.json",
            "/v1/alerts/alertmanager",
            "shell-in-container",
            ["capture", "quarantine", "replace"],
            ("shop", "web-7f9c6d8b5-x2kqp"),
        ),
        (
            "guardduty-eventbridge-reverse-shell.json",
            "/v1/alerts/guardduty",
            "guardduty-eks-runtime",
            ["capture", "quarantine", "replace"],
            ("shop", "web-7f9c6d8b5-x2kqp"),
        ),
        (
            "falco-write-below-binary-dir.json",
            "/v1/alerts",
            "binary-drift",
            ["capture", "quarantine", "replace"],
            ("payments", "payments-api-0"),
        ),
        (
            "alertmanager-capture-request.json",
            "/v1/alerts",
            "capture-only",
            ["capture", "annotate"],
            ("shop", "cart-5b6c7d8e9f-k3j2h"),
        ),
        (
            "guardduty-eventbridge-node.json",
            "/v1/alerts",
            "guardduty-eks-node",
            ["capture", "annotate", "cordon"],
            (None, None),
        ),
    ],
)
def test_good_alert_runs_its_playbook(
    start: Start,
    sample: str,
    path: str,
    playbook: str,
    actions: list[str],
    target: tuple[str | None, str | None],
) -> None:
    server, client, recorder, audit = start()
    status, reply = client.post(_sample(sample), path)
    assert status == 202, reply
    assert reply["accepted"] == 1 and reply["alerts"][0]["playbook"] == playbook
    assert recorder.wait_for_calls(len(actions))
    assert _wait(lambda: any(r["event"] == "run" for r in audit.events()))
    assert recorder.actions_called() == actions
    assert {(c.target.namespace, c.target.pod) for c in recorder.calls} == {target}
    run = audit.events("run")[0]
    assert run["status"] == "ok" and run["run_id"] == reply["alerts"][0]["run_id"]
    assert audit.events("alert")[0]["decision"] == "queued"


def test_alertmanager_group_runs_every_firing_alert_and_ignores_resolved(start: Start) -> None:
    server, client, recorder, audit = start()
    status, reply = client.post(_sample("alertmanager-group-mixed.json"), "/v1/alerts/alertmanager")
    assert status == 202
    assert [a["decision"] for a in reply["alerts"]] == ["queued", "queued", "ignored"]
    assert recorder.wait_for_calls(6)
    assert _wait(lambda: len(audit.events("run")) == 2)
    pods = {c.target.pod for c in recorder.calls}
    assert pods == {"report-worker-5d8f7c9b6-qm4zt", "report-worker-5d8f7c9b6-7hv9c"}
    status, reply = client.post(_sample("alertmanager-resolved.json"))
    assert status == 200 and reply["alerts"][0]["decision"] == "ignored"


def test_hmac_signed_alert_is_accepted_and_its_replay_refused(start: Start) -> None:
    server, client, recorder, audit = start()
    body = _falco()
    signed = sign_body(SECRET, body)
    status, _, _ = client.request("POST", "/v1/alerts", body, signed)
    assert status == 202
    status, _, data = client.request("POST", "/v1/alerts", body, signed)
    assert status == 403 and b"replayed" in data
    stale = sign_body(SECRET, _falco(uuid="u-2"), timestamp=time.time() - 3600)
    status, _, data = client.request("POST", "/v1/alerts", _falco(uuid="u-2"), stale)
    assert status == 403 and b"stale" in data
    forged = sign_body(b"not-the-secret-0123456789", body)
    status, _, data = client.request("POST", "/v1/alerts", _falco(uuid="u-3"), forged)
    assert status == 401 and b"invalid signature" in data
    tampered = sign_body(SECRET, body, timestamp=time.time() + 1)
    status, _, _ = client.request(
        "POST", "/v1/alerts", _falco(uuid="u-4", pod="other-pod"), tampered
    )
    assert status == 401
    assert recorder.wait_for_calls(3)
    time.sleep(0.2)
    assert len({c.context.run_id for c in recorder.calls}) == 1, (
        "only the first, genuine request ran"
    )


# -- refused requests run nothing -------------------------------------------------------------


def _raw(client: Client, data: bytes) -> bytes:
    with socket.create_connection((client.host, client.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_refused_requests(start: Start) -> None:
    server, client, recorder, audit = start(max_body=64 * 1024)
    good = _falco()
    cases: list[tuple[int, dict[str, str] | None, bytes, str, str]] = [
        (401, {}, good, "/v1/alerts", "authentication required"),
        (
            401,
            {"Authorization": "Bearer wrong-token-0123456789"},
            good,
            "/v1/alerts",
            "invalid bearer token",
        ),
        (401, {"Authorization": f"Basic {TOKEN}"}, good, "/v1/alerts", "unsupported Authorization"),
        (400, None, b'{"rule": 1, "rule": 2}', "/v1/alerts", "duplicate key"),
        (400, None, b'{"rule": "x", "priority": NaN, "output": "o"}', "/v1/alerts", "NaN"),
        (400, None, b'{"a":' + b"[" * 100 + b"]" * 100 + b"}", "/v1/alerts", "nested"),
        (400, None, b"not json", "/v1/alerts", "invalid JSON"),
        (400, None, b'{"hello": "world"}', "/v1/alerts", "not an alert of a known source"),
        (400, None, good, "/v1/alerts/guardduty", "not a guardduty alert"),
        (
            400,
            None,
            json.dumps({"version": "3", "alerts": [], "groupKey": "x"}).encode(),
            "/v1/alerts",
            "version",
        ),
        (404, None, good, "/v1/alerts/splunk", "unknown path"),
        (404, None, good, "/admin", "unknown path"),
        (413, None, b'{"a": "' + b"x" * 70_000 + b'"}', "/v1/alerts", "exceeds the limit"),
    ]
    for status, headers, body, path, reason in cases:
        got, reply = client.post(body, path, headers)
        assert (got, reason in reply.get("error", "")) == (status, True), (
            status,
            reason,
            got,
            reply,
        )
    code, headers, data = client.request(
        "POST", "/v1/alerts", good, {**AUTH, "Content-Type": "text/plain"}
    )
    assert code == 415
    assert client.request("PUT", "/v1/alerts", good, AUTH)[0] == 405
    chunked = (
        b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b'\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n0\r\n\r\n'
    )
    assert _raw(client, chunked).startswith(b"HTTP/1.1 411")
    no_length = (
        b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\n\r\n"
    )
    assert _raw(client, no_length).startswith(b"HTTP/1.1 411")
    huge = (
        b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{"
    )
    assert _raw(client, huge).startswith(b"HTTP/1.1 413")
    time.sleep(0.2)
    assert recorder.calls == [], "a refused request runs nothing"
    refused = audit.events("request")
    assert len(refused) == len(cases) + 4 and all(r["decision"] == "refused" for r in refused)
    assert all("Traceback" not in json.dumps(r) for r in audit.events())


@pytest.mark.parametrize(
    ("pod", "namespace", "why"),
    [
        ("web; rm -rf /", "shop", "is not a valid Kubernetes name"),
        ("$(reboot)", "shop", "is not a valid Kubernetes name"),
        ("../kube-system/pods/coredns", "shop", "is not a valid Kubernetes name"),
        ("web-1", "shop/../kube-system", "is not a valid Kubernetes name"),
        ("coredns-5d78c9869d-8kfzq", "kube-system", "namespace kube-system is protected"),
        ("web-1\nHost: evil", "shop", "is not a valid Kubernetes name"),
        # unicode tricks: a Cyrillic homoglyph, a zero-width space, a right-to-left override,
        # fullwidth letters, a Cyrillic "s" in the namespace, a NUL byte
        ("w\u0435b-7f9c6d8b5-x2kqp", "shop", "is not a valid Kubernetes name"),
        ("web\u200b-7f9c6d8b5-x2kqp", "shop", "is not a valid Kubernetes name"),
        ("web-1\u202egnp.exe", "shop", "is not a valid Kubernetes name"),
        ("\uff57\uff45\uff42", "shop", "is not a valid Kubernetes name"),
        ("web-1", "\u0455hop", "is not a valid Kubernetes name"),
        ("web-1\x00", "shop", "is not a valid Kubernetes name"),
    ],
)
def test_injection_attempts_act_on_nothing(
    start: Start, pod: str, namespace: str, why: str
) -> None:
    server, client, recorder, audit = start()
    status, reply = client.post(_falco(pod=pod, namespace=namespace))
    assert status == 422 and reply["alerts"][0]["decision"] == "refused"
    assert why in reply["alerts"][0]["reason"]
    time.sleep(0.1)
    assert recorder.calls == []
    record = audit.events("alert")[0]
    assert (
        record["decision"] == "refused" and record["alert"]["target"]["pod"] == pod
    )  # kept as data, escaped


# -- dedupe, rate limits, back-pressure ---------------------------------------------------------


def test_dedupe(start: Start) -> None:
    server, client, recorder, audit = start()
    assert client.post(_falco(uuid="a"))[0] == 202
    status, reply = client.post(_falco(uuid="a"))
    assert status == 200 and reply["alerts"][0]["decision"] == "duplicate"
    # another event of the same rule on the same pod: the same playbook, the same target
    status, reply = client.post(_falco(uuid="b"))
    assert status == 200 and reply["alerts"][0]["decision"] == "duplicate"
    # same pod, another playbook: runs
    assert (
        client.post(
            _falco(
                uuid="c",
                rule="Detect outbound connections to common miner pool ports",
                priority="Critical",
            )
        )[0]
        == 202
    )
    assert _wait(lambda: len(audit.events("run")) == 2)
    assert len({c.context.run_id for c in recorder.calls}) == 2


def test_rate_limit_per_target(start: Start) -> None:
    server, client, recorder, audit = start(dedupe_window=0, rate_limit=2, rate_window=60)
    codes = [client.post(_falco(uuid=f"r{i}"))[0] for i in range(3)]
    assert codes == [202, 202, 429]
    assert client.post(_falco(uuid="other", pod="web-other"))[0] == 202, "limits are per target"
    assert [a["decision"] for a in audit.events("alert")] == [
        "queued",
        "queued",
        "rate-limited",
        "queued",
    ]


def test_queue_full_gives_503_and_drops_nothing_silently(start: Start) -> None:
    recorder = RecordingActions(delays={"capture": 0.6})
    server, client, _, audit = start(actions=recorder, workers=1, queue_size=1)
    assert client.post(_falco(uuid="q1", pod="pod-1"))[0] == 202
    assert recorder.wait_for_calls(1), "the worker took the first run"
    assert client.post(_falco(uuid="q2", pod="pod-2"))[0] == 202, "the second waits in the queue"
    assert client.get("/readyz")[0] == 503
    status, reply = client.post(_falco(uuid="q3", pod="pod-3"))
    assert status == 503 and reply["alerts"][0]["decision"] == "queue-full"
    assert _wait(lambda: len(audit.events("run")) == 2, timeout=10)
    assert {c.target.pod for c in recorder.calls} == {"pod-1", "pod-2"}
    # the refused alert was not marked as seen: the sender's retry is accepted
    assert client.post(_falco(uuid="q3", pod="pod-3"))[0] == 202
    assert client.get("/readyz")[0] == 200 or _wait(lambda: client.get("/readyz")[0] == 200)


def test_connection_limit(start: Start) -> None:
    server, client, recorder, audit = start(max_connections=2, request_timeout=2.0)
    idle = [socket.create_connection((client.host, client.port)) for _ in range(2)]
    try:
        time.sleep(0.1)
        third = _raw(client, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert third.startswith(b"HTTP/1.1 503")
    finally:
        for sock in idle:
            sock.close()
    assert _wait(lambda: client.get("/healthz")[0] == 200)


def test_slow_client_is_cut_off(start: Start) -> None:
    server, client, recorder, audit = start(request_timeout=0.3)
    with socket.create_connection((client.host, client.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - started < 3


# -- shutdown ---------------------------------------------------------------------------------


def test_graceful_shutdown_finishes_queued_work(start: Start) -> None:
    recorder = RecordingActions(delays={"capture": 0.2})
    server, client, _, audit = start(actions=recorder, workers=1)
    for i in range(3):
        assert client.post(_falco(uuid=f"s{i}", pod=f"pod-{i}"))[0] == 202
    report = server.shutdown(grace=10)
    assert report["abandoned"] == 0 and report["interrupted"] == 0 and report["completed"] == 3
    assert len(audit.events("run")) == 3
    with pytest.raises(OSError):
        client.post(_falco(uuid="late"))


def test_shutdown_deadline_records_unfinished_work(start: Start) -> None:
    recorder = RecordingActions(delays={"capture": 1.0})
    server, client, _, audit = start(actions=recorder, workers=1)
    for i in range(3):
        assert client.post(_falco(uuid=f"d{i}", pod=f"pod-{i}"))[0] == 202
    assert recorder.wait_for_calls(1)
    report = server.shutdown(grace=0.2)
    assert report == {
        "completed": 0,
        "abandoned": 2,
        "interrupted": 1,
        "seconds": report["seconds"],
    }
    abandoned = audit.events("abandoned")
    assert {a["target"] for a in abandoned} == {"pod/shop/pod-1", "pod/shop/pod-2"}
    assert abandoned[0]["alert_raw"]["uuid"].startswith("d"), "the alert is kept to be replayed"
    assert audit.events("interrupted")[0]["target"] == "pod/shop/pod-0"


def test_draining_server_refuses_new_alerts(start: Start) -> None:
    server, client, recorder, audit = start()
    server.intake.draining = True
    status, reply = client.post(_falco())
    assert status == 503 and "shutting down" in reply["error"]
    assert client.get("/readyz")[0] == 503


def test_cli_serve_stops_on_sigterm(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "IR_SERVE_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ir.cli.main import main; main()",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--actions",
            "dry-run",
            "--playbooks",
            str(ROOT / "playbooks"),
            "--audit-log",
            str(audit),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        match = re.search(r"listening on (http://\S+) ", line)
        assert match, line
        client = Client(match.group(1))
        status, reply = client.post(_falco())
        assert status == 202
        assert _wait(lambda: '"event": "run"' in audit.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "shutdown"
    run = next(e for e in events if e["event"] == "run")
    assert run["dry_run"] is True and run["status"] == "dry-run"
    step = next(e for e in events if e["event"] == "step" and e["action"] == "quarantine")
    assert step["status"] == "dry-run" and step["requests"] == []  # offline: nothing invented
    assert step["detail"].startswith("would quarantine pod ")


def test_unsafe_configuration_is_refused() -> None:
    from ir.errors import UsageError

    for settings in (
        {"host": "0.0.0.0", "allow_unauthenticated": True},
        {"tokens": ("short",)},
        {},
        {"tokens": (TOKEN,), "workers": 0},
    ):
        with pytest.raises(UsageError):
            ServeConfig(**settings).validate()  # type: ignore[arg-type]
    ServeConfig(host="127.0.0.1", allow_unauthenticated=True).validate()


# -- health and metrics -------------------------------------------------------------------------

_SAMPLE_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r"(-?[0-9.e+-]+|NaN|[+-]Inf)$"
)


_JSON = json_values(max_leaves=20)
_ALERT_PATHS = ["/v1/alerts", "/v1/alerts/falco", "/v1/alerts/alertmanager", "/v1/alerts/guardduty"]
_SAMPLE_DOCS = {p.name: json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))}


@st.composite
def _hostile_body(draw: st.DrawFn) -> bytes:
    """A real sample with one field, at any depth, replaced by any JSON value (names with
    unicode tricks included), or random bytes, or a sample cut short."""
    how = draw(st.sampled_from(["mutate", "mutate", "bytes", "cut"]))
    if how == "bytes":
        return draw(st.binary(max_size=600))
    document = copy.deepcopy(_SAMPLE_DOCS[draw(st.sampled_from(sorted(_SAMPLE_DOCS)))])
    raw = json.dumps(document).encode()
    if how == "cut":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    node: Any = document
    for _ in range(draw(st.integers(0, 4))):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        child = node[draw(st.sampled_from(keys))]
        if not isinstance(child, dict | list):
            break
        node = child
    if isinstance(node, dict) and node:
        node[draw(st.sampled_from(sorted(node)))] = draw(_JSON | _TRICKY_NAMES)
    elif isinstance(node, list) and node:
        node[draw(st.integers(0, len(node) - 1))] = draw(_JSON | _TRICKY_NAMES)
    # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, as a hostile sender may send
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


_TRICKY_NAMES = st.sampled_from(
    [
        "w\u0435b-1",
        "web\u200b-1",
        "web-1\u202egnp",
        "web-1\x00",
        "../../kube-system",
        "web-1; rm -rf /",
        "kube-system",
        "A" * 300,
        "\ud800",
    ]
)


@fuzz_settings(
    max_examples=int(os.environ.get("IR_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_hostile_body(), path=st.sampled_from(_ALERT_PATHS))
def test_fuzzed_alerts_over_http_never_break_the_server(
    fuzz_server: tuple[AlertServer, Client, RecordingActions, AuditLog], body: bytes, path: str
) -> None:
    """Hostile bodies POSTed to a running server (authenticated, so they reach the parsers): every
    reply is a defined status with a JSON body, never a 500 or a dropped connection; the server
    stays healthy; and whatever ran acted only on valid Kubernetes names."""
    server, client, recorder, audit = fuzz_server
    status, _, data = client.request("POST", path, body, AUTH)
    assert status in (200, 202, 400, 413, 422, 429, 503), (status, data[:300])
    event(f"HTTP {status}")
    reply = json.loads(data)
    assert isinstance(reply, dict)
    if status == 400:
        assert reply.get("error"), reply
    assert client.get("/healthz")[0] == 200
    for call in list(recorder.calls):
        for name in (call.target.pod, call.target.namespace):
            assert name is None or is_dns1123_subdomain(name), call.target
    assert not audit.events("internal-error"), audit.events("internal-error")


REGRESSIONS = ATHERIS_REGRESSIONS / "alerts"


@pytest.mark.parametrize("found", sorted(p.name for p in REGRESSIONS.glob("*")))
def test_inputs_fuzzing_once_crashed_on_get_a_400(
    fuzz_server: tuple[AlertServer, Client, RecordingActions, AuditLog], found: str
) -> None:
    """What atheris once crashed the parsers with reaches the server as a 400 with a reason, not
    a 500 (before the fix: an 'internal-error' audit record and a 500)."""
    server, client, recorder, audit = fuzz_server
    status, reply = client.post((REGRESSIONS / found).read_bytes())
    assert status == 400 and reply["error"], reply
    assert not audit.events("internal-error")


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[AlertServer, Client, RecordingActions, AuditLog]]:
    """One server for every fuzzed request of the module (a queue deep enough for all)."""
    started = _serve(queue_size=500)
    yield started
    started[0].shutdown(grace=2.0)


def test_health_and_prometheus_metrics(start: Start) -> None:
    server, client, recorder, audit = start()
    assert client.get("/healthz") == (200, b'{"status": "ok"}\n')
    assert client.get("/readyz")[0] == 200
    client.post(_falco())
    client.post(_falco())
    client.post(b"{", "/v1/alerts")
    assert _wait(lambda: len(audit.events("run")) == 1)
    assert client.get("/metrics")[0] == 401, "no anonymous scrape on the alert listener"
    status, headers, body = client.request("GET", "/metrics", headers=AUTH)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for line in text.splitlines():
        assert (
            line.startswith("# HELP ") or line.startswith("# TYPE ") or _SAMPLE_LINE.match(line)
        ), line
    assert 'ir_serve_alerts_total{decision="queued",source="falco"} 1' in text
    assert 'ir_serve_alerts_total{decision="duplicate",source="falco"} 1' in text
    assert 'ir_serve_http_requests_total{code="400",path="/v1/alerts"} 1' in text
    assert 'ir_serve_runs_total{playbook="shell-in-container",status="ok"} 1' in text
    assert "# TYPE ir_serve_accept_seconds histogram" in text
    assert re.search(r'ir_serve_alert_to_step_seconds_count\{action="quarantine"\} 1', text)
    buckets = [
        int(v) for v in re.findall(r'ir_serve_accept_seconds_bucket\{le="[^"]+"\} (\d+)', text)
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 3
    assert "ir_serve_queue_capacity 50" in text


def test_rbac_gives_each_identity_its_own_grants() -> None:
    """The shape of deploy/kustomize/base/rbac.yaml (what the apiserver makes of it is in
    tests/resilience/test_admission.py and test_rbac.py): ir-serve may only act as ir-responder;
    ir-responder has no secrets, no exec outside the collector namespace, no policy deletion."""
    documents = list(yaml.safe_load_all((ROOT / "deploy/kustomize/base/rbac.yaml").read_text()))
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    serve = by_name[("Role", "ir-serve")]
    assert serve["metadata"]["namespace"] == "ir-system"
    assert serve["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts"],
            "resourceNames": ["ir-responder"],
            "verbs": ["impersonate"],
        },
        # its own run records (durable runs): never an update of an accepted run's spec
        {
            "apiGroups": ["ir.forensics"],
            "resources": ["irruns"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        },
        {
            "apiGroups": ["ir.forensics"],
            "resources": ["irruns/status"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["create", "get", "update"],
        },
    ]
    role = by_name[("ClusterRole", "ir-responder")]
    grants = {
        (g, r): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert grants[("networking.k8s.io", "networkpolicies")] == {"create", "get", "list"}
    assert grants[("", "nodes")] == {"get", "patch"}
    assert ("", "secrets") not in grants and ("", "pods/exec") not in grants
    assert ("", "pods/ephemeralcontainers") not in grants
    assert all("*" not in verbs for verbs in grants.values())
    collector = by_name[("Role", "ir-responder-collector")]
    assert collector["metadata"]["namespace"] == "ir-collectors"
    assert {r for rule in collector["rules"] for r in rule["resources"]} == {"pods/exec"}


# -- end to end on the real control plane ---------------------------------------------------------


def serve_one_alert(
    env: dict[str, str], args: list[str], alert: bytes, audit_path: Path, timeout: float = 300
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Run `ir serve --actions cluster` with the shipped playbooks (a subprocess, `env` and `args`
    added), POST one Falco alert, wait for its run, stop the server (it must exit 0); returns the
    audit log's step events by action, and its run events."""
    from tests.fixtures_k8s import wait_for

    proc = subprocess.Popen(
        [
            sys.executable, "-m", "ir.cli.main", "serve", "--listen", "127.0.0.1:0",
            "--actions", "cluster", "--playbooks", str(ROOT / "playbooks"),
            "--audit-log", str(audit_path), *args,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip

    def events(kind: str) -> list[dict[str, Any]]:
        if not audit_path.exists():
            return []
        lines = audit_path.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["event"] == kind]

    match = None
    try:
        seen = []  # warnings may come first; the server runs on, so never read to the end
        while proc.stderr and len(seen) < 20:
            seen.append(proc.stderr.readline())
            match = re.search(r"listening on (http://\S+) ", seen[-1])
            if match or not seen[-1]:
                break
        assert match, "".join(seen)
        status, reply = Client(match.group(1)).post(alert, "/v1/alerts/falco")
        assert status == 202, reply
        wait_for("the playbook run to finish", lambda: events("run"), timeout)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {e["action"]: e for e in events("step")}, events("run")


@pytest.mark.k8s
@pytest.mark.docker
def test_falcosidekick_post_quarantines_and_replaces_on_a_real_cluster(
    control_plane: Any, docker_bed: Any, node: Any, namespace: str, tmp_path: Path
) -> None:
    """Falcosidekick POST → `ir serve` (real ClusterActions) → bundle in the store, the pod
    quarantined (traffic from another pod refused) and replaced, and the audit log says so."""
    from tests.fixtures_k8s import wait_for
    from tests.k8s_helpers import OK_SERVER, bare_pod, create, wait_ready, wait_traffic
    from tests.test_capture_pod import POLICY_API, deploy_web, ready_pods
    from tests.testbed.deploy import install_run_store

    cp, ns = control_plane, namespace
    install_run_store(cp)  # runs are IrRun objects (--runs cluster, the default here)
    deploy_web(cp, ns)
    create(cp, ns, bare_pod("peer", OK_SERVER.format(port=9090), {"role": "peer"}))
    wait_for("2 ready web pods", lambda: len(ready_pods(cp, ns)) == 2, 90)
    wait_ready(cp, ns, "peer")
    suspect = ready_pods(cp, ns)[0]
    name, uid = suspect["metadata"]["name"], suspect["metadata"]["uid"]
    wait_traffic(cp, ns, "peer", suspect["status"]["podIP"], 8080, allowed=True)
    audit_path, store = tmp_path / "audit.jsonl", tmp_path / "evidence"
    env = {
        **os.environ,
        "IR_SERVE_TOKEN": TOKEN,
        "KUBECONFIG": str(cp.kubeconfig),
        "DOCKER_HOST": docker_bed.host,
        "IR_OPERATOR": "ir-serve-e2e",
        "IR_NODE_ROOT": node.host_root,
    }
    steps, runs = serve_one_alert(
        env,
        ["--store", str(store)],
        _falco(uuid="e2e-1", pod=name, namespace=ns),
        audit_path,
        timeout=240,
    )
    assert steps["capture"]["status"] == "ok", steps["capture"]
    assert steps["quarantine"]["status"] == "ok", steps["quarantine"]
    assert steps["replace"]["status"] == "ok", steps["replace"]
    assert runs[0]["status"] == "ok"
    bundle = steps["capture"]["bundle"]
    assert bundle and Path(bundle).exists()
    verify = subprocess.run(
        [sys.executable, "-m", "ir.cli.main", "bundle", "verify", bundle],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    policies = cp.api("GET", POLICY_API.format(ns=ns))["items"]
    assert len(policies) == 1
    selector = ",".join(
        f"{k}={v}" for k, v in policies[0]["spec"]["podSelector"]["matchLabels"].items()
    )
    selected = cp.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"]
    assert [p["metadata"]["uid"] for p in selected] == [uid]
    assert not cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")["metadata"].get(
        "ownerReferences"
    )
    wait_traffic(cp, ns, "peer", suspect["status"]["podIP"], 8080, allowed=False)
    print(
        f"\nalert -> NetworkPolicy verified: {steps['quarantine']['since_alert_seconds']:.2f}s; "
        f"alert -> replacement ready: {steps['replace']['since_alert_seconds']:.2f}s"
    )


def test_serve_refuses_to_act_unsigned(tmp_path: Path) -> None:
    """With --actions cluster, ir serve starts only with a signing key (or --allow-unsigned)."""
    env = {k: v for k, v in os.environ.items() if k != "IR_SIGNING_KEY"}
    env["IR_SERVE_TOKEN"] = TOKEN
    done = subprocess.run(
        [sys.executable, "-m", "ir.cli.main", "serve", "--listen", "127.0.0.1:0",
         "--actions", "cluster", "--playbooks", str(ROOT / "playbooks")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--signing-key or $IR_SIGNING_KEY" in done.stderr, done.stderr
