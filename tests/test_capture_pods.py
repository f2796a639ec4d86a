"""`ir capture pod -l SELECTOR` and `ir capture pod TYPE/NAME --all`: many pods, one bundle each,
several at once, one node collector per node, each pod quarantined right after its own capture,
a signed case index (ir/cluster/podset.py, selection.py, nodecollectors.py, caseindex.py).

The unmarked tests need no cluster: the target and selector syntax, the exit code of a run, the
case index written into a real directory store and its signature checked (by ir and by hand with
openssl), the store's write-once document. The `k8s` tests run ir as a subprocess against the
test bed's real cluster (control plane + kubelet/containerd node): through the node collector as
a laptop would (no node root), or on the node itself (IR_NODE_ROOT)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.signing import generate_keypair, load_public_key, load_signer
from ir.bundle.trust import trust_of
from ir.cluster.caseindex import SCHEMA, check_signature, index_name, store_index
from ir.cluster.podset import PodOutcome, PodsCaptureResult
from ir.cluster.selection import Selection, Workload, parse_target, selector_text
from ir.errors import ExitCode, StoreError, UsageError
from ir.store import LocalStore, open_store
from tests.fixtures_k8s import wait_for
from tests.k8s_helpers import bare_pod, create, wait_ready, web_pods
from tests.testbed.collector import NAMESPACE as COLLECTOR_NS
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import RealNode

REPO = Path(__file__).resolve().parents[1]
POLICIES = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
LABEL_QUARANTINE = "ir.forensics/quarantine"


# -- the target and selector syntax -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web-7f9c", "web-7f9c"),
        ("pod/web-7f9c", "web-7f9c"),
        ("po/web-7f9c", "web-7f9c"),
        ("deployment/web", Workload("Deployment", "web")),
        ("deploy/web", Workload("Deployment", "web")),
        ("deployments.apps/web", Workload("Deployment", "web")),
        ("sts/db", Workload("StatefulSet", "db")),
        ("ds/agent", Workload("DaemonSet", "agent")),
        ("rs/web-7f9c", Workload("ReplicaSet", "web-7f9c")),
        ("job/batch", Workload("Job", "batch")),
        ("jobs.batch/batch", Workload("Job", "batch")),
    ],
)
def test_targets_are_read_as_kubectl_reads_them(text: str, expected: object) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cronjob/nightly", "not of 'cronjob'"),
        ("service/web", "not of 'service'"),
        ("deployments.batch/web", "not of 'deployments.batch'"),
        ("deployment/", "no name after the type"),
        ("deployment/Web_1", "invalid deployment name"),
    ],
)
def test_bad_targets_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(text)


def test_a_workload_selector_is_written_as_the_apiserver_reads_it() -> None:
    selector = {
        "matchLabels": {"tier": "front", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "track", "operator": "NotIn", "values": ["old"]},
            {"key": "owner", "operator": "Exists"},
            {"key": "debug", "operator": "DoesNotExist"},
        ],
    }
    assert selector_text(selector) == (
        "app=web,tier=front,env in (canary,prod),track notin (old),owner,!debug"
    )
    assert selector_text(None) == "" and selector_text({}) == ""


def run_ir(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ir.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return run_ir(args, {**os.environ, **env})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deployment/web"], "deployment/web is a workload, not a pod: add --all"),
        (["web-1", "-l", "app=web"], "not both"),
        (["-A"], "-A (every namespace) goes with -l SELECTOR"),
        (["web-1", "--all"], "--all takes the pods of a workload (e.g. deployment/web-1)"),
        (["-l", "app=web", "--all"], "--all goes with TYPE/NAME"),
        ([], "give a pod NAME, a workload TYPE/NAME with --all, or -l SELECTOR"),
        (["cronjob/x", "--all"], "not of 'cronjob'"),
    ],
)
def test_the_command_says_what_it_takes(args: list[str], message: str) -> None:
    """Checked before any connection: no cluster is needed to be told (exit 2)."""
    done = run_cli(["capture", "pod", *args], KUBECONFIG="/nonexistent")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr


# -- the exit code of a run, the case index ---------------------------------------------------


def outcome(name: str, code: ExitCode = ExitCode.OK, error: str | None = None) -> PodOutcome:
    pod = PodOutcome("shop", name, f"uid-{name}", "node-1", seconds=1.5)
    if error is not None:
        pod.error, pod.error_code = error, code
    return pod


def a_run(*pods: PodOutcome) -> PodsCaptureResult:
    return PodsCaptureResult(Selection("shop", "app=web"), "INC-1", "alice", 4, pods=list(pods))


def test_the_run_exits_with_the_worst_pod() -> None:
    assert a_run(outcome("a"), outcome("b")).exit_code == ExitCode.OK
    run = a_run(
        outcome("a"),
        outcome("b", ExitCode.FAILED, "capture partial"),
        outcome("c", ExitCode.REFUSED, "namespace shop is protected"),
        outcome("d", ExitCode.STORE, "not stored"),
    )
    assert run.exit_code == ExitCode.REFUSED
    assert run.reasons()[-1] == "shop/c: namespace shop is protected"  # the deciding one last
    assert a_run(
        outcome("a", ExitCode.FAILED, "x"), outcome("b", ExitCode.CLUSTER, "y")
    ).exit_code == (ExitCode.CLUSTER)
    bug = a_run(outcome("a", ExitCode.CLUSTER, "y"), outcome("b", ExitCode.INTERNAL, "bug"))
    assert bug.exit_code == ExitCode.INTERNAL
    interrupted = a_run(outcome("a", ExitCode.REFUSED, "x"))
    interrupted.interrupted = True
    assert interrupted.exit_code == ExitCode.INTERRUPTED
    unstored = a_run(outcome("a"))
    unstored.index_error = "disk full"
    assert unstored.exit_code == ExitCode.STORE
    assert unstored.reasons() == ["case index not stored: disk full"]


def test_the_case_index_is_stored_once_and_signed(tmp_path: Path) -> None:
    """Into a real directory store: the index and its signature beside the case's bundles,
    written once, verifiable by ir (valid with the key trusted, untrusted without, invalid when
    a byte changes) and by hand with openssl."""
    key, pub = generate_keypair(tmp_path / "keys")
    signer = load_signer(str(key))
    store = open_store(str(tmp_path / "evidence"))
    run = a_run(outcome("a"), outcome("b", ExitCode.REFUSED, "namespace shop is protected"))
    document = run.index_document(_options(signer), store.uri)
    stored = store_index(store, "INC-1", run.index_id, document, signer)
    assert stored.confirmed and stored.key_id == signer.key_id
    path = Path(stored.location)
    assert path == tmp_path / "evidence" / "INC-1" / index_name(run.index_id)
    assert Path(str(stored.signature)) == path.with_name(path.name + ".sig")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sig"]
    data = path.read_bytes()
    doc = json.loads(data)
    assert doc["schema"] == SCHEMA and doc["case_id"] == "INC-1" and doc["operator"] == "alice"
    assert doc["selection"] == {
        "namespace": "shop",
        "selector": "app=web",
        "workload": None,
        "matched": 0,
        "skipped": [],
    }
    assert [(p["name"], p["outcome"], p["exit_code"], p["errors"]) for p in doc["pods"]] == [
        ("a", "not-captured", 0, []),
        ("b", "not-captured", 5, ["namespace shop is protected"]),
    ]
    assert doc["exit_code"] == 5 and doc["errors"] == ["shop/b: namespace shop is protected"]
    signature = Path(str(stored.signature)).read_bytes()
    trusted = trust_of(load_public_key(str(pub)))
    assert check_signature(signature, data, path.name, trusted).status == "valid"
    assert check_signature(signature, data, path.name, None).status == "untrusted"
    assert check_signature(signature, data + b" ", path.name, trusted).status == "invalid"
    assert check_signature(signature, data, "other.json", trusted).status == "invalid"
    assert check_signature(None, data, path.name, trusted).status == "unsigned"
    # by hand, as the module docstring says
    raw = tmp_path / "index.sig"
    raw.write_bytes(base64.b64decode(json.loads(signature)["signature"]))
    hand = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin",
         "-in", str(path), "-sigfile", str(raw)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert hand.returncode == 0 and "Signature Verified Successfully" in hand.stdout, hand.stderr
    # written once: the same index again is refused, the first one unchanged
    with pytest.raises(StoreError, match="never overwritten"):
        store_index(store, "INC-1", run.index_id, document, signer)
    assert path.read_bytes() == data


def test_a_directory_store_writes_a_document_whole_and_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = store.put_document("INC-2", "notes.json", b'{"a": 1}\n')
    assert first.confirmed and first.size == 9
    assert first.root_digest == __import__("hashlib").sha256(b'{"a": 1}\n').hexdigest()
    with pytest.raises(StoreError, match="never overwritten"):
        store.put_document("INC-2", "notes.json", b"other")
    assert Path(first.location).read_bytes() == b'{"a": 1}\n'
    assert [p.name for p in (tmp_path / "INC-2").iterdir()] == ["notes.json"]  # no temp left
    for bad in ("../x.json", "a/b.json", "x.tar"):
        with pytest.raises(StoreError, match="not a name"):
            store.put_document("INC-2", bad, b"")


@pytest.mark.s3
def test_an_s3_store_writes_a_document_once_with_its_checksum(
    s3_env: dict[str, str], plain_bucket: str, spool_dir: Path
) -> None:
    """SeaweedFS: the document lands beside the case's bundles (PutObject with If-None-Match and
    its SHA-256), a second write of the name is refused and the first object is unchanged."""
    store = open_store(f"s3://{plain_bucket}/ir", spool_dir=str(spool_dir))
    first = store.put_document("INC-3", "case-index-x.json", b"{}\n")
    assert first.confirmed and first.location == f"s3://{plain_bucket}/ir/INC-3/case-index-x.json"
    with pytest.raises(StoreError, match="never overwritten"):
        store.put_document("INC-3", "case-index-x.json", b"[]\n")
    body = store.client.get_object(Bucket=plain_bucket, Key="ir/INC-3/case-index-x.json")  # type: ignore[attr-defined]
    assert body["Body"].read() == b"{}\n"
    assert [r.location for r in store.list_bundles()] == []  # a document is not a bundle


def _options(signer: Any) -> Any:
    from ir.cluster.podoptions import PodCaptureOptions

    return PodCaptureOptions(case_id="INC-1", signer=signer, collector=None)


# -- on the test bed's real cluster -------------------------------------------------------------


def laptop(
    args: list[str], cp: ControlPlane, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """ir with a kubeconfig only: the containers are reached through the node collector."""
    return run_ir(args, _laptop_env(cp), timeout)


def _laptop_env(cp: ControlPlane) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IR_NODE_ROOT", "DOCKER_HOST")}
    return {**env, "KUBECONFIG": str(cp.kubeconfig), "IR_OPERATOR": "pytest-laptop"}


def on_node(args: list[str], cp: ControlPlane, node: RealNode) -> subprocess.CompletedProcess[str]:
    """ir as it runs on the node itself: the containerd state under IR_NODE_ROOT."""
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "IR_OPERATOR": "pytest"}
    env["IR_NODE_ROOT"] = node.host_root
    return run_ir(args, env, 600)


def manifest_of(bundle: str, cp: ControlPlane) -> dict[str, Any]:
    shown = laptop(["bundle", "show", bundle, "-o", "json"], cp)
    return json.loads(shown.stdout)["manifest"]  # type: ignore[no-any-return]


def collector_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    return list(
        cp.api(
            "GET",
            f"/api/v1/namespaces/{COLLECTOR_NS}/pods"
            "?labelSelector=app.kubernetes.io/component=node-collector",
        )["items"]
    )


def utc(text: str) -> float:
    from ir.clock import parse_utc

    parsed = parse_utc(text)
    assert parsed is not None, text
    return parsed.timestamp()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


@pytest.mark.k8s
def test_selector_captures_each_pod_through_one_node_collector(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    collector_image: str,
    keys: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """Three pods of a Deployment on the one node, with only a kubeconfig: ONE collector pod
    started (by the first pod's capture, recorded in its bundle; the others record that they
    shared it), removed at the end; each pod quarantined and replaced right after its own
    capture (one at a time here: --parallel 1 orders them); each bundle whole and signed; the
    case index lists the three and its signature verifies."""
    cp, ns = control_plane, namespace
    pods = web_pods(cp, ns, replicas=3)
    key, pub = keys
    store = tmp_path / "evidence"
    done = laptop(
        ["capture", "pod", "-l", "app=web", "-n", ns, "--store", str(store), "--case", "INC-31",
         "--collector-image", collector_image, "--signing-key", str(key), "--parallel", "1",
         "--replace-timeout", "90", "-o", "json"],
        cp,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    doc = json.loads(done.stdout)
    assert sorted(p["target"]["uid"] for p in doc["pods"]) == sorted(
        p["metadata"]["uid"] for p in pods
    )
    assert [line for line in done.stderr.splitlines() if line.startswith("[")] == [
        f"[{i}/3] {ns}/{p['target']['name']}: capture complete, quarantined, replace "
        f"release-from-controller ({p['seconds']:g} s)"
        for i, p in enumerate(sorted(doc["pods"], key=lambda p: p["ended_at"]), 1)
    ]
    creates, shared, via = [], [], set()
    for pod in doc["pods"]:
        assert pod["bundle"]["outcome"] == "complete" and pod["exit_code"] == 0, pod["errors"]
        assert pod["quarantine"]["policy_verified"] and pod["replace"]["ready"], pod
        manifest = manifest_of(pod["bundle"]["location"], cp)
        actions = manifest["actions"]
        creates += [a for a in actions if a["action"] == "create-collector-pod"]
        shared += [a for a in actions if a["action"] == "collector-pod-shared"]
        assert not [a for a in actions if a["action"] == "delete-collector-pod"]  # at the end
        via |= {c["notes"][-1] for c in manifest["collectors"] if c["name"] == "filesystem"}
        verified = laptop(["bundle", "verify", pod["bundle"]["location"], "--trust", str(pub)], cp)
        assert verified.returncode == 0, verified.stdout
    assert len(creates) == 1 and len(shared) == 2, (creates, shared)
    collector = creates[0]["detail"]["pod"]
    assert {a["detail"]["pod"] for a in shared} == {collector}
    assert via == {f"ran in the node collector pod {collector} on node {node.name}"}
    assert [(c["pod"], [a["action"] for a in c["actions"]]) for c in doc["collectors"]] == [
        (
            f"{COLLECTOR_NS}/{collector}",
            ["create-collector-pod", "collector-pod-running", "delete-collector-pod"],
        )
    ]
    wait_for("the collector pod to go", lambda: not collector_pods(cp), 60)
    # each pod was quarantined after its own capture sealed, before the next capture began
    ordered = sorted(doc["pods"], key=lambda p: p["started_at"])
    for before, after in zip(ordered, ordered[1:], strict=False):
        live = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{before['target']['name']}")
        quarantined = json.loads(live["metadata"]["annotations"]["ir.forensics/quarantine-info"])
        sealed = manifest_of(before["bundle"]["location"], cp)["ended_at"]
        assert utc(sealed) <= utc(quarantined["when"]) <= utc(after["started_at"])
    # the case index: in the store beside the bundles, signed with the same key
    index = doc["index"]
    path = Path(index["location"])
    assert path.parent == store / "INC-31" and index["confirmed"]
    data = path.read_bytes()
    signature = Path(index["signature"]).read_bytes()
    trusted = trust_of(load_public_key(str(pub)))
    assert check_signature(signature, data, path.name, trusted).status == "valid"
    listed = json.loads(data)
    assert listed["schema"] == SCHEMA and listed["case_id"] == "INC-31"
    assert listed["operator"] == "pytest-laptop" and listed["exit_code"] == 0
    assert listed["selection"]["selector"] == "app=web" and listed["selection"]["namespace"] == ns
    assert listed["options"]["parallel"] == 1
    assert listed["collectors"] == doc["collectors"]
    assert sorted(
        (p["name"], p["uid"], p["node"], p["bundle"]["location"], p["bundle"]["root_digest"],
         p["outcome"], p["quarantine"]["policy"], p["replace"]["strategy"])
        for p in listed["pods"]
    ) == sorted(
        (p["target"]["name"], p["target"]["uid"], node.name, p["bundle"]["location"],
         p["bundle"]["root_digest"], "complete", p["quarantine"]["policy"],
         "release-from-controller")
        for p in doc["pods"]
    )  # fmt: skip


@pytest.mark.k8s
def test_a_pod_that_fails_does_not_stop_the_others(
    control_plane: ControlPlane, node: RealNode, namespace: str, tmp_path: Path
) -> None:
    """-A -l across namespaces, ir on the node: a pod in a protected namespace is refused (no
    bundle, nothing done), a pod whose container has exited cannot be captured whole (partial:
    not quarantined, the gate), the two others are captured and quarantined. Exit 5, the worst;
    every pod in the index with its own outcome."""
    cp, ns = control_plane, namespace
    label = f"ir-case-{uuid.uuid4().hex[:8]}"
    for name in ("good-1", "good-2"):
        create(cp, ns, bare_pod(name, "echo ready; exec sleep 3600", {"ir-test": label}))
    exited = bare_pod("exited", "echo bye", {"ir-test": label})
    exited["spec"]["restartPolicy"] = "Never"
    create(cp, ns, exited)
    protected = bare_pod(f"ir-test-{label}", "exec sleep 3600", {"ir-test": label})
    create(cp, "kube-system", protected)
    try:
        for name in ("good-1", "good-2"):
            wait_ready(cp, ns, name)
        wait_for(
            "the exited pod to finish",
            lambda: (
                cp.api("GET", f"/api/v1/namespaces/{ns}/pods/exited")["status"].get("phase")
                == "Succeeded"
            ),
            90,
        )
        done = on_node(
            ["capture", "pod", "-A", "-l", f"ir-test={label}", "--store", str(tmp_path),
             "--no-replace", "--case", "INC-32", "-o", "json"],
            cp,
            node,
        )  # fmt: skip
    finally:
        cp.api("DELETE", f"/api/v1/namespaces/kube-system/pods/ir-test-{label}")
    assert done.returncode == 5, done.stderr + done.stdout
    doc = json.loads(done.stdout)
    pods = {p["target"]["name"]: p for p in doc["pods"]}
    assert set(pods) == {"good-1", "good-2", "exited", f"ir-test-{label}"}
    for name in ("good-1", "good-2"):
        assert pods[name]["exit_code"] == 0 and pods[name]["bundle"]["outcome"] == "complete"
        assert pods[name]["quarantine"]["policy_verified"]
    refused = pods[f"ir-test-{label}"]
    assert refused["exit_code"] == 5 and refused["bundle"] is None
    assert "namespace kube-system is protected" in refused["errors"][0]
    partial = pods["exited"]
    assert partial["exit_code"] == 5 and partial["bundle"]["outcome"] == "partial"
    assert partial["quarantine"] is None and not partial["gate"]["open"]
    assert "no task state" in " ".join(partial["errors"]), partial["errors"]
    policies = cp.api("GET", POLICIES.format(ns=ns))["items"]
    assert len(policies) == 2
    exited_now = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/exited")
    assert LABEL_QUARANTINE not in exited_now["metadata"]["labels"]
    assert doc["errors"][-1] == f"kube-system/ir-test-{label}: " + refused["errors"][0]
    index = json.loads(Path(doc["index"]["location"]).read_text())
    assert {(p["namespace"], p["name"], p["outcome"], p["exit_code"]) for p in index["pods"]} == {
        (ns, "good-1", "complete", 0),
        (ns, "good-2", "complete", 0),
        (ns, "exited", "partial", 5),
        ("kube-system", f"ir-test-{label}", "not-captured", 5),
    }
    assert index["selection"]["namespace"] is None and index["exit_code"] == 5


@pytest.mark.k8s
def test_every_pod_of_a_workload(
    control_plane: ControlPlane, node: RealNode, namespace: str, tmp_path: Path
) -> None:
    """`deployment/web --all`: the Deployment's pods, found through its selector and owned by
    it -- a bare pod with the same labels is named and left alone. Text output: progress on
    stderr as pods finish, one table line per pod, the index, on stdout."""
    cp, ns = control_plane, namespace
    pods = web_pods(cp, ns, replicas=2)
    create(cp, ns, bare_pod("stray", "exec sleep 3600", {"app": "web", "tier": "front"}))
    wait_ready(cp, ns, "stray")
    done = on_node(
        ["capture", "pod", "deployment/web", "--all", "-n", ns, "--store", str(tmp_path),
         "--no-replace"],
        cp,
        node,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    names = sorted(p["metadata"]["name"] for p in pods)
    assert f"2 pods of deployment/web in namespace {ns}" in done.stderr
    assert "not taken: stray: matches the selector but has no controller" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("[")]) == 2
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["pod", "node", "capture", "quarantine", "replace", "exit", "bundle"]
    rows = [line.split() for line in lines[2:4]]
    assert [r[:6] for r in rows] == [[n, node.name, "complete", "applied", "-", "0"] for n in names]
    assert lines[4].startswith("index:      ") and lines[5].startswith("digest:     sha256:")
    assert lines[6].startswith("signature:  ")  # signed when the test run has $IR_SIGNING_KEY
    stray = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/stray")
    assert LABEL_QUARANTINE not in stray["metadata"]["labels"]
    index = json.loads(Path(lines[4].split()[-1]).read_text())
    assert index["selection"]["workload"]["kind"] == "Deployment"
    assert index["selection"]["skipped"][0]["name"] == "stray"
    missing = on_node(["capture", "pod", "deploy/nope", "--all", "-n", ns], cp, node)
    assert missing.returncode == 4
    assert f"deployment/nope not found in namespace {ns}" in missing.stderr


@pytest.mark.k8s
def test_dry_run_plans_every_pod_and_changes_nothing(
    control_plane: ControlPlane, node: RealNode, namespace: str, collector_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """--dry-run through the collector: every pod's requests sent as server-side dry runs, the
    node's collector planned once for both; no policy, no label, no collector, no file."""
    cp, ns = control_plane, namespace
    pods = web_pods(cp, ns, replicas=2)
    args = ["capture", "pod", "-l", "app=web", "-n", ns, "--store", str(tmp_path),
            "--collector-image", collector_image, "--dry-run"]  # fmt: skip
    done = laptop([*args, "-o", "json"], cp)
    assert done.returncode == 0, done.stderr + done.stdout
    doc = json.loads(done.stdout)
    assert doc["dry_run"] and doc["index"]["location"] is None
    assert [(a["action"], a["outcome"]) for a in doc["collectors"]] == [
        ("create-collector-pod", "dry-run")
    ]
    for pod in doc["pods"]:
        assert [(a["action"], a["method"], a["outcome"]) for a in pod["actions"]
                if a["method"] != "-"] == [
            ("create-quarantine-policy", "POST", "dry-run"),
            ("label-pod-quarantined", "PATCH", "dry-run"),
            ("release-from-controller", "PATCH", "dry-run"),
        ]  # fmt: skip
    text = laptop(args, cp)
    assert text.returncode == 0, text.stderr
    for pod in pods:
        name = pod["metadata"]["name"]
        assert f"[dry-run] would capture pod {ns}/{name}" in text.stderr
        assert any(line.startswith(name) and "planned" in line for line in text.stdout.splitlines())
    assert text.stderr.count("create-collector-pod: POST") == 1
    assert cp.api("GET", POLICIES.format(ns=ns))["items"] == []
    for pod in pods:
        after = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
        assert after["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    assert not collector_pods(cp)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.k8s
def test_nothing_matched_is_said(
    control_plane: ControlPlane, node: RealNode, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    none = on_node(["capture", "pod", "-l", "app=nothing", "-n", ns, "-o", "json"], cp, node)
    assert none.returncode == 4, none.stderr
    assert json.loads(none.stdout)["errors"] == [
        f"no pods in namespace {ns} match selector 'app=nothing'"
    ]
    gone = on_node(["capture", "pod", "-l", "app=web", "-n", "no-such-ns-q1"], cp, node)
    assert gone.returncode == 4
    assert "(namespace no-such-ns-q1 does not exist)" in gone.stderr
    bad = on_node(["capture", "pod", "-l", "app in ((", "-n", ns], cp, node)
    assert bad.returncode == 2 and "selector 'app in ((':" in bad.stderr, bad.stderr


@pytest.mark.k8s
def test_ctrl_c_removes_the_collector_and_still_writes_the_index(
    control_plane: ControlPlane, node: RealNode, namespace: str, collector_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """SIGINT once the first of three pods is done (one at a time): nothing starts or is acted
    on after it, the collector pod is removed, the index is written saying so; exit 130."""
    cp, ns = control_plane, namespace
    web_pods(cp, ns, replicas=3)
    err = tmp_path / "stderr"
    with err.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ir.cli.main", "capture", "pod", "-l", "app=web", "-n", ns,
             "--store", str(tmp_path / "e"), "--collector-image", collector_image,
             "--parallel", "1", "--no-replace", "-o", "json"],
            stdout=subprocess.PIPE, stderr=sink, text=True, env=_laptop_env(cp),
        )  # fmt: skip
        try:
            wait_for("the first pod done", lambda: "[1/3]" in err.read_text(), 300)
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
    assert proc.returncode == 130, err.read_text()
    doc = json.loads(out)
    assert doc["interrupted"] and doc["errors"][-1] == "interrupted (Ctrl-C)"
    codes = sorted(p["exit_code"] for p in doc["pods"])
    assert codes[0] == 0 and all(code != 0 for code in codes[1:]), doc["pods"]
    assert len(cp.api("GET", POLICIES.format(ns=ns))["items"]) == 1  # only the first pod's
    index = json.loads(Path(doc["index"]["location"]).read_text())
    assert index["interrupted"] and len(index["pods"]) == 3
    assert [a["action"] for a in index["collectors"][0]["actions"]][-1] == "delete-collector-pod"
    wait_for("the collector pod to go", lambda: not collector_pods(cp), 60)
