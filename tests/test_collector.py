"""`ir capture pod` with only a kubeconfig: the node collector pod (ir/cluster/collector.py) on the
test bed's real containerd node.

ir runs here as a responder's laptop would: IR_NODE_ROOT is unset, so the containers' node state is
out of reach and ir must start its collector pod (the image scripts/build-collector-image makes
from Debian packages and the ir wheel, imported into the node's containerd: no registry), exec
into it (never into the suspect), and stream each container bundle back, hashed on both ends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.clock import parse_timestamp
from tests.fixtures_k8s import IMAGE, wait_for
from tests.k8s_helpers import ready_pods
from tests.test_capture_pod import deploy_web
from tests.testbed.collector import NAMESPACE as COLLECTOR_NS
from tests.testbed.collector import store_secret
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import NODE_IP, RealNode
from tests.testbed.s3 import SeaweedFS

pytestmark = [pytest.mark.k8s]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pod_s3(node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A SeaweedFS the node's pods reach: it listens on the host's address on the node's bridge
    (the test bed's own), so a collector pod can upload to it. Its credentials are the Secret
    `ir-store` in the collector namespace, as a cluster would hold them."""
    server = SeaweedFS(tmp_path_factory.mktemp("pod-s3"), ip=NODE_IP)
    server.start()
    store_secret(node, server)
    try:
        yield server
    finally:
        node.cp.api("DELETE", f"/api/v1/namespaces/{COLLECTOR_NS}/secrets/ir-store")
        server.stop()


def run_laptop_ir(args: list[str], cp: ControlPlane) -> subprocess.CompletedProcess[str]:
    """ir with a kubeconfig and nothing else: no node root, no Docker socket."""
    return _run_with({}, cp, args)


def collector_pods(cp: ControlPlane, ns: str = COLLECTOR_NS) -> list[dict[str, Any]]:
    return list(
        cp.api(
            "GET",
            f"/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io/component=node-collector",
        )["items"]
    )


def test_capture_pod_through_the_collector(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    tmp_path: Path,
) -> None:
    cp, ns = control_plane, namespace
    deploy_web(cp, ns)
    wait_for("2 ready web pods", lambda: len(ready_pods(cp, ns, "app=web")) == 2, 90)
    name = ready_pods(cp, ns, "app=web")[0]["metadata"]["name"]
    time.sleep(1)
    started = time.monotonic()
    done = run_laptop_ir(
        [
            "capture",
            "pod",
            name,
            "-n",
            ns,
            "--store",
            str(tmp_path / "evidence"),
            "--collector-image",
            collector_image,
            "--probe-image",
            IMAGE,
            "-o",
            "json",
        ],
        cp,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout)
    bundle = out["bundle"]["location"]
    assert out["bundle"]["outcome"] == "complete"
    assert out["quarantine"]["verified"] and out["replace"]["ready"]
    show = json.loads(run_laptop_ir(["bundle", "show", bundle, "-o", "json"], cp).stdout)
    manifest = show["manifest"]
    statuses = {(c["name"], c.get("container")): c["status"] for c in manifest["collectors"]}
    assert all(s == "ok" for s in statuses.values()), statuses
    assert {
        ("filesystem", "web"),
        ("processes", "web"),
        ("network", "web"),
        ("logs", "web"),
    } <= set(statuses)
    actions = {a["action"]: a for a in manifest["actions"]}
    assert actions["create-collector-pod"]["outcome"] == "ok"
    transfer = actions["collector-transfer-bundle"]
    assert transfer["outcome"] == "ok"
    assert transfer["detail"]["sha256_collector"] == transfer["detail"]["sha256_received"]
    assert actions["delete-collector-pod"]["outcome"] == "ok"
    changes = run_laptop_ir(["bundle", "cat", bundle, "containers/web/fs-changes.jsonl"], cp).stdout
    assert "/tmp/dropped.txt" in changes and "/etc/motd" in changes
    processes = run_laptop_ir(
        ["bundle", "cat", bundle, "containers/web/processes.jsonl"], cp
    ).stdout
    assert '"nc", "-ll", "-p", "8080"' in processes
    verify = run_laptop_ir(["bundle", "verify", bundle], cp)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    wait_for("the collector pod to go", lambda: not collector_pods(cp), 60)
    print(f"\ncapture pod through the collector -> replacement ready: {elapsed:.1f} s")


def test_refused_collector_falls_back_to_a_debug_container_then_to_the_apiserver(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    tmp_path: Path,
) -> None:
    """A collector namespace under Pod Security "restricted": the apiserver refuses the privileged
    collector pod, and ir says which rule refused it. It falls back to an ephemeral debug
    container in the suspect's pod: processes and sockets as from the node (not the debug
    container's own), the filesystem as changes since the start (not a diff), all marked partial
    with the reason, so nothing is quarantined (the gate stays closed). With the suspect's
    namespace "restricted" too, the debug container is refused as well: both refusals are named
    and the apiserver's evidence (Kubernetes context, logs) is what is left."""
    cp, ns = control_plane, namespace
    restricted = f"{ns}-collect"
    cp.api(
        "POST",
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": restricted,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
    )
    deploy_web(cp, ns)
    pods = wait_for(
        "2 ready web pods", lambda: len(p := ready_pods(cp, ns, "app=web")) == 2 and p, 90
    )
    first, second = (p["metadata"]["name"] for p in pods)
    args = [
        "-n", ns, "--collector-image", collector_image, "--collector-namespace", restricted,
        "-o", "json",
    ]  # fmt: skip
    done = run_laptop_ir(["capture", "pod", first, "--store", str(tmp_path / "a"), *args], cp)
    assert done.returncode == 5, done.stderr  # partial capture: nothing destructive
    bundle = json.loads(done.stdout)["bundle"]["location"]
    manifest = json.loads(run_laptop_ir(["bundle", "show", bundle, "-o", "json"], cp).stdout)[
        "manifest"
    ]
    by_name = {(c["name"], c.get("container")): c for c in manifest["collectors"]}
    access = by_name[("container-access", "web")]
    assert access["status"] == "partial", access
    assert 'violates PodSecurity "restricted' in access["error"], access["error"]
    assert "ephemeral debug container ir-debug-" in access["error"], access["error"]
    assert by_name[("processes", "web")]["status"] == "ok"
    assert by_name[("network", "web")]["status"] == "ok"
    assert by_name[("filesystem", "web")]["status"] == "partial"
    assert "not an image diff" in by_name[("filesystem", "web")]["error"]
    assert by_name[("k8s-context", None)]["status"] == "ok"

    def cat(name: str) -> list[dict[str, Any]]:
        text = run_laptop_ir(["bundle", "cat", bundle, f"containers/web/{name}"], cp).stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    procs = cat("processes.jsonl")
    assert any(p["cmdline"][:4] == ["nc", "-ll", "-p", "8080"] for p in procs), procs
    assert not any("sleep" in p["cmdline"][:1] for p in procs), "the debug container's own"
    assert not any(p["cmdline"][:2] == ["ir", "capture"] for p in procs), "ir's own"
    socks = cat("sockets.jsonl")
    assert any(s["state"] == "LISTEN" and s["local_port"] == 8080 for s in socks), socks
    changes = {c["path"]: c for c in cat("fs-changes.jsonl")}
    assert "/tmp/dropped.txt" in changes, sorted(changes)
    assert "/etc/hostname" not in changes or changes["/etc/hostname"]["ctime"]
    actions = [a["action"] for a in manifest["actions"]]
    assert "add-debug-container" in actions and "stop-debug-container" in actions, actions
    assert not cp.api("GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies")["items"]
    suspect = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{first}")
    debug = suspect["spec"]["ephemeralContainers"][0]
    assert debug["name"].startswith("ir-debug-") and debug["targetContainerName"] == "web"
    wait_for(
        "the debug container to stop",
        lambda: (
            "terminated"
            in (
                cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{first}")["status"][
                    "ephemeralContainerStatuses"
                ][0]["state"]
            )
        ),
        60,
    )

    # the suspect's namespace "restricted" too: the debug container is refused as well
    doc = cp.api("GET", f"/api/v1/namespaces/{ns}")
    doc["metadata"].setdefault("labels", {})["pod-security.kubernetes.io/enforce"] = "restricted"
    cp.api("PUT", f"/api/v1/namespaces/{ns}", doc)
    done = run_laptop_ir(["capture", "pod", second, "--store", str(tmp_path / "b"), *args], cp)
    assert done.returncode == 5, done.stderr
    bundle = json.loads(done.stdout)["bundle"]["location"]
    manifest = json.loads(run_laptop_ir(["bundle", "show", bundle, "-o", "json"], cp).stdout)[
        "manifest"
    ]
    by_name = {(c["name"], c.get("container")): c for c in manifest["collectors"]}
    access = by_name[("container-access", "web")]
    assert access["status"] == "failed", access
    assert access["error"].count('violates PodSecurity "restricted') == 2, access["error"]
    assert "only the apiserver's evidence" in access["error"]
    assert by_name[("k8s-context", None)]["status"] == "ok"
    assert any(c["name"] == "k8s-logs" and c["status"] == "ok" for c in manifest["collectors"])


def test_missing_collector_image_is_named_in_bounded_time(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    tmp_path: Path,
) -> None:
    cp, ns = control_plane, namespace
    deploy_web(cp, ns, replicas=1)
    name = wait_for("1 ready web pod", lambda: ready_pods(cp, ns, "app=web"), 90)[0]["metadata"][
        "name"
    ]
    # --dry-run shows the collector pod it would create, and creates nothing
    dry = run_laptop_ir(
        [
            "capture", "pod", name, "-n", ns, "--store", str(tmp_path), "--dry-run",
            "--collector-image", collector_image, "-o", "json",
        ],
        cp,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    planned = {a["action"]: a for a in json.loads(dry.stdout)["actions"]}
    pod_spec = planned["create-collector-pod"]["body"]["spec"]
    assert pod_spec["nodeName"] == node.name and pod_spec["hostPID"] is True
    assert pod_spec["automountServiceAccountToken"] is False  # relay: no token
    assert "streamed back through the apiserver" in planned["create-collector-pod"]["why"]
    assert not collector_pods(cp) and not list(tmp_path.rglob("*.tar"))
    started = time.monotonic()
    done = run_laptop_ir(
        [
            "capture",
            "pod",
            name,
            "-n",
            ns,
            "--store",
            str(tmp_path),
            "--no-quarantine",
            "--no-replace",
            "--collector-image",
            "localhost/ir/no-such-collector:0",
            "-o",
            "json",
        ],
        cp,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    show = json.loads(
        run_laptop_ir(
            ["bundle", "show", json.loads(done.stdout)["bundle"]["location"], "-o", "json"], cp
        ).stdout
    )
    access = [c for c in show["manifest"]["collectors"] if c["name"] == "container-access"]
    error = access[0]["error"]
    assert "localhost/ir/no-such-collector:0" in error and node.name in error, error
    assert elapsed < 120
    wait_for("the failed collector pod to go", lambda: not collector_pods(cp), 60)


def test_compromised_pod_through_the_collector_into_s3(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    lock_bucket: str,
    s3_env: dict[str, str],
) -> None:
    """The sample compromised workload (samples/k8s/compromised.yaml) captured from a laptop with
    only a kubeconfig into S3 (SeaweedFS, Object Lock bucket; relayed: the collector pod cannot
    reach this S3, which listens on loopback, so the bundle comes back through the apiserver and
    this ir uploads it): every planted fact is in the
    bundle -- the dropped file with its content, the deleted image file, the process running from
    a deleted binary (hashed), the bind-shell listener and the C2 connection with their owning
    processes, the logs -- it verifies from s3://, and the pod is quarantined and replaced."""
    import yaml

    cp, ns = control_plane, namespace
    exp = json.loads((REPO / "samples/compromised/expected.json").read_text())
    cp.api(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "compromised-sample"},
            "data": {"compromised.sh": (REPO / "samples/compromised/compromised.sh").read_text()},
        },
    )
    for doc in yaml.safe_load_all((REPO / "samples/k8s/compromised.yaml").read_text()):
        if doc["kind"] == "Deployment":
            cp.api("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", doc)
    pods = wait_for(
        "2 ready shop-web pods",
        lambda: len(p := ready_pods(cp, ns, "app=shop-web")) == 2 and p,
        90,
    )
    name = pods[0]["metadata"]["name"]
    wait_for(
        "the sample to be compromised",
        lambda: exp["ready_line"] in cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log"),
        60,
    )
    env_s3 = {**s3_env}
    done = _run_with(
        env_s3,
        cp,
        [
            "capture",
            "pod",
            name,
            "-n",
            ns,
            "--store",
            f"s3://{lock_bucket}/ir",
            "--collector-image",
            collector_image,
            "--collector-upload",
            "relay",
            "--probe-image",
            IMAGE,
            "-o",
            "json",
        ],
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout)
    bundle = out["bundle"]["location"]
    assert bundle.startswith(f"s3://{lock_bucket}/ir/") and out["bundle"]["stored"] is True
    assert out["quarantine"]["verified"] and out["replace"]["ready"]
    verify = _run_with(env_s3, cp, ["bundle", "verify", bundle])
    assert verify.returncode == 0, verify.stdout + verify.stderr

    def records(artifact: str) -> list[dict[str, Any]]:
        text = _run_with(env_s3, cp, ["bundle", "cat", bundle, f"containers/web/{artifact}"]).stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    changes = {r["path"]: r for r in records("fs-changes.jsonl")}
    dropped = changes[exp["dropped_file"]["path"]]
    content = exp["dropped_file"]["content"].encode()
    assert dropped["change"] == "added" and dropped["sha256"] == hashlib.sha256(content).hexdigest()
    motd = changes[exp["deleted_file"]]
    assert motd["change"] == "deleted"
    # the deletion's time is the whiteout's ctime (after the pod started), never the image mtime
    started = pods[0]["status"]["startTime"]  # whole seconds: compare instants, not strings
    assert motd["ctime"], motd
    assert parse_timestamp(motd["ctime"]).utc >= parse_timestamp(started).utc, (motd, started)
    timeline = _run_with(env_s3, cp, ["replay", bundle, "timeline"]).stdout
    motd_rows = [line for line in timeline.splitlines() if exp["deleted_file"] in line]
    assert motd_rows and all("File deleted (whiteout created" in r for r in motd_rows), motd_rows
    procs = records("processes.jsonl")
    bad = [p for p in procs if p["cmdline"] == exp["deleted_binary"]["argv"]]
    assert len(bad) == 1 and bad[0]["exe_deleted"] is True and bad[0]["exe_sha256"]
    socks = records("sockets.jsonl")
    listener = next(
        p for p in procs if p["cmdline"][:2] == ["nc", "-ll"] and "31337" in p["cmdline"]
    )
    assert [s["pid"] for s in socks if s["state"] == "LISTEN" and s["local_port"] == 31337] == [
        listener["pid"]
    ]
    c2 = [s for s in socks if s["remote_port"] == 4444 and s["state"] == "ESTABLISHED"]
    assert len(c2) == 1 and c2[0]["pid"] == bad[0]["pid"]
    # Direction from listeners and socket pairs (docs/replay.md): the C2 "server" (`nc -l`)
    # closed its listener after accepting; of the pair in the pod's namespace, the end on the
    # ephemeral port connected out, the end on 4444 accepted: one inbound, one outbound.
    net = json.loads(_run_with(env_s3, cp, ["replay", bundle, "net", "-o", "json"]).stdout)
    c2_rows = [
        c
        for c in net["connections"]
        if 4444 in (c["local_port"], c["remote_port"]) and c["remote_port"]
    ]
    assert len(c2_rows) == 2, c2_rows
    accepted = next(c for c in c2_rows if c["local_port"] == 4444)
    dialled = next(c for c in c2_rows if c["remote_port"] == 4444)
    assert (accepted["direction"], dialled["direction"]) == ("inbound", "outbound"), c2_rows
    logs = _run_with(
        env_s3, cp, ["bundle", "cat", bundle, "containers/web/logs-current.jsonl"]
    ).stdout
    assert exp["ready_line"] in logs and exp["stderr_line"] in logs


def _receipt(
    env: dict[str, str], cp: ControlPlane, bundle: str, verdict: str = "valid"
) -> dict[str, Any]:
    """The responder's `receive` custody record of a collector's direct upload."""
    records = json.loads(_run_with(env, cp, ["bundle", "custody", bundle, "-o", "json"]).stdout)
    received = [r for r in records if r["action"] == "receive"]
    assert len(received) == 1, records
    assert received[0]["detail"]["verdict"] == verdict, received[0]
    return dict(received[0])


def test_direct_upload_from_the_collector_to_s3(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    pod_s3: SeaweedFS,
    tmp_path: Path,
) -> None:
    """An S3 store the node reaches: the collector pod captures the whole pod (its Kubernetes
    context with the read-only collector service account) and uploads the bundle itself with the
    Secret's credentials; the responder's ir reads it back from S3, verifies it, records the
    receipt (every request to the collector) in custody, then quarantines and replaces. With the
    Secret's name wrong the collector has no credentials: it spools, and the responder brings the
    spooled bundle back through the apiserver and uploads it (nothing lost)."""
    cp, ns = control_plane, namespace
    bucket = pod_s3.create_bucket(f"direct-{uuid.uuid4().hex[:8]}", object_lock=True)
    env = {**pod_s3.env(), "IR_SPOOL_DIR": str(tmp_path / "spool")}
    deploy_web(cp, ns)
    pods = wait_for(
        "2 ready web pods", lambda: len(p := ready_pods(cp, ns, "app=web")) == 2 and p, 90
    )
    first, second = (p["metadata"]["name"] for p in pods)
    time.sleep(1)
    base = ["-n", ns, "--store", f"s3://{bucket}/ir", "--collector-image", collector_image]
    started = time.monotonic()
    done = _run_with(
        env, cp, ["capture", "pod", first, *base, "--probe-image", IMAGE, "-o", "json"]
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr + done.stdout
    assert "uploads to s3://" in done.stderr and "verified" in done.stderr, done.stderr
    out = json.loads(done.stdout)
    bundle = out["bundle"]["location"]
    assert bundle.startswith(f"s3://{bucket}/ir/") and out["bundle"]["stored"] is True
    assert out["quarantine"]["verified"] and out["replace"]["ready"]
    verify = _run_with(env, cp, ["bundle", "verify", bundle])
    assert verify.returncode == 0, verify.stdout + verify.stderr
    show = json.loads(_run_with(env, cp, ["bundle", "show", bundle, "-o", "json"]).stdout)
    manifest = show["manifest"]
    statuses = {(c["name"], c.get("container")): c["status"] for c in manifest["collectors"]}
    assert all(st == "ok" for st in statuses.values()), statuses
    assert {("k8s-context", None), ("filesystem", "web"), ("processes", "web")} <= set(statuses)
    assert manifest["target"]["uid"] == pods[0]["metadata"]["uid"]
    received = _receipt(env, cp, bundle)
    assert received["actor"] == "pytest-laptop"
    steps = [a["action"] for a in received["detail"]["collector_actions"]]
    assert steps == [
        "create-collector-pod", "collector-pod-running", "collector-capture-pod",
        "delete-collector-pod",
    ], steps  # fmt: skip
    changes = _run_with(env, cp, ["bundle", "cat", bundle, "containers/web/fs-changes.jsonl"])
    assert "/tmp/dropped.txt" in changes.stdout
    wait_for("the collector pod to go", lambda: not collector_pods(cp), 60)
    print(f"\ndirect upload: command start -> replacement ready {elapsed:.1f} s")

    # no credentials in the collector: its upload fails, nothing is lost
    done = _run_with(
        env,
        cp,
        [
            "capture", "pod", second, *base, "--collector-secret", "no-such-secret",
            "--no-quarantine", "--no-replace", "-o", "json",
        ],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "bringing its spooled copy here" in done.stderr, done.stderr
    bundle = json.loads(done.stdout)["bundle"]["location"]
    assert bundle.startswith(f"s3://{bucket}/ir/")
    # without the Secret the collector had no key either: intact, its origin not proven
    verify = _run_with(env, cp, ["bundle", "verify", bundle])
    assert verify.returncode == 6 and "INTACT, UNSIGNED" in verify.stdout, verify.stdout
    receipt = _receipt(env, cp, bundle, verdict="unsigned")
    steps = [a["action"] for a in receipt["detail"]["collector_actions"]]
    assert "collector-transfer-bundle" in steps, steps
    wait_for("the collector pod to go", lambda: not collector_pods(cp), 60)


def _run_with(
    env_extra: dict[str, str], cp: ControlPlane, args: list[str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IR_NODE_ROOT", "DOCKER_HOST")}
    env.update(env_extra)
    env.update(KUBECONFIG=str(cp.kubeconfig), IR_OPERATOR="pytest-laptop")
    return subprocess.run(
        [sys.executable, "-m", "ir.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_serve_alert_to_bundle_in_s3_through_the_collector(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    pod_s3: SeaweedFS,
    tmp_path: Path,
) -> None:
    """Falcosidekick POST -> `ir serve` running as it would in the cluster, off the node (no node
    root), with the shipped deployment's `--dispatch jobs`: the collector pod captures the pod and
    uploads the bundle to S3 itself, ir serve verifies it there and records its receipt; the pod
    is quarantined (a peer's connection refused, and ir's own probe proved it) and replaced."""
    from tests.k8s_helpers import OK_SERVER, bare_pod, create, wait_ready, wait_traffic
    from tests.test_serve import TOKEN, _falco, serve_one_alert

    cp, ns = control_plane, namespace
    deploy_web(cp, ns)
    create(cp, ns, bare_pod("peer", OK_SERVER.format(port=9090), {"role": "peer"}))
    wait_for("2 ready web pods", lambda: len(ready_pods(cp, ns, "app=web")) == 2, 90)
    wait_ready(cp, ns, "peer")
    suspect = ready_pods(cp, ns, "app=web")[0]
    name, ip = suspect["metadata"]["name"], suspect["status"]["podIP"]
    wait_traffic(cp, ns, "peer", ip, 8080, allowed=True)
    audit_path = tmp_path / "audit.jsonl"
    bucket = pod_s3.create_bucket(f"serve-{uuid.uuid4().hex[:8]}", object_lock=True)
    s3_env = {**pod_s3.env(), "IR_SPOOL_DIR": str(tmp_path / "spool")}
    env = {k: v for k, v in os.environ.items() if k not in ("IR_NODE_ROOT", "DOCKER_HOST")}
    env.update(s3_env)
    env.update(
        KUBECONFIG=str(cp.kubeconfig),
        IR_SERVE_TOKEN=TOKEN,
        IR_OPERATOR="ir-serve-collector-e2e",
        IR_PROBE_IMAGE=IMAGE,
    )
    steps, _ = serve_one_alert(
        env,
        [
            "--store", f"s3://{bucket}/ir", "--collector-image", collector_image,
            "--collector-namespace", COLLECTOR_NS, "--dispatch", "jobs",
        ],
        _falco(uuid="collector-e2e", pod=name, namespace=ns),
        audit_path,
    )  # fmt: skip
    assert steps["capture"]["status"] == "ok", steps["capture"]
    assert steps["quarantine"]["status"] == "ok", steps["quarantine"]
    assert "enforcement verified" in steps["quarantine"]["detail"], steps["quarantine"]
    assert steps["replace"]["status"] == "ok", steps["replace"]
    bundle = steps["capture"]["bundle"]
    assert bundle.startswith(f"s3://{bucket}/ir/")
    verify = _run_with(s3_env, cp, ["bundle", "verify", bundle])
    assert verify.returncode == 0, verify.stdout + verify.stderr
    received = _receipt(s3_env, cp, bundle)
    done = [a["action"] for a in received["detail"]["collector_actions"]]
    assert done[0] == "create-collector-pod" and done[-1] == "delete-collector-pod", done
    assert "collector-capture-pod" in done and "collector-transfer-bundle" not in done
    wait_traffic(cp, ns, "peer", ip, 8080, allowed=False)
    wait_for("the collector pod to go", lambda: not collector_pods(cp), 60)


def test_broken_transfer_resumes_where_it_broke(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sender in the collector killed mid-transfer (a broken stream): ir resumes from the
    bytes it has (`ir collector send --offset`), the collector's hash is still the whole file's,
    and the file arrives intact; the resume is recorded."""
    import tempfile
    import threading

    from ir.cluster.collector import (
        CollectorSettings,
        fetch_file,
        remove_collector,
        start_collector,
    )
    from ir.cluster.execstream import exec_stream
    from ir.cluster.kube import connect
    from ir.cluster.resolve import resolve_pod

    cp, ns = control_plane, namespace
    deploy_web(cp, ns, replicas=1)
    name = wait_for("1 ready web pod", lambda: ready_pods(cp, ns, "app=web"), 90)[0]["metadata"][
        "name"
    ]
    kube = connect(str(cp.kubeconfig))
    steps: list[tuple[str, str, dict[str, Any]]] = []
    pod = start_collector(
        kube,
        resolve_pod(kube, ns, name),
        "containerd",
        CollectorSettings(collector_image),
        record=lambda action, outcome, **d: steps.append((action, outcome, d)),
    )
    try:

        def run(code: str) -> str:  # python in the collector image (ir's own interpreter)
            out = io.BytesIO()
            done = exec_stream(
                kube, pod.namespace, pod.name, ["/usr/bin/python3.11", "-c", code], out
            )
            assert done.ok, done.stderr
            return out.getvalue().decode()

        size = 300 << 20
        expected = run(
            "import hashlib, os\n"
            f"data = os.urandom({size})\n"
            "open('/work/blob', 'wb').write(data)\n"
            "print(hashlib.sha256(data).hexdigest())"
        ).strip()
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        killed = threading.Event()
        kill = (  # every `ir collector send /work/blob` on the node (hostPID), with SIGKILL
            "import os\n"
            "for p in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            "        argv = open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0')\n"
            "    except OSError:\n"
            "        continue\n"
            "    if b'send' in argv and b'/work/blob' in argv:\n"
            "        os.kill(int(p), 9)\n"
        )

        def kill_the_sender() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # once 50 MiB are here
                got = [p.stat().st_size for p in tmp_path.glob("ir-collector-*.tar")]
                if got and got[0] > 50 << 20:
                    run(kill)
                    killed.set()
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_the_sender)
        killer.start()
        moved = fetch_file(
            kube,
            pod,
            "/work/blob",
            what="the test blob",
            record=lambda action, outcome, **d: steps.append((action, outcome, d)),
        )
        killer.join()
        assert killed.is_set(), "the transfer ended before the sender could be killed"
        data = Path(moved.path).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == expected
        resumes = [d for a, _, d in steps if a == "collector-transfer-resume"]
        assert resumes and 0 < resumes[0]["received"] < size, steps
        final = next(d for a, o, d in steps if a == "collector-transfer-bundle" and o == "ok")
        assert final["sha256_collector"] == expected and final["resumed"] >= 1
        os.unlink(moved.path)
    finally:
        remove_collector(kube, pod)
