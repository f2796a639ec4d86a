"""Every shipped playbook, end to end on the real node, with exactly the shipped least privilege:
`ir playbook run` with the ir-serve token acting as ir-responder (`--as`, what ir serve does),
the shipped RBAC and admission policies in force (tests/testbed/deploy.py), captures through the
node collector (ir's own image on the node), each alert a shipped sample pointed at a fresh pod
of the test bed (or, for the node finding, at its node). What the policies refuse is
test_admission.py; this shows they refuse nothing a playbook needs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_k8s import IMAGE, wait_for
from tests.resilience.faults import ir_env, repo_path, run_ir
from tests.test_capture_pod import deploy_web, ready_pods
from tests.testbed.deploy import RESPONDER, Identity, install_shipped
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import NODE_NAME

pytestmark = [pytest.mark.k8s]

SAMPLES = repo_path("samples", "alerts")
CLUSTER = "prod-eu"  # the samples' EKS cluster, taken as the test bed's name
INSTANCE = "i-0c3d4e5f6071829a0"  # the node sample's instance


def _falco(sample: str) -> Callable[[dict[str, Any], str, str, str], None]:
    def point(doc: dict[str, Any], ns: str, pod: str, cid: str) -> None:
        doc["output_fields"].update(
            {"k8s.ns.name": ns, "k8s.pod.name": pod, "container.id": cid[:12]}
        )

    return point


def _alertmanager(doc: dict[str, Any], ns: str, pod: str, cid: str) -> None:
    for labels in [a["labels"] for a in doc["alerts"]] + [doc["commonLabels"]]:
        labels.update(namespace=ns, pod=pod, container="web")


def _guardduty_pod(doc: dict[str, Any], ns: str, pod: str, cid: str) -> None:
    workload = doc["detail"]["resource"]["kubernetesDetails"]["kubernetesWorkloadDetails"]
    workload.update(namespace=ns, name=pod, type="pods")
    for container in workload.get("containers", []):
        container.update(name="web", id=cid)


def _guardduty_node(doc: dict[str, Any], ns: str, pod: str, cid: str) -> None:
    for interface in doc["detail"]["resource"]["instanceDetails"]["networkInterfaces"]:
        interface["privateDnsName"] = NODE_NAME
        for address in interface.get("privateIpAddresses", []):
            address["privateDnsName"] = NODE_NAME


# playbook, sample, how it is pointed at the test bed, the step statuses expected
CASES: list[tuple[str, str, Callable[[dict[str, Any], str, str, str], None], list[str]]] = [
    (
        "shell-in-container",
        "falco-terminal-shell.json",
        _falco("shell"),
        ["ok", "ok", "ok", "skipped"],
    ),
    (
        "binary-drift",
        "falco-write-below-binary-dir.json",
        _falco("drift"),
        ["ok"] * 3 + ["skipped"],
    ),
    ("crypto-miner", "falco-crypto-miner.json", _falco("miner"), ["ok"] * 4 + ["skipped"]),
    ("capture-only", "alertmanager-capture-request.json", _alertmanager, ["ok", "ok", "skipped"]),
    (
        "guardduty-eks-audit",
        "guardduty-eventbridge-exec-kube-system.json",
        _guardduty_pod,
        ["ok", "ok", "skipped"],
    ),
    (
        "guardduty-eks-runtime",
        "guardduty-eventbridge-reverse-shell.json",
        _guardduty_pod,
        ["ok", "ok", "ok", "skipped"],
    ),
    (
        "guardduty-eks-node",
        "guardduty-eventbridge-node.json",
        _guardduty_node,
        ["ok"] * 3 + ["skipped"],
    ),
]


@pytest.fixture(scope="module")
def serve_kubeconfig(
    control_plane: ControlPlane, collector_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The shipped identities and policies in force; the node carries the sample's instance as
    its providerID (set once, as a cloud's kubelet does); a kubeconfig with ir-serve's token."""
    cp = control_plane
    install_shipped(cp, collector_image=collector_image, probe_image=IMAGE)
    node = cp.api("GET", f"/api/v1/nodes/{NODE_NAME}")
    if not node["spec"].get("providerID"):
        Identity(cp, "admin", cp.tokens["admin"]).request(
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}",
            {"spec": {"providerID": f"aws:///eu-west-1a/{INSTANCE}"}},
            content_type="application/merge-patch+json",
        )
    serve = Identity.of(cp, "ir-system", "ir-serve")
    return serve.kubeconfig(tmp_path_factory.mktemp("serve") / "kubeconfig")


@pytest.mark.parametrize(("book", "sample", "point", "expected"), CASES, ids=[c[0] for c in CASES])
def test_shipped_playbook_runs_with_least_privilege(
    control_plane: ControlPlane,
    collector_image: str,
    serve_kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    book: str,
    sample: str,
    point: Callable[[dict[str, Any], str, str, str], None],
    expected: list[str],
) -> None:
    cp, ns = control_plane, namespace
    deploy_web(cp, ns, replicas=1)
    pod = wait_for("a ready web pod", lambda: (ready_pods(cp, ns) or [None])[0], 120)
    name = pod["metadata"]["name"]
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    alert = json.loads((SAMPLES / sample).read_text())
    point(alert, ns, name, cid)
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(json.dumps(alert))
    done = run_ir(
        [
            "playbook",
            "run",
            book,
            "--alert",
            str(alert_file),
            "--actions",
            "cluster",
            "--kubeconfig",
            str(serve_kubeconfig),
            "--as",
            RESPONDER,
            "--cluster-name",
            CLUSTER,
            "--collector-image",
            collector_image,
            "--collector-upload",
            "relay",
            "--store",
            str(tmp_path / "evidence"),
            "--operator",
            f"least-privilege-{uuid.uuid4().hex[:4]}",
            "-o",
            "json",
        ],  # fmt: skip
        ir_env(),
        timeout=600,
    )
    doc = done.json()
    (run,) = doc["runs"]
    statuses = [s["status"] for s in run["steps"]]
    print(
        f"\n{book}: "
        + "; ".join(f"{s['action']} {s['status']}: {s['detail'][:120]}" for s in run["steps"])
    )
    assert statuses == expected, run["steps"]
    capture = next(s for s in run["steps"] if s["action"] == "capture")
    verify = run_ir(["bundle", "verify", capture["bundle"]], ir_env())
    assert verify.returncode == 0, verify.stdout + verify.stderr
    if book == "guardduty-eks-node":
        node = cp.api("GET", f"/api/v1/nodes/{NODE_NAME}")
        try:
            assert node["spec"].get("unschedulable") is True
        finally:  # an administrator uncordons: ir's automation may not
            Identity(cp, "admin", cp.tokens["admin"]).request(
                "PATCH",
                f"/api/v1/nodes/{NODE_NAME}",
                {"spec": {"unschedulable": None}},
                content_type="application/merge-patch+json",
            )
