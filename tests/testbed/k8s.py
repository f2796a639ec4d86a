"""A real Kubernetes control plane on loopback for tests.

etcd, kube-apiserver and kube-controller-manager are built from Go modules by
``testbed/k8s/build.sh`` (cached per version) and started here on free ports
of 127.0.0.1, with a throw-away CA, serving certificate and service-account
key pair.  Authentication is a static token file: ``admin`` (system:masters),
``viewer`` (bound to the built-in ``view`` ClusterRole) and ``limited`` and
``responder`` (no groups, no bindings: tests grant them what they need).

With ``node=NodeSpec(...)`` (what ``tests/testbed/node.py`` passes) the control plane is ready for a
real kubelet: the apiserver binds the node's bridge address (so pods reach it too), authorizes with
``Node,RBAC`` and NodeRestriction, talks to the kubelet with a client certificate the kubelet
trusts, the controller-manager allocates node CIDRs, and kube-scheduler binds pods for real. The
token file then also holds the node's identity (``system:node:NAME``) and the scheduler's.

Run ``python -m tests.testbed.k8s DIR`` from the repository root to start one
by hand; it prints the kubeconfig path and runs until Ctrl-C.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "testbed" / "k8s" / "build.sh"

#: Users in the token file besides the controller-manager's own.
#: name -> groups ("" for none).
USERS: dict[str, str] = {
    "admin": "system:masters",
    "viewer": "",
    "limited": "",
    "responder": "",
}
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class NodeSpec:
    """What the control plane must know of the one real node it will serve."""

    name: str
    ip: str  # the node's bridge address: the apiserver binds it, the kubelet serves on it
    cluster_cidr: str  # pod addresses (the controller-manager allocates the node's podCIDR)
    service_range: str  # Service ClusterIPs


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message says why."""


@dataclass
class ControlPlane:
    """A running control plane.  Stop it with :meth:`stop` or a ``with`` block."""

    server: str
    kubeconfig: Path
    admin_token: str
    ca_file: Path
    tokens: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    workdir: Path
    logs: dict[str, Path] = field(default_factory=dict)
    bin_dir: Path | None = None
    node: NodeSpec | None = None
    api_port: int = 0
    argv: dict[str, list[str]] = field(default_factory=dict)

    def kubeconfig_for(self, user: str) -> Path:
        """Write (once) and return a kubeconfig that authenticates as ``user``.

        ``user`` must be a key of :attr:`tokens`; raises KeyError otherwise.
        """
        path = self.workdir / f"kubeconfig-{user}"
        if not path.exists():
            _write_kubeconfig(path, self.server, self.ca_file, user, self.tokens[user])
        return path

    def api(self, method: str, path: str, body: Any = None, user: str = "admin") -> Any:
        """One JSON request to the apiserver as ``user``; returns the decoded body.

        Raises urllib.error.HTTPError for non-2xx answers.
        """
        return _request(self.server, self.ca_file, self.tokens[user], method, path, body)

    def restart_apiserver(self, down: float = 0.0, timeout: float = 120.0) -> float:
        """Stop kube-apiserver (SIGTERM, as a rolling restart of a control plane does), keep it
        down `down` seconds, start it again with the same flags (etcd keeps every object) and
        wait until it is ready; returns the seconds it did not answer."""
        stopped = time.monotonic()
        _terminate(self.processes["kube-apiserver"])
        time.sleep(down)
        _spawn(self, "kube-apiserver", self.argv["kube-apiserver"])
        _wait(self, "kube-apiserver", time.monotonic() + timeout, lambda: _ready(self))
        return time.monotonic() - stopped

    def check_alive(self) -> None:
        """Raise ControlPlaneError (with the log tail) if a process has exited."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise ControlPlaneError(_died_message(name, proc, self.logs[name]))

    def stop(self) -> None:
        """Terminate every process, controller-manager first; safe to call twice."""
        for name in reversed(list(self.processes)):
            _terminate(self.processes[name])
        atexit.unregister(self.stop)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_binaries() -> Path:
    """Run build.sh (a no-op when its cache is filled) and return the bin directory.

    The first build on a machine compiles Kubernetes and takes minutes; its
    progress goes to this process's stderr.  Raises ControlPlaneError on failure.
    """
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=None, check=False
    )
    lines = proc.stdout.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {proc.returncode}")
    return Path(lines[-1])


def start_control_plane(
    workdir: Path,
    *,
    bin_dir: Path | None = None,
    startup_timeout: float = 180.0,
    node: NodeSpec | None = None,
) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager under ``workdir``.

    ``bin_dir`` holds the three binaries; by default build.sh provides it
    (environment variable IR_TESTBED_K8S_BIN overrides).  Returns once
    /readyz answers and the ``default`` ServiceAccount exists, with an admin
    kubeconfig at ``workdir/kubeconfig``.  Raises ControlPlaneError, naming
    the log file and quoting its tail, if a process dies or time runs out;
    nothing is left running then.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if bin_dir is None:
        env_bin = os.environ.get("IR_TESTBED_K8S_BIN")
        bin_dir = Path(env_bin) if env_bin else build_binaries()
    for binary in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        if not os.access(bin_dir / binary, os.X_OK):
            raise ControlPlaneError(f"{bin_dir / binary} is missing or not executable")

    # A free port found now can be taken before the process binds it; retry
    # the whole start with new ports when that happens.
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(workdir, bin_dir, startup_timeout, node)
        except _PortTaken:
            if attempt == attempts:
                raise ControlPlaneError("ports kept being taken; gave up") from None
    raise AssertionError("unreachable")


class _PortTaken(Exception):
    pass


def _start_once(
    workdir: Path, bin_dir: Path, startup_timeout: float, node: NodeSpec | None
) -> ControlPlane:
    deadline = time.monotonic() + startup_timeout
    pki = workdir / "pki"
    pki.mkdir(exist_ok=True)
    address = node.ip if node else "127.0.0.1"
    service_range = node.service_range if node else SERVICE_CLUSTER_IP_RANGE
    ca_file = _write_pki(pki, address, service_range, node)

    users = dict(USERS)
    if node is not None:
        users[f"system:node:{node.name}"] = "system:nodes"
        users["system:kube-scheduler"] = ""
    tokens = {user: secrets.token_hex(16) for user in users}
    kcm_token = secrets.token_hex(16)
    token_lines = [f"{kcm_token},system:kube-controller-manager,uid-kcm"]
    for user, groups in users.items():
        line = f"{tokens[user]},{user},uid-{user}"
        token_lines.append(f'{line},"{groups}"' if groups else line)
    (pki / "tokens.csv").write_text("\n".join(token_lines) + "\n")
    os.chmod(pki / "tokens.csv", 0o600)

    etcd_port, peer_port, api_port = _free_ports(3)
    server = f"https://{address}:{api_port}"
    cp = ControlPlane(
        server=server,
        kubeconfig=workdir / "kubeconfig",
        admin_token=tokens["admin"],
        ca_file=ca_file,
        tokens=tokens,
        processes={},
        workdir=workdir,
        bin_dir=bin_dir,
        node=node,
        api_port=api_port,
    )
    atexit.register(cp.stop)
    try:
        etcd_dir = workdir / "etcd-data"
        if etcd_dir.exists():
            shutil.rmtree(etcd_dir)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        _spawn(
            cp,
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=ir-testbed",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=ir-testbed={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        _wait(cp, "etcd", deadline, lambda: _http_ok(f"{etcd_url}/health"))

        node_flags = []
        if node is not None:
            node_flags = [
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={ca_file}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        _spawn(
            cp,
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={address}",
                f"--advertise-address={address}",
                f"--secure-port={api_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={ca_file}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                *(node_flags or ["--authorization-mode=RBAC"]),
                "--anonymous-auth=false",
                f"--service-cluster-ip-range={service_range}",
                f"--service-account-issuer={server}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        _wait(cp, "kube-apiserver", deadline, lambda: _ready(cp))

        kcm_kubeconfig = workdir / "kubeconfig-kube-controller-manager"
        _write_kubeconfig(
            kcm_kubeconfig, server, ca_file, "system:kube-controller-manager", kcm_token
        )
        _spawn(
            cp,
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={ca_file}",
                f"--cluster-signing-cert-file={ca_file}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--controllers=*",
                "--leader-elect=false",
                f"--service-cluster-ip-range={service_range}",
                *(
                    [
                        "--allocate-node-cidrs=true",
                        f"--cluster-cidr={node.cluster_cidr}",
                        "--node-cidr-mask-size=24",
                    ]
                    if node
                    else []
                ),
                "--v=1",
            ],
        )
        if node is not None:
            sched_kubeconfig = workdir / "kubeconfig-kube-scheduler"
            _write_kubeconfig(
                sched_kubeconfig,
                server,
                ca_file,
                "system:kube-scheduler",
                tokens["system:kube-scheduler"],
            )
            _spawn(
                cp,
                "kube-scheduler",
                [
                    str(bin_dir / "kube-scheduler"),
                    f"--kubeconfig={sched_kubeconfig}",
                    f"--authentication-kubeconfig={sched_kubeconfig}",
                    f"--authorization-kubeconfig={sched_kubeconfig}",
                    "--bind-address=127.0.0.1",
                    "--secure-port=0",
                    "--leader-elect=false",
                    "--v=1",
                ],
            )
        _wait(cp, "kube-controller-manager", deadline, lambda: _default_sa_exists(cp))

        cp.api(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "ir-testbed-viewer"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}
                ],
            },
        )
        _write_kubeconfig(cp.kubeconfig, server, ca_file, "admin", tokens["admin"])
        return cp
    except BaseException:
        cp.stop()
        raise


def make_ca(
    ca_name: x509.Name, not_before: datetime.datetime, not_after: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed P-256 CA (key, certificate) for test servers (control plane, fault proxy)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca


def _write_pki(pki: Path, address: str, service_range: str, node: NodeSpec | None) -> Path:
    """CA, apiserver serving cert and service-account keys (and, for a node, the apiserver's
    client certificate for the kubelet and the kubelet's serving certificate); returns the CA
    path."""
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=7)

    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ir-testbed-ca")])
    ca_key, ca_cert = make_ca(ca_name, not_before, not_after)

    key = ec.generate_private_key(ec.SECP256R1())
    service_ip = next(ipaddress.IPv4Network(service_range).hosts())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.DNSName("kubernetes.default.svc.cluster.local"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address(address)),
                    x509.IPAddress(service_ip),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write(name: str, data: bytes, private: bool = False) -> None:
        (pki / name).write_bytes(data)
        os.chmod(pki / name, 0o600 if private else 0o644)

    pem = serialization.Encoding.PEM
    write("ca.crt", ca_cert.public_bytes(pem))
    write("ca.key", _private_pem(ca_key), private=True)
    write("apiserver.crt", cert.public_bytes(pem))
    write("apiserver.key", _private_pem(key), private=True)
    write("sa.key", _private_pem(sa_key), private=True)
    if node is not None:
        # The kubelet authenticates the apiserver by this certificate (x509.clientCAFile) and
        # asks the apiserver whether it may (webhook authorization): system:masters may.
        client_key, client = _leaf(
            ca_key,
            ca_name,
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
                ]
            ),
            x509.ExtendedKeyUsageOID.CLIENT_AUTH,
            [],
            not_before,
            not_after,
        )
        write("apiserver-kubelet-client.crt", client.public_bytes(pem))
        write("apiserver-kubelet-client.key", _private_pem(client_key), private=True)
        serving_key, serving = _leaf(
            ca_key,
            ca_name,
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node.name}")]),
            x509.ExtendedKeyUsageOID.SERVER_AUTH,
            [
                x509.DNSName(node.name),
                x509.IPAddress(ipaddress.ip_address(node.ip)),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ],
            not_before,
            not_after,
        )
        write("kubelet-serving.crt", serving.public_bytes(pem))
        write("kubelet-serving.key", _private_pem(serving_key), private=True)
    write(
        "sa.pub",
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return pki / "ca.crt"


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str) -> None:
    ca_data = base64.b64encode(ca_file.read_bytes()).decode()
    # JSON is valid YAML, and quoting stays correct whatever the values hold.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ir-testbed",
                "cluster": {"server": server, "certificate-authority-data": ca_data},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": f"{user}@ir-testbed",
                "context": {"cluster": "ir-testbed", "user": user, "namespace": "default"},
            }
        ],
        "current-context": f"{user}@ir-testbed",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    os.chmod(path, 0o600)


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _spawn(cp: ControlPlane, name: str, argv: list[str]) -> None:
    cp.argv[name] = list(argv)
    log = cp.workdir / f"{name}.log"
    cp.logs[name] = log
    with open(log, "ab") as out:
        out.write(f"\n### {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        cp.processes[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cp.workdir,
            # Its own process group: a Ctrl-C in the terminal reaches only
            # Python, which then stops the processes in order.
            start_new_session=True,
        )


def _wait(cp: ControlPlane, name: str, deadline: float, ready: Any) -> None:
    while True:
        for other, proc in cp.processes.items():
            if proc.poll() is not None:
                message = _died_message(other, proc, cp.logs[other])
                if "address already in use" in message:
                    raise _PortTaken(message)
                raise ControlPlaneError(message)
        if ready():
            return
        if time.monotonic() > deadline:
            raise ControlPlaneError(
                f"{name} not ready in time; log {cp.logs[name]}:\n{_tail(cp.logs[name])}"
            )
        time.sleep(0.25)


def _died_message(name: str, proc: subprocess.Popen[bytes], log: Path) -> str:
    return f"{name} exited with code {proc.returncode}; log {log}:\n{_tail(log)}"


def _tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError as err:
        return f"(cannot read log: {err})"
    return "\n".join(text.splitlines()[-lines:])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _request(
    server: str, ca_file: Path, token: str, method: str, path: str, body: Any = None
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    context = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(req, timeout=10, context=context) as resp:
        raw = resp.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _ready(cp: ControlPlane) -> bool:
    try:
        return cp.api("GET", "/readyz") == "ok"
    except (OSError, urllib.error.URLError):
        return False


def _default_sa_exists(cp: ControlPlane) -> bool:
    try:
        cp.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return True
    except (OSError, urllib.error.URLError):
        return False


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _Running(Protocol):
    def check_alive(self) -> None: ...

    def stop(self) -> None: ...


def run_by_hand(
    module: str,
    argv: list[str],
    start: Callable[[Path], _Running],
    describe: Callable[[Any], list[str]],
) -> int:
    """`python -m tests.testbed.<module> DIR`: start the test bed part under DIR, print
    `describe(it)`, keep it up until Ctrl-C (or SIGTERM), checking it is alive, then stop it."""
    if len(argv) != 2:
        print(f"usage: python -m {module} DIR", file=sys.stderr)
        return 2

    # Explicit handlers: a shell starts background jobs with SIGINT ignored.
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        running = start(Path(argv[1]))
    except (ControlPlaneError, KeyboardInterrupt) as err:
        print(err or "interrupted", file=sys.stderr)
        return 1
    try:
        for line in describe(running):
            print(line)
        print("Ctrl-C to stop", flush=True)
        while True:
            time.sleep(1)
            running.check_alive()
    except KeyboardInterrupt:
        print("stopping")
    except ControlPlaneError as err:
        print(err, file=sys.stderr)
        return 1
    finally:
        running.stop()
    return 0


def main(argv: list[str]) -> int:
    started = time.monotonic()

    def describe(cp: ControlPlane) -> list[str]:
        return [
            f"control plane ready in {time.monotonic() - started:.1f} s at {cp.server}",
            f"export KUBECONFIG={cp.kubeconfig}",
            *(f"  {user}: {cp.kubeconfig_for(user)}" for user in cp.tokens),
            "logs: " + ", ".join(str(p) for p in cp.logs.values()),
        ]

    return run_by_hand("tests.testbed.k8s", argv, start_control_plane, describe)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
