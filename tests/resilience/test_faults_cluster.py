"""The Kubernetes API failing while ir quarantines and replaces: a fault-injecting TLS proxy
(tests/resilience/faults.py) sits between `ir` (a subprocess, as a responder runs it) and the
real kube-apiserver of the test bed, and answers chosen requests with 429/500/409, drops them,
or loses their responses after the server acted.

The promises: reads and idempotent writes (label PATCHes) are retried with backoff, honouring
Retry-After; a request the server refused with 429 is resent whatever its method; everything else
fails at once with a message naming the request; a quarantine is never left half-applied without
saying so ("quarantine INCOMPLETE", exit 4); a hung or unreachable apiserver costs bounded time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ir.cluster import kube as kube_module
from ir.store.local import custody_path
from tests.k8s_helpers import web_pods
from tests.resilience.faults import (
    Fault,
    FaultProxy,
    IrProcess,
    IrRun,
    check_store,
    closed_port,
    ir_env,
    run_ir,
)
from tests.testbed.docker import DockerBed
from tests.testbed.k8s import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.docker]

POLICIES = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
LABEL = "ir.forensics/quarantine"


@pytest.fixture
def proxy(control_plane: ControlPlane, tmp_path: Path) -> Iterator[FaultProxy]:
    p = FaultProxy(control_plane.server, control_plane.ca_file, tmp_path / "proxy")
    yield p
    p.stop()


@pytest.fixture
def via_proxy(proxy: FaultProxy, control_plane: ControlPlane, tmp_path: Path) -> Path:
    """The admin's kubeconfig, pointed at the proxy."""
    return proxy.kubeconfig(control_plane.tokens["admin"], tmp_path / "kubeconfig-proxy")


@pytest.fixture
def suspect(control_plane: ControlPlane, node: Any, namespace: str) -> tuple[str, str]:
    """(namespace, pod name) of the one ready pod of Deployment web."""
    pods = web_pods(control_plane, namespace, replicas=1)
    return namespace, pods[0]["metadata"]["name"]


def ir(args: list[str], kubeconfig: Path, bed: DockerBed, timeout: float = 300) -> IrRun:
    return run_ir(args, ir_env(KUBECONFIG=str(kubeconfig), DOCKER_HOST=bed.host), timeout=timeout)


def pod_path(ns: str, name: str) -> str:
    return rf"/api/v1/namespaces/{ns}/pods/{name}$"


def policies(cp: ControlPlane, ns: str) -> list[dict[str, Any]]:
    return list(cp.api("GET", POLICIES.format(ns=ns))["items"])


def label_of(cp: ControlPlane, ns: str, name: str) -> str | None:
    pod = cp.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    return (pod["metadata"].get("labels") or {}).get(LABEL)  # type: ignore[no-any-return]


def isolating(cp: ControlPlane, ns: str, name: str) -> list[str]:
    """Names of the deny-all policies that select the pod through its quarantine label."""
    qid = label_of(cp, ns, name)
    return [
        p["metadata"]["name"]
        for p in policies(cp, ns)
        if qid and p["spec"]["podSelector"] == {"matchLabels": {LABEL: qid}}
    ]


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 2) for a, b in zip(times, times[1:], strict=False)]


# -- retried where safe ------------------------------------------------------------------------


def test_label_patch_throttled_429_is_retried_after_retry_after(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """429 with Retry-After: 1 on the first two label PATCHes: ir waits at least the second the
    server asked for between attempts, then the quarantine completes and verifies."""
    ns, name = suspect
    proxy.add(Fault("PATCH", pod_path(ns, name), status=429, times=2, headers={"Retry-After": "1"}))
    done = ir(["quarantine", "pod", name, "-n", ns, "-o", "json"], via_proxy, docker_bed)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["quarantine"]["policy_verified"] is True
    attempts = proxy.seen("PATCH", pod_path(ns, name))
    assert [s.status for s in attempts] == [429, 429, 200]
    assert all(g >= 0.95 for g in gaps([s.time for s in attempts])), gaps(
        [s.time for s in attempts]
    )
    assert isolating(control_plane, ns, name)


def test_policy_create_throttled_429_is_resent(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """A 429 means the apiserver refused the request before acting, so even the (not idempotent)
    policy POST is resent; exactly one policy results."""
    ns, name = suspect
    proxy.add(
        Fault("POST", r"/networkpolicies$", status=429, times=1, headers={"Retry-After": "1"})
    )
    done = ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed)
    assert done.returncode == 0, done.stderr
    assert [s.status for s in proxy.seen("POST", r"/networkpolicies$")] == [429, 201]
    assert len(policies(control_plane, ns)) == 1 and isolating(control_plane, ns, name)


def test_reads_are_retried_through_500_and_503(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """Transient 500/503 on the reads that resolve the pod and verify the quarantine are retried
    with growing delays; the quarantine completes."""
    ns, name = suspect
    proxy.add(Fault("GET", pod_path(ns, name), status=500, times=2))
    proxy.add(Fault("GET", r"/networkpolicies/ir-quarantine-", status=503, times=2, skip=1))
    done = ir(["quarantine", "pod", name, "-n", ns, "-o", "json"], via_proxy, docker_bed)
    assert done.returncode == 0, done.stderr
    reads = proxy.seen("GET", pod_path(ns, name))
    assert [s.status for s in reads[:3]] == [500, 500, 200]
    first, second = gaps([s.time for s in reads[:3]])
    assert first >= 0.25 and second >= 0.5  # the backoff grows
    assert [s.status for s in proxy.seen("GET", r"/networkpolicies/ir-quarantine-")][1:4] == [
        503,
        503,
        200,
    ]
    assert json.loads(done.stdout)["quarantine"]["policy_verified"] is True


def test_lost_label_response_is_resent_safely(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """The label PATCH reaches the server but the connection drops before the answer: the merge
    patch is idempotent, ir resends it and the quarantine verifies."""
    ns, name = suspect
    proxy.add(Fault("PATCH", pod_path(ns, name), status=0, times=1, forward_first=True))
    done = ir(["quarantine", "pod", name, "-n", ns, "-o", "json"], via_proxy, docker_bed)
    assert done.returncode == 0, done.stderr
    patches = proxy.seen("PATCH", pod_path(ns, name))
    assert [(s.upstream_status, s.status) for s in patches] == [(200, 0), (200, 200)]
    assert json.loads(done.stdout)["quarantine"]["policy_verified"] is True


# -- clear failure otherwise -------------------------------------------------------------------


def test_label_failing_after_policy_is_reported_incomplete(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """The policy is created, then every label PATCH gets 500: after 6 attempts with backoff ir
    exits 4 with "quarantine INCOMPLETE ... NOT isolated", never a silent half-quarantine. A rerun
    once the API is healthy isolates the pod."""
    ns, name = suspect
    proxy.add(Fault("PATCH", pod_path(ns, name), status=500, times=-1))
    done = ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed)
    assert done.returncode == 4
    line = done.assert_clean_error()
    assert "quarantine INCOMPLETE" in line and "NOT isolated" in line and "HTTP 500" in line
    attempts = proxy.seen("PATCH", pod_path(ns, name))
    assert len(attempts) == 6 and sum(gaps([s.time for s in attempts])) >= 7.0  # 0.25+0.5+1+2+4
    created = policies(control_plane, ns)
    assert len(created) == 1 and created[0]["metadata"]["name"] in line  # names what is left
    assert label_of(control_plane, ns, name) is None

    proxy.clear()
    again = ir(["quarantine", "pod", name, "-n", ns, "-o", "json"], via_proxy, docker_bed)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["quarantine"]["policy_verified"] is True
    assert len(isolating(control_plane, ns, name)) == 1


def test_label_conflict_409_is_not_retried(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """409 is not transient: one label attempt, then "quarantine INCOMPLETE" (exit 4)."""
    ns, name = suspect
    proxy.add(Fault("PATCH", pod_path(ns, name), status=409, times=-1))
    done = ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed)
    assert done.returncode == 4
    line = done.assert_clean_error()
    assert "quarantine INCOMPLETE" in line and "conflict on pods" in line
    assert len(proxy.seen("PATCH", pod_path(ns, name))) == 1


def test_policy_create_500_fails_before_anything_changes(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """A 500 on the policy POST is not retried (a POST is not idempotent): exit 4 naming the
    request, no policy, no label, no PATCH sent."""
    ns, name = suspect
    proxy.add(Fault("POST", r"/networkpolicies$", status=500, times=-1))
    done = ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed)
    assert done.returncode == 4
    line = done.assert_clean_error()
    assert "POST /apis/networking.k8s.io/v1/namespaces" in line and "HTTP 500" in line
    assert len(proxy.seen("POST", r"/networkpolicies$")) == 1
    assert not proxy.seen("PATCH", pod_path(ns, name))
    assert policies(control_plane, ns) == [] and label_of(control_plane, ns, name) is None


def test_lost_policy_response_fails_clearly_and_rerun_isolates(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """The policy POST reaches the server, the answer is lost: ir cannot know, does not resend,
    exits 4 and labels nothing (the pod is not claimed isolated). A rerun isolates the pod."""
    ns, name = suspect
    proxy.add(Fault("POST", r"/networkpolicies$", status=0, times=1, forward_first=True))
    done = ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed)
    assert done.returncode == 4
    assert "unreachable" in done.assert_clean_error()
    assert [s.upstream_status for s in proxy.seen("POST", r"/networkpolicies$")] == [201]
    assert label_of(control_plane, ns, name) is None
    again = ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed)
    assert again.returncode == 0, again.stderr
    assert len(isolating(control_plane, ns, name)) == 1


def test_rerun_after_failed_quarantine_leaves_no_orphan_policy(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
) -> None:
    """After a quarantine that failed half-way and a successful rerun, the namespace holds exactly
    the one policy that isolates the pod."""
    ns, name = suspect
    proxy.add(Fault("PATCH", pod_path(ns, name), status=409, times=1))
    assert ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed).returncode == 4
    assert ir(["quarantine", "pod", name, "-n", ns], via_proxy, docker_bed).returncode == 0
    assert [p["metadata"]["name"] for p in policies(control_plane, ns)] == isolating(
        control_plane, ns, name
    )


def test_capture_pod_replace_failing_keeps_quarantine_and_says_so(
    control_plane: ControlPlane,
    docker_bed: DockerBed,
    suspect: tuple[str, str],
    proxy: FaultProxy,
    via_proxy: Path,
    tmp_path: Path,
) -> None:
    """`ir capture pod`: capture and quarantine succeed, then every PATCH that would release the
    pod from its controller gets 500. Exit 4; the JSON shows the verified quarantine and the
    error; the pod is still owned (not half-released); the bundle verifies and its custody log
    records the failed request."""
    ns, name = suspect
    proxy.add(Fault("PATCH", pod_path(ns, name), status=500, times=-1, skip=1))  # the label passes
    store = tmp_path / "evidence"
    done = ir(
        [
            "capture",
            "pod",
            name,
            "-n",
            ns,
            "--store",
            str(store),
            "--case",
            "FAULT",
            "-o",
            "json",
            "--replace-timeout",
            "30",
        ],
        via_proxy,
        docker_bed,
    )
    assert done.returncode == 4, done.stderr
    doc = json.loads(done.stdout)
    assert doc["bundle"]["outcome"] == "complete" and doc["quarantine"]["policy_verified"] is True
    assert doc["replace"] is None and any("HTTP 500" in e and "PATCH" in e for e in doc["errors"])
    failed = [a for a in doc["actions"] if a["outcome"] == "failed"]
    assert [a["action"] for a in failed] == ["release-from-controller"]
    pod = control_plane.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert pod["metadata"].get("ownerReferences") and pod["metadata"]["labels"]["app"] == "web"
    assert isolating(control_plane, ns, name)
    assert len(proxy.seen("PATCH", pod_path(ns, name))) == 1 + 6
    check = check_store(store)
    assert len(check.sealed) == 1
    custody = [json.loads(line) for line in custody_path(check.sealed[0]).read_text().splitlines()]
    respond = [r for r in custody if r["action"] == "respond"]
    assert respond and any(
        a["action"] == "release-from-controller" and a["outcome"] == "failed"
        for a in respond[0]["detail"]["actions"]
    )


# -- unreachable or hung -----------------------------------------------------------------------


def test_apiserver_unreachable_is_a_clear_bounded_failure(
    control_plane: ControlPlane, docker_bed: DockerBed, tmp_path: Path
) -> None:
    """Nothing listens where the kubeconfig points: `ir capture pod` and `ir quarantine pod`
    exit 4 saying "unreachable" within the retry budget (measured ~8 s: 0.25+0.5+1+2+4 s of
    backoff), and no bundle is written."""
    kubeconfig = tmp_path / "kubeconfig-nowhere"
    doc = json.loads(control_plane.kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed_port()}"
    kubeconfig.write_text(json.dumps(doc))
    store = tmp_path / "evidence"
    env = ir_env(KUBECONFIG=str(kubeconfig), DOCKER_HOST=docker_bed.host)
    running = [
        IrProcess(args, env)
        for args in (  # side by side: each waits out the backoff
            ["capture", "pod", "web-1", "-n", "default", "--store", str(store)],
            ["quarantine", "pod", "web-1", "-n", "default"],
        )
    ]
    for proc in running:
        done = proc.finish(timeout=120)
        assert done.returncode == 4, done.stderr
        assert "unreachable" in done.assert_clean_error()
        assert done.seconds < 30, done.seconds
    assert not store.exists() or not list(store.rglob("*.tar*"))


def test_hung_apiserver_costs_bounded_attempts(
    control_plane: ControlPlane, proxy: FaultProxy, via_proxy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: each attempt ends at the read timeout and one
    GET makes exactly 6 attempts (urllib3 adds none: it once multiplied them to 24, 12 minutes
    at the real 30 s timeout); no attempt starts after the retry budget. In-process with short
    timeouts so it runs in seconds."""
    monkeypatch.setattr(kube_module, "REQUEST_TIMEOUT", (2, 0.5))
    monkeypatch.setattr(kube_module, "RETRY_DELAYS", (0.05,) * 5)
    kube = kube_module.connect(str(via_proxy))
    proxy.add(Fault("GET", r"/api/v1/namespaces/default$", status=200, times=-1, delay=1.5))
    started = time.monotonic()
    with pytest.raises(kube_module.ApiError) as failed:
        kube.get("/api/v1/namespaces/default")
    assert failed.value.status == 0 and "unreachable" in failed.value.message
    assert len(proxy.seen("GET", r"/api/v1/namespaces/default$")) == 6
    assert time.monotonic() - started < 6 * 0.5 + 5 * 0.05 + 2
    monkeypatch.setattr(kube_module, "RETRY_BUDGET", 1.0)
    proxy.log.clear()
    with pytest.raises(kube_module.ApiError):
        kube.get("/api/v1/namespaces/default")
    assert len(proxy.seen("GET", r"/api/v1/namespaces/default$")) == 2  # 0.5 s, 0.5 s: budget spent
