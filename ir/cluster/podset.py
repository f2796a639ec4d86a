"""`ir capture pod -l SELECTOR` and `ir capture pod TYPE/NAME --all`: every selected pod captured
into its own bundle -- each exactly as `ir capture pod NAME` makes it (ir.cluster.capture's
`capture_target`) -- several at once, then a signed case index of the run (ir.cluster.caseindex).

* At most `parallel` pods are captured at once across the run. Pods on one node share one node
  collector pod (ir.cluster.nodecollectors), started when the first of them needs it and
  removed when the run ends, interrupted or not; pods on other nodes go on beside them.
* Each pod is quarantined and replaced right after its own capture, only if that capture
  succeeded: the same gate as one pod. A pod that fails is recorded and the others go on
  (partial failure is data).
* Ctrl-C: no pod starts after it, no pod is acted on after it, the collectors are removed (so
  captures running in them end), the captures under way are waited for, and the index is still
  written, saying so. A second Ctrl-C leaves at once.

Exit code: 0 when every pod's own exit is 0, else the worst of them in the order of WORST.

May import the cluster room's capture, caseindex, nodecollectors, ops, podoptions, resolve and
selection modules, ir.bundle.custody, ir.clock, ir.errors and the store protocol.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ir import TOOL_NAME, __version__
from ir.bundle.custody import operator_name
from ir.clock import rfc3339, utcnow
from ir.cluster.capture import acting, capture_target, dry_run, plan_collector
from ir.cluster.caseindex import SCHEMA, StoredIndex, new_index_id, store_index
from ir.cluster.kube import Kube
from ir.cluster.nodecollectors import NodeCollectors
from ir.cluster.ops import Operator, check_namespace
from ir.cluster.podoptions import PodCaptureOptions, PodCaptureResult
from ir.cluster.resolve import PodTarget, resolve_pod
from ir.cluster.selection import Selection
from ir.errors import ClusterError, ExitCode, IrError
from ir.store.base import Store

Echo = Callable[[str], None]

#: Exit codes from worst to least bad: the run exits with the first any pod has. The order of
#: one pod's causes (PodCaptureResult.causes), with a bug in ir before all.
WORST = (
    ExitCode.INTERNAL,
    ExitCode.CLUSTER,
    ExitCode.REFUSED,
    ExitCode.STORE,
    ExitCode.FAILED,
    ExitCode.USAGE,
    ExitCode.INTERRUPTED,
)
INTERRUPTED_HOLD = "the run was interrupted (Ctrl-C) before this pod was acted on"


@dataclass
class PodOutcome:
    """One selected pod: its capture's result, or the error that stopped it before any."""

    namespace: str
    name: str
    uid: str
    node: str | None
    result: PodCaptureResult | None = None
    error: str | None = None
    error_code: ExitCode = ExitCode.OK
    started_at: str | None = None
    ended_at: str | None = None
    seconds: float | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return self.error_code
        return self.result.exit_code if self.result is not None else ExitCode.OK

    def causes(self) -> list[tuple[ExitCode, str]]:
        if self.error is not None:
            return [(self.error_code, self.error)]
        return self.result.causes() if self.result is not None else []

    @property
    def outcome(self) -> str:
        """The bundle's outcome, or `not-captured`."""
        capture = self.result.capture if self.result is not None else None
        return capture.sealed.manifest.outcome if capture is not None else "not-captured"

    def document(self) -> dict[str, Any]:
        """What `-o json` prints for the pod: `ir capture pod NAME -o json`'s document, timed."""
        if self.result is not None and self.error is None:
            doc = self.result.document()
        else:
            doc = {
                "target": {"kind": "pod", **self.identity()},
                "bundle": None,
                "gate": None,
                "quarantine": None,
                "replace": None,
                "actions": [],
                "exit_code": int(self.exit_code),
                "errors": [text for _, text in self.causes()],
            }
        return {**doc, **self.times()}

    def index_entry(self) -> dict[str, Any]:
        """The pod's line in the case index."""
        doc = self.document()
        bundle = doc["bundle"]
        capture = self.result.capture if self.result is not None else None
        if bundle is not None and capture is not None:
            bundle = {**bundle, "bundle_id": capture.sealed.manifest.bundle_id}
        return {
            **self.identity(),
            **self.times(),
            "outcome": self.outcome,
            "bundle": bundle,
            "gate": doc["gate"],
            "quarantine": doc["quarantine"],
            "replace": doc["replace"],
            "exit_code": doc["exit_code"],
            "errors": doc["errors"],
        }

    def identity(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid, "node": self.node}

    def times(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "ended_at": self.ended_at, "seconds": self.seconds}


@dataclass
class PodsCaptureResult:
    """A run over many pods: each pod's outcome, the collectors, the case index."""

    selection: Selection
    case_id: str
    operator: str
    parallel: int
    dry_run: bool = False
    index_id: str = field(default_factory=new_index_id)
    pods: list[PodOutcome] = field(default_factory=list)
    collectors: list[dict[str, Any]] = field(default_factory=list)
    started_at: str | None = field(default_factory=lambda: rfc3339(utcnow()))
    ended_at: str | None = None
    interrupted: bool = False
    index: StoredIndex | None = None
    index_error: str | None = None

    def causes(self) -> list[tuple[ExitCode, str]]:
        """Every cause of a non-zero exit: pod by pod, the pod whose own exit code is worst (the
        order of WORST) first, each pod's causes in its own order (its exit code first)."""
        groups = [
            (p.exit_code, [(code, f"{p.namespace}/{p.name}: {text}") for code, text in p.causes()])
            for p in self.pods
            if p.exit_code != ExitCode.OK
        ]
        if self.index_error is not None:
            groups.append(
                (ExitCode.STORE, [(ExitCode.STORE, f"case index not stored: {self.index_error}")])
            )
        elif self.index is not None and not self.index.confirmed:
            kept = f"; kept in the local spool: {self.index.spooled}" if self.index.spooled else ""
            groups.append(
                (ExitCode.STORE, [(ExitCode.STORE, f"case index not confirmed stored{kept}")])
            )
        groups.sort(key=lambda g: WORST.index(g[0]) if g[0] in WORST else len(WORST))
        found = [cause for _, group in groups for cause in group]
        if self.interrupted:
            found.insert(0, (ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"))
        return found

    @property
    def exit_code(self) -> ExitCode:
        causes = self.causes()
        return causes[0][0] if causes else ExitCode.OK

    def reasons(self) -> list[str]:
        """The causes in words, the one that decides the exit code last (the last line)."""
        texts = [text for _, text in self.causes()]
        return texts[1:] + texts[:1]

    def index_document(self, opts: PodCaptureOptions, store_uri: str) -> dict[str, Any]:
        """The case index (ir.cluster.caseindex): what was selected, by whom, when, and per pod
        its bundle, outcome, quarantine and replacement, and errors."""
        return {
            "schema": SCHEMA,
            "index_id": self.index_id,
            "case_id": self.case_id,
            "operator": self.operator,
            "reason": opts.reason,
            "tool": {"name": TOOL_NAME, "version": __version__},
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "interrupted": self.interrupted,
            "selection": self.selection.describe(),
            "store": store_uri,
            "options": {
                "quarantine": opts.quarantine,
                "replace": opts.replace,
                "cordon": opts.cordon,
                "force": opts.force,
                "parallel": self.parallel,
                "collector_image": opts.collector.image if opts.collector else None,
            },
            "collectors": self.collectors,
            "pods": [p.index_entry() for p in self.pods],
            "exit_code": int(self.exit_code),
            "errors": self.reasons(),
        }


Progress = Callable[[PodOutcome, int, int], None]


def capture_pods(
    kube: Kube,
    store: Store,
    selection: Selection,
    opts: PodCaptureOptions,
    *,
    parallel: int,
    echo: Echo,
    progress: Progress | None = None,
) -> PodsCaptureResult:
    """Capture every selected pod (see the module docstring), then store the signed case index.
    `progress(outcome, done, total)` is called as each pod finishes."""
    run = PodsCaptureResult(selection, opts.case_id, operator_name(opts.operator), max(1, parallel))
    collectors = (
        NodeCollectors(kube, opts.collector, shared=True) if opts.collector is not None else None
    )
    stop = threading.Event()

    def hold() -> str | None:
        return INTERRUPTED_HOLD if stop.is_set() else None

    total = len(selection.pods)
    work: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
    for item in enumerate(selection.pods):
        work.put(item)
    finished: queue.Queue[tuple[int, PodOutcome]] = queue.Queue()

    def worker() -> None:
        while True:
            try:
                i, pod = work.get_nowait()
            except queue.Empty:
                return
            finished.put((i, _capture_one(kube, store, pod, opts, collectors, stop, hold)))

    # Daemon threads: a second Ctrl-C leaves the captures under way (their bundles stay in the
    # store as `.partial`, the explicit remains) instead of waiting for them.
    for n in range(min(run.parallel, total)):
        threading.Thread(target=worker, name=f"ir-capture-pod-{n}", daemon=True).start()
    done: dict[int, PodOutcome] = {}
    try:
        while len(done) < total:
            try:
                _take(finished, done, progress, total)
            except KeyboardInterrupt:
                if run.interrupted:
                    raise
                run.interrupted = True
                stop.set()
                if collectors is not None:
                    collectors.close()  # a capture running in one ends now
                echo(
                    "interrupted: no pod starts or is acted on now; the node collectors are "
                    "removed; waiting for the captures under way (Ctrl-C again to leave them)"
                )
    finally:
        if collectors is not None:
            collectors.close()
    run.pods = [done[i] for i in range(total)]
    run.collectors = collectors.describe() if collectors is not None else []
    run.ended_at = rfc3339(utcnow())
    try:
        run.index = store_index(
            store,
            opts.case_id,
            run.index_id,
            run.index_document(opts, str(getattr(store, "uri", ""))),
            opts.signer,
        )
    except IrError as exc:
        run.index_error = exc.message
    return run


def plan_pods(
    kube: Kube,
    store: Store,
    selection: Selection,
    opts: PodCaptureOptions,
    *,
    echo: Echo,
) -> PodsCaptureResult:
    """--dry-run: for every selected pod, every request the real run would send, as
    server-side dry runs, one pod after the other; each node's collector once."""
    run = PodsCaptureResult(selection, opts.case_id, operator_name(opts.operator), 1, True)
    op = Operator(kube, dry_run=True, echo=echo)
    planned: set[str | None] = set()
    for pod in selection.pods:
        outcome = _outcome_of(pod)
        try:
            target = _resolve(kube, outcome, opts)
            if target.node not in planned and plan_collector(op, store, target, opts, shared=True):
                planned.add(target.node)
            outcome.result = dry_run(kube, store, target, opts, echo, collector_planned=True)
        except IrError as exc:
            outcome.error, outcome.error_code = exc.message, exc.exit_code
            echo(f"[dry-run] pod {outcome.namespace}/{outcome.name}: {exc.message}")
        run.pods.append(outcome)
    run.collectors = [a.to_dict() for a in op.log]
    run.ended_at = rfc3339(utcnow())
    return run


def _capture_one(
    kube: Kube,
    store: Store,
    pod: dict[str, Any],
    opts: PodCaptureOptions,
    collectors: NodeCollectors | None,
    stop: threading.Event,
    hold: Callable[[], str | None],
) -> PodOutcome:
    outcome = _outcome_of(pod)
    if stop.is_set():
        return _not_started(outcome)
    started = time.monotonic()
    outcome.started_at = rfc3339(utcnow())
    try:
        target = _resolve(kube, outcome, opts)
        outcome.result = capture_target(
            kube, store, target, opts, echo=_quiet, collectors=collectors, hold=hold
        )
    except IrError as exc:
        outcome.error, outcome.error_code = exc.message, exc.exit_code
    except Exception as exc:  # noqa: BLE001 -- partial failure is data: a bug met in one pod's capture is that pod's outcome; the others go on
        outcome.error = f"internal error: {type(exc).__name__}: {exc}"
        outcome.error_code = ExitCode.INTERNAL
    outcome.ended_at = rfc3339(utcnow())
    outcome.seconds = round(time.monotonic() - started, 2)
    return outcome


def _resolve(kube: Kube, outcome: PodOutcome, opts: PodCaptureOptions) -> PodTarget:
    """The pod as it is now, with the checks of one pod (a protected namespace when acting);
    the very pod that was selected, not another of the same name."""
    if acting(opts):
        check_namespace(outcome.namespace, opts.allow_protected)
    target = resolve_pod(kube, outcome.namespace, outcome.name)
    if target.uid != outcome.uid:
        raise ClusterError(
            f"pod {outcome.namespace}/{outcome.name} is now uid {target.uid}, not the uid "
            f"{outcome.uid} that was selected: another pod of the same name; not captured"
        )
    return target


def _take(
    finished: queue.Queue[tuple[int, PodOutcome]],
    done: dict[int, PodOutcome],
    progress: Progress | None,
    total: int,
) -> None:
    """Wait for the next pod to finish (a short timeout: Ctrl-C is seen at once)."""
    try:
        i, outcome = finished.get(timeout=0.5)
    except queue.Empty:
        return
    done[i] = outcome
    if progress is not None:
        progress(outcome, len(done), total)


def _not_started(outcome: PodOutcome) -> PodOutcome:
    outcome.error = "not captured: the run was interrupted before its turn"
    outcome.error_code = ExitCode.INTERRUPTED
    return outcome


def _outcome_of(pod: dict[str, Any]) -> PodOutcome:
    meta = pod.get("metadata") or {}
    return PodOutcome(
        str(meta.get("namespace")),
        str(meta.get("name")),
        str(meta.get("uid")),
        (pod.get("spec") or {}).get("nodeName"),
    )


def _quiet(_line: str) -> None:
    """Pods run side by side: their step lines are not printed (each bundle records its steps);
    the run prints a line per pod as it finishes."""
