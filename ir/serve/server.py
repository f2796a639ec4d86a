"""`ir serve` as a whole: its listeners (ir.serve.listener, requests handled by
ir.serve.handler), the intake that records runs (ir.serve.intake), the workers that claim and run
them (ir.serve.workers) over a run store (IrRun objects, or memory), its metrics and audit log.

Listeners: the alert listener (HTTPS when a certificate is configured, the certificate reloaded on
rotation) and, when configured, a plain-HTTP metrics listener for Prometheus and probes (/metrics,
/healthz, /readyz only; it takes no alerts). On the alert listener /metrics then answers 404;
without a metrics listener it needs the bearer token. /healthz and /readyz never need credentials
(kubelet probes).

Statuses: 202 queued (the run is recorded); 200 nothing to do (duplicate, resolved, unmatched);
400 malformed body; 401 missing/bad credentials; 403 replayed or stale signature, or signed before
what the replay state covers; 404/405 wrong path or method; 411 no Content-Length (chunked
refused); 413 body too large, or an alert too large for a run record; 415 not JSON; 422 target
refused (invalid names, protected namespace); 429 rate-limited; 503 queue full, shutting down, the
run store unreachable (the run was not recorded), or the replay journal not writable.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ir.errors import IrError, UsageError
from ir.playbook.actions import ResponseActions
from ir.playbook.audit import AuditLog
from ir.playbook.engine import Engine
from ir.playbook.notify import WebhookNotifier
from ir.playbook.runstate import RunSeal, RunStore
from ir.playbook.spec import Playbook
from ir.serve.auth import Authenticator
from ir.serve.config import ServeConfig
from ir.serve.handler import ALERTS, METRICS, Handler
from ir.serve.intake import Intake
from ir.serve.journal import UsedSignatures
from ir.serve.listener import Listener
from ir.serve.memoryruns import MemoryRuns
from ir.serve.metrics import LATENCY_BUCKETS, RUN_BUCKETS, Metrics
from ir.serve.tls import ReloadingContext, TlsFiles, TlsLoad
from ir.serve.workers import WorkerPool, holder_name

MAX_METRICS_CONNECTIONS = 16  # Prometheus and probes; a flood there takes no alert connections


class AlertServer:
    """The whole server: `start()`, then `shutdown()` (or `run_until_signal()` from the CLI)."""

    def __init__(
        self,
        config: ServeConfig,
        playbooks: Sequence[Playbook],
        actions: ResponseActions,
        *,
        audit: AuditLog | None = None,
        metrics: Metrics | None = None,
        dry_run_actions: ResponseActions | None = None,
        notifier: WebhookNotifier | None = None,
        dry_run: bool = False,
        runs: RunStore | None = None,
    ) -> None:
        config.validate()
        if not playbooks:
            raise UsageError("ir serve needs at least one playbook")
        self.config = config
        self.playbooks = list(playbooks)
        self.audit = audit or AuditLog()
        self.metrics = metrics or _metrics()
        self.engine = Engine(
            actions,
            dry_run_actions=dry_run_actions,
            notifier=notifier,
            audit=self.audit,
            operator=config.operator,
            protected_namespaces=config.protected_namespaces,
            dry_run=dry_run,
            cluster_name=config.cluster_name,
        )
        # runs are recorded before they are answered 202, and claimed from there by the workers
        self.runs: RunStore = runs or MemoryRuns(max_open=config.queue_size)
        self.holder = holder_name(config.replica)
        seal = RunSeal([t.encode() for t in config.tokens] + list(config.hmac_secrets))
        self.workers = WorkerPool(
            self.engine,
            self.runs,
            self.playbooks,
            config.workers,
            self.audit,
            self.metrics,
            holder=self.holder,
            seal=seal,
            lease=config.run_lease,
            scan_interval=config.run_scan_interval,
            ttl=config.run_ttl,
            queue_size=config.queue_size,
        )
        self.intake = Intake(
            config,
            self.playbooks,
            self.runs,
            self.workers.offer,
            self.audit,
            self.metrics,
            holder=self.holder,
            seal=seal,
        )
        self.tls = (
            ReloadingContext(TlsFiles(Path(config.tls_cert), Path(config.tls_key)), self._tls_load)
            if config.tls_cert and config.tls_key
            else None
        )
        self.authenticator = Authenticator(  # opened last: it holds the journal open
            config.tokens,
            config.hmac_secrets,
            allow_unauthenticated=config.allow_unauthenticated,
            tolerance=config.hmac_tolerance,
            used=UsedSignatures(config.hmac_tolerance, config.replay_state),
        )
        self._httpd: Listener | None = None  # the alert listener
        self._metrics_httpd: Listener | None = None
        self._stopped = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shutdown_report: dict[str, Any] | None = None
        self.metrics.gauge(
            "ir_serve_queue_depth", "Runs waiting for a worker here.", self.workers.work.qsize
        )
        self.metrics.gauge(
            "ir_serve_queue_capacity", "Size of the bounded work queue.", lambda: config.queue_size
        )
        self.metrics.gauge(
            "ir_serve_workers_busy", "Workers running a playbook.", lambda: self.workers.busy
        )
        self.metrics.gauge("ir_serve_workers", "Size of the worker pool.", lambda: config.workers)
        self.metrics.gauge(
            "ir_serve_ready",
            "1 when accepting alerts.",
            lambda: 1.0 if self.readiness()[0] else 0.0,
        )
        self.metrics.gauge(
            "ir_serve_connections",
            "Open client connections.",
            lambda: self._httpd.connections if self._httpd else 0,
        )
        self.metrics.gauge(
            "ir_serve_runs_open",
            "Runs recorded and not finished, at the last scan of the run store.",
            lambda: self.workers.open_runs,
        )
        self.metrics.gauge(
            "ir_serve_runs_durable",
            "1 when runs are recorded where they outlive this process (--runs cluster).",
            lambda: 1.0 if self.runs.durable else 0.0,
        )
        self.metrics.gauge(
            "ir_serve_replay_entries",
            "HMAC signatures held against replay.",
            lambda: len(self.authenticator.used),
        )

    @property
    def address(self) -> tuple[str, int]:
        return self._alerts().bound

    @property
    def url(self) -> str:
        return self._alerts().url()

    @property
    def metrics_url(self) -> str | None:
        """The metrics listener, once started (None when there is none)."""
        return self._metrics_httpd.url() if self._metrics_httpd else None

    def transport(self) -> dict[str, Any]:
        """How the server is reached, for the start record: scheme, certificate, metrics
        listener, replay state."""
        tls: dict[str, str] | None = None
        if self.tls is not None:
            files = self.tls.files
            tls = {
                "cert": str(files.cert),
                "key": str(files.key),
                "fingerprint": self.tls.fingerprint,
            }
        used = self.authenticator.used
        replay = used.loaded.to_dict() if used.loaded else {"path": None, "since": used.since}
        return {
            "scheme": "https" if self.tls else "http",
            "tls": tls,
            "metrics_address": self.metrics_url,
            "replay_state": replay,
        }

    def _alerts(self) -> Listener:
        if self._httpd is None:
            raise IrError("server not started")
        return self._httpd

    def readiness(self) -> tuple[bool, str]:
        if self._httpd is None or self.intake.draining:
            return False, "shutting down" if self.intake.draining else "not started"
        if self.runs.waiting() >= self.config.queue_size:
            return False, "work queue full"
        if not self.workers.alive():
            return False, "workers died"
        return True, "ok"

    def start(self) -> None:
        """Bind, start the workers and the HTTP threads. Raises UsageError when it cannot bind."""
        config = self.config
        alerts = self._bind((config.host, config.port), ALERTS, config.max_connections, self.tls)
        if config.metrics_listen is not None:
            try:
                self._metrics_httpd = self._bind(
                    config.metrics_listen, METRICS, MAX_METRICS_CONNECTIONS, None
                )
            except UsageError:
                alerts.server_close()
                raise
        self._httpd = alerts
        self.workers.start()
        for httpd in (self._httpd, self._metrics_httpd):
            if httpd is not None:
                threading.Thread(
                    target=httpd.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name=f"ir-serve-{httpd.name}",
                    daemon=True,
                ).start()
        self.audit.record(
            "start",
            address=self.url,
            **self.transport(),
            playbooks=[p.name for p in self.playbooks],
            workers=self.config.workers,
            queue_size=self.config.queue_size,
            auth=("bearer " if self.config.tokens else "")
            + ("hmac" if self.config.hmac_secrets else "")
            or "none (loopback only)",
            dedupe_window=self.config.dedupe_window,
            rate_limit=f"{self.config.rate_limit}/{self.config.rate_window:g}s",
            protected_namespaces=list(self.config.protected_namespaces),
            runs=self.runs.where,
            runs_durable=self.runs.durable,
            holder=self.holder,
            run_lease=self.config.run_lease,
            run_ttl=self.config.run_ttl,
        )

    def shutdown(self, grace: float | None = None) -> dict[str, Any]:
        """Stop accepting (503 and /readyz down), stop listening, let the workers finish queued and
        running work for up to `grace` seconds, audit what is left. Idempotent."""
        with self._shutdown_lock:
            if self._shutdown_report is not None:
                return self._shutdown_report
            grace = self.config.shutdown_grace if grace is None else grace
            began = time.monotonic()
            self.intake.draining = True
            self.audit.record(
                "shutdown-begin",
                queued=self.workers.work.qsize(),
                running=self.workers.busy,
                grace=grace,
            )
            if self._httpd is not None:
                self._httpd.stop()
            report = self.workers.drain(began + grace)
            if self._metrics_httpd is not None:
                self._metrics_httpd.stop()  # scraped and probed (not ready) until the drain ends
            self.authenticator.close()
            report["seconds"] = round(time.monotonic() - began, 3)
            self.audit.record("shutdown", **report)
            self._shutdown_report = report
            self._stopped.set()
            return report

    def run_until_signal(self) -> dict[str, Any]:
        """Serve until SIGTERM or SIGINT (main thread only), then shut down gracefully."""
        requested = threading.Event()

        def _on_signal(signum: int, frame: Any) -> None:
            requested.set()

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not requested.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.shutdown()

    def _bind(
        self,
        address: tuple[str, int],
        role: str,
        max_connections: int,
        tls: ReloadingContext | None,
    ) -> Listener:
        handler = type(f"_{role.title()}Handler", (Handler,), {"app": self, "role": role})
        try:
            return Listener(
                address,
                handler,
                name=role,
                max_connections=max_connections,
                request_timeout=self.config.request_timeout,
                metrics=self.metrics,
                tls=tls,
            )
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {address[0]}:{address[1]} ({role}): {exc.strerror or exc}"
            ) from None

    def _tls_load(self, load: TlsLoad) -> None:
        """A rotated certificate was loaded, or refused (the previous one stays in use)."""
        record = load.to_dict()
        self.audit.record("tls-reload", **record)
        self.metrics.inc("ir_serve_tls_reloads_total", result=record["status"])
        if not load.loaded:
            print(
                f"ir serve: TLS: refused the changed {load.cert} and {load.key}, still serving "
                f"the previous certificate: {load.reason}",
                file=sys.stderr,
            )


def _metrics() -> Metrics:
    metrics = Metrics()
    metrics.counter("ir_serve_http_requests_total", "HTTP requests by path and status code.")
    metrics.counter("ir_serve_alerts_total", "Alerts by source and intake decision.")
    metrics.counter("ir_serve_runs_total", "Playbook runs by playbook and outcome.")
    metrics.counter("ir_serve_steps_total", "Playbook steps by action and status.")
    metrics.histogram("ir_serve_accept_seconds", "Time to answer an alert POST.", LATENCY_BUCKETS)
    metrics.histogram("ir_serve_queue_wait_seconds", "Time a run waited in the queue.", RUN_BUCKETS)
    metrics.histogram("ir_serve_run_seconds", "Duration of a playbook run.", RUN_BUCKETS)
    metrics.histogram(
        "ir_serve_alert_to_step_seconds",
        "From alert received to the end of each step (e.g. action=quarantine).",
        RUN_BUCKETS,
    )
    metrics.counter(
        "ir_serve_run_claims_total",
        "Runs claimed by this process, by how: new, restarted (an earlier process of this "
        "replica died), taken-over (its holder stopped renewing), resumed.",
    )
    metrics.counter(
        "ir_serve_runs_recovered_total", "Runs claimed here that another process had accepted."
    )
    metrics.counter(
        "ir_serve_run_claims_lost_total", "Runs this process stopped because it lost the claim."
    )
    metrics.counter(
        "ir_serve_run_store_errors_total", "Run store requests that failed, by operation."
    )
    metrics.counter("ir_serve_tls_reloads_total", "Rotated TLS pairs by result (loaded, refused).")
    metrics.counter(
        "ir_serve_tls_handshake_failures_total", "TLS handshakes that failed or timed out."
    )
    return metrics
