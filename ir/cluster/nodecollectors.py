"""The node collectors of one capture: at most one collector pod per node, started when a pod's
capture first needs it, and removed when that capture ends (`shared=False`: `ir capture pod
NAME`, exactly as before) or when the whole run ends (`shared=True`: `ir capture pod -l ...`,
every pod captured on that node goes through the same collector pod).

The start of a collector is recorded in the bundle of the pod whose capture started it; every
other pod that uses it records `collector-pod-shared` (which pod, started for whom). Every
request about a collector (start, running, removal) is also kept here, per node, for the case
index (`actions`). A collector that could not start is not tried again on that node: the error
(and whether the apiserver refused it: then the debug-container fallback) is the answer for
every pod there.

May import ir.cluster.collector, kube, resolve and ir.errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ir.clock import rfc3339, utcnow
from ir.cluster.collector import (
    CollectorPod,
    CollectorRefused,
    CollectorSettings,
    remove_collector,
    start_collector,
)
from ir.cluster.kube import Kube
from ir.cluster.resolve import PodTarget
from ir.errors import IrError

Record = Callable[..., None]  # record(action, outcome, **detail), as ir.cluster.collector takes it
Echo = Callable[[str], None]

#: Captures running at once in one collector pod. Its memory limit is 1 GiB (collector_manifest)
#: and one `ir capture container` peaks at 100-200 MiB (bench/README.md): four fit with room to
#: spare, more risk the kernel killing them all. Pods beyond this on one node wait their turn.
COLLECTOR_SLOTS = 4


@dataclass
class NodeCollector:
    """What became of the collector of one node: running (`pod`), or why not (`error`)."""

    node: str
    pod: CollectorPod | None = None
    error: str | None = None
    refused: bool = False  # by the apiserver (RBAC, Pod Security, a policy): debug containers next
    started_for: str = ""  # the pod whose capture started it (PodTarget.collects)
    direct: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)
    # held while a capture runs in it: `with state.slots:`
    slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(COLLECTOR_SLOTS)
    )

    def describe(self) -> dict[str, Any]:
        """Its line in the case index."""
        return {
            "node": self.node,
            "pod": f"{self.pod.namespace}/{self.pod.name}" if self.pod else None,
            "started_for": self.started_for,
            "upload": "direct" if self.direct else "relay",
            "error": self.error,
            "actions": list(self.actions),
        }


class NodeCollectors:
    """The collector pods of one capture, one per node (see the module docstring)."""

    def __init__(self, kube: Kube, settings: CollectorSettings, *, shared: bool) -> None:
        self.kube = kube
        self.settings = settings
        self.shared = shared
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeCollector] = {}
        self._node_locks: dict[str, threading.Lock] = {}
        self.gone: list[NodeCollector] = []  # removed (`finished`, `close`)
        self.closed = False  # a shared run ended: no collector starts any more

    def get(
        self,
        target: PodTarget,
        runtime: str,
        *,
        record: Record,
        echo: Echo,
        direct: bool = False,
        start_line: str | None = None,
    ) -> NodeCollector:
        """The collector of the target's node: started now when none was tried there yet (its
        start recorded through `record`, in this pod's bundle), else the one running (its use
        recorded when it was started for another pod), else the error that stopped it.
        `start_line` is what is echoed when it starts (default: node and image)."""
        node = target.node or ""
        with self._lock:
            node_lock = self._node_locks.setdefault(node, threading.Lock())
        with node_lock:  # one start per node; the others wait for it and use it
            state = self._nodes.get(node)
            if state is None and self.closed:
                return NodeCollector(node, error="the run ended before a collector was started")
            if state is None:
                state = NodeCollector(node, started_for=target.collects, direct=direct)
                echo(
                    start_line
                    or f"  starting the node collector on {target.node} ({self.settings.image})"
                )
                try:
                    state.pod = start_collector(
                        self.kube,
                        target,
                        runtime,
                        self.settings,
                        direct=direct,
                        record=self._both(record, state),
                    )
                except CollectorRefused as exc:
                    state.error, state.refused = exc.message, True
                except IrError as exc:
                    state.error = exc.message
                with self._lock:
                    late = self.closed  # the run ended while it started: it goes at once
                    if late:
                        self.gone.append(state)
                    else:
                        self._nodes[node] = state
                if late and state.pod is not None:
                    remove_collector(self.kube, state.pod, self._both(record, state))
                    state.pod, state.error = None, "the run ended while the collector started"
            elif state.pod is not None and state.started_for != target.collects:
                record(
                    "collector-pod-shared",
                    "ok",
                    pod=state.pod.name,
                    namespace=state.pod.namespace,
                    node=node,
                    started_for=state.started_for,
                )
        return state

    def finished(self, record: Record | None) -> None:
        """A pod's capture is done with its collectors: removed now unless they are shared (then
        `close` removes them). A collector that could not start keeps its error (not retried)."""
        if not self.shared:
            self.close(record)

    def close(self, record: Record | None = None) -> None:
        """Remove every collector still running; each removal is recorded through `record` (when
        given) and in the collector's own actions."""
        with self._lock:
            self.closed = self.shared
            running = [s for s in self._nodes.values() if s.pod is not None]
            for state in running:
                del self._nodes[state.node]
                self.gone.append(state)
        for state in running:
            assert state.pod is not None
            remove_collector(self.kube, state.pod, self._both(record, state))

    def describe(self) -> list[dict[str, Any]]:
        """Every collector of the run, removed or not, for the case index."""
        with self._lock:
            states = [*self.gone, *self._nodes.values()]
        return [s.describe() for s in sorted(states, key=lambda s: s.node)]

    @staticmethod
    def _both(record: Record | None, state: NodeCollector) -> Record:
        def both(action: str, outcome: str, **detail: Any) -> None:
            state.actions.append(
                {"at": rfc3339(utcnow()), "action": action, "outcome": outcome, **detail}
            )
            if record is not None:
                record(action, outcome, **detail)

        return both
