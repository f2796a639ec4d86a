"""The node collector: capture a pod's containers on their node, with only a kubeconfig.

A responder's laptop sees the apiserver and nothing else; the evidence a container holds (its
filesystem diff, its processes and sockets, its runtime's logs) is on its node. So `ir capture pod`
starts a short-lived collector pod there, through the apiserver:

* pinned to the suspect's node (`nodeName`: no scheduler, cordoned nodes too), tolerating every
  taint, in ir's collector namespace (the only one that needs Pod Security "privileged");
* hostPID (the node's /proc) and, read-only, exactly the runtime's state directories and the
  kubelet's pod logs, mounted under /host (`--node-root /host` for ir inside);
* privileged (reading other users' processes and files needs it), no service-account token, no
  Service links, resource limits, `activeDeadlineSeconds`, deleted when done;
* running ir's own image (`--collector-image`); a wrong or missing image is named, with the node,
  within a bounded time.

For each container, ir execs *into the collector* (never into the suspect):
`ir capture container containerd://ID --node-root /host --store /work`, then streams the bundle
file out of the collector's emptyDir (binary-safe exec, ir.cluster.execstream, `ir collector
send`: the collector hashes what it sends in the same read), compares that SHA-256 with its own
hash of what arrived, and copies every artifact into the pod's
bundle on the responder's side, checking each artifact's SHA-256 against the collector's manifest
(hashed on both ends). The collector's collectors, notes and runtime actions come along, marked as
the collector's. Every request is recorded in the bundle's action log.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from ir.cluster.execstream import exec_stream
from ir.cluster.kube import ApiError, Kube
from ir.cluster.resolve import ContainerRef, PodTarget, image_problem
from ir.errors import ClusterError

DEFAULT_NAMESPACE = "ir-collectors"
NODE_ROOT = "/host"
WORK = "/work"
SPOOL = f"{WORK}/spool"
START_TIMEOUT = 90.0
DEADLINE_SECONDS = 1800
RESUMES = 3  # a broken transfer is resumed from where it broke this many times
#: Host paths the collector mounts read-only, by runtime (the pod status' containerID scheme).
HOST_PATHS: dict[str, tuple[str, ...]] = {
    "containerd": ("/run/containerd", "/var/lib/containerd", "/var/log/pods"),
    "cri-o": ("/run/containers", "/var/lib/containers", "/var/log/pods"),
}


class CollectorSubject(Protocol):
    """What a collector pod is started for: a pod (resolve.PodTarget) or a node
    (nodecapture.NodeSubject). `collects` becomes its annotation, which the admission policy
    checks (ns/name (uid) of a non-protected pod, or node NAME (uid))."""

    @property
    def node(self) -> str | None: ...

    @property
    def collects(self) -> str: ...


class CollectorRefused(ClusterError):
    """The apiserver (RBAC, Pod Security, a policy engine) refused the collector pod."""


@dataclass
class CollectorPod:
    """Where ir runs: the collector pod, or (`container` set) an ephemeral debug container in the
    suspect's own pod (ir.cluster.debug)."""

    name: str
    namespace: str
    node: str
    image: str
    container: str | None = None
    started: float = field(default_factory=time.monotonic)
    ready_seconds: float = 0.0


@dataclass
class CollectorSettings:
    """How ir runs its node collector (the CLI's --collector-* options, ir serve's too).

    `upload`, with an S3 store: "relay", ir in the collector writes each container's bundle into
    its emptyDir and the responder's ir brings it back through the apiserver; "direct", ir in the
    collector captures the whole pod and uploads the bundle to S3 itself, with the credentials of
    `secret` (a Secret in the collector namespace whose keys become its environment:
    AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_S3, IR_SIGNING_KEY...) or of the pod's role (IRSA, the
    node's instance role), reading the pod's Kubernetes context as the read-only
    `service_account` (deploy/kustomize/node-collector/rbac.yaml). A local store is always
    relayed."""

    image: str
    namespace: str = DEFAULT_NAMESPACE
    upload: str = "direct"
    service_account: str = "ir-node-collector"
    secret: str | None = "ir-store"

    @classmethod
    def from_env(cls) -> CollectorSettings | None:
        """$IR_COLLECTOR_IMAGE names the image; without it, no collector."""
        image = os.environ.get("IR_COLLECTOR_IMAGE")
        return cls(image) if image else None


def collector_manifest(
    name: str,
    target: CollectorSubject,
    runtime: str,
    settings: CollectorSettings,
    deadline: int,
    *,
    direct: bool = False,
) -> dict[str, Any]:
    """The collector pod; `direct`: it uploads to S3 itself (see CollectorSettings)."""
    paths = HOST_PATHS[runtime]
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {"sizeLimit": "50Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "work", "mountPath": WORK}]
    for i, path in enumerate(paths):
        volumes.append({"name": f"host-{i}", "hostPath": {"path": path, "type": "Directory"}})
        mounts.append({"name": f"host-{i}", "mountPath": NODE_ROOT + path, "readOnly": True})
    env: list[dict[str, Any]] = [{"name": "IR_NODE_ROOT", "value": NODE_ROOT}]
    spec_extra: dict[str, Any] = {"automountServiceAccountToken": False}
    container_extra: dict[str, Any] = {}
    if direct:
        # the S3 spool and ir's own cache stay in the emptyDir, gone with the pod
        env += [{"name": "HOME", "value": WORK}, {"name": "IR_SPOOL_DIR", "value": SPOOL}]
        spec_extra = {
            "serviceAccountName": settings.service_account,
            "automountServiceAccountToken": True,
        }
        if settings.secret:
            container_extra["envFrom"] = [
                {"secretRef": {"name": settings.secret, "optional": True}}
            ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "ir",
                "app.kubernetes.io/component": "node-collector",
            },
            "annotations": {
                "ir.forensics/collects": target.collects,
            },
        },
        "spec": {
            "nodeName": target.node,
            "hostPID": True,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline,
            "terminationGracePeriodSeconds": 0,
            **spec_extra,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "collector",
                    "image": settings.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", f"exec sleep {deadline}"],
                    "env": env,
                    **container_extra,
                    # root and privileged: the images run as a non-root user by default (ir serve)
                    "securityContext": {"privileged": True, "runAsUser": 0, "runAsNonRoot": False},
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "2", "memory": "1Gi"},
                    },
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }


def collector_name() -> str:
    return f"ir-collector-{uuid.uuid4().hex[:10]}"


def start_collector(
    kube: Kube,
    target: CollectorSubject,
    runtime: str,
    settings: CollectorSettings,
    *,
    direct: bool = False,
    record: Any = None,
    timeout: float = START_TIMEOUT,
) -> CollectorPod:
    """Create the collector pod on the suspect's node and wait until it runs (`direct`: it will
    upload to S3 itself). Raises CollectorRefused (with the apiserver's words) or ClusterError
    (image, node, time)."""
    if not target.node:
        raise ClusterError(f"{target.collects} is not on a node")
    if runtime not in HOST_PATHS:
        raise ClusterError(f"runtime {runtime!r}: the node collector reads containerd and CRI-O")
    name = collector_name()
    namespace, image = settings.namespace, settings.image
    pod = CollectorPod(name, namespace, target.node, image)
    doc = collector_manifest(name, target, runtime, settings, DEADLINE_SECONDS, direct=direct)
    path = f"/api/v1/namespaces/{namespace}/pods"
    try:
        kube.request("POST", path, doc, retry=False)
    except ApiError as exc:
        record_step(record, "create-collector-pod", "refused", path=path, error=exc.message)
        if exc.status in (403, 422, 400):
            raise CollectorRefused(
                f"the collector pod was refused in namespace {namespace}: {exc.message}"
            ) from None
        raise
    record_step(
        record,
        "create-collector-pod",
        "ok",
        pod=name,
        namespace=namespace,
        node=target.node,
        image=image,
        upload="direct" if direct else "relay",
        **({"service_account": settings.service_account} if direct else {}),
    )
    deadline = time.monotonic() + timeout
    while True:
        doc = kube.get_optional(f"{path}/{name}") or {}
        status = doc.get("status") or {}
        if status.get("phase") == "Running" and all(
            s.get("ready") for s in status.get("containerStatuses") or [{}]
        ):
            pod.ready_seconds = round(time.monotonic() - pod.started, 2)
            record_step(record, "collector-pod-running", "ok", pod=name, seconds=pod.ready_seconds)
            return pod
        bad = image_problem(doc)
        why = None
        if bad:
            why = f"collector image {image} cannot run on {bad}"
        elif status.get("phase") in ("Failed", "Succeeded"):
            why = f"the collector pod ended ({status.get('phase')}: {status.get('reason', '')})"
        elif time.monotonic() > deadline:
            why = (
                f"the collector pod (image {image}) did not run on node {target.node} within "
                f"{timeout:.0f} s (phase {status.get('phase', 'unknown')})"
            )
        if why:
            remove_collector(kube, pod, record)
            raise ClusterError(why)
        time.sleep(0.2)


def remove_collector(kube: Kube, pod: CollectorPod, record: Any = None) -> None:
    path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}"
    try:
        kube.request("DELETE", path, query={"gracePeriodSeconds": 0}, retry=True)
        record_step(record, "delete-collector-pod", "ok", pod=pod.name)
    except ApiError as exc:
        record_step(record, "delete-collector-pod", "failed", pod=pod.name, error=exc.message)


@dataclass
class Transferred:
    path: str  # the container bundle on the responder's side (a temp file)
    size: int
    seconds: dict[str, float] = field(default_factory=dict)


def capture_in_collector(
    kube: Kube,
    pod: CollectorPod,
    ref: ContainerRef,
    *,
    case_id: str,
    reason: str | None,
    options: list[str],
    record: Any = None,
    source: list[str] | None = None,
    work: str = WORK,
) -> Transferred:
    """Run ir's node backend in the collector for one container, then bring its bundle here
    (hashed on both ends) and remove it from the collector. `source` names the container to ir
    there (default: its CRI id under the host mount); `work` is where ir writes the bundle.
    Raises ClusterError on failure."""
    timings: dict[str, float] = {}
    t = time.monotonic()
    store = f"{work}/{uuid.uuid4().hex[:8]}"
    source = source or [str(ref.container_id), "--node-root", NODE_ROOT]
    command = [
        "ir",
        "capture",
        "container",
        *source,
        "--store",
        store,
        "--case",
        case_id,
        "-o",
        "json",
        *options,
    ]
    if reason:
        command += ["--reason", reason]
    summary = run_ir(
        kube,
        pod,
        command,
        what=f"container {ref.name}",
        record=record,
        action="collector-capture-container",
        ok_exits=(0, 1),
        container=ref.name,
    )
    timings["capture"] = round(time.monotonic() - t, 3)
    bundle = str(summary.get("bundle") or "")
    if not bundle.startswith(store + "/"):
        raise ClusterError(f"the collector wrote its bundle to an unexpected place: {bundle!r}")
    moved = fetch_file(kube, pod, bundle, what=f"the bundle of container {ref.name}", record=record)
    moved.seconds = {**timings, **moved.seconds}
    exec_stream(
        kube,
        pod.namespace,
        pod.name,
        ["ir", "collector", "remove", store],
        io.BytesIO(),
        container=pod.container,
        timeout=120,
    )
    return moved


def fetch_file(kube: Kube, pod: CollectorPod, path: str, *, what: str, record: Any) -> Transferred:
    """Bring one file out of the collector into a local temp file, hashed on both ends (one read
    in the collector both sends and hashes it: `ir collector send`). A stream that breaks (the
    connection, the apiserver, the sender killed) is resumed from the bytes already here, up to
    RESUMES times; the collector's hash is still the whole file's. Raises ClusterError unless
    both SHA-256 agree."""
    t = time.monotonic()
    fd, local = tempfile.mkstemp(prefix="ir-collector-", suffix=".tar")
    sha = hashlib.sha256()
    copied, broke = None, ""
    with os.fdopen(fd, "wb") as fh:
        sink = _HashingSink(fh, sha)
        for attempt in range(RESUMES + 1):
            command = ["ir", "collector", "send", path]
            if sink.bytes:
                command += ["--offset", str(sink.bytes)]
            try:
                copied = exec_stream(
                    kube,
                    pod.namespace,
                    pod.name,
                    command,
                    sink,
                    container=pod.container,
                    timeout=DEADLINE_SECONDS,
                )
                if not _broken(copied.exit_code):
                    break
                broke = f"exit {copied.exit_code}: {copied.stderr.strip()[-200:]}"
            except ApiError as exc:
                broke, copied = exc.message, None
                if exc.status != 0:  # refused, not broken: resuming would not help
                    break
            if attempt < RESUMES:
                record_step(
                    record,
                    "collector-transfer-resume",
                    "partial",
                    pod=pod.name,
                    path=path,
                    received=sink.bytes,
                    error=broke,
                )
    ours = sha.hexdigest()
    sent = re.search(r"sha256 ([0-9a-f]{64}) (\d+)", copied.stderr) if copied else None
    theirs = sent.group(1) if sent else ""
    seconds = round(time.monotonic() - t, 3)
    intact = copied is not None and copied.ok and ours == theirs
    record_step(
        record,
        "collector-transfer-bundle",
        "ok" if intact else "failed",
        pod=pod.name,
        path=path,
        bytes=sink.bytes,
        sha256_collector=theirs,
        sha256_received=ours,
        seconds=seconds,
        **({"resumed": attempt} if attempt else {}),
    )
    if not intact:
        os.unlink(local)
        why = (
            f"exit {copied.exit_code}: {copied.stderr.strip()[-300:]}"
            if copied is not None
            else broke
        )
        raise ClusterError(
            f"{what} did not arrive intact from collector {pod.name} "
            f"({sink.bytes} bytes; sha256 {ours[:16]}... here, {theirs[:16] or 'none'}... "
            f"there; {why})"
        )
    return Transferred(local, sink.bytes, {"transfer": seconds})


def _broken(exit_code: int | None) -> bool:
    """The stream ended without the sender's status, or the sender was killed by a signal."""
    return exit_code is None or exit_code > 128


def capture_pod_in_collector(
    kube: Kube,
    pod: CollectorPod,
    target: PodTarget,
    store_uri: str,
    *,
    case_id: str,
    options: list[str],
    record: Any = None,
) -> dict[str, Any]:
    """Direct upload (CollectorSettings.upload): ir in the collector captures the whole pod (Kubernetes
    context with the collector's read-only service account, containers on the node) into the S3
    store itself and changes nothing on the cluster (--no-quarantine --no-replace). Returns its
    `-o json` result; raises ClusterError when there is none."""
    command = [
        "ir", "capture", "pod", target.name,
        "--namespace", target.namespace,
        "--node-root", NODE_ROOT,
        "--store", store_uri,
        "--case", case_id,
        "--no-quarantine", "--no-replace",
        "-o", "json",
        *options,
    ]  # fmt: skip
    return run_ir(
        kube,
        pod,
        command,
        what=f"pod {target.namespace}/{target.name}",
        record=record,
        action="collector-capture-pod",
        ok_exits=(0,),
        partial_exits=(1, 3),
        store=store_uri,
    )


def run_ir(
    kube: Kube,
    pod: CollectorPod,
    command: list[str],
    *,
    what: str,
    record: Any,
    action: str,
    ok_exits: tuple[int, ...],
    partial_exits: tuple[int, ...] = (),
    **detail: Any,
) -> dict[str, Any]:
    """Run ir (`-o json`) where the collector runs, record the step, and return ir's result
    document with its `exit_code`. Raises ClusterError when ir gave no result."""
    out = io.BytesIO()
    done = exec_stream(
        kube,
        pod.namespace,
        pod.name,
        command,
        out,
        container=pod.container,
        timeout=DEADLINE_SECONDS,
    )
    code = done.exit_code
    record_step(
        record,
        action,
        "ok" if code in ok_exits else "partial" if code in partial_exits else "failed",
        pod=pod.name,
        exit_code=code,
        seconds=done.seconds,
        **detail,
    )
    try:
        result = json.loads(out.getvalue())
        if not isinstance(result, dict):
            raise ValueError("not an object")
    except ValueError:
        raise ClusterError(
            f"ir in {pod.container or 'the collector pod'} {pod.name} gave no result for {what} "
            f"(exit {code}): {done.stderr.strip()[-500:]}"
        ) from None
    result["exit_code"] = code
    return result


class _HashingSink:
    def __init__(self, fh: Any, sha: Any) -> None:
        self.fh, self.sha = fh, sha
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        return int(self.fh.write(data))


def record_step(record: Any, action: str, outcome: str, **detail: Any) -> None:
    if record is not None:
        record(action, outcome, **detail)


__all__ = [
    "CollectorPod",
    "CollectorSettings",
    "CollectorRefused",
    "Transferred",
    "capture_in_collector",
    "capture_pod_in_collector",
    "fetch_file",
    "remove_collector",
    "start_collector",
]
