"""Every failure names its cause: the exit code and the sentence that explains it.

Wrong endpoints are real servers on 127.0.0.1 (http.server, plain and TLS), an unreachable one a
closed port; ir reaches them through a kubeconfig, as a responder's ir would. The API server's own
refusals (pod or namespace not found, namespace read forbidden) come from a stand-in that answers
with Kubernetes Status objects, as an apiserver does; tests/test_capture_pod.py checks the same on
the test bed's real apiserver. The exit reasons of `ir capture pod` are checked on real results:
bundles from the project's writer, the result types of a capture, quarantine and replace."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ir.bundle.manifest import CollectorEntry
from ir.bundle.writer import BundleWriter, SealedBundle
from ir.cli.main import HELP
from ir.cluster import kube as kube_module
from ir.cluster.capture import PodCaptureResult
from ir.cluster.replace import ReplaceResult
from ir.cluster.resolve import PodTarget, resolve_pod
from ir.cluster.respond import QuarantineResult
from ir.collect.session import CaptureResult
from ir.errors import ClusterError, ExitCode
from ir.store.base import StoreResult

REPO = Path(__file__).resolve().parents[1]

# An answer: (HTTP status, content type, body).
Answer = tuple[int, str, bytes]


def status_doc(code: int, reason: str, message: str) -> Answer:
    """A Kubernetes Status, as an apiserver answers a failed request."""
    doc = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return code, "application/json", json.dumps(doc).encode()


@contextmanager
def http_server(
    answer: Callable[[str], Answer], tls: Path | None = None, port: int = 0
) -> Iterator[str]:
    """A real HTTP(S) server on 127.0.0.1 answering every request with answer(path); yields
    its URL. `tls`: a directory to put a self-signed certificate in."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's name
            status, content_type, body = answer(self.path.split("?")[0])
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    scheme = "http"
    if tls is not None:
        cert, key = _self_signed(tls)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-an-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def kubeconfig(path: Path, server: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(doc))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ir(args: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IR_DEBUG", "KUBERNETES_SERVICE_HOST")}
    env["KUBECONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "ir.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process requests give up after one short retry (the CLI test keeps the real ones)."""
    monkeypatch.setattr(kube_module, "RETRY_DELAYS", (0.01,))


# -- not a Kubernetes API server --------------------------------------------------------------


def html(status: int) -> Callable[[str], Answer]:
    return lambda path: (status, "text/html; charset=utf-8", b"<html><body>Not Found</body></html>")


def test_a_web_server_answering_404_is_not_taken_for_a_missing_pod(tmp_path: Path) -> None:
    """A web server at the API address answers 404 text/html: ir says the server is not a
    Kubernetes API server (exit 4), never "pod not found"; in -o json too."""
    with http_server(html(404)) as url:
        config = kubeconfig(tmp_path / "kubeconfig", url)
        store = str(tmp_path / "evidence")
        done = run_ir(["capture", "pod", "web-1", "-n", "shop", "--store", store], config)
        expected = f"the server at {url} is not a Kubernetes API server (HTTP 404, text/html)"
        assert done.returncode == 4, done.stderr
        assert done.stderr.strip().splitlines()[-1] == f"ir: error: {expected}"
        assert "not found" not in done.stderr
        as_json = run_ir(
            ["capture", "pod", "web-1", "-n", "shop", "--store", store, "-o", "json"], config
        )
        assert as_json.returncode == 4
        assert json.loads(as_json.stdout) == {"exit_code": 4, "errors": [expected]}


def test_any_answer_that_is_not_the_api_servers_is_named(tmp_path: Path) -> None:
    """200 with HTML (no JSON at all: once an internal error), 403 and 500 without a Status: each
    is named as a server that is not a Kubernetes API server, with its status and type."""
    for status in (200, 403, 500):
        with http_server(html(status)) as url:
            kube = kube_module.connect(str(kubeconfig(tmp_path / f"kc{status}", url)))
            with pytest.raises(kube_module.ApiError) as failed:
                kube.request("GET", "/api/v1/namespaces/shop/pods/web-1", retry=False)
            assert failed.value.message == (
                f"the server at {url} is not a Kubernetes API server (HTTP {status}, text/html)"
            )
            assert not failed.value.kubernetes and not failed.value.not_found
            with pytest.raises(ClusterError, match="not a Kubernetes API server"):
                kube.get_optional("/api/v1/namespaces/shop/pods/web-1")  # never "absent"


# -- unreachable ------------------------------------------------------------------------------


def test_a_closed_port_is_an_unreachable_api_server(tmp_path: Path) -> None:
    """Nothing listens: exit 4, one short sentence naming the server and "connection refused",
    none of urllib3's nested reprs (after the bounded retries of a read, ~8 s)."""
    server = f"https://127.0.0.1:{closed_port()}"
    done = run_ir(
        ["capture", "pod", "web-1", "-n", "shop", "--store", str(tmp_path)],
        kubeconfig(tmp_path / "kc", server),
    )
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"ir: error: Kubernetes API server {server} unreachable: connection refused"
    for noise in ("urllib3", "Pool", "Max retries", "Errno", "object at 0x", "Traceback"):
        assert noise not in done.stderr, done.stderr


def test_an_outage_wait_resends_a_request_the_server_never_got(tmp_path: Path) -> None:
    """ir serve's client (outage_wait) sends again, for as long as it is told, a request whose
    connection was refused (a restarting apiserver: nothing was done, so even a POST is safe to
    resend) and gets the answer once the server is back; a person's client (outage_wait 0) is
    told at once. The refusal is marked unsent; an answer of the server never is."""
    port = closed_port()
    server = f"http://127.0.0.1:{port}"
    kube = kube_module.connect(str(kubeconfig(tmp_path / "kc", server)))
    started = time.monotonic()
    with pytest.raises(kube_module.ApiError) as failed:
        kube.request("POST", "/api/v1/namespaces/shop/pods", {}, retry=False)
    assert failed.value.unsent and time.monotonic() - started < 1.0
    kube.outage_wait = 10.0
    answer: Answer = (200, "application/json", b'{"kind": "Pod"}')
    with contextlib.ExitStack() as stack:
        later = threading.Timer(
            1.0, lambda: stack.enter_context(http_server(lambda p: answer, port=port))
        )
        later.start()
        started = time.monotonic()
        got = kube.request("GET", "/api/v1/namespaces/shop/pods/web-1", retry=False)
        later.join()
    assert got == {"kind": "Pod"}
    assert 0.9 < time.monotonic() - started < 8.0


def test_a_certificate_not_trusted_is_named_as_tls(tmp_path: Path, fast_retries: None) -> None:
    with http_server(html(404), tls=tmp_path / "tls") as url:
        kube = kube_module.connect(str(kubeconfig(tmp_path / "kc", url)))
        with pytest.raises(kube_module.ApiError) as failed:
            kube.get("/api/v1/namespaces/shop/pods/web-1")
    assert failed.value.status == 0
    assert failed.value.message == (
        f"Kubernetes API server {url} unreachable: TLS: certificate verify failed: "
        "self-signed certificate"
    )


def test_plain_http_where_tls_is_expected_is_named(tmp_path: Path, fast_retries: None) -> None:
    with http_server(html(404)) as url:
        server = url.replace("http://", "https://")
        kube = kube_module.connect(str(kubeconfig(tmp_path / "kc", server)))
        with pytest.raises(kube_module.ApiError) as failed:
            kube.get("/api/v1/namespaces/shop/pods/web-1")
    message = failed.value.message
    assert message.startswith(f"Kubernetes API server {server} unreachable: TLS: "), message
    assert "plain HTTP" in message and "_ssl.c" not in message and "[SSL" not in message


def test_a_server_that_never_answers_is_a_timeout(
    tmp_path: Path, fast_retries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port that accepts connections (the kernel completes them) and never answers: timed out,
    with the request it was waiting for."""
    monkeypatch.setattr(kube_module, "REQUEST_TIMEOUT", (2, 0.5))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        server = f"http://127.0.0.1:{listener.getsockname()[1]}"
        kube = kube_module.connect(str(kubeconfig(tmp_path / "kc", server)))
        with pytest.raises(kube_module.ApiError) as failed:
            kube.get("/api/v1/namespaces/shop/pods/web-1")
    assert failed.value.message == (
        f"Kubernetes API server {server} unreachable: timed out: no answer within 0.5 s "
        "(GET /api/v1/namespaces/shop/pods/web-1)"
    )


def test_a_name_that_does_not_resolve(tmp_path: Path, fast_retries: None) -> None:
    server = "https://apiserver.invalid:6443"  # .invalid never resolves (RFC 6761)
    kube = kube_module.connect(str(kubeconfig(tmp_path / "kc", server)))
    with pytest.raises(kube_module.ApiError) as failed:
        kube.get("/api/v1/namespaces/shop/pods/web-1")
    assert failed.value.message == (
        f"Kubernetes API server {server} unreachable: its host name does not resolve"
    )


# -- which is missing: the pod or its namespace ------------------------------------------------


def apiserver(namespace: Answer) -> Callable[[str], Answer]:
    """A stand-in apiserver: every pod is missing (a Status 404); the namespace GET answers
    `namespace`."""

    def answer(path: str) -> Answer:
        if re.fullmatch(r"/api/v1/namespaces/[^/]+", path):
            return namespace
        return status_doc(404, "NotFound", 'pods "web-1" not found')

    return answer


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        (
            status_doc(404, "NotFound", 'namespaces "shop" not found'),
            "namespace shop does not exist (looking for pod web-1)",
        ),
        (
            status_doc(403, "Forbidden", 'namespaces "shop" is forbidden: User "u" cannot get'),
            "pod shop/web-1 not found (namespace could not be checked: forbidden)",
        ),
        (
            (200, "application/json", b'{"kind": "Namespace", "apiVersion": "v1"}'),
            "pod shop/web-1 not found",
        ),
    ],
    ids=["namespace-missing", "namespace-forbidden", "pod-missing"],
)
def test_a_missing_pod_says_whether_its_namespace_exists(
    tmp_path: Path, namespace: Answer, expected: str
) -> None:
    with http_server(apiserver(namespace)) as url:
        kube = kube_module.connect(str(kubeconfig(tmp_path / "kc", url)))
        with pytest.raises(ClusterError) as failed:
            resolve_pod(kube, "shop", "web-1")
    assert failed.value.message == expected
    assert failed.value.exit_code == ExitCode.CLUSTER


# -- ir capture pod: the cause of each exit code ---------------------------------------------


def _capture(tmp_path: Path, outcome: str = "complete", confirmed: bool = True) -> CaptureResult:
    writer = BundleWriter(
        tmp_path / "evidence",
        case_id="C",
        target={"kind": "pod", "namespace": "shop", "name": "web-1"},
        operator="t",
        host={},
        tool={"name": "ir", "version": "t"},
    )
    writer.add_bytes("pod.json", b"{}", kind="blob", media_type="x", collector="kubernetes")
    if outcome != "complete":
        writer.record_collector(
            CollectorEntry("processes", "failed", error="cannot reach the node", container="app")
        )
    sealed: SealedBundle = writer.seal()
    assert sealed.manifest.outcome == outcome
    stored = StoreResult(
        str(sealed.path),
        sealed.root_digest,
        sealed.size,
        confirmed=confirmed,
        spooled=None if confirmed else "/var/spool/ir/C/x.tar",
        warnings=[] if confirmed else ["S3 PutObject: AccessDenied"],
    )
    return CaptureResult(sealed, stored, list(sealed.manifest.collectors))


def _target() -> PodTarget:
    pod = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"}, "spec": {}}
    return PodTarget("shop", "web-1", pod, [], [])


def _timed_out() -> ReplaceResult:
    return ReplaceResult(
        "release-from-controller", "ReplicaSet/web", ready=False, waited_seconds=120.4
    )


def _result(capture: CaptureResult, **kw: Any) -> PodCaptureResult:
    return PodCaptureResult(
        _target(),
        capture,
        kw.pop("gate_open", True),
        kw.pop("gate_reason", ""),
        requested_action=True,
        replace_timeout=120.0,
        **kw,
    )


def test_a_replace_timeout_is_its_own_cause(tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    quarantined = QuarantineResult("q1", "ir-quarantine-q1", policy_verified=True)
    result = _result(capture, quarantine=quarantined, replace=_timed_out())
    assert result.exit_code == ExitCode.CLUSTER
    assert result.reasons() == [
        "replace: no ready replacement within 120 s; the suspect stays quarantined"
    ]
    bare = _result(capture, replace=_timed_out())  # --no-quarantine
    assert bare.reasons() == [
        "replace: no ready replacement within 120 s; the suspect keeps running, out of its "
        "controller and not quarantined"
    ]
    ready = ReplaceResult("release-from-controller", "ReplicaSet/web", "web-2", ready=True)
    fine = _result(capture, quarantine=quarantined, replace=ready)
    assert fine.exit_code == ExitCode.OK and fine.reasons() == []
    statefulset = ReplaceResult("not-possible", "StatefulSet/db")
    assert _result(capture, replace=statefulset).exit_code == ExitCode.OK


@pytest.mark.parametrize(
    ("case", "code", "last"),
    [
        ("partial-forced", ExitCode.FAILED, "capture partial: processes [app]: failed"),
        ("not-stored", ExitCode.STORE, "the bundle is not confirmed stored (S3 PutObject"),
        ("gate-closed", ExitCode.REFUSED, "not acting on the pod: capture outcome is partial"),
        ("api-failed", ExitCode.CLUSTER, "quarantine INCOMPLETE: labelling failed"),
    ],
)
def test_the_cause_that_decides_the_exit_code_comes_last(
    tmp_path: Path, case: str, code: ExitCode, last: str
) -> None:
    """Several causes at once: each is listed, the one that decides the exit code last (the last
    line of the text output names it)."""
    partial = _capture(tmp_path / "p", outcome="partial")
    if case == "partial-forced":
        result = _result(partial, replace=_timed_out())
    elif case == "not-stored":
        result = _result(_capture(tmp_path / "s", confirmed=False), replace=_timed_out())
    elif case == "gate-closed":
        reason = "capture outcome is partial; nothing destructive without --force"
        result = _result(partial, gate_open=False, gate_reason=reason)
    else:
        result = _result(partial, replace=_timed_out())
        result.errors.append("quarantine INCOMPLETE: labelling failed; the pod is NOT isolated")
    reasons = result.reasons()
    assert result.exit_code == code
    assert reasons[-1].startswith(last), reasons
    assert len(reasons) == len(result.causes()) >= 1
    if case != "gate-closed":
        assert any(r.startswith("replace: no ready replacement") for r in reasons[:-1])


# -- the documented exit codes are the real ones -----------------------------------------------


def test_the_readme_documents_every_exit_code() -> None:
    readme = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ", readme, flags=re.MULTILINE)
    assert sorted(int(r) for r in rows) == sorted(int(c) for c in ExitCode)
    for code in ExitCode:  # the root command's --help names each code too
        assert re.search(rf"\b{int(code)} ", HELP), code


def test_a_name_with_a_trailing_newline_is_no_dns1123_name() -> None:
    """Names are checked as full matches (the rules alerts' names are checked by): a trailing
    newline, which `^...$` let through, is refused before any request is built."""
    from ir.cluster.resolve import check_name
    from ir.errors import UsageError

    assert check_name("pod", "web-1") == "web-1"
    for name in ("web-1\n", "Web-1", "web/1", "a" * 254):
        with pytest.raises(UsageError, match="must be a DNS-1123 name"):
            check_name("pod", name)
    with pytest.raises(UsageError):
        check_name("namespace", "a" * 64)
