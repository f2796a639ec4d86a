"""Durable `ir serve` runs in the cluster's own store: one IrRun object (ir.forensics/v1, the
CustomResourceDefinition in deploy/kustomize/base/runs.yaml) per accepted run, written through
the apiserver with ir serve's own identity (never the responder's).

Why a CustomResourceDefinition and not a ConfigMap or a Lease: it has a schema the apiserver
enforces (a malformed or oversized record is refused at the door), a status subresource (RBAC
grants status writes without spec writes, so a record's alert, playbook and target can never be
changed once accepted), printer columns (`kubectl get irruns` reads like Jobs), and RBAC and
admission rules of its own instead of a share of every ConfigMap's.

  * accept = create. The name comes from the dedupe key (ir.playbook.runstate.run_name), so the
    apiserver refuses a second record (AlreadyExists) for the same playbook and target: that is
    the dedupe decision, the same for every replica. A finished record past the dedupe window
    is deleted (precondition: its uid) and created anew.
  * rate limits: a Lease per target (ir-rate-<hash>) lists the times runs were accepted on it,
    updated with compare-and-swap on its resourceVersion: the decision holds across replicas.
  * claims, steps, finish: merge patches of /status carrying the resourceVersion read (409 when
    someone else wrote in between).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ir.clock import parse_utc
from ir.cluster.kube import ApiError, Kube
from ir.playbook.runstate import (
    CREATED,
    DUPLICATE,
    FULL,
    PENDING,
    RATE_LIMITED,
    UNAVAILABLE,
    Acceptance,
    Conflict,
    NewRun,
    RunState,
    RunStoreError,
    duplicate_of,
)

GROUP, VERSION, KIND, PLURAL = "ir.forensics", "v1", "IrRun", "irruns"
SEAL_ANNOTATION = "ir.forensics/run-seal"
RATE_ANNOTATION = "ir.forensics/accepted"
MANAGED = {"app.kubernetes.io/managed-by": "ir-serve"}
RATE_ATTEMPTS = 8  # compare-and-swap rounds before a rate decision is given up (503)


class KubeRuns:
    """A RunStore of IrRun objects in one namespace. Thread-safe (the Kube client is)."""

    durable = True

    def __init__(self, kube: Kube, namespace: str, *, max_open: int = 1000) -> None:
        self.kube = kube
        self.namespace = namespace
        self.max_open = max_open
        self.where = f"IrRun objects in namespace {namespace} on {kube.server}"
        self.collection = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        self.waiting_seen = 0  # unclaimed runs at the last listing, plus those accepted since

    # -- start --------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise RunStoreError saying what is missing when runs cannot be recorded here: the CRD
        not installed, the namespace missing, RBAC not granting ir serve's identity the rules."""
        try:
            self.kube.request("GET", self.collection, query={"limit": 1})
        except ApiError as exc:
            if exc.not_found:
                raise RunStoreError(
                    f"cannot record runs: {exc.message}; install the IrRun CustomResourceDefinition"
                    " (kubectl apply -k deploy/kustomize/base) and create namespace "
                    f"{self.namespace}, or run with --runs memory (runs are then lost with the "
                    "process)"
                ) from None
            raise RunStoreError(f"cannot record runs in {self.namespace}: {exc.message}") from None

    # -- accept -------------------------------------------------------------------------------
    def accept(self, run: NewRun, seal: str, window: float, rate: tuple[int, float]) -> Acceptance:
        if self.waiting_seen >= self.max_open:
            return Acceptance(
                FULL, f"{self.waiting_seen} runs waiting for a worker (limit {self.max_open})"
            )
        limit, per = rate
        token: float | None = None
        try:
            # most repeated alerts are duplicates: one read answers them (the create below still
            # decides a race between replicas)
            existing = self._read(run.name)
            if existing is not None:
                duplicate = duplicate_of(existing, run, window)
                if duplicate is not None:
                    return duplicate
            if limit > 0:
                token = self._take_rate(run.target_key, limit, per, run.accepted_at)
                if token is None:
                    return Acceptance(
                        RATE_LIMITED, f"more than {limit} runs on {run.target_key} per {per:g}s"
                    )
            outcome = self._create(run, seal, window)
        except ApiError as exc:
            return Acceptance(UNAVAILABLE, f"run not recorded: {exc.message}")
        if outcome.outcome != CREATED and token is not None:
            self._refund(run.target_key, token)
        if outcome.outcome == CREATED:
            self.waiting_seen += 1
        return outcome

    def _body(self, run: NewRun, seal: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": run.name,
                "namespace": self.namespace,
                "labels": dict(MANAGED),
                "annotations": {SEAL_ANNOTATION: seal} if seal else {},
            },
            "spec": run.spec(),
        }

    def _create(self, run: NewRun, seal: str, window: float) -> Acceptance:
        for _ in range(2):  # a second round after deleting a finished record past the window
            try:
                doc = self.kube.request("POST", self.collection, self._body(run, seal), retry=False)
                return Acceptance(CREATED, state=_state(doc))
            except ApiError as exc:
                if exc.status != 409 or not exc.kubernetes:
                    raise
            existing = self._read(run.name)
            if existing is None:
                continue  # deleted in between: try again
            duplicate = duplicate_of(existing, run, window)
            if duplicate is not None:
                return duplicate
            try:  # finished and outside the window: this record makes way for the new one
                self.kube.request(
                    "DELETE",
                    f"{self.collection}/{run.name}",
                    {"preconditions": {"uid": existing.uid}},
                    retry=False,
                )
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise
        return Acceptance(DUPLICATE, f"run {run.name} was recorded by another replica meanwhile")

    def _read(self, name: str) -> RunState | None:
        """The run record, or None; fails fast (no retries: the sender retries on our 503)."""
        doc = self._get_fast(f"{self.collection}/{name}")
        return _state(doc) if doc else None

    def _get_fast(self, path: str) -> Any:
        try:
            return self.kube.request("GET", path, retry=False)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    # -- rate limits: a Lease per target, compare-and-swap ------------------------------------
    def _lease_path(self, target_key: str) -> tuple[str, str]:
        name = "ir-rate-" + hashlib.sha256(target_key.encode()).hexdigest()[:40]
        base = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        return base, name

    def _take_rate(self, target_key: str, limit: int, per: float, now: float) -> float | None:
        """The token's time when a run may start on `target_key` now (recorded), else None."""
        base, name = self._lease_path(target_key)
        for _ in range(RATE_ATTEMPTS):
            lease = self._get_fast(f"{base}/{name}")
            times = [t for t in _times(lease) if t > now - per]
            if len(times) >= limit:
                return None
            times.append(now)
            meta = {
                "name": name,
                "namespace": self.namespace,
                "labels": dict(MANAGED),
                "annotations": {RATE_ANNOTATION: json.dumps(times[-limit:])},
            }
            try:
                if lease is None:
                    self.kube.request(
                        "POST",
                        base,
                        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta},
                        retry=False,
                    )
                else:
                    meta["resourceVersion"] = lease["metadata"]["resourceVersion"]
                    self.kube.request(
                        "PUT", f"{base}/{name}", {**lease, "metadata": meta}, retry=False
                    )
                return now
            except ApiError as exc:
                if exc.status != 409:
                    raise
        raise ApiError(
            f"rate limit of {target_key} not decided after {RATE_ATTEMPTS} concurrent updates",
            503,
            "PUT",
            f"{base}/{name}",
        )

    def _refund(self, target_key: str, token: float) -> None:
        """Give back a token taken for a run that was not recorded (best effort: one try)."""
        base, name = self._lease_path(target_key)
        try:
            lease = self.kube.get_optional(f"{base}/{name}")
            if lease is None:
                return
            times = _times(lease)
            if token not in times:
                return
            times.remove(token)
            meta = {**lease["metadata"]}
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                RATE_ANNOTATION: json.dumps(times),
            }
            self.kube.request("PUT", f"{base}/{name}", {**lease, "metadata": meta}, retry=False)
        except ApiError:
            pass  # one token short until the window passes: errs on the side of fewer runs

    # -- records ------------------------------------------------------------------------------
    def get(self, name: str) -> RunState | None:
        try:
            doc = self.kube.get_optional(f"{self.collection}/{name}")
        except ApiError as exc:
            raise RunStoreError(exc.message) from None
        return _state(doc) if doc else None

    def write(self, state: RunState) -> RunState:
        patch = {"metadata": {"resourceVersion": state.version}, "status": state.status()}
        try:
            doc = self.kube.request(
                "PATCH",
                f"{self.collection}/{state.name}/status",
                patch,
                content_type="application/merge-patch+json",
                retry=False,
            )
        except ApiError as exc:
            if exc.status == 409:
                raise Conflict(exc.message) from None
            raise RunStoreError(exc.message, transient=_transient(exc)) from None
        written = _state(doc)
        state.version = written.version
        return written

    def open_runs(self) -> list[RunState]:
        runs = self._list()
        open_ = [r for r in runs if not r.is_finished]
        self.waiting_seen = sum(1 for r in open_ if r.phase == PENDING)
        return open_

    def waiting(self) -> int:
        return self.waiting_seen

    def expire(self, ttl: float, now: float) -> int:
        deleted = 0
        for state in self._list():
            if state.is_finished and (state.finished or state.created) + ttl <= now:
                try:
                    self.kube.request(
                        "DELETE",
                        f"{self.collection}/{state.name}",
                        {"preconditions": {"uid": state.uid}},
                        retry=False,
                    )
                    deleted += 1
                except ApiError as exc:
                    if exc.status not in (404, 409):
                        raise RunStoreError(exc.message) from None
        return deleted

    def _list(self) -> list[RunState]:
        try:
            doc = self.kube.get(self.collection)
        except ApiError as exc:
            raise RunStoreError(exc.message) from None
        items = doc.get("items") if isinstance(doc, dict) else None
        return [_state(item) for item in items or [] if isinstance(item, dict)]


def _transient(exc: ApiError) -> bool:
    return exc.status in (0, 429) or exc.status >= 500


def _times(lease: Any) -> list[float]:
    if not isinstance(lease, dict):
        return []
    text = ((lease.get("metadata") or {}).get("annotations") or {}).get(RATE_ANNOTATION)
    try:
        values = json.loads(text) if text else []
    except ValueError:
        return []
    return (
        [float(v) for v in values if isinstance(v, int | float)] if isinstance(values, list) else []
    )


def _state(doc: dict[str, Any]) -> RunState:
    meta = doc.get("metadata") or {}
    try:  # the apiserver's own RFC 3339 time, read by ir's one time parser
        when = parse_utc(meta.get("creationTimestamp"))
    except ValueError:
        when = None
    created_at = when.timestamp() if when is not None else 0.0
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    state = RunState(
        name=str(meta.get("name") or ""),
        spec=spec,
        version=str(meta.get("resourceVersion") or ""),
        uid=str(meta.get("uid") or ""),
        seal=str((meta.get("annotations") or {}).get(SEAL_ANNOTATION) or ""),
        created=created_at,
    )
    state.load_status(doc.get("status"))
    return state
