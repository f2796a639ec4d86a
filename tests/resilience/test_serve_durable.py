"""`ir serve` never loses an accepted alert: runs are IrRun objects in the test bed's real
apiserver (the shipped CRD, RBAC and admission policies in force), written by ir-serve's own
token, with the steps done as ir-responder; captures through the node collector on the real
node. Each fault is the real thing: SIGKILL of the server process (an OOM kill, a node loss),
two server processes at once (two replicas), a restart of kube-apiserver itself.

  1. N alerts accepted, the server SIGKILLed at once, started again: every run finishes, and
     every pod has exactly one sealed bundle and one quarantine policy.
  2. SIGKILL in the middle of each step (capture, quarantine, replace), started again: each run
     finishes once, the evidence verifies, and the run and the bundle's custody name the attempt.
  3. Two replicas get the same alert at the same moment: one 202, one run.
  4. kube-apiserver restarts while runs are in flight: none is lost; alerts sent while it is
     down are answered 503 (never 202 unrecorded) and accepted on retry.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_k8s import IMAGE, wait_for
from tests.resilience.faults import ir_env, repo_path, run_ir
from tests.test_capture_pod import deploy_web, ready_pods
from tests.testbed.deploy import RESPONDER, Identity, install_shipped
from tests.testbed.k8s import ControlPlane

pytestmark = [pytest.mark.k8s]

TOKEN = "durable-token-0123456789abcdef"
RUNS = "/apis/ir.forensics/v1/namespaces/ir-system/irruns"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
FINISHED = {"Succeeded", "Partial", "Failed", "Refused"}
SAMPLE = json.loads(repo_path("samples", "alerts", "falco-terminal-shell.json").read_text())

LIGHT = """apiVersion: ir/v1
kind: Playbook
name: durable-light
trigger: {sources: [falco], rules: [Terminal shell in container]}
target:
  falco: {namespace: /output_fields/k8s.ns.name, pod: /output_fields/k8s.pod.name}
steps:
  - action: capture
    collectors: [processes, kubernetes]
  - action: quarantine
"""

FULL = """apiVersion: ir/v1
kind: Playbook
name: durable-full
trigger: {sources: [falco], rules: [Terminal shell in container]}
target:
  falco: {namespace: /output_fields/k8s.ns.name, pod: /output_fields/k8s.pod.name}
steps:
  - action: capture
    collectors: [metadata, processes, network, filesystem, logs, kubernetes]
  - action: quarantine
    probe_image: %s
  - action: replace
    wait_ready_seconds: 120
"""


def falco(ns: str, pod: str, uid: str) -> bytes:
    doc = json.loads(json.dumps(SAMPLE))
    doc["uuid"] = uid
    doc["output_fields"].update({"k8s.ns.name": ns, "k8s.pod.name": pod})
    return json.dumps(doc).encode()


def post(url: str, body: bytes, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(
            "POST",
            "/v1/alerts/falco",
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


class Server:
    """One `ir serve` process (a replica): ir-serve's token, acting as ir-responder."""

    def __init__(self, workdir: Path, kubeconfig: Path, collector_image: str, playbook: str):
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.collector_image = collector_image
        (workdir / "playbooks").mkdir(parents=True, exist_ok=True)
        (workdir / "playbooks" / "book.yaml").write_text(playbook)
        self.store = workdir / "evidence"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    def start(self, replica: str = "r1", lease: float = 8.0) -> str:
        self.starts += 1
        log = self.workdir / f"{replica}-{self.starts}.err"
        # as in its pod: not on the suspects' node (no IR_NODE_ROOT), so captures go through
        # the node collector pod, as they do in production
        env = ir_env(
            IR_SERVE_TOKEN=TOKEN, IR_SIGNING_KEY=None, IR_OPERATOR="durable-test", IR_NODE_ROOT=None
        )
        args = [
            sys.executable, "-m", "ir.cli.main", "serve", "--listen", "127.0.0.1:0",
            "--playbooks", str(self.workdir / "playbooks"), "--actions", "cluster",
            "--allow-unsigned", "--kubeconfig", str(self.kubeconfig), "--as", RESPONDER,
            "--runs", "cluster", "--replica", replica, "--run-lease", str(lease),
            "--run-scan-interval", "0.5", "--workers", "4",
            "--collector-image", self.collector_image, "--collector-upload", "relay",
            "--store", str(self.store),
            "--audit-log", str(self.workdir / f"audit-{replica}-{self.starts}.jsonl"),
        ]  # fmt: skip
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(args, stderr=err, stdout=subprocess.DEVNULL, env=env)
        found = wait_for(
            f"ir serve {replica} listening",
            lambda: (
                re.search(r"listening on (http://\S+) ", log.read_text())
                or (self.proc is not None and self.proc.poll() is not None and "exited")
            ),
            60,
        )
        assert not isinstance(found, str), log.read_text()
        self.url = found.group(1)
        return self.url

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=90)
        return self.proc.returncode or 0

    def audit(self, event: str) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.workdir.glob("audit-*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue  # the last line of a killed process may be cut
                if doc.get("event") == event:
                    out.append(doc)
        return out


@pytest.fixture(scope="module")
def serve_kubeconfig(
    control_plane: ControlPlane, collector_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    install_shipped(control_plane, collector_image=collector_image, probe_image=IMAGE)
    serve = Identity.of(control_plane, "ir-system", "ir-serve")
    return serve.kubeconfig(tmp_path_factory.mktemp("durable") / "kubeconfig")


@pytest.fixture
def servers(
    serve_kubeconfig: Path, collector_image: str, control_plane: ControlPlane, tmp_path: Path
) -> Iterator[list[Server]]:
    made: list[Server] = []
    _clean_runs(control_plane)
    yield made
    for server in made:
        server.kill()
    _clean_runs(control_plane)
    for pod in control_plane.api("GET", "/api/v1/namespaces/ir-collectors/pods")["items"]:
        with contextlib.suppress(Exception):  # best effort: gone already
            control_plane.api(
                "DELETE", f"/api/v1/namespaces/ir-collectors/pods/{pod['metadata']['name']}"
            )


def _clean_runs(cp: ControlPlane) -> None:
    """The admin removes every run (the policies bind ir's identities, not administrators)."""
    for item in cp.api("GET", RUNS)["items"]:
        with contextlib.suppress(Exception):  # gone already
            cp.api("DELETE", f"{RUNS}/{item['metadata']['name']}")


def runs_of(cp: ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    """The namespace's runs by pod name."""
    out = {}
    for item in cp.api("GET", RUNS)["items"]:
        target = item["spec"]["target"]
        if target.startswith(f"pod/{ns}/"):
            out[target.rsplit("/", 1)[1]] = item
    return out


def finished(cp: ControlPlane, ns: str, count: int) -> dict[str, dict[str, Any]]:
    runs = runs_of(cp, ns)
    done = {k: v for k, v in runs.items() if v.get("status", {}).get("phase") in FINISHED}
    return runs if len(done) == count else {}


def bundles_of(store: Path) -> dict[str, list[Path]]:
    """Sealed bundles in a local store by pod name (`ir bundle ls`; unsealed remains of an
    interrupted capture are listed "incomplete" and left out)."""
    if not store.exists():
        return {}
    done = run_ir(["bundle", "ls", str(store), "-o", "json"], ir_env(), timeout=120)
    found: dict[str, list[Path]] = {}
    for row in json.loads(done.stdout):
        if row["status"] in ("complete", "partial", "failed") and row["target"]:
            found.setdefault(row["target"].rsplit("/", 1)[1], []).append(Path(row["location"]))
    return found


def test_alerts_accepted_before_a_sigkill_are_all_acted_on_once(
    control_plane: ControlPlane, servers: list[Server], namespace: str, tmp_path: Path,
    serve_kubeconfig: Path, collector_image: str,
) -> None:  # fmt: skip
    cp, ns, count = control_plane, namespace, 8
    deploy_web(cp, ns, replicas=count)
    pods = wait_for(
        f"{count} ready web pods",
        lambda: (lambda p: p if len(p) == count else None)(ready_pods(cp, ns)),
        240,
    )
    server = Server(tmp_path, serve_kubeconfig, collector_image, LIGHT)
    servers.append(server)
    url = server.start()
    names = sorted(p["metadata"]["name"] for p in pods)
    statuses = [post(url, falco(ns, name, f"kill-{i}"))[0] for i, name in enumerate(names)]
    server.kill()  # at once: most runs not started, some in their first step
    assert statuses == [202] * count
    recorded = runs_of(cp, ns)
    assert sorted(recorded) == names, "every 202 is an IrRun in the apiserver"
    unfinished = [
        n for n, r in recorded.items() if r.get("status", {}).get("phase") not in FINISHED
    ]
    server.start()  # the same replica, restarted: it takes its runs over at once
    runs = wait_for("every run finished", lambda: finished(cp, ns, count), 300)
    assert server.stop() == 0
    phases = {name: run["status"]["phase"] for name, run in runs.items()}
    assert set(phases.values()) == {"Succeeded"}, phases
    for name, run in runs.items():
        steps = run["status"]["steps"]
        assert [s["state"] for s in steps] == ["done", "done"], (name, steps)
    # none twice: one sealed bundle and one quarantine policy per pod
    bundles = bundles_of(server.store)
    assert {n: len(b) for n, b in bundles.items()} == dict.fromkeys(names, 1)
    policies = cp.api("GET", POLICIES.format(ns=ns))["items"]
    assert len(policies) == count
    claims = server.audit("run-claimed")
    print(
        f"\n{count} accepted, SIGKILL at once ({len(unfinished)} unfinished at the kill): "
        f"{len(runs)}/{count} finished after the restart; claims: "
        + ", ".join(sorted({c["how"] for c in claims}))
    )


@pytest.mark.parametrize("step", ["capture", "quarantine", "replace"])
def test_sigkill_in_the_middle_of_a_step_resumes_it_once(
    control_plane: ControlPlane, servers: list[Server], namespace: str, tmp_path: Path,
    serve_kubeconfig: Path, collector_image: str, step: str,
) -> None:  # fmt: skip
    cp, ns = control_plane, namespace
    deploy_web(cp, ns, replicas=1)
    pod = wait_for("a ready web pod", lambda: (ready_pods(cp, ns) or [None])[0], 120)
    name = pod["metadata"]["name"]
    server = Server(tmp_path, serve_kubeconfig, collector_image, FULL % IMAGE)
    servers.append(server)
    url = server.start()
    assert post(url, falco(ns, name, f"mid-{step}"))[0] == 202

    deadline = time.monotonic() + 240
    while True:  # step names are "<n>-<action>"; poll tightly: a step may take a second or two
        run = runs_of(cp, ns).get(name, {})
        if (run.get("status", {}).get("currentStep") or "").endswith("-" + step):
            break
        assert time.monotonic() < deadline, f"the run never was in its {step} step: {run}"
        time.sleep(0.02)
    time.sleep({"capture": 0.3, "quarantine": 0.3, "replace": 0.2}[step])
    server.kill()
    server.start()
    run = wait_for("the run to finish", lambda: finished(cp, ns, 1), 300)[name]
    assert server.stop() == 0
    status = run["status"]
    print(f"\nSIGKILL in {step}: {status['phase']}; " + "; ".join(
        f"{s['step']} attempt {s['attempt']}: {s['result']['status']} {s['result']['detail'][:90]}"
        for s in status["steps"]
    ))  # fmt: skip
    assert status["phase"] == "Succeeded", status
    assert status["attempt"] == 2 and status["interruptions"][0]["step"].endswith("-" + step)
    by_step = {s["action"]: s for s in status["steps"]}
    assert by_step[step]["attempt"] == 2, "the interrupted step was finished by the next attempt"
    # evidence intact: exactly one sealed bundle of the pod (a capture is never silently done
    # twice), and it verifies; an interrupted capture's unsealed remains are kept beside it
    bundles = bundles_of(server.store)
    assert len(bundles.get(name, [])) == 1, bundles
    (bundle,) = bundles[name]
    custody = run_ir(["bundle", "custody", str(bundle), "-o", "json"], ir_env(), timeout=120)
    text = custody.stdout
    if step == "capture":
        # the new capture's own record names the attempt and what the first one left
        assert "attempt 2; attempt 1 started this step" in text, text[:3000]
    else:
        assert f"{step} (run " in text and "attempt 2" in text, text[:3000]
    assert by_step["capture"]["result"]["bundle"] == str(bundle)
    policies = cp.api("GET", POLICIES.format(ns=ns))["items"]
    assert len(policies) == 1


def test_two_replicas_given_the_same_alert_run_it_once(
    control_plane: ControlPlane, servers: list[Server], namespace: str, tmp_path: Path,
    serve_kubeconfig: Path, collector_image: str,
) -> None:  # fmt: skip
    cp, ns = control_plane, namespace
    deploy_web(cp, ns, replicas=1)
    pod = wait_for("a ready web pod", lambda: (ready_pods(cp, ns) or [None])[0], 120)
    name = pod["metadata"]["name"]
    one = Server(tmp_path / "a", serve_kubeconfig, collector_image, LIGHT)
    two = Server(tmp_path / "b", serve_kubeconfig, collector_image, LIGHT)
    servers += [one, two]
    urls = [one.start("replica-a"), two.start("replica-b")]
    body = falco(ns, name, "same-moment")
    barrier = threading.Barrier(2)
    answers: list[tuple[int, dict[str, Any]]] = []

    def send(url: str) -> None:
        barrier.wait()
        answers.append(post(url, body))

    threads = [threading.Thread(target=send, args=(u,)) for u in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a[0] for a in answers) == [200, 202], answers
    duplicate = next(a[1] for a in answers if a[0] == 200)
    assert duplicate["alerts"][0]["decision"] == "duplicate"
    run = wait_for("the run to finish", lambda: finished(cp, ns, 1), 240)[name]
    assert run["status"]["phase"] == "Succeeded" and run["status"]["attempt"] == 1
    assert one.stop() == 0 and two.stop() == 0
    claims = one.audit("run-claimed") + two.audit("run-claimed")
    assert len(claims) == 1, claims
    assert {n: len(b) for n, b in bundles_of(one.store).items()} | {
        n: len(b) for n, b in bundles_of(two.store).items()
    } == {name: 1}


def test_apiserver_restart_loses_no_run(
    control_plane: ControlPlane, servers: list[Server], namespace: str, tmp_path: Path,
    serve_kubeconfig: Path, collector_image: str,
) -> None:  # fmt: skip
    cp, ns, count = control_plane, namespace, 4
    deploy_web(cp, ns, replicas=count + 1)
    pods = wait_for(
        f"{count + 1} ready web pods",
        lambda: (lambda p: p if len(p) == count + 1 else None)(ready_pods(cp, ns)),
        240,
    )
    names = sorted(p["metadata"]["name"] for p in pods)
    server = Server(tmp_path, serve_kubeconfig, collector_image, LIGHT)
    servers.append(server)
    url = server.start(lease=30)
    assert [post(url, falco(ns, n, f"api-{n}"))[0] for n in names[:count]] == [202] * count
    refused: list[int] = []
    outage = threading.Thread(target=lambda: refused.append(int(cp.restart_apiserver(down=3))))
    outage.start()
    time.sleep(1.5)  # while it is down: the alert is answered 503, never 202 unrecorded
    late = names[count]
    status, reply = post(url, falco(ns, late, "api-late"), timeout=60)
    outage.join()
    assert status == 503, (status, reply)
    assert reply["alerts"][0]["decision"] == "unrecorded"
    wait_for(
        "alert accepted on retry", lambda: post(url, falco(ns, late, "api-late"))[0] == 202, 60
    )
    runs = wait_for("every run finished", lambda: finished(cp, ns, count + 1), 300)
    assert server.stop() == 0
    phases = [r["status"]["phase"] for r in runs.values()]
    # no run lost: each finished once, with every step recorded. What the restart did to a step
    # is its outcome, said: a capture whose exec stream it cut is sealed partial; a request the
    # restarted apiserver refused while its RBAC caches were still loading (403, "role not
    # found") fails the step with those words -- ir does not retry a refusal
    assert set(phases) <= {"Succeeded", "Partial", "Failed"}, runs
    for name, run in runs.items():
        steps = run["status"]["steps"]
        assert steps and all(s["state"] == "done" for s in steps), (name, steps)
        if run["status"]["phase"] == "Failed":
            failed = [s["result"]["detail"] for s in steps if s["result"]["status"] == "failed"]
            assert failed and all(failed), (name, steps)
    assert all(len(b) == 1 for b in bundles_of(server.store).values())
    print(
        f"\napiserver down {refused[0]}s with {count} runs in flight: {len(runs)}/{count + 1} "
        f"finished ({phases.count('Succeeded')} succeeded, {phases.count('Partial')} partial, "
        f"{phases.count('Failed')} failed with the apiserver's answer); the alert sent while it "
        "was down: 503, then accepted on retry"
    )
    # the policies reload after a restart: wait until they are in force again for later tests
    install_shipped(cp, collector_image=collector_image, probe_image=IMAGE)
