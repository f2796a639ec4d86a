"""The real `ResponseActions` for playbooks and `ir serve`: each step calls the same library
functions as the CLI commands (capture_pod, quarantine_pod, replace_pod) through ops.Operator,
so dry run, action records and the capture gate behave the same everywhere. Each action declared
in ir/playbook/steps/ is a method here, listed in STEPS under its name."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ir.bundle.signing import Signer
from ir.clock import parse_utc
from ir.cluster.capture import PodCaptureOptions, capture_pod
from ir.cluster.collector import CollectorSettings
from ir.cluster.kube import Kube
from ir.cluster.nodecapture import capture_node, check_node, node_collector_manifest
from ir.cluster.ops import MERGE_PATCH, ActionRecord, Operator, Request
from ir.cluster.record import record_actions
from ir.cluster.replace import replace_pod
from ir.cluster.resolve import check_name, pod_path, resolve_pod
from ir.cluster.respond import quarantine_pod
from ir.collect.session import CaptureResult
from ir.errors import IrError
from ir.playbook.actions import (
    DRY_RUN,
    FAILED,
    OK,
    PARTIAL,
    SKIPPED,
    ActionContext,
    ApiRequest,
    StepResult,
)
from ir.playbook.alerts import Target
from ir.store import open_store
from ir.store.base import Store


class ClusterActions:
    """Acts on one cluster. Thread-safe as long as the Kube client is (urllib3 pools are)."""

    def __init__(
        self,
        kube: Kube,
        *,
        store_uri: str | None = None,
        signer: Signer | None = None,
        store_options: dict[str, Any] | None = None,
        echo: Callable[[str], None] | None = None,
        collector: CollectorSettings | None = None,
    ) -> None:
        self.kube = kube
        # captures of pods on nodes ir is not on go through the node collector pod
        self.collector = collector
        self.store_uri = store_uri
        self.signer = signer
        self.store_options = store_options or {}
        self.echo = echo or (lambda _m: None)

    def act(
        self, action: str, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        """The step `action`, by the method STEPS lists for it."""
        step = STEPS.get(action)
        if step is None:
            return StepResult(action, FAILED, f"ClusterActions does not implement {action!r}")
        return step(self, target, params, context)

    # -- helpers -----------------------------------------------------------------------------
    def _operator(self, context: ActionContext) -> Operator:
        return Operator(self.kube, dry_run=context.dry_run)

    def _result(
        self, action: str, op: Operator, status: str, detail: str = "", **data: Any
    ) -> StepResult:
        return StepResult(
            action,
            DRY_RUN if op.dry_run and status == OK else status,
            detail,
            requests=[_api(a) for a in op.log if a.method != "-"],
            data=data,
        )

    def _bundle_of(self, context: ActionContext) -> str | None:
        capture = context.result_of("capture")
        return capture.bundle if capture is not None else None

    def _run(
        self,
        action: str,
        target: Target,
        context: ActionContext,
        body: Callable[[Operator], StepResult],
        node_ok: bool = False,
    ) -> StepResult:
        if (not target.pod or not target.namespace) and not (node_ok and target.node):
            return StepResult(
                action, SKIPPED, "the alert names no pod" + (" and no node" if node_ok else "")
            )
        op = self._operator(context)
        try:
            result = body(op)
        except IrError as exc:
            result = self._result(action, op, FAILED, exc.message)
        finally:
            if not context.dry_run:
                try:
                    note = context.custody_note()
                    record_actions(
                        self._bundle_of(context),
                        op,
                        f"playbook {context.playbook}: {action}" + (f" ({note})" if note else ""),
                        self.signer,
                    )
                except IrError as exc:
                    self.echo(f"could not append custody record: {exc.message}")
        return result

    # -- steps ---------------------------------------------------------------------------------
    def _store(self, params: dict[str, Any]) -> Store:
        store_uri = params.get("store") or self.store_uri
        return (
            open_store(store_uri, **self.store_options)
            if (store_uri or "").startswith("s3://")
            else open_store(store_uri)
        )

    def capture(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        if (not target.pod or not target.namespace) and target.node:
            return self._capture_node(str(target.node), params, context)
        if not target.pod or not target.namespace:
            return StepResult("capture", SKIPPED, "the alert names no pod")
        store = self._store(params)
        earlier: list[str] = []
        if context.interrupted is not None and not context.dry_run:
            found, earlier = self._interrupted_capture(store, target, context)
            if found is not None:
                return found
        container_options: dict[str, Any] = {}
        if params.get("max_bytes"):
            container_options["max_diff_size"] = int(params["max_bytes"])
        only = target.container if params.get("scope") == "container" else None
        note = context.custody_note()
        opts = PodCaptureOptions(
            case_id=context.case_id,
            reason=context.reason + (f" ({note}; {'; '.join(earlier)})" if note else ""),
            operator=context.operator,
            quarantine=False,
            replace=False,
            signer=self.signer if params.get("sign", True) else None,
            alert=_alert_doc(target),
            container_options=container_options,
            collectors=tuple(params.get("collectors") or ()),
            only_container=only,
            dry_run=context.dry_run,  # the same path: its collector pod as a server-side dry run
        )
        if self.collector is not None:
            opts.collector = self.collector
        try:
            result = capture_pod(
                self.kube, store, target.namespace, target.pod, opts, echo=self.echo
            )
        except IrError as exc:
            return StepResult("capture", FAILED, exc.message)
        if context.dry_run:
            return StepResult(
                "capture",
                DRY_RUN,
                f"would capture pod {target.namespace}/{target.pod}",
                requests=[_api(ActionRecord(**a)) for a in result.actions],
            )
        assert result.capture is not None
        return _capture_step(result.capture)

    def _interrupted_capture(
        self, store: Store, target: Target, context: ActionContext
    ) -> tuple[StepResult | None, list[str]]:
        """A capture an earlier attempt started and did not record the end of: its bundle, if it
        was sealed and stored (then that is the step's result: evidence is not taken twice);
        else what it left (an incomplete bundle, kept as it is; a collector pod, removed) to be
        named in the new capture's custody record."""
        assert context.interrupted is not None
        since = parse_utc(context.interrupted.started_at)
        what = f"pod {target.namespace}/{target.pod}"
        left: list[str] = []
        try:
            rows = list(store.list_bundles())
        except IrError as exc:
            return None, [f"the store could not be listed for its bundle: {exc.message}"]
        for row in rows:
            started = parse_utc(row.started_at)
            if row.case_id != context.case_id or (row.target not in (None, what)):
                continue
            if since is not None and started is not None and started < since - timedelta(seconds=5):
                continue
            if row.status in ("complete", "partial"):
                status = OK if row.status == "complete" else PARTIAL
                return (
                    StepResult(
                        "capture",
                        status,
                        f"bundle {row.location} ({row.status}), sealed and stored by attempt "
                        f"{context.interrupted.attempt} before it was interrupted; not captured again",
                        bundle=row.location,
                        bundle_digest=f"sha256:{row.root_digest}" if row.root_digest else None,
                        data={
                            "outcome": row.status,
                            "recovered_from_attempt": context.interrupted.attempt,
                        },
                    ),
                    [],
                )
            left.append(
                f"attempt {context.interrupted.attempt} left bundle {row.location} ({row.status}), kept"
            )
        left += self._remove_stale_collectors(target, context)
        return None, left

    def _remove_stale_collectors(self, target: Target, context: ActionContext) -> list[str]:
        """Collector pods an interrupted capture of this pod left behind (they would stop at
        their deadline): removed, and said."""
        if self.collector is None:
            return []
        try:
            pod = resolve_pod(self.kube, str(target.namespace), str(target.pod))
            items = self.kube.get(
                f"/api/v1/namespaces/{self.collector.namespace}/pods",
                labelSelector="app.kubernetes.io/component=node-collector",
            ).get("items", [])
        except IrError as exc:
            return [f"collector pods of the interrupted attempt not looked for: {exc.message}"]
        removed = []
        for item in items:
            meta = item.get("metadata") or {}
            if (meta.get("annotations") or {}).get("ir.forensics/collects") != pod.collects:
                continue
            try:
                self.kube.request(
                    "DELETE",
                    f"/api/v1/namespaces/{self.collector.namespace}/pods/{meta.get('name')}",
                    {"gracePeriodSeconds": 0},
                )
                removed.append(
                    f"collector pod {meta.get('name')} of the interrupted attempt removed"
                )
            except IrError as exc:
                removed.append(f"collector pod {meta.get('name')} not removed: {exc.message}")
        return removed

    def _capture_node(
        self, node: str, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        """A node target (a node-level finding): the node's processes and sockets through the
        node collector (ir.cluster.nodecapture), after checking it is a node of this cluster."""
        instance = context.alert.instance_id if context.alert is not None else None
        try:
            checked = check_node(self.kube, node, instance)
        except IrError as exc:
            return StepResult("capture", FAILED, exc.message)
        if self.collector is None:
            return StepResult(
                "capture", FAILED, "capturing a node needs the node collector (--collector-image)"
            )
        if context.dry_run:  # the collector pod, as a server-side dry run (admission answers)
            op = self._operator(context)
            try:
                op.apply(
                    "create-collector-pod",
                    Request(
                        "POST",
                        f"/api/v1/namespaces/{self.collector.namespace}/pods",
                        node_collector_manifest(checked, self.collector),
                        why=f"capture node {node}",
                        destructive=False,
                    ),
                )
            except IrError as exc:
                return self._result("capture", op, FAILED, exc.message)
            return self._result("capture", op, OK, f"would capture node {node}")
        try:
            result = capture_node(
                self.kube,
                self._store(params),
                checked,
                settings=self.collector,
                case_id=context.case_id,
                reason=context.reason,
                operator=context.operator,
                signer=self.signer if params.get("sign", True) else None,
                alert=context.alert.to_dict() if context.alert is not None else None,
                echo=self.echo,
            )
        except IrError as exc:
            return StepResult("capture", FAILED, exc.message)
        return _capture_step(result)

    def quarantine(
        self, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        def body(op: Operator) -> StepResult:
            pod = resolve_pod(self.kube, str(target.namespace), str(target.pod))
            q = quarantine_pod(
                op,
                pod,
                reason=context.reason,
                case_id=context.case_id,
                actor=context.operator,
                allow_egress_cidrs=tuple(params.get("allow_egress_cidrs") or ()),
                allow_dns=bool(params.get("allow_dns")),
                allow_protected=True,  # the engine already applied the namespace policy
                bundle=self._bundle_of(context),
                probe_image=params.get("probe_image") or os.environ.get("IR_PROBE_IMAGE"),
            )
            # ok: the policy is in place and selects exactly the pod; the detail says whether
            # traffic proved it enforced. A probe that still got through makes it partial.
            status = (
                OK
                if op.dry_run or (q.policy_verified and q.enforcement_state != "not-enforced")
                else PARTIAL
            )
            return self._result(
                "quarantine",
                op,
                status,
                f"policy {q.policy}" + (" (already)" if q.already else "") + f"; {q.enforcement}",
                networkpolicy=q.policy,
                quarantine_id=q.quarantine_id,
            )

        return self._run("quarantine", target, context, body)

    def replace(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        def body(op: Operator) -> StepResult:
            pod = resolve_pod(self.kube, str(target.namespace), str(target.pod))
            timeout = float(params.get("wait_ready_seconds", 120))
            remaining = context.remaining()
            if remaining is not None:
                timeout = min(timeout, remaining)
            r = replace_pod(op, pod, timeout=timeout, allow_protected=True)
            status = OK if (r.ready or op.dry_run) else PARTIAL
            if r.strategy == "not-possible":
                status = PARTIAL
            return self._result(
                "replace",
                op,
                status,
                f"{r.strategy}; " + "; ".join(r.notes),
                replacement=r.replacement,
                strategy=r.strategy,
            )

        return self._run("replace", target, context, body)

    def cordon(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        def body(op: Operator) -> StepResult:
            node = self._node_of(target, context)
            if not node:
                return self._result("cordon", op, SKIPPED, "pod is not scheduled on a node")
            op.apply(
                "cordon-node",
                Request(
                    "PATCH",
                    f"/api/v1/nodes/{node}",
                    {"spec": {"unschedulable": True}},
                    content_type=MERGE_PATCH,
                    retry=True,
                ),
            )
            return self._result("cordon", op, OK, f"node {node} cordoned", node=node)

        return self._run("cordon", target, context, body, node_ok=True)

    def _set_meta(
        self, action: str, key: str, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        def body(op: Operator) -> StepResult:
            values = dict(params.get(key) or {})
            if params.get("object") == "node" or not target.pod:
                node = self._node_of(target, context)
                if not node:
                    return self._result(action, op, SKIPPED, "no node to act on")
                path = f"/api/v1/nodes/{check_name('node', node)}"
            else:
                path = pod_path(str(target.namespace), str(target.pod))
            op.apply(
                action,
                Request(
                    "PATCH", path, {"metadata": {key: values}}, content_type=MERGE_PATCH, retry=True
                ),
            )
            return self._result(action, op, OK, f"{len(values)} {key} set on {path}")

        return self._run(
            action, target, context, body, node_ok=params.get("object") == "node" or not target.pod
        )

    def _node_of(self, target: Target, context: ActionContext) -> str | None:
        """The node the API says the pod runs on; for a node target (no pod), the alert's node,
        once checked to be a node of this cluster (and the alert's instance, when it names one)."""
        if target.pod and target.namespace:
            return resolve_pod(self.kube, target.namespace, target.pod).node
        if target.node:
            check_node(self.kube, target.node, context.alert.instance_id if context.alert else None)
        return target.node

    def label(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        return self._set_meta("label", "labels", target, params, context)

    def annotate(
        self, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        return self._set_meta("annotate", "annotations", target, params, context)

    def delete(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        def body(op: Operator) -> StepResult:
            query = (
                f"?gracePeriodSeconds={int(params['grace_period_seconds'])}"
                if "grace_period_seconds" in params
                else ""
            )
            gone = (
                context.interrupted is not None
                and not op.dry_run
                and self.kube.get_optional(pod_path(str(target.namespace), str(target.pod))) is None
            )
            if gone and context.interrupted is not None:
                return self._result(
                    "delete",
                    op,
                    OK,
                    f"pod {target.namespace}/{target.pod} is gone already "
                    f"({context.interrupted.describe()})",
                )
            op.apply(
                "delete-pod",
                Request(
                    "DELETE",
                    pod_path(str(target.namespace), str(target.pod)) + query,
                    why="playbook delete step",
                ),
            )
            return self._result("delete", op, OK, f"pod {target.namespace}/{target.pod} deleted")

        return self._run("delete", target, context, body)


# Each playbook action's implementation, by the name its ActionSpec (ir/playbook/steps/) gives
# it; tests/steps/test_every_action.py names any action missing here.
STEPS: dict[str, Callable[[ClusterActions, Target, dict[str, Any], ActionContext], StepResult]] = {
    "capture": ClusterActions.capture,
    "quarantine": ClusterActions.quarantine,
    "replace": ClusterActions.replace,
    "cordon": ClusterActions.cordon,
    "label": ClusterActions.label,
    "annotate": ClusterActions.annotate,
    "delete": ClusterActions.delete,
}


def _capture_step(cap: CaptureResult) -> StepResult:
    """ok only for a complete bundle confirmed stored."""
    outcome = cap.sealed.manifest.outcome
    status = (
        OK
        if outcome == "complete" and cap.stored.confirmed
        else (PARTIAL if outcome != "failed" else FAILED)
    )
    detail = (
        f"bundle {cap.stored.location} ({outcome}"
        + ("" if cap.stored.confirmed else ", spooled: not confirmed stored")
        + ")"
    )
    return StepResult(
        "capture",
        status,
        detail,
        bundle=cap.stored.location,
        bundle_digest="sha256:" + cap.sealed.root_digest,
        data={"outcome": outcome, "spooled": cap.stored.spooled},
    )


def _api(record: ActionRecord) -> ApiRequest:
    return ApiRequest(record.method, record.path, record.body)


def _alert_doc(target: Target) -> dict[str, Any]:
    return {
        "source": target.source,
        "rule": target.rule,
        "priority": target.priority,
        "time": target.time.isoformat(),
        "alert_id": target.alert_id,
        "target": {
            "namespace": target.namespace,
            "pod": target.pod,
            "container": target.container,
            "container_id": target.container_id,
            "node": target.node,
        },
        "raw": target.raw,
    }
