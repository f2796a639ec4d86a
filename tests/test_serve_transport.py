"""`ir serve` transport: HTTPS with a certificate rotated under a running server (a
kubernetes.io/tls Secret mount, `..data` symlink swap) and broken pairs refused; /metrics on its
own listener, or behind the bearer token; HMAC replay protection that survives a restart (and a
torn journal line); insecure settings refused at start with exit code 2."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ir.errors import UsageError
from ir.playbook.actions import RecordingActions
from ir.playbook.audit import AuditLog
from ir.serve import journal
from ir.serve.auth import sign_body
from ir.serve.config import ServeConfig
from ir.serve.journal import UsedSignatures
from ir.serve.server import AlertServer
from tests.test_serve import AUTH, PLAYBOOKS, ROOT, SECRET, TOKEN, _falco, _wait

# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    cert: bytes  # PEM
    key: bytes  # PEM
    fingerprint: str  # SHA-256 of the DER certificate


class CA:
    """A throwaway CA that issues server certificates for 127.0.0.1 and localhost."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ir test CA")])
        self.cert = (
            _builder(name, name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cn: str) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        names = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        cert = (
            _builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
                self.cert.subject,
                key.public_key(),
            )
            .add_extension(names, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return Pair(
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            hashlib.sha256(der).hexdigest(),
        )

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pem.decode())


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


class SecretMount:
    """A directory laid out as the kubelet mounts a kubernetes.io/tls Secret: tls.crt and tls.key
    are symlinks through `..data`, which an update swaps atomically to a new timestamped dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir(parents=True, exist_ok=True)
        for name in ("tls.crt", "tls.key"):
            (root / name).symlink_to(Path("..data") / name)

    def publish(self, cert: bytes, key: bytes) -> None:
        self.generation += 1
        version = self.root / f"..2025_01_01_00_00_{self.generation:02d}.{os.getpid()}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert)
        (version / "tls.key").write_bytes(key)
        staging = self.root / "..data_tmp"
        staging.symlink_to(version.name)
        os.replace(staging, self.root / "..data")


# -- a server and clients ---------------------------------------------------------------------


Start = Callable[..., tuple[AlertServer, AuditLog]]


@pytest.fixture
def start() -> Iterator[Start]:
    servers: list[AlertServer] = []

    def _start(**overrides: Any) -> tuple[AlertServer, AuditLog]:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "tokens": (TOKEN,),
            "hmac_secrets": (SECRET,),
            "workers": 1,
            "queue_size": 50,
            "shutdown_grace": 2.0,
            **overrides,
        }
        audit = AuditLog(keep=True)
        server = AlertServer(ServeConfig(**settings), PLAYBOOKS, RecordingActions(), audit=audit)
        server.start()
        servers.append(server)
        return server, audit

    yield _start
    for server in servers:
        server.shutdown(grace=1.0)


def _hostport(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    host, port = _hostport(url)
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection(host, port, timeout=10, context=context)
        if url.startswith("https://")
        else http.client.HTTPConnection(host, port, timeout=10)
    )
    try:
        conn.request(
            method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _peer(url: str, context: ssl.SSLContext) -> tuple[str, str, int]:
    """A new TLS connection: (fingerprint of the certificate served, TLS version, /healthz)."""
    host, port = _hostport(url)
    conn = http.client.HTTPSConnection(host, port, timeout=10, context=context)
    try:
        conn.request("GET", "/healthz")
        status = conn.getresponse()
        status.read()
        assert isinstance(conn.sock, ssl.SSLSocket)
        der = conn.sock.getpeercert(binary_form=True)
        assert der is not None
        return hashlib.sha256(der).hexdigest(), str(conn.sock.version()), status.status
    finally:
        conn.close()


# -- TLS --------------------------------------------------------------------------------------


def test_tls_serves_a_rotated_certificate_to_new_connections(start: Start, tmp_path: Path) -> None:
    ca = CA()
    first, second = ca.issue("ir-serve-1"), ca.issue("ir-serve-2")
    mount = SecretMount(tmp_path / "tls")
    mount.publish(first.cert, first.key)
    server, audit = start(tls_cert=str(mount.root / "tls.crt"), tls_key=str(mount.root / "tls.key"))
    client = ca.client_context()
    assert server.url.startswith("https://127.0.0.1:")
    fingerprint, version, status = _peer(server.url, client)
    assert (fingerprint, status) == (first.fingerprint, 200)
    assert version in ("TLSv1.2", "TLSv1.3")
    start_record = audit.events("start")[0]
    assert start_record["scheme"] == "https" and start_record["address"] == server.url
    assert start_record["tls"]["fingerprint"] == first.fingerprint
    # a keep-alive connection opened before the rotation
    host, port = _hostport(server.url)
    kept = http.client.HTTPSConnection(host, port, timeout=10, context=client)
    kept.request("GET", "/readyz")
    assert kept.getresponse().read() and kept.sock is not None

    mount.publish(second.cert, second.key)
    assert _peer(server.url, client)[0] == second.fingerprint, "new connections: new certificate"
    kept.request("GET", "/healthz")
    assert kept.getresponse().status == 200, "the open connection goes on: the server never stopped"
    assert isinstance(kept.sock, ssl.SSLSocket)
    kept_cert = kept.sock.getpeercert(binary_form=True) or b""
    assert hashlib.sha256(kept_cert).hexdigest() == first.fingerprint
    kept.close()
    assert len(audit.events("start")) == 1 and not audit.events("shutdown-begin")
    status_code, body = _request(server.url, "POST", "/v1/alerts/falco", _falco(), AUTH, client)
    assert status_code == 202, body
    reloads = audit.events("tls-reload")
    assert [(r["status"], r["fingerprint"]) for r in reloads] == [("loaded", second.fingerprint)]
    assert server.metrics.value("ir_serve_tls_reloads_total", result="loaded") == 1


def test_tls_refuses_a_broken_pair_and_keeps_the_old_certificate(
    start: Start, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ca = CA()
    good, other, later = ca.issue("good"), ca.issue("other"), ca.issue("later")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_bytes(good.cert)
    key.write_bytes(good.key)
    server, audit = start(tls_cert=str(cert), tls_key=str(key))
    client = ca.client_context()
    assert _peer(server.url, client)[0] == good.fingerprint

    cert.write_bytes(other.cert)  # the key still the old one: a mismatched pair
    for _ in range(3):
        fingerprint, _, status = _peer(server.url, client)
        assert (fingerprint, status) == (good.fingerprint, 200)
    refused = audit.events("tls-reload")
    assert len(refused) == 1, "reported once per change, not per connection"
    assert refused[0]["status"] == "refused"
    assert "does not match" in refused[0]["reason"]
    assert "still serving the previous certificate" in capfd.readouterr().err

    key.write_bytes(other.key[: len(other.key) // 2])  # half written
    assert _peer(server.url, client)[0] == good.fingerprint
    assert audit.events("tls-reload")[-1]["status"] == "refused"

    cert.write_bytes(later.cert)
    key.write_bytes(later.key)
    assert _peer(server.url, client)[0] == later.fingerprint
    assert [r["status"] for r in audit.events("tls-reload")] == ["refused", "refused", "loaded"]
    assert server.metrics.value("ir_serve_tls_reloads_total", result="refused") == 2


def test_tls_listener_survives_plain_http_and_untrusting_clients(
    start: Start, tmp_path: Path
) -> None:
    ca = CA()
    pair = ca.issue("srv")
    mount = SecretMount(tmp_path / "tls")
    mount.publish(pair.cert, pair.key)
    server, audit = start(tls_cert=str(mount.root / "tls.crt"), tls_key=str(mount.root / "tls.key"))
    host, port = _hostport(server.url)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = sock.recv(1024)  # a TLS alert, or nothing
        except ConnectionResetError:
            reply = b""
        assert not reply.startswith(b"HTTP/")
    with pytest.raises(ssl.SSLError):
        _peer(server.url, ssl.create_default_context())  # does not trust the test CA
    assert _wait(lambda: server.metrics.value("ir_serve_tls_handshake_failures_total") == 2), (
        server.metrics.render()
    )
    assert _peer(server.url, ca.client_context())[2] == 200


def test_a_silent_tls_client_stalls_nobody_and_is_cut_off(start: Start, tmp_path: Path) -> None:
    ca = CA()
    pair = ca.issue("srv")
    (tmp_path / "tls.crt").write_bytes(pair.cert)
    (tmp_path / "tls.key").write_bytes(pair.key)
    server, _ = start(
        tls_cert=str(tmp_path / "tls.crt"), tls_key=str(tmp_path / "tls.key"), request_timeout=2.0
    )
    with socket.create_connection(_hostport(server.url), timeout=10) as silent:
        began = time.monotonic()
        assert _peer(server.url, ca.client_context())[2] == 200
        assert time.monotonic() - began < 1.5, "served while the silent handshake is pending"
        with contextlib.suppress(ConnectionResetError):
            assert silent.recv(1024) == b""
        assert time.monotonic() - began < 6, "cut off after the request timeout"
    assert server.metrics.value("ir_serve_tls_handshake_failures_total") == 1


def test_a_pair_that_does_not_load_is_refused_at_start(tmp_path: Path) -> None:
    ca = CA()
    one, two = ca.issue("one"), ca.issue("two")
    (tmp_path / "tls.crt").write_bytes(one.cert)
    (tmp_path / "tls.key").write_bytes(two.key)
    config = ServeConfig(
        tokens=(TOKEN,), tls_cert=str(tmp_path / "tls.crt"), tls_key=str(tmp_path / "tls.key")
    )
    with pytest.raises(UsageError, match="key does not match the certificate"):
        AlertServer(config, PLAYBOOKS, RecordingActions())
    config.tls_key = str(tmp_path / "missing.key")
    with pytest.raises(UsageError, match="missing.key"):
        AlertServer(config, PLAYBOOKS, RecordingActions())


# -- /metrics -----------------------------------------------------------------------------------


def test_metrics_listener_is_separate_and_the_alert_listener_hides_metrics(start: Start) -> None:
    server, audit = start(metrics_listen=("127.0.0.1", 0))
    metrics_url = server.metrics_url
    assert metrics_url and metrics_url != server.url
    status, body = _request(metrics_url, "GET", "/metrics")
    assert status == 200 and b"# TYPE ir_serve_alerts_total counter" in body
    for path in ("/healthz", "/readyz"):
        assert _request(metrics_url, "GET", path)[0] == 200
        assert _request(server.url, "GET", path)[0] == 200, "probes need no credentials"
    assert _request(server.url, "GET", "/metrics", headers=AUTH)[0] == 404
    status, body = _request(metrics_url, "POST", "/v1/alerts", _falco(), AUTH)
    assert status == 404 and b"takes no alerts" in body
    assert audit.events("start")[0]["metrics_address"] == metrics_url
    server.intake.draining = True
    assert _request(metrics_url, "GET", "/readyz")[0] == 503


def test_metrics_on_the_alert_listener_need_the_bearer_token(start: Start) -> None:
    server, _ = start()
    assert _request(server.url, "GET", "/metrics")[0] == 401
    assert (
        _request(
            server.url, "GET", "/metrics", headers={"Authorization": "Bearer nope-0123456789abcdef"}
        )[0]
        == 401
    )
    assert _request(server.url, "GET", "/metrics", headers=AUTH)[0] == 200
    hmac_only, _ = start(tokens=())
    status, body = _request(hmac_only.url, "GET", "/metrics", headers=sign_body(SECRET, b""))
    assert status == 401 and b"--metrics-listen" in body


# -- replay protection ----------------------------------------------------------------------------


def _post_signed(server: AlertServer, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    status, data = _request(server.url, "POST", "/v1/alerts", body, headers)
    return status, json.loads(data).get("error", "")


def test_replay_is_refused_across_a_restart_with_replay_state(start: Start, tmp_path: Path) -> None:
    state = tmp_path / "state" / "replay.journal"
    server, _ = start(replay_state=str(state))
    used, unused = _falco(uuid="used"), _falco(uuid="unused", pod="web-2")
    used_headers, unused_headers = sign_body(SECRET, used), sign_body(SECRET, unused)
    assert _post_signed(server, used, used_headers)[0] == 202
    assert _post_signed(server, used, used_headers) == (
        403,
        "replayed request (signature already used)",
    )
    server.shutdown(grace=1.0)
    time.sleep(1.1)  # the next server starts in a later second than the signatures

    again, audit = start(replay_state=str(state))
    loaded = audit.events("start")[0]["replay_state"]
    assert loaded["path"] == str(state) and loaded["live"] == 1 and loaded["unreadable"] == 0
    assert _post_signed(again, used, used_headers) == (
        403,
        "replayed request (signature already used)",
    )
    assert _post_signed(again, unused, unused_headers)[0] == 202, (
        "signed before this start, but the journal knows it was not used"
    )


def test_without_replay_state_requests_signed_before_the_start_are_refused(
    start: Start, tmp_path: Path
) -> None:
    body = _falco()
    early = sign_body(SECRET, body, timestamp=time.time() - 2)
    server, audit = start()
    status, reason = _post_signed(server, body, early)
    assert status == 403 and "--replay-state" in reason and "before this server started" in reason
    assert _post_signed(server, body, sign_body(SECRET, body))[0] == 202
    assert audit.events("start")[0]["replay_state"]["path"] is None


def test_a_new_replay_journal_knows_nothing_before_it_began(start: Start, tmp_path: Path) -> None:
    body = _falco()
    early = sign_body(SECRET, body, timestamp=time.time() - 2)
    server, _ = start(replay_state=str(tmp_path / "fresh.journal"))
    status, reason = _post_signed(server, body, early)
    assert status == 403 and "before the replay journal" in reason


def test_a_torn_journal_line_is_tolerated(start: Start, tmp_path: Path) -> None:
    state = tmp_path / "replay.journal"
    server, _ = start(replay_state=str(state))
    first, second = _falco(uuid="t1"), _falco(uuid="t2", pod="web-2")
    first_headers, second_headers = sign_body(SECRET, first), sign_body(SECRET, second)
    assert _post_signed(server, first, first_headers)[0] == 202
    server.shutdown(grace=1.0)
    with state.open("ab") as handle:  # killed -9 in the middle of the next append
        handle.write(b"3f9a0c")

    again, audit = start(replay_state=str(state))
    assert audit.events("start")[0]["replay_state"]["unreadable"] == 1
    assert _post_signed(again, first, first_headers)[0] == 403
    assert _post_signed(again, second, second_headers)[0] == 202
    again.shutdown(grace=1.0)

    third, audit = start(replay_state=str(state))
    assert audit.events("start")[0]["replay_state"] | {"since": 0} == {
        "path": str(state),
        "since": 0,
        "live": 2,
        "expired": 0,
        "unreadable": 0,
    }, "the journal was compacted: the torn line is gone, the later append intact"
    assert _post_signed(third, second, second_headers)[0] == 403


def test_an_unwritable_journal_refuses_signed_requests_with_503(
    start: Start, tmp_path: Path
) -> None:
    server, audit = start(replay_state=str(tmp_path / "replay.journal"))
    server.authenticator.used.close()
    body = _falco()
    headers = sign_body(SECRET, body)
    status, reason = _post_signed(server, body, headers)
    assert status == 503 and "replay journal" in reason
    assert len(server.authenticator.used) == 0, "nothing admitted that was not journaled"
    assert _request(server.url, "POST", "/v1/alerts", body, AUTH)[0] == 202, "bearer unaffected"


def test_journal_drops_expired_records_and_compacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "COMPACT_MIN_LINES", 10)
    path = tmp_path / "replay.journal"
    t0 = 1_700_000_000
    used = UsedSignatures(300, path, now=t0)
    for i in range(40):  # one signature a minute: at most 6 are live at any time
        now = t0 + 60 * i
        assert used.claim(f"sig-{i}", now, now) == ""
        assert used.claim(f"sig-{i}", now, now).startswith("replayed")
        assert len(path.read_bytes().splitlines()) <= 1 + max(10, 2 * len(used)) + 1
    used.close()
    reopened = UsedSignatures(300, path, now=t0 + 60 * 39 + 200)
    assert reopened.loaded is not None
    assert (reopened.loaded.since, reopened.loaded.live) == (t0, 2)
    assert reopened.claim("sig-39", t0 + 60 * 39, t0 + 60 * 39 + 200).startswith("replayed")
    assert reopened.claim("sig-0", t0, t0 + 60 * 39 + 200) == "", "expired: freshness refuses it"
    reopened.close()


def test_a_file_that_is_not_a_journal_is_not_overwritten(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("do not lose me\n")
    with pytest.raises(UsageError, match="not an ir serve replay journal"):
        UsedSignatures(300, precious)
    assert precious.read_text() == "do not lose me\n"


# -- refused at start -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"host": "0.0.0.0"}, "refusing plain HTTP on 0.0.0.0"),
        ({"host": "10.1.2.3"}, "--allow-insecure-http"),
        ({"host": "::"}, "refusing plain HTTP on ::"),
        ({"tls_cert": "/x/tls.crt"}, "both a certificate and its key"),
        (
            {"host": "0.0.0.0", "allow_insecure_http": True, "allow_unauthenticated": True},
            "--insecure-no-auth refused",
        ),
        ({"metrics_listen": ("127.0.0.1", 8080)}, "is the alert listener's port"),
    ],
)
def test_insecure_transport_is_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        ServeConfig(tokens=(TOKEN,), **settings).validate()


@pytest.mark.parametrize(
    "settings",
    [
        {"host": "127.0.0.1"},
        {"host": "::1"},
        {"host": "localhost", "allow_unauthenticated": True},
        {"host": "0.0.0.0", "allow_insecure_http": True},
        {"host": "0.0.0.0", "tls_cert": "c", "tls_key": "k"},
        {"host": "0.0.0.0", "tls_cert": "c", "tls_key": "k", "metrics_listen": ("0.0.0.0", 9090)},
    ],
)
def test_safe_transport_is_accepted(settings: dict[str, Any]) -> None:
    ServeConfig(tokens=(TOKEN,), **settings).validate()


def _ir(*args: str) -> list[str]:
    return [sys.executable, "-m", "ir.cli.main", "serve", *args, "--actions", "dry-run",
            "--playbooks", str(ROOT / "playbooks")]  # fmt: skip


def test_cli_refuses_plain_http_on_a_non_loopback_address_with_exit_2() -> None:
    env = {**os.environ, "IR_SERVE_TOKEN": TOKEN}
    done = subprocess.run(
        _ir("--listen", "0.0.0.0:0"), capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("ir: error: refusing plain HTTP on 0.0.0.0")
    assert done.stderr.count("\n") == 1, "one line"
    done = subprocess.run(
        _ir("--listen", "0.0.0.0:0", "--tls-dir", "/nonexistent", "--tls-cert", "x.crt"),
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "not both" in done.stderr, done.stderr


def test_cli_help_teaches_the_transport_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ir.cli.main", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for option in (
        "--tls-cert",
        "--tls-key",
        "--tls-dir",
        "--allow-insecure-http",
        "--metrics-listen",
        "--replay-state",
        "IR_SERVE_TLS_CERT",
        "IR_SERVE_TLS_KEY",
        "IR_SERVE_REPLAY_STATE",
    ):
        assert option in done.stdout, option


def test_cli_serves_https_from_a_secret_mount_with_a_metrics_listener(tmp_path: Path) -> None:
    ca = CA()
    pair = ca.issue("cli")
    mount = SecretMount(tmp_path / "tls")
    mount.publish(pair.cert, pair.key)
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "IR_SERVE_TOKEN": TOKEN, "IR_SERVE_HMAC_SECRET": SECRET.decode(),
           "IR_SERVE_REPLAY_STATE": str(tmp_path / "replay.journal")}  # fmt: skip
    proc = subprocess.Popen(
        _ir("--listen", "127.0.0.1:0", "--tls-dir", str(mount.root),
            "--metrics-listen", "127.0.0.1:0", "--audit-log", str(audit)),
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        found = re.search(r"listening on (https://\S+) .*metrics on (http://\S+)$", line.strip())
        assert found, line
        url, metrics_url = found.groups()
        assert _peer(url, ca.client_context())[0] == pair.fingerprint
        body = _falco()
        status, _ = _request(
            url, "POST", "/v1/alerts", body, sign_body(SECRET, body), ca.client_context()
        )
        assert status == 202
        assert _request(metrics_url, "GET", "/metrics")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    started = json.loads(audit.read_text().splitlines()[0])
    assert started["event"] == "start" and started["scheme"] == "https"
    assert started["tls"]["cert"] == str(mount.root / "tls.crt")
    assert started["metrics_address"] == metrics_url
    assert started["replay_state"]["path"] == str(tmp_path / "replay.journal")
    assert (tmp_path / "replay.journal").read_text().count("\n") == 2, "header and one signature"
