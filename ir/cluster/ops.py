"""The one door through which ir changes a cluster.

Every mutation is a `Request` (method, path, body). `Operator.apply` sends it and records it with
its outcome in the action log, which ends up in the bundle's custody record. A dry run sends the
very same request with the apiserver's server-side dry run (`dryRun=All`): authentication, RBAC,
admission (the shipped policies included), validation and defaulting all run, nothing is stored,
and a refusal stops the dry run where it would stop the real one. Destructive requests are
refused while the capture gate is closed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ir.clock import rfc3339, utcnow
from ir.cluster.kube import ApiError, Kube
from ir.errors import RefusedError
from ir.playbook.k8snames import PROTECTED_NAMESPACES

MERGE_PATCH = "application/merge-patch+json"


@dataclass
class Request:
    method: str
    path: str
    body: Any = None
    content_type: str = "application/json"
    why: str = ""
    destructive: bool = True  # changes what the workload does (everything except reads)
    retry: bool = False  # safe to resend after a 429/5xx (idempotent)

    def describe(self) -> str:
        body = (
            ""
            if self.body is None
            else " " + json.dumps(self.body, sort_keys=True, separators=(",", ":"))
        )
        ctype = f" [{self.content_type}]" if self.body is not None else ""
        return f"{self.method} {self.path}{ctype}{body}"


@dataclass
class ActionRecord:
    time: str
    action: str
    method: str
    path: str
    body: Any
    outcome: str  # ok | dry-run | failed | refused | skipped
    error: str | None = None
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Operator:
    """Applies requests to one cluster, honouring dry run and the capture gate."""

    kube: Kube
    dry_run: bool = False
    gate_open: bool = True  # closed when the capture failed and --force was not given
    gate_reason: str = ""
    log: list[ActionRecord] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    def apply(self, action: str, request: Request) -> Any:
        record = ActionRecord(
            rfc3339(utcnow()) or "",
            action,
            request.method,
            request.path,
            request.body,
            "ok",
            why=request.why,
        )
        self.log.append(record)
        if request.destructive and not self.gate_open:
            record.outcome, record.error = "refused", self.gate_reason
            raise RefusedError(f"refusing to {action}: {self.gate_reason}")
        if self.dry_run and self.echo:
            self.echo(f"[dry-run] {action}: {request.describe()}")
        try:
            result = self.kube.request(
                request.method,
                request.path,
                request.body,
                query={"dryRun": "All"} if self.dry_run else None,
                content_type=request.content_type,
                retry=request.retry,
            )
        except ApiError as exc:
            record.outcome, record.error = "failed", exc.message
            if self.dry_run and self.echo:
                self.echo(f"[dry-run]   refused by the apiserver: {exc.message}")
            raise
        if self.dry_run:
            record.outcome = "dry-run"  # admitted by the apiserver, not stored
            if self.echo:
                self.echo("[dry-run]   admitted by the apiserver (server-side dry run)")
        elif self.echo:
            self.echo(f"{action}: {request.method} {request.path}")
        return result

    def note(self, action: str, outcome: str, why: str = "", **detail: Any) -> None:
        """Record a decision that sent no request (skipped as already done, not possible, ...)."""
        self.log.append(
            ActionRecord(
                rfc3339(utcnow()) or "", action, "-", "-", detail or None, outcome, why=why
            )
        )


def check_namespace(namespace: str, allow_protected: bool) -> None:
    if namespace in PROTECTED_NAMESPACES and not allow_protected:
        raise RefusedError(
            f"namespace {namespace} is protected; refusing to act on it without --allow-protected-namespace"
        )
