"""Benchmark `ir serve` intake: alerts/second accepted with dedupe and nothing dropped, and the
accept latency (p50/p99) seen by senders, against the real server on loopback, with runs kept in
memory (not durable: the figure before durable runs) and recorded as IrRun objects through a real
apiserver (`--runs cluster`: a 202 only once the run survives the process), in the same run.

    python bench/serve_bench.py                      # both: 6000 alerts in memory, 2000 in cluster
    python bench/serve_bench.py --runs memory --alerts 20000 --duplicates 0.5 --connections 8

The server runs as its own process (`ir serve --actions dry-run`, bearer auth, audit log to a
file, the shipped playbooks), so every accepted alert is also matched, queued and run (dry run)
while the load goes on. Clients are separate processes with keep-alive connections; each sends a
bounded list of requests. Unique alerts name unique pods (rate limits never trigger); resends are
exact copies of earlier alerts and must come back as duplicates. "Nothing dropped" is checked
twice: every response is 202 (queued) or 200 (duplicate), and the server's own counters agree.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"
SAMPLE_TEXT = (ROOT / "samples/alerts/falco-terminal-shell.json").read_text()
SAMPLE = json.loads(SAMPLE_TEXT)


def make_alert(n: int) -> bytes:
    doc = json.loads(json.dumps(SAMPLE))
    doc["uuid"] = f"00000000-0000-4000-8000-{n:012d}"
    doc["output_fields"]["k8s.pod.name"] = f"web-7f9c6d8b5-{n:08d}"
    return json.dumps(doc).encode()


def plan(alerts: int, duplicate_share: float, seed: int) -> list[tuple[int, bool]]:
    """(alert number, is a resend) in sending order; a resend repeats an earlier number."""
    rng = random.Random(seed)
    out: list[tuple[int, bool]] = []
    unique = 0
    for _ in range(alerts):
        if unique and rng.random() < duplicate_share:
            out.append((rng.randrange(unique), True))
        else:
            out.append((unique, False))
            unique += 1
    return out


def client_process(url: str, work: list[tuple[int, bool]], connections: int) -> dict[str, Any]:
    """Send `work` over `connections` keep-alive connections; return statuses and latencies."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bodies = [(n, dup, make_alert(n)) for n, dup in work]
    # a resend must follow its original: all requests for one alert go over one connection
    shares: list[list[tuple[int, bool, bytes]]] = [[] for _ in range(connections)]
    for item in bodies:
        shares[(item[0] // 7) % connections].append(item)
    results: list[list[tuple[int, bool, int, float]]] = [[] for _ in range(connections)]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for n, dup, body in shares[index]:
            started = time.perf_counter()
            conn.request("POST", "/v1/alerts/falco", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            results[index].append((n, dup, response.status, time.perf_counter() - started))
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [r for part in results for r in part]
    return {"results": flat}


def start_server(
    tmp: Path, workers: int, kubeconfig: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "IR_SERVE_TOKEN": TOKEN}
    runs = ["--runs", "memory"]
    if kubeconfig is not None:
        runs = ["--runs", "cluster", "--kubeconfig", str(kubeconfig), "--run-scan-interval", "1"]
    command = [
        sys.executable,
        "-c",
        "from ir.cli.main import main; main()",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--actions",
        "dry-run",
        "--playbooks",
        str(ROOT / "playbooks"),
        "--audit-log",
        str(tmp / "audit.jsonl"),
        "--queue-size",
        "100000",
        "--workers",
        str(workers),
        "--max-connections",
        "1024",
        *runs,
    ]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"listening on (http://\S+) ", line)
    if not match:
        proc.kill()
        raise SystemExit(f"ir serve did not start: {line}{proc.stderr.read()}")
    return proc, match.group(1)


def scrape(url: str) -> dict[str, float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = conn.getresponse().read().decode()
    conn.close()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value) if value not in ("NaN",) else float("nan")
    return values


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=6000, help="requests to send in memory mode")
    parser.add_argument(
        "--cluster-alerts", type=int, default=2000, help="requests to send with --runs cluster"
    )
    parser.add_argument(
        "--runs",
        choices=["memory", "cluster", "both"],
        default="both",
        help="where ir serve records runs (both: memory first, then cluster)",
    )
    parser.add_argument(
        "--duplicates", type=float, default=0.25, help="share of requests that are resends"
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--connections", type=int, default=4, help="keep-alive connections per client"
    )
    parser.add_argument("--workers", type=int, default=4, help="ir serve --workers")
    parser.add_argument(
        "--warmup", type=int, default=200, help="requests sent (and not counted) first"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()

    summaries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ir-serve-bench-", dir="/var/tmp") as tmpdir:
        tmp = Path(tmpdir)
        if args.runs in ("memory", "both"):
            summaries["memory"] = measure(args, args.alerts, tmp / "memory", None)
        if args.runs in ("cluster", "both"):
            sys.path.insert(0, str(ROOT))
            from tests.testbed.deploy import install_run_store
            from tests.testbed.k8s import start_control_plane

            cp = start_control_plane(tmp / "k8s")
            try:
                install_run_store(cp)
                limit = bare_creates(cp, 400, args.clients * args.connections)
                cluster = measure(args, args.cluster_alerts, tmp / "cluster", cp.kubeconfig)
                cluster["limit_bare_create"] = limit
                cluster["accept_p50_vs_bare_create_p50"] = round(
                    cluster["latency_p50_ms"] / limit["p50_ms"], 1
                )
                summaries["cluster"] = cluster
            finally:
                cp.stop()
    ok = all(s["nothing_dropped"] for s in summaries.values())
    if "memory" in summaries and "cluster" in summaries:
        mem, kube = summaries["memory"], summaries["cluster"]
        summaries["durable_vs_memory"] = {
            "throughput_ratio": round(kube["accepted_per_second"] / mem["accepted_per_second"], 3),
            "latency_p50_ratio": round(
                kube["latency_p50_ms"] / max(mem["latency_p50_ms"], 1e-6), 1
            ),
            "latency_p99_ratio": round(
                kube["latency_p99_ms"] / max(mem["latency_p99_ms"], 1e-6), 1
            ),
        }
    if args.json:
        print(json.dumps(summaries, indent=2))
    else:
        for kind, summary in summaries.items():
            if kind in ("memory", "cluster"):
                report(kind, summary, args)
        if "cluster" in summaries:
            limit = summaries["cluster"]["limit_bare_create"]
            print(
                f"  limit:      a bare IrRun create straight to the same apiserver, "
                f"{limit['concurrency']} clients: p50 {limit['p50_ms']} ms, p99 {limit['p99_ms']} "
                f"ms, {limit['per_second']}/s; accept p50 is "
                f"{summaries['cluster']['accept_p50_vs_bare_create_p50']}x it"
            )
        if "durable_vs_memory" in summaries:
            ratio = summaries["durable_vs_memory"]
            print(
                f"durable (cluster) / memory: throughput x{ratio['throughput_ratio']}, "
                f"p50 x{ratio['latency_p50_ratio']}, p99 x{ratio['latency_p99_ratio']}"
            )
    sys.exit(0 if ok else 1)


def bare_creates(cp: Any, count: int, concurrency: int) -> dict[str, Any]:
    """The limit a durable accept is measured against, in the same run: `count` creates of an
    IrRun-sized object (the one write a recorded run needs at the least) by `concurrency`
    clients straight to the apiserver, with nothing else running."""
    from concurrent.futures import ThreadPoolExecutor

    doc = json.loads(SAMPLE_TEXT)
    path = "/apis/ir.forensics/v1/namespaces/ir-system/irruns"

    def create(n: int) -> float:
        body = {
            "apiVersion": "ir.forensics/v1",
            "kind": "IrRun",
            "metadata": {"name": f"run-{n:040x}"},
            "spec": {
                "runId": f"{n:032x}",
                "playbook": "bench",
                "target": f"pod/bench/p-{n}",
                "alert": {"raw": doc},
                "acceptedAt": time.time(),
                "acceptedBy": "bench/1",
            },
        }
        started = time.perf_counter()
        cp.api("POST", path, body)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(create, range(count)))
    elapsed = time.perf_counter() - started
    for n in range(count):
        cp.api("DELETE", f"{path}/run-{n:040x}")
    return {
        "creates": count,
        "concurrency": concurrency,
        "per_second": round(count / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


def measure(
    args: argparse.Namespace, alerts: int, tmp: Path, kubeconfig: Path | None
) -> dict[str, Any]:
    """Send `alerts` requests (plus warm-up) to a fresh ir serve and check every decision."""
    tmp.mkdir(parents=True)
    schedule = plan(alerts + args.warmup, args.duplicates, args.seed)
    # warm-up uses numbers far away from the measured ones
    warm = [(10_000_000 + n, False) for n, _ in schedule[: args.warmup]]
    measured = [(n, dup) for n, dup in schedule[args.warmup :]]
    # resends must follow their original: keep each number's requests in one client, in order
    per_client: list[list[tuple[int, bool]]] = [[] for _ in range(args.clients)]
    for n, dup in measured:
        per_client[n % args.clients].append((n, dup))

    proc, url = start_server(tmp, args.workers, kubeconfig)
    try:
        client_process(url, warm, 2)
        before = scrape(url)
        with ProcessPoolExecutor(args.clients) as pool:
            started = time.perf_counter()
            futures = [
                pool.submit(client_process, url, part, args.connections) for part in per_client
            ]
            outputs = [f.result() for f in futures]
            elapsed = time.perf_counter() - started
        after = scrape(url)
        name = 'ir_serve_runs_total{playbook="shell-in-container",status="dry-run"}'
        wanted = after.get('ir_serve_alerts_total{decision="queued",source="falco"}', 0.0)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and scrape(url).get(name, 0.0) < wanted:
            time.sleep(0.2)
        drained = time.perf_counter() - started
        final = scrape(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()

    results = [r for out in outputs for r in out["results"]]
    latencies = [r[3] for r in results]
    statuses: dict[int, int] = {}
    for _, _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    wrong = 0
    # per number: first request must be queued (202), later ones duplicates (200)
    by_number: dict[int, list[int]] = {}
    for client in outputs:
        for n, _dup, status, _ in client["results"]:
            by_number.setdefault(n, []).append(status)
    for codes in by_number.values():
        if codes[0] != 202 or any(c != 200 for c in codes[1:]):
            wrong += 1

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    queued = delta('ir_serve_alerts_total{decision="queued",source="falco"}')
    duplicates = delta('ir_serve_alerts_total{decision="duplicate",source="falco"}')
    refused = sum(
        v - before.get(k, 0.0)
        for k, v in after.items()
        if k.startswith("ir_serve_alerts_total") and "queued" not in k and "duplicate" not in k
    )
    runs = final.get('ir_serve_runs_total{playbook="shell-in-container",status="dry-run"}', 0.0)
    summary = {
        "runs_kept": "IrRun objects via the apiserver" if kubeconfig else "process memory",
        "requests": len(results),
        "unique_alerts": len(by_number),
        "resends": len(results) - len(by_number),
        "seconds": round(elapsed, 3),
        "accepted_per_second": round(len(results) / elapsed, 1),
        "latency_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_queued": int(queued),
        "server_duplicates": int(duplicates),
        "server_other_decisions": int(refused),
        "wrong_decisions": wrong,
        "dropped": len(results) - statuses.get(202, 0) - statuses.get(200, 0),
        "runs_completed": int(runs),
        "all_runs_done_seconds": round(drained, 3),
        "clients": args.clients,
        "connections_per_client": args.connections,
        "server_workers": args.workers,
        "cpus": os.cpu_count(),
    }
    summary["nothing_dropped"] = (
        summary["dropped"] == 0
        and wrong == 0
        and queued == len(by_number)
        and duplicates == summary["resends"]
    )
    return summary


def report(kind: str, summary: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"ir serve intake, runs in {summary['runs_kept']}: {summary['requests']} requests "
        f"({summary['resends']} resends) over {args.clients}x{args.connections} keep-alive "
        f"connections, {args.workers} workers, {summary['cpus']} CPUs"
    )
    print(
        f"  accepted:   {summary['accepted_per_second']} alerts/s "
        f"({summary['seconds']} s; statuses {summary['statuses']})"
    )
    print(
        f"  latency:    p50 {summary['latency_p50_ms']} ms, p99 {summary['latency_p99_ms']} ms, "
        f"mean {summary['latency_mean_ms']} ms"
    )
    print(
        f"  server:     {summary['server_queued']} queued, {summary['server_duplicates']} duplicates, "
        f"{summary['server_other_decisions']} other; {summary['runs_completed']} dry runs done "
        f"after {summary['all_runs_done_seconds']} s"
    )
    print(
        f"  dropped:    {summary['dropped']}; decisions wrong: {summary['wrong_decisions']}; "
        f"nothing dropped: {summary['nothing_dropped']}"
    )


if __name__ == "__main__":
    main()
