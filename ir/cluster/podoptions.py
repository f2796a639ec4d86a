"""What `ir capture pod` is asked (PodCaptureOptions) and what it answers (PodCaptureResult: the
capture, the response, and the exit code with its causes), and how those options read as the
arguments of ir in a node collector."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ir.bundle.signing import Signer
from ir.cluster.collector import CollectorSettings
from ir.cluster.context import KUBE_COLLECTOR
from ir.cluster.replace import ReplaceResult
from ir.cluster.resolve import PodTarget
from ir.cluster.respond import QuarantineResult
from ir.collect.session import CaptureResult
from ir.errors import ExitCode


@dataclass
class PodCaptureOptions:
    case_id: str
    reason: str | None = None
    operator: str | None = None
    quarantine: bool = True
    replace: bool = True
    cordon: bool = False
    force: bool = False
    dry_run: bool = False
    allow_protected: bool = False
    replace_timeout: float = 120.0
    allow_egress_cidrs: tuple[str, ...] = ()
    container_options: dict[str, Any] = field(default_factory=dict)  # to the container collectors
    backend: str = "auto"
    docker_host: str | None = None
    # the node's filesystem, when ir runs on the pod's node ($IR_NODE_ROOT, as the CLI's --node-root)
    node_root: str = field(default_factory=lambda: os.environ.get("IR_NODE_ROOT") or "/")
    signer: Signer | None = None
    alert: dict[str, Any] | None = None
    api_logs: bool = True
    probe_image: str | None = None  # prove the quarantine by traffic (ir.cluster.probe)
    # the node collector (ir.cluster.collector), run on the suspect's node when ir itself is not
    # there ($IR_COLLECTOR_IMAGE, as the CLI's --collector-image); None: no collector
    collector: CollectorSettings | None = field(default_factory=CollectorSettings.from_env)
    checkpoint: bool = False  # ask the kubelet for a CRIU checkpoint of each running container
    collectors: tuple[str, ...] = ()  # container collectors to run (default: all)
    only_container: str | None = None  # capture just this container of the pod


@dataclass
class PodCaptureResult:
    target: PodTarget
    capture: CaptureResult | None
    gate_open: bool
    gate_reason: str
    quarantine: QuarantineResult | None = None
    replace: ReplaceResult | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    requested_action: bool = False
    replace_timeout: float | None = None  # what --replace-timeout asked for, in seconds

    @property
    def replace_timed_out(self) -> bool:
        return (
            self.replace is not None
            and self.capture is not None
            and self.replace.strategy not in ("not-possible", "already")
            and not self.replace.ready
        )

    @property
    def exit_code(self) -> ExitCode:
        causes = self.causes()
        return causes[0][0] if causes else ExitCode.OK

    def causes(self) -> list[tuple[ExitCode, str]]:
        """Every outcome that makes the exit non-zero, with its exit code, the one that decides
        first: a failed cluster request (4: the pod may be half-acted on); the safety gate shut
        (5); the capture's own failure (3 store, 1 partial); a replacement not Ready in time (4:
        the evidence is whole, the cluster did not serve a clean pod). Empty when it is 0."""
        found = [(ExitCode.CLUSTER, error) for error in self.errors]
        if self.requested_action and not self.gate_open:
            found.append((ExitCode.REFUSED, f"not acting on the pod: {self.gate_reason}"))
        if self.capture is not None:
            m = self.capture.sealed.manifest
            stored = self.capture.stored
            if not stored.confirmed:
                why = "; ".join(stored.warnings)
                found.append(
                    (
                        ExitCode.STORE,
                        "the bundle is not confirmed stored"
                        + (f" ({why})" if why else "")
                        + (
                            f"; kept in the local spool: {stored.spooled}" if stored.spooled else ""
                        ),
                    )
                )
            if m.outcome != "complete":
                bad = [
                    f"{c.name}{f' [{c.container}]' if c.container else ''}: {c.status}"
                    + (f" ({c.error})" if c.error else "")
                    for c in m.collectors
                    if c.status in ("failed", "partial")
                ]
                found.append(
                    (
                        ExitCode.FAILED,
                        f"capture {m.outcome}: " + ("; ".join(bad) or "see the manifest"),
                    )
                )
        if self.replace_timed_out and self.replace is not None:
            found.append((ExitCode.CLUSTER, self._replace_cause(self.replace)))
        return found

    def _replace_cause(self, replace: ReplaceResult) -> str:
        limit = self.replace_timeout if self.replace_timeout is not None else replace.waited_seconds
        which = (
            f"replacement pod {replace.replacement} not ready"
            if replace.strategy == "clone-bare-pod" and replace.replacement
            else "no ready replacement"
        )
        kept = (
            "the suspect stays quarantined"
            if self.quarantine is not None
            else "the suspect keeps running, out of its controller and not quarantined"
        )
        return f"replace: {which} within {limit:g} s; {kept}"

    def document(self) -> dict[str, Any]:
        """What `ir capture pod -o json` prints for this pod (and, per pod, `-l`'s document)."""
        capture = self.capture
        return {
            "target": self.target.describe(),
            "bundle": None
            if capture is None
            else {
                "location": capture.stored.location,
                "root_digest": capture.sealed.root_digest,
                "outcome": capture.sealed.manifest.outcome,
                "stored": capture.stored.confirmed,
                "spooled": capture.stored.spooled,
            },
            "gate": {"open": self.gate_open, "reason": self.gate_reason},
            "quarantine": None if self.quarantine is None else vars(self.quarantine),
            "replace": None if self.replace is None else vars(self.replace),
            "actions": self.actions,
            "exit_code": int(self.exit_code),
            "errors": self.reasons(),  # the one that decides the exit code last
        }

    def reasons(self) -> list[str]:
        """Why the exit code is not 0, in words (empty when it is 0), the one that decides the
        exit code last: the last line of the text output; `errors` of -o json."""
        causes = [text for _, text in self.causes()]
        return causes[1:] + causes[:1]


def collector_options(opts: PodCaptureOptions) -> list[str]:
    """The container options as arguments of ir in the collector."""
    options = []
    max_file = opts.container_options.get("max_file_size")
    max_diff = opts.container_options.get("max_diff_size")
    if max_file:
        options += ["--max-file-size", str(int(max_file))]
    if max_diff:
        options += ["--max-diff-size", str(int(max_diff))]
    if opts.container_options.get("include_env"):
        options.append("--include-env")
    return options


def container_names(opts: PodCaptureOptions) -> list[str]:
    """The container collectors asked for (all when empty); `kubernetes` is the pod's own."""
    return [n for n in opts.collectors if n != KUBE_COLLECTOR]


def container_collector_args(opts: PodCaptureOptions) -> list[str]:
    """The same, as arguments of `ir capture container` in a collector."""
    names = container_names(opts)
    return ["--collectors", ",".join(names)] if names else []


def collector_needed(target: PodTarget, opts: PodCaptureOptions) -> str | None:
    """The runtime of the first container only a collector on its node can reach, if any."""
    from ir.runtime.cri_node import node_has_runtime_state

    if opts.collector is None:
        return None
    for ref in target.containers:
        if opts.only_container and ref.name != opts.only_container:
            continue
        if (
            ref.container_id is not None
            and ref.runtime not in ("docker", None)
            and not node_has_runtime_state(ref.runtime, opts.node_root)
        ):
            return str(ref.runtime)
    return None
