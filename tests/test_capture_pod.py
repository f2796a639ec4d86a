"""`ir capture pod`, quarantine, replace and release on the test bed's real cluster (control plane
and a real node: kubelet + containerd + CNI + kube-router; tests/testbed/node.py). ir itself is
run as a subprocess, exactly as a responder would run it on the node (IR_NODE_ROOT names where the
node's filesystem is visible from the test process: the node's mount namespace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ir.bundle.signing import generate_keypair
from tests.fixtures_k8s import IMAGE, wait_for
from tests.k8s_helpers import (
    OK_SERVER,
    bare_pod,
    create,
    deploy_web,  # noqa: F401 -- other test modules import it from here
    wait_ready,
    wait_traffic,
    web_pods,
)
from tests.k8s_helpers import ready_pods as _ready_pods
from tests.testbed.docker import DockerBed
from tests.testbed.k8s import ControlPlane
from tests.testbed.node import NO_CRIU, RealNode

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

POLICY_API = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"


def run_ir(
    args: list[str], cp: ControlPlane, bed: DockerBed, user: str = "admin", **kw: Any
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        KUBECONFIG=str(cp.kubeconfig if user == "admin" else cp.kubeconfig_for(user)),
        DOCKER_HOST=bed.host,
        IR_OPERATOR="pytest",
        **kw.pop("env_extra", {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "ir.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=kw.pop("timeout", 300),
        **kw,
    )


def ready_pods(cp: ControlPlane, ns: str, selector: str = "app=web") -> list[dict[str, Any]]:
    return _ready_pods(cp, ns, selector)


@pytest.fixture
def web(
    control_plane: ControlPlane, node: RealNode, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("IR_NODE_ROOT", node.host_root)
    web_pods(control_plane, namespace)
    return namespace


def test_dry_run_sends_the_real_runs_requests_as_server_side_dry_runs(
    control_plane: ControlPlane, docker_bed: DockerBed, web: str, tmp_path: Path
) -> None:
    """`ir capture pod --dry-run` takes the real code path: every change request of the real run,
    in the same order, sent to the apiserver with dryRun=All (admitted, nothing stored: no
    policy, the pod untouched); then the real run sends exactly those."""
    cp, ns = control_plane, web
    suspect = ready_pods(cp, ns)[0]
    name = suspect["metadata"]["name"]
    args = ["capture", "pod", name, "-n", ns, "--store", str(tmp_path / "e"), "-o", "json"]
    dry = run_ir([*args, "--dry-run"], cp, docker_bed)
    assert dry.returncode == 0, dry.stderr + dry.stdout
    planned = [
        (a["action"], a["method"], a["path"], a["outcome"])
        for a in json.loads(dry.stdout)["actions"]
        if a["method"] != "-"
    ]
    assert "admitted by the apiserver (server-side dry run)" in dry.stderr, dry.stderr
    assert cp.api("GET", POLICY_API.format(ns=ns))["items"] == []
    after = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")["metadata"]
    assert after["labels"] == suspect["metadata"]["labels"]
    real = run_ir([*args, "--replace-timeout", "60"], cp, docker_bed)
    assert real.returncode == 0, real.stderr + real.stdout
    done = [
        (a["action"], a["method"], a["path"])
        for a in json.loads(real.stdout)["actions"]
        if a["method"] != "-"
    ]
    assert [p[:3] for p in planned] == done and {p[3] for p in planned} == {"dry-run"}, (
        planned,
        done,
    )
    assert [m for _, m, _ in done] == ["POST", "PATCH", "PATCH"]


def test_capture_quarantine_replace_release(
    control_plane: ControlPlane, docker_bed: DockerBed, web: str, tmp_path: Path
) -> None:
    cp, ns = control_plane, web
    before = ready_pods(cp, ns)
    suspect = before[0]
    name, uid = suspect["metadata"]["name"], suspect["metadata"]["uid"]
    suspect_ip = suspect["status"]["podIP"]
    create(cp, ns, bare_pod("peer", OK_SERVER.format(port=9090), {"role": "peer"}))
    peer_ip = wait_ready(cp, ns, "peer")["status"]["podIP"]
    # Before: the peer reaches the suspect, and the suspect's egress reaches the peer.
    wait_traffic(cp, ns, "peer", suspect_ip, 8080, allowed=True)
    wait_traffic(cp, ns, name, peer_ip, 9090, allowed=True)
    time.sleep(1)  # let the container write its planted file
    store = tmp_path / "evidence"
    started = time.monotonic()
    done = run_ir(
        [
            "capture",
            "pod",
            name,
            "-n",
            ns,
            "--store",
            str(store),
            "--case",
            "INC-7",
            "--reason",
            "falco: shell in container",
            "--probe-image",
            IMAGE,
            "-o",
            "json",
        ],
        cp,
        docker_bed,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout)
    print(
        f"\ncapture pod -> replacement ready: {elapsed:.1f}s (replace waited {out['replace']['waited_seconds']}s)"
    )
    bundle = out["bundle"]["location"]

    # The bundle verifies and holds the Kubernetes context and real container artifacts.
    verify = run_ir(["bundle", "verify", bundle, "-o", "json"], cp, docker_bed)
    assert verify.returncode == 0, verify.stdout
    show = json.loads(run_ir(["bundle", "show", bundle, "-o", "json"], cp, docker_bed).stdout)
    names = {a["name"] for a in show["manifest"]["artifacts"]}
    assert {
        "k8s/pod.json",
        "k8s/events.json",
        "k8s/owners.json",
        "k8s/services.json",
        "k8s/rbac.json",
        "k8s/node.json",
        "containers/web/processes.jsonl",
        "containers/web/fs-changes.jsonl",
    } <= names
    statuses = {
        (c["name"], c.get("container")): c["status"] for c in show["manifest"]["collectors"]
    }
    assert all(s == "ok" for s in statuses.values()), statuses
    pod_doc = json.loads(run_ir(["bundle", "cat", bundle, "k8s/pod.json"], cp, docker_bed).stdout)
    assert pod_doc["metadata"]["uid"] == uid and pod_doc["metadata"]["resourceVersion"]
    owners = json.loads(run_ir(["bundle", "cat", bundle, "k8s/owners.json"], cp, docker_bed).stdout)
    assert [o["kind"] for o in owners] == ["ReplicaSet", "Deployment"]
    changes = run_ir(
        ["bundle", "cat", bundle, "containers/web/fs-changes.jsonl"], cp, docker_bed
    ).stdout
    assert "/tmp/dropped.txt" in changes
    deleted = [json.loads(line) for line in changes.splitlines() if "/etc/motd" in line]
    assert deleted and deleted[0]["change"] == "deleted"
    processes = run_ir(
        ["bundle", "cat", bundle, "containers/web/processes.jsonl"], cp, docker_bed
    ).stdout
    assert '"nc", "-ll", "-p", "8080"' in processes
    logs = run_ir(["bundle", "cat", bundle, "containers/web/logs-current.jsonl"], cp, docker_bed)
    assert '"ready' in logs.stdout or "ready" in logs.stdout

    # ir proved the quarantine by traffic (its probe pod, now gone) ...
    quarantine = out["quarantine"]
    assert quarantine["verified"] and quarantine["enforcement_state"] == "verified", quarantine
    assert quarantine["enforcement"].startswith("enforcement verified"), quarantine
    probe_actions = [a["action"] for a in out["actions"] if "probe" in a["action"]]
    assert probe_actions == ["create-enforcement-probe", "delete-enforcement-probe"]
    wait_for(
        "the probe pod to go",
        lambda: (
            not cp.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=ir.forensics/probe")[
                "items"
            ]
        ),
        30,
    )
    # ... and the test sees it too: the peer can no longer reach the suspect, nor the suspect the peer.
    wait_traffic(cp, ns, "peer", suspect_ip, 8080, allowed=False)
    wait_traffic(cp, ns, name, peer_ip, 9090, allowed=False)

    # Exactly one NetworkPolicy, selecting only the suspect (checked through the API's own selection).
    policies = cp.api("GET", POLICY_API.format(ns=ns))["items"]
    assert len(policies) == 1
    policy = policies[0]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and not policy["spec"].get(
        "ingress"
    )
    selector = ",".join(f"{k}={v}" for k, v in policy["spec"]["podSelector"]["matchLabels"].items())
    selected = cp.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"]
    assert [p["metadata"]["uid"] for p in selected] == [uid]

    # The suspect still exists, no longer owned by the ReplicaSet; the Deployment is whole again.
    pod = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert not pod["metadata"].get("ownerReferences")
    assert (
        json.loads(pod["metadata"]["annotations"]["ir.forensics/original-labels"])["app"] == "web"
    )
    others = [p for p in ready_pods(cp, ns) if p["metadata"]["uid"] != uid]
    assert len(others) == 2
    # The replacement ir reported is a pod that did not exist before ir acted (not the sibling).
    old_uids = {p["metadata"]["uid"] for p in before}
    replacement = out["replace"]["replacement"]
    assert replacement in {p["metadata"]["name"] for p in others}
    assert {
        p["metadata"]["uid"] for p in others if p["metadata"]["name"] == replacement
    }.isdisjoint(old_uids)
    deployment = cp.api("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert deployment["status"].get("availableReplicas") == 2

    # The Service's endpoints exclude the suspect.
    def endpoints() -> list[str]:
        slices = cp.api(
            "GET",
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
            "?labelSelector=kubernetes.io/service-name=web",
        )["items"]
        return [
            e.get("targetRef", {}).get("name") for s in slices for e in s.get("endpoints") or []
        ]

    wait_for(
        "endpoints of the two clean pods",
        lambda: sorted(endpoints()) == sorted(p["metadata"]["name"] for p in others),
        60,
    )
    assert name not in endpoints()

    # Every action is in the custody log.
    custody = run_ir(["bundle", "custody", bundle, "-o", "json"], cp, docker_bed)
    records = json.loads(custody.stdout)
    respond = [r for r in records if r["action"] == "respond"]
    assert respond and {
        "create-quarantine-policy",
        "label-pod-quarantined",
        "release-from-controller",
    } <= {a["action"] for a in respond[0]["detail"]["actions"]}

    # Idempotent: a second quarantine creates no second policy.
    again = run_ir(["quarantine", "pod", name, "-n", ns], cp, docker_bed)
    assert again.returncode == 0, again.stderr
    assert len(cp.api("GET", POLICY_API.format(ns=ns))["items"]) == 1

    # Release undoes the quarantine; the suspect is kept.
    released = run_ir(["release", "pod", name, "-n", ns, "--evidence", bundle], cp, docker_bed)
    assert released.returncode == 0, released.stderr
    assert cp.api("GET", POLICY_API.format(ns=ns))["items"] == []
    pod = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert "ir.forensics/quarantine" not in pod["metadata"].get("labels", {})
    wait_traffic(cp, ns, "peer", suspect_ip, 8080, allowed=True)
    wait_traffic(cp, ns, name, peer_ip, 9090, allowed=True)

    # Deleting needs authentic, complete evidence of exactly this pod.
    other = others[0]["metadata"]["name"]
    delete = ["release", "pod", "-n", ns, "--delete", "--evidence", bundle]
    wrong = run_ir([*delete, other], cp, docker_bed)
    assert wrong.returncode == 5 and f"not a capture of pod {ns}/{other}" in wrong.stderr
    nobody = tmp_path / "nobody"
    generate_keypair(nobody)
    untrusted = run_ir(
        [*delete, name], cp, docker_bed, env_extra={"IR_TRUST": str(nobody / "ir-signing.pub")}
    )
    assert untrusted.returncode == 5 and "not authentic evidence" in untrusted.stderr, (
        untrusted.stderr
    )
    deleted = run_ir([*delete, name], cp, docker_bed)
    assert deleted.returncode == 0, deleted.stderr
    wait_for(
        "the suspect to be deleted",
        lambda: (
            name
            not in [
                p["metadata"]["name"]
                for p in cp.api("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
            ]
        ),
        60,
    )


@pytest.mark.parametrize(
    ("runtime_class", "reason"),
    [
        (None, "CRIU failed on this node"),
        (NO_CRIU, "the container runtime cannot checkpoint (no CRIU)"),
    ],
    ids=["criu-fails-on-this-kernel", "runtime-without-criu"],
)
def test_checkpoint_refusal_is_recorded(
    control_plane: ControlPlane,
    node: RealNode,
    namespace: str,
    docker_bed: DockerBed,
    tmp_path: Path,
    runtime_class: str | None,
    reason: str,
) -> None:
    """The two real refusals of `--checkpoint` on this node: containerd v2 reaches CRIU, which
    fails on this kernel; a runtime handler whose runc has no CRIU (RuntimeClass no-criu) cannot
    checkpoint at all. Either way the kubelet's refusal is kept in the bundle, the checkpoint
    collector is partial with the reason, the rest is whole, and the container keeps running."""
    cp, ns = control_plane, namespace
    pod = bare_pod("app", "echo ready; exec sleep 3600", {"app": "ckpt"})
    if runtime_class:
        pod["spec"]["runtimeClassName"] = runtime_class
    create(cp, ns, pod)
    wait_ready(cp, ns, "app")
    done = run_ir(
        ["capture", "pod", "app", "-n", ns, "--store", str(tmp_path), "--checkpoint",
         "--no-quarantine", "--no-replace", "-o", "json"],
        cp,
        docker_bed,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # partial: the checkpoint asked for is missing
    bundle = json.loads(done.stdout)["bundle"]["location"]
    show = json.loads(run_ir(["bundle", "show", bundle, "-o", "json"], cp, docker_bed).stdout)
    collectors = show["manifest"]["collectors"]
    checkpoint = [c for c in collectors if c["name"] == "kubelet-checkpoint"]
    assert checkpoint and checkpoint[0]["status"] == "partial"
    assert f"checkpoint refused ({reason})" in checkpoint[0]["error"], checkpoint[0]
    assert all(c["status"] == "ok" for c in collectors if c["name"] != "kubelet-checkpoint")
    refusal = json.loads(
        run_ir(["bundle", "cat", bundle, "containers/app/checkpoint.json"], cp, docker_bed).stdout
    )
    assert refusal["refused"]["status"] >= 400
    actions = [a for a in show["manifest"]["actions"] if a["action"] == "kubelet-checkpoint"]
    assert actions and actions[0]["outcome"] == "refused"
    print(f"\n{runtime_class or 'runc'}: {checkpoint[0]['error']}")
    assert wait_ready(cp, ns, "app")  # the container keeps running


def test_failed_capture_closes_the_gate(
    control_plane: ControlPlane, docker_bed: DockerBed, web: str, tmp_path: Path
) -> None:
    cp, ns = control_plane, web
    name = ready_pods(cp, ns)[0]["metadata"]["name"]
    # The node's runtime cannot be reached: the container collectors fail, the capture is partial.
    broken = ["--docker-host", "unix:///nonexistent/docker.sock", "--backend", "docker"]
    done = run_ir(
        ["capture", "pod", name, "-n", ns, "--store", str(tmp_path), *broken], cp, docker_bed
    )
    assert done.returncode == 5, done.stderr
    assert "nothing destructive without --force" in done.stderr
    assert cp.api("GET", POLICY_API.format(ns=ns))["items"] == []
    assert cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")["metadata"].get("ownerReferences")
    forced = run_ir(
        [
            "capture",
            "pod",
            name,
            "-n",
            ns,
            "--store",
            str(tmp_path),
            "--no-replace",
            "--force",
            *broken,
            "-o",
            "json",
        ],
        cp,
        docker_bed,
    )
    doc = json.loads(forced.stdout)
    assert doc["quarantine"]["policy_verified"] and any(
        a["outcome"] == "forced" for a in doc["actions"]
    )
    # No probe image: ir says what it checked and what it could not.
    assert not doc["quarantine"]["verified"]
    assert doc["quarantine"]["enforcement"].startswith("policy applied, enforcement not verified")


def test_replace_timeout_names_its_cause(
    control_plane: ControlPlane, docker_bed: DockerBed, web: str, tmp_path: Path
) -> None:
    """A complete capture whose replacement is not Ready in time: exit 4 (not "evidence
    failed"), the cause -- its own, the suspect kept quarantined -- on the last line of the text
    output and in -o json's errors."""
    cp, ns = control_plane, web
    names = [p["metadata"]["name"] for p in ready_pods(cp, ns)]
    base = ["capture", "pod", "-n", ns, "--store", str(tmp_path), "--replace-timeout", "0.01"]
    done = run_ir([*base[:2], names[0], *base[2:], "-o", "json"], cp, docker_bed)
    assert done.returncode == 4, done.stderr
    doc = json.loads(done.stdout)
    assert doc["bundle"]["outcome"] == "complete" and doc["exit_code"] == 4
    assert doc["errors"] == [
        "replace: no ready replacement within 0.01 s; the suspect stays quarantined"
    ], doc["errors"]
    text = run_ir([*base[:2], names[1], *base[2:]], cp, docker_bed)
    assert text.returncode == 4
    last = text.stdout.strip().splitlines()[-1]
    assert last == (
        "ir: exit 4: replace: no ready replacement within 0.01 s; the suspect stays quarantined"
    ), text.stdout
    assert "NOT ready after" in text.stdout


def test_missing_namespace_is_named(
    control_plane: ControlPlane, docker_bed: DockerBed, web: str
) -> None:
    missing = run_ir(["capture", "pod", "web-1", "-n", "no-such-ns-x1"], control_plane, docker_bed)
    assert missing.returncode == 4
    assert "namespace no-such-ns-x1 does not exist" in missing.stderr, missing.stderr
    gone = run_ir(["capture", "pod", "no-such-pod", "-n", web], control_plane, docker_bed)
    assert gone.returncode == 4 and f"pod {web}/no-such-pod not found" in gone.stderr


def test_missing_pod_when_namespaces_cannot_be_read(
    control_plane: ControlPlane, docker_bed: DockerBed, namespace: str
) -> None:
    """`limited` may get pods in this namespace (a Role) but not read namespaces: a pod that is
    not there is "not found", and ir says it could not check the namespace (forbidden), exit 4
    with the cause on the last line."""
    cp, ns = control_plane, namespace
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    group = "rbac.authorization.k8s.io"
    cp.api(
        "POST",
        f"{rbac}/roles",
        {
            "apiVersion": f"{group}/v1",
            "kind": "Role",
            "metadata": {"name": "get-pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
    )
    cp.api(
        "POST",
        f"{rbac}/rolebindings",
        {
            "apiVersion": f"{group}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "limited-get-pods"},
            "subjects": [{"kind": "User", "name": "limited", "apiGroup": group}],
            "roleRef": {"kind": "Role", "name": "get-pods", "apiGroup": group},
        },
    )
    args = ["capture", "pod", "no-such-pod", "-n", ns, "--no-quarantine", "--no-replace"]

    def answered() -> subprocess.CompletedProcess[str] | None:
        done = run_ir(args, cp, docker_bed, user="limited")
        return None if "permission denied" in done.stderr else done  # the binding is not in yet

    done = wait_for("the RoleBinding to apply", answered, 30)
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"ir: error: pod {ns}/no-such-pod not found (namespace could not be checked: forbidden)"
    ), done.stderr


def test_dry_run_changes_nothing(
    control_plane: ControlPlane, docker_bed: DockerBed, web: str, tmp_path: Path
) -> None:
    cp, ns = control_plane, web
    pod = ready_pods(cp, ns)[0]
    name = pod["metadata"]["name"]
    done = run_ir(
        ["capture", "pod", name, "-n", ns, "--store", str(tmp_path), "--dry-run"], cp, docker_bed
    )
    assert done.returncode == 0, done.stderr
    assert (
        "POST /apis/networking.k8s.io/v1/namespaces" in done.stderr
        and "PATCH /api/v1/namespaces" in done.stderr
    )
    assert cp.api("GET", POLICY_API.format(ns=ns))["items"] == []
    after = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert after["metadata"]["labels"] == pod["metadata"]["labels"]
    assert after["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    assert not list(tmp_path.rglob("*.tar"))


def test_protected_namespace_and_rbac(
    control_plane: ControlPlane, docker_bed: DockerBed, web: str
) -> None:
    cp, ns = control_plane, web
    refused = run_ir(["capture", "pod", "coredns-1", "-n", "kube-system"], cp, docker_bed)
    assert refused.returncode == 5 and "protected" in refused.stderr
    name = ready_pods(cp, ns)[0]["metadata"]["name"]
    limited = run_ir(["quarantine", "pod", name, "-n", ns], cp, docker_bed, user="limited")
    assert limited.returncode == 4
    assert (
        "permission denied: cannot get pods" in limited.stderr and "Traceback" not in limited.stderr
    )


def test_cluster_actions_label_annotate_cordon_delete(
    control_plane: ControlPlane, web: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The playbook steps other than capture/quarantine/replace, through ClusterActions on the
    real API: label, annotate (pod and node), cordon, a dry run that sends nothing, and delete."""
    from datetime import UTC, datetime

    from ir.cluster.actions import ClusterActions
    from ir.cluster.kube import connect
    from ir.playbook.actions import ActionContext
    from ir.playbook.alerts import Alert, Target

    cp, ns = control_plane, web
    monkeypatch.setenv("KUBECONFIG", str(cp.kubeconfig))
    actions = ClusterActions(connect())
    pod = ready_pods(cp, ns)[0]
    name = pod["metadata"]["name"]
    now = datetime.now(UTC)
    target = Target(
        "falco", "Terminal shell in container", "critical", now, "a1", namespace=ns, pod=name
    )
    alert = Alert(
        "falco", "Terminal shell in container", "critical", "Critical", now, now.isoformat(), "a1"
    )

    def ctx(dry_run: bool = False) -> ActionContext:
        return ActionContext(
            "run1", "INC-9", "test", "step", "falco: test", "pytest", dry_run, alert
        )

    assert actions.label(target, {"labels": {"ir.forensics/seen": "yes"}}, ctx()).status == "ok"
    assert (
        actions.annotate(
            target, {"annotations": {"ir.forensics/note": "x"}, "object": "node"}, ctx()
        ).status
        == "ok"
    )
    dry = actions.delete(target, {}, ctx(dry_run=True))
    assert dry.status == "dry-run" and dry.requests[0].method == "DELETE"
    after = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert after["metadata"]["labels"]["ir.forensics/seen"] == "yes"
    node = cp.api("GET", f"/api/v1/nodes/{after['spec']['nodeName']}")
    assert node["metadata"]["annotations"]["ir.forensics/note"] == "x"
    cordoned = actions.cordon(target, {}, ctx())
    assert cordoned.status == "ok"
    try:
        assert (
            cp.api("GET", f"/api/v1/nodes/{after['spec']['nodeName']}")["spec"]["unschedulable"]
            is True
        )
    finally:
        actions.kube.request(
            "PATCH",
            f"/api/v1/nodes/{after['spec']['nodeName']}",
            {"spec": {"unschedulable": False}},
            content_type="application/merge-patch+json",
        )
    assert actions.delete(target, {"grace_period_seconds": 0}, ctx()).status == "ok"
    wait_for(
        "the pod to go",
        lambda: (
            not any(
                p["metadata"]["name"] == name
                for p in cp.api("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
            )
        ),
        30,
    )
