#!/usr/bin/env python3
"""Response latency of `ir serve` on a real cluster: Falcosidekick alert POST -> the quarantine
NetworkPolicy present in the real kube-apiserver, and alert POST -> the suspect's traffic refused
(the policy enforced by kube-router on the real node), p50/p99 over >= 200 alerts.

    python bench/response_bench.py                         # 20 pods x 10 rounds = 200 alerts
    python bench/response_bench.py --pods 25 --alerts 300 --rate 20 --no-full

Set-up (the test bed, as the tests do): the real cluster of tests/testbed/node.py (control plane,
kube-scheduler, and a node: kubelet + containerd + CNI bridge + kube-router), a Deployment of
--pods replicas serving "ok" on port 8080, a "prober" pod, and
`ir serve --actions cluster` (a subprocess, the real ClusterActions, admin kubeconfig) with a
bench-only playbook: trigger on the Falco rule "Bench shell in container", steps: quarantine only
(on_capture_failure: continue; a capture would dominate the latency).

Measurement: alerts are sent open-loop at --rate per second, each naming a distinct pod of the
round (a fresh uuid each); a watch on the namespace's NetworkPolicies (one streaming request of
this process) stamps each policy's ADDED event; latency = event time - time the POST started.
Traffic: for each alert a thread of this process enters the prober pod's network namespace
(setns on /proc/PID/ns/net; the bench runs on the node) and connects to the suspect's port 8080
every 50 ms (200 ms connect timeout) from the POST on; the start of the first attempt that fails
is when traffic was refused. Before each round every pod is checked reachable (not timed).
After a round every pod is released (policy deleted, label removed, by this process, not timed)
and the next round quarantines them again (ir serve runs with --dedupe-window 1 and
--rate-limit 0 so the same pods may be quarantined again a round later). The server's own
view (`since_alert_seconds` of each quarantine step in the audit log) is reported beside.

--full (default): afterwards one alert runs the shipped `shell-in-container` playbook on a pod
that was never touched (capture -> quarantine -> replace): alert -> policy, alert -> replacement
ready, as the audit log has them; for context only.

Alerts/second accepted with dedupe are measured by bench/serve_bench.py (bench/run_all runs it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, machine, percentile, write_json  # noqa: E402

TOKEN = "bench-response-token-0123456789abcdef"
RULE = "Bench shell in container"
IMAGE = "localhost/ir-testbed/busybox:1"
LABEL = "ir.forensics/quarantine"
ANN = "ir.forensics/quarantine"
POLICY_API = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
SAMPLE = json.loads((REPO / "samples/alerts/falco-terminal-shell.json").read_text())
PLAYBOOK = f"""\
# bench only: quarantine, nothing else (bench/response_bench.py)
apiVersion: ir/v1
kind: Playbook
name: bench-quarantine
description: Quarantine the pod named by the alert; no capture (latency of the response path).
order: 1
on_capture_failure: continue
trigger:
  sources: [falco]
  rules: [{RULE}]
  min_priority: notice
  targets: [pod]
target:
  falco:
    namespace: /output_fields/k8s.ns.name
    pod: /output_fields/k8s.pod.name
steps:
  - action: quarantine
"""

CLONE_NEWNET = 0x40000000


class Prober:
    """TCP connects from inside one pod's network namespace (the bench runs on the node)."""

    def __init__(self, netns: str) -> None:
        import ctypes

        self.netns = netns
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _enter(self) -> None:
        fd = os.open(self.netns, os.O_RDONLY)
        try:
            if self.libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(f"setns {self.netns} failed")
        finally:
            os.close(fd)

    @staticmethod
    def connects(ip: str, port: int, timeout: float = 0.2) -> bool:
        import socket

        try:
            with socket.create_connection((ip, port), timeout=timeout):
                return True
        except OSError:
            return False

    def in_netns(self, fn: Any, *args: Any) -> Any:
        """Run fn(*args) in a fresh thread that has entered the pod's network namespace."""
        box: dict[str, Any] = {}

        def body() -> None:
            try:
                self._enter()
                box["value"] = fn(*args)
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller
                box["error"] = exc

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def watch(
        self, ip: str, port: int, until: float, out: dict[str, float], key: str
    ) -> threading.Thread:
        """A thread that connects every 50 ms until refused; out[key] = perf_counter of the
        first failing attempt's start."""

        def body() -> None:
            self._enter()
            while time.perf_counter() < until:
                t = time.perf_counter()
                if not self.connects(ip, port):
                    out[key] = t
                    return
                time.sleep(max(0.0, 0.05 - (time.perf_counter() - t)))

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        return thread


def falco_alert(pod: str, namespace: str, rule: str = RULE) -> bytes:
    doc = json.loads(json.dumps(SAMPLE))
    doc["uuid"] = str(uuid.uuid4())
    doc["rule"] = rule
    doc["output_fields"]["k8s.pod.name"] = pod
    doc["output_fields"]["k8s.ns.name"] = namespace
    doc["output_fields"]["container.name"] = "web"
    doc["time"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    return json.dumps(doc).encode()


class Api:
    """Minimal apiserver client (admin token) with a keep-alive connection per thread."""

    def __init__(self, cp: Any) -> None:
        self.server = cp.server.removeprefix("https://")
        self.token = cp.tokens["admin"]
        self.ctx = ssl.create_default_context(cafile=str(cp.ca_file))
        self.local = threading.local()

    def conn(self) -> http.client.HTTPSConnection:
        c = getattr(self.local, "c", None)
        if c is None:
            host, port = self.server.rsplit(":", 1)
            c = http.client.HTTPSConnection(host, int(port), context=self.ctx, timeout=30)
            self.local.c = c
        return c

    def call(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = ctype
        for attempt in range(2):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=headers)
                res = c.getresponse()
                raw = res.read()
                return res.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.c = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def watch(self, path: str) -> http.client.HTTPResponse:
        host, port = self.server.rsplit(":", 1)
        c = http.client.HTTPSConnection(host, int(port), context=self.ctx, timeout=600)
        c.request(
            "GET",
            path,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        return c.getresponse()


class PolicyWatch(threading.Thread):
    """Stamps ADDED/DELETED NetworkPolicy events of one namespace (perf_counter at receipt)."""

    def __init__(self, api: Api, ns: str) -> None:
        super().__init__(name="policy-watch", daemon=True)
        status, listing = api.call("GET", POLICY_API.format(ns=ns))
        assert status == 200, listing
        rv = listing["metadata"]["resourceVersion"]
        self.res = api.watch(
            POLICY_API.format(ns=ns) + f"?watch=1&resourceVersion={rv}&allowWatchBookmarks=false"
        )
        self.lock = threading.Condition()
        self.added: dict[str, list[tuple[float, str]]] = {}  # pod -> [(time, policy name)]
        self.deleted: dict[str, float] = {}  # policy -> time
        self.error: str | None = None

    def run(self) -> None:
        try:
            while True:
                line = self.res.readline()
                if not line:
                    return
                now = time.perf_counter()
                event = json.loads(line)
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                pod = (meta.get("annotations") or {}).get("ir.forensics/pod", "")
                with self.lock:
                    if event.get("type") == "ADDED":
                        self.added.setdefault(pod, []).append((now, meta.get("name", "")))
                    elif event.get("type") == "DELETED":
                        self.deleted[meta.get("name", "")] = now
                    elif event.get("type") == "ERROR":
                        self.error = json.dumps(obj)[:500]
                    self.lock.notify_all()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, check: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0 or self.error:
                    return False
                self.lock.wait(min(left, 1.0))
            return True


def deploy(api: Api, ns: str, name: str, replicas: int) -> None:
    labels = {"app": name}
    status, body = api.call(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "web",
                                "image": IMAGE,
                                "imagePullPolicy": "Never",
                                "command": [
                                    "sh",
                                    "-c",
                                    "echo ready; exec nc -ll -p 8080 -e echo ok",
                                ],
                                "ports": [{"containerPort": 8080}],
                            }
                        ],
                    },
                },
            },
        },
    )
    assert status == 201, body


def ready(api: Api, ns: str, selector: str) -> list[dict[str, Any]]:
    status, body = api.call("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
    assert status == 200, body
    return [
        p
        for p in body["items"]
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def start_serve(
    work: Path,
    cp: Any,
    node_root: str,
    playbooks: list[Path],
    args: argparse.Namespace,
    audit: Path,
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "IR_SERVE_TOKEN": TOKEN,
        "KUBECONFIG": str(cp.kubeconfig),
        "IR_NODE_ROOT": node_root,
        "IR_OPERATOR": "bench-response",
        "PYTHONPATH": str(REPO),
    }
    env.pop("IR_NOTIFY_URL", None)
    argv = [
        sys.executable,
        "-m",
        "ir.cli.main",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--actions",
        "cluster",
        "--store",
        str(work / "evidence"),
        "--audit-log",
        str(audit),
        "--workers",
        str(args.workers),
        "--dedupe-window",
        "1",
        "--rate-limit",
        "0",
    ]
    for p in playbooks:
        argv += ["--playbooks", str(p)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    said = ""  # warnings may come first (e.g. acting with the kubeconfig's own rights)
    while line := proc.stderr.readline():
        said += line
        if match := re.search(r"listening on (http://\S+) ", line):
            break
    if not match:
        proc.kill()
        raise SystemExit(f"ir serve did not start: {said}{proc.stderr.read()}")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    return proc, match.group(1)


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        c.request(
            "POST",
            "/v1/alerts/falco",
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        res = c.getresponse()
        raw = res.read()
        return res.status, json.loads(raw) if raw else {}
    finally:
        c.close()


def audit_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def release(api: Api, ns: str, pods: list[str], policies: list[str]) -> None:
    for name in policies:
        status, body = api.call("DELETE", POLICY_API.format(ns=ns) + f"/{name}")
        assert status in (200, 202, 404), body
    for pod in pods:
        status, body = api.call(
            "PATCH",
            f"/api/v1/namespaces/{ns}/pods/{pod}",
            {"metadata": {"labels": {LABEL: None}, "annotations": {ANN: None}}},
            ctype="application/merge-patch+json",
        )
        assert status == 200, body


def measure(
    args: argparse.Namespace,
    api: Api,
    ns: str,
    url: str,
    pods: list[str],
    watch: PolicyWatch,
    audit: Path,
    prober: Prober,
    ips: dict[str, str],
) -> dict[str, Any]:
    rounds = -(-args.alerts // len(pods))
    latencies: list[float] = []
    refused: list[float] = []
    never_refused = 0
    post_ms: list[float] = []
    statuses: dict[int, int] = {}
    missing = 0
    interval = 1.0 / args.rate
    sent = 0
    before = len(audit_events(audit))
    for rnd in range(rounds):
        batch = pods[: min(len(pods), args.alerts - sent)]
        started: dict[str, float] = {}
        refused_at: dict[str, float] = {}
        probes: list[threading.Thread] = []
        # baseline: every pod of the round answers (the last round's policies are gone)
        for pod in batch:
            wait_until(
                f"{pod} reachable before its alert",
                lambda pod=pod: prober.in_netns(Prober.connects, ips[pod], 8080, 1.0),
                30,
                0.1,
            )
        with watch.lock:
            seen = {p: len(watch.added.get(p, [])) for p in batch}
        t0 = time.perf_counter()
        for i, pod in enumerate(batch):
            due = t0 + i * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            body = falco_alert(pod, ns)
            started[pod] = time.perf_counter()
            probes.append(
                prober.watch(ips[pod], 8080, started[pod] + args.timeout, refused_at, pod)
            )
            status, reply = post(url, body)
            post_ms.append((time.perf_counter() - started[pod]) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 202:
                print(f"  alert for {pod}: HTTP {status} {reply}", file=sys.stderr)
        sent += len(batch)

        def all_in(seen: dict[str, int] = seen, batch: list[str] = batch) -> bool:
            return all(len(watch.added.get(p, [])) > seen[p] for p in batch)

        if not watch.wait(all_in, args.timeout):
            print(
                f"  round {rnd + 1}: not every policy appeared in {args.timeout:.0f}s "
                f"(watch error: {watch.error})",
                file=sys.stderr,
            )
        for thread in probes:
            thread.join(timeout=args.timeout)
        for pod in batch:
            if pod in refused_at:
                refused.append(refused_at[pod] - started[pod])
            else:
                never_refused += 1
        names: list[str] = []
        with watch.lock:
            for pod in batch:
                events = watch.added.get(pod, [])
                if len(events) > seen[pod]:
                    at, name = events[seen[pod]]
                    latencies.append(at - started[pod])
                    names.append(name)
                else:
                    missing += 1
        # wait for ir serve to finish the runs (labelling, verification) before releasing
        wait_until(
            "the round's runs in the audit log",
            lambda sent=sent: (
                sum(1 for e in audit_events(audit)[before:] if e.get("event") == "run") >= sent
            ),
            args.timeout,
            0.1,
        )
        release(api, ns, batch, names)
        watch.wait(lambda names=names: all(n in watch.deleted for n in names), 30)
        done = [x for x in latencies[-len(batch) :]]
        print(
            f"  round {rnd + 1}/{rounds}: {len(batch)} alerts, p50 {percentile(done, 0.5) * 1000:.0f} ms, "
            f"max {max(done or [0]) * 1000:.0f} ms",
            file=sys.stderr,
        )
        time.sleep(1.1)  # past --dedupe-window
    events = audit_events(audit)[before:]
    server = [
        float(e["since_alert_seconds"])
        for e in events
        if e.get("event") == "step"
        and e.get("action") == "quarantine"
        and e.get("status") == "ok"
        and e.get("since_alert_seconds") is not None
    ]
    runs = [e for e in events if e.get("event") == "run"]
    run_status: dict[str, int] = {}
    for e in runs:
        run_status[str(e.get("status"))] = run_status.get(str(e.get("status")), 0) + 1
    return {
        "alerts": sent,
        "pods": len(pods),
        "rounds": rounds,
        "rate_per_s": args.rate,
        "workers": args.workers,
        "measured": len(latencies),
        "missing": missing,
        "http_statuses": {str(k): v for k, v in statuses.items()},
        "run_statuses": run_status,
        "alert_to_traffic_refused_ms": {
            "p50": round(percentile(refused, 0.5) * 1000, 1),
            "p90": round(percentile(refused, 0.9) * 1000, 1),
            "p99": round(percentile(refused, 0.99) * 1000, 1),
            "max": round(max(refused or [0]) * 1000, 1),
            "measured": len(refused),
            "never_refused": never_refused,
        },
        "alert_to_policy_ms": {
            "p50": round(percentile(latencies, 0.5) * 1000, 1),
            "p90": round(percentile(latencies, 0.9) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies or [0]) * 1000, 1),
            "mean": round(sum(latencies) / max(1, len(latencies)) * 1000, 1),
        },
        "post_ms": {
            "p50": round(percentile(post_ms, 0.5), 2),
            "p99": round(percentile(post_ms, 0.99), 2),
        },
        "server_since_alert_ms": {
            "p50": round(percentile(server, 0.5) * 1000, 1),
            "p99": round(percentile(server, 0.99) * 1000, 1),
            "n": len(server),
        },
    }


def full_run(
    api: Api, ns: str, url: str, pod: str, watch: PolicyWatch, audit: Path, timeout: float
) -> dict[str, Any]:
    before = len(audit_events(audit))
    with watch.lock:
        seen = len(watch.added.get(pod, []))
    started = time.perf_counter()
    status, reply = post(url, falco_alert(pod, ns, rule="Terminal shell in container"))
    if status != 202:
        return {"error": f"HTTP {status}: {reply}"}
    ok = watch.wait(lambda: len(watch.added.get(pod, [])) > seen, timeout)
    policy_s = (watch.added[pod][seen][0] - started) if ok else None
    wait_until(
        "the full playbook run",
        lambda: any(e.get("event") == "run" for e in audit_events(audit)[before:]),
        timeout,
        0.2,
    )
    done_s = time.perf_counter() - started
    events = audit_events(audit)[before:]
    steps = {e["action"]: e for e in events if e.get("event") == "step"}
    run = next(e for e in events if e.get("event") == "run")
    return {
        "pod": pod,
        "run_status": run.get("status"),
        "alert_to_policy_s": round(policy_s, 3) if policy_s is not None else None,
        "alert_to_run_done_s": round(done_s, 3),
        "steps": {
            k: {
                "status": v.get("status"),
                "since_alert_s": v.get("since_alert_seconds"),
                "seconds": v.get("seconds") or v.get("duration_seconds"),
            }
            for k, v in steps.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pods", type=int, default=20, help="Deployment replicas (distinct pods per round)"
    )
    parser.add_argument(
        "--alerts", type=int, default=200, help="alerts in total (rounds of --pods)"
    )
    parser.add_argument(
        "--rate", type=float, default=10.0, help="alerts per second within a round (open loop)"
    )
    parser.add_argument("--workers", type=int, default=4, help="ir serve --workers")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a round")
    parser.add_argument(
        "--no-full", action="store_true", help="skip the capture->quarantine->replace run"
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON too")
    args = parser.parse_args()

    from ir.bundle.signing import generate_keypair
    from ir.runtime.cri_node import CriContainer
    from tests.testbed.node import start_cluster

    work = Path(tempfile.mkdtemp(prefix="ir-response-bench-", dir="/var/tmp"))
    # ir serve signs what it captures (a deployment mounts the ir-signing Secret)
    key, pub = generate_keypair(work / "keys")
    os.environ.update(IR_SIGNING_KEY=str(key), IR_TRUST=str(pub))
    procs: list[subprocess.Popen[Any]] = []
    node = None
    result: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        node = start_cluster(work / "k8s")
        cp = node.cp
        result["cluster_start_s"] = {k: round(v, 2) for k, v in node.timings.items()}
        from tests.testbed.deploy import install_run_store

        install_run_store(cp)  # ir serve records its runs as IrRun objects (--runs cluster)
        api = Api(cp)
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        api.call(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        )
        deploy(api, ns, "web", args.pods)
        status, body = api.call(
            "POST",
            f"/api/v1/namespaces/{ns}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "prober", "labels": {"app": "prober"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "prober",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "100000"],
                        }
                    ],
                },
            },
        )
        assert status == 201, body
        if not args.no_full:
            deploy(api, ns, "full", 1)
        pods = wait_until(
            f"{args.pods} ready pods",
            lambda: (lambda r: r if len(r) == args.pods else None)(ready(api, ns, "app=web")),
            300,
            1.0,
        )
        names = sorted(p["metadata"]["name"] for p in pods)
        ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
        prober_pod = wait_until("the prober pod", lambda: ready(api, ns, "app=prober"), 120, 0.5)[0]
        cid = prober_pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
        pid = CriContainer("containerd", cid, node_root=node.host_root).pid
        assert pid, "the prober's init pid is not in containerd's task state"
        prober = Prober(f"/proc/{pid}/ns/net")
        print(
            f"set-up: cluster (real node), {args.pods} pods ready in "
            f"{time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
        books = work / "playbooks"
        books.mkdir()
        (books / "bench-quarantine.yaml").write_text(PLAYBOOK)
        if not args.no_full:
            shutil.copy(
                REPO / "playbooks" / "shell-in-container.yaml", books / "shell-in-container.yaml"
            )
        audit = work / "audit.jsonl"
        serve, url = start_serve(work, cp, node.host_root, [books], args, audit)
        procs.append(serve)
        watch = PolicyWatch(api, ns)
        watch.start()
        # warm-up: one alert on one pod, released (not counted): imports, first connections
        result["warmup"] = measure(
            argparse.Namespace(**{**vars(args), "alerts": 1}),
            api,
            ns,
            url,
            names[:1],
            watch,
            audit,
            prober,
            ips,
        )["alert_to_policy_ms"]["p50"]
        result["quarantine_only"] = measure(args, api, ns, url, names, watch, audit, prober, ips)
        if not args.no_full:
            full = wait_until(
                "the full deployment's pod", lambda: ready(api, ns, "app=full"), 120, 1.0
            )
            result["full_playbook"] = full_run(
                api, ns, url, full[0]["metadata"]["name"], watch, audit, 600
            )
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if node is not None:
            node.stop()
        shutil.rmtree(work, ignore_errors=True)
    doc = {"bench": "response", "machine": machine(), "command": " ".join(sys.argv), **result}
    q = result["quarantine_only"]
    lat = q["alert_to_policy_ms"]
    print(
        f"\n== alert POST -> NetworkPolicy in the apiserver: {q['measured']} alerts over {q['pods']} pods "
        f"({q['rounds']} rounds, {q['rate_per_s']:g}/s open loop, {q['workers']} workers; missing {q['missing']})"
    )
    print(
        f"  p50 {lat['p50']:.0f} ms  p90 {lat['p90']:.0f} ms  p99 {lat['p99']:.0f} ms  max {lat['max']:.0f} ms  "
        f"mean {lat['mean']:.0f} ms"
    )
    print(
        f"  server's own view (audit since_alert_seconds): p50 {q['server_since_alert_ms']['p50']:.0f} ms, "
        f"p99 {q['server_since_alert_ms']['p99']:.0f} ms; POST answered p50 {q['post_ms']['p50']:.1f} ms"
    )
    ref = q["alert_to_traffic_refused_ms"]
    print(
        f"== alert POST -> the suspect's traffic refused (kube-router on the real node): "
        f"{ref['measured']} measured, {ref['never_refused']} never refused\n"
        f"  p50 {ref['p50']:.0f} ms  p90 {ref['p90']:.0f} ms  p99 {ref['p99']:.0f} ms  max {ref['max']:.0f} ms"
    )
    print(f"  HTTP {q['http_statuses']}; runs {q['run_statuses']}")
    full = result.get("full_playbook")
    if full:
        print(
            f"== full shell-in-container playbook (capture -> quarantine -> replace), one alert: "
            f"run {full.get('run_status')}; alert -> policy {full.get('alert_to_policy_s')} s; "
            f"alert -> run done {full.get('alert_to_run_done_s')} s"
        )
        for step, info in (full.get("steps") or {}).items():
            print(f"  {step:<11} {info['status']:<8} at +{info['since_alert_s']} s")
    write_json(args.json, doc)


if __name__ == "__main__":
    main()
