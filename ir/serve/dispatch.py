"""Dispatch mode (`ir serve --dispatch jobs`): each capture runs as a Kubernetes Job pinned to the
node of the target pod (privileged node collector with host PID, the host's /proc and root
filesystem read-only, so the container runtime socket is reachable), so captures run where the
evidence is and many run in parallel. Every other action goes to the wrapped implementation.

`node_collector_job()` builds the Job; `JobDispatchActions` wraps a `ResponseActions` and needs a
`JobClient` (three calls on the Kubernetes API, implemented in ir.cluster). The collector reports
its outcome as JSON in its termination message (see `JobOutcome`). deploy/node-collector/
holds the same Job as a template for review; a test keeps both in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from ir.playbook.actions import (
    DRY_RUN,
    FAILED,
    OK,
    PARTIAL,
    ActionContext,
    ApiRequest,
    ResponseActions,
    StepResult,
)
from ir.playbook.alerts import Target

NAMESPACE = "ir-system"
SERVICE_ACCOUNT = "ir-node-collector"
COMPONENT_LABEL = "app.kubernetes.io/component"
RUN_LABEL = "ir.forensics/run-id"
DEFAULT_IMAGE = "ghcr.io/ir-project/ir:0.1.0"


@dataclass(frozen=True)
class JobOutcome:
    """How a collector Job ended. `message` is the collector pod's termination message: a JSON
    object {"bundle": URI, "bundle_digest": "sha256:…", "outcome": "complete"|"partial"|"failed",
    "detail": str}."""

    succeeded: bool
    message: str = ""
    reason: str = ""  # e.g. DeadlineExceeded, BackoffLimitExceeded, timeout


class JobClient(Protocol):
    """What dispatch needs from the Kubernetes API (implemented in ir.cluster)."""

    def pod_node(self, namespace: str, pod: str) -> str | None:
        """spec.nodeName of the pod as the API serves it (None when not scheduled or gone)."""
        ...

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> None:
        """POST the Job; an AlreadyExists for the same name is success (idempotent retries)."""
        ...

    def wait_job(self, namespace: str, name: str, timeout: float) -> JobOutcome:
        """Wait until the Job succeeds or fails or `timeout` passes; read the termination message."""
        ...


def job_name(run_id: str) -> str:
    return f"ir-capture-{run_id[:20].lower()}"


def node_collector_job(
    target: Target,
    context: ActionContext,
    node: str,
    *,
    image: str = DEFAULT_IMAGE,
    namespace: str = NAMESPACE,
    store: str | None = None,
    params: dict[str, Any] | None = None,
    deadline_seconds: int = 900,
    ttl_seconds: int = 3600,
) -> dict[str, Any]:
    """The Job that captures `target.pod` on `node`. The command is an argv list (exec form, no
    shell); every name in it was validated by the engine. Raises ValueError without a pod."""
    if not target.pod or not target.namespace:
        raise ValueError("a collector Job needs a pod target")
    params = params or {}
    # `ir capture pod` on the node: containers through /proc + overlay (--backend node), the
    # Kubernetes context through the API with the collector's read-only service account.
    command = [
        "ir", "capture", "pod", target.pod,
        "--namespace", target.namespace,
        "--case", context.case_id,
        "--reason", context.reason,
        "--operator", context.operator,
        "--backend", "node",
        "--no-quarantine",
        "--no-replace",
        "--termination-log", "/dev/termination-log",
    ]  # fmt: skip
    if params.get("max_bytes"):
        command += ["--max-diff-size", str(int(params["max_bytes"]))]
    if store or params.get("store"):
        command += ["--store", str(params.get("store") or store)]
    labels = {
        "app.kubernetes.io/name": "ir",
        COMPONENT_LABEL: "node-collector",
        RUN_LABEL: context.run_id[:63],
    }
    host_path = lambda path: {"path": path, "type": "Directory"}  # noqa: E731
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(context.run_id),
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                "ir.forensics/target": f"{target.namespace}/{target.pod}",
                "ir.forensics/case": context.case_id,
                "ir.forensics/playbook": context.playbook,
            },
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_seconds,
            "ttlSecondsAfterFinished": ttl_seconds,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "nodeName": node,  # pinned: no scheduler decision, runs where the evidence is
                    "restartPolicy": "Never",
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "automountServiceAccountToken": True,  # read-only RBAC: the pod's context
                    "hostPID": True,
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": "collector",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": command,
                            # the root filesystem is read-only: staging and spool go to emptyDir
                            "workingDir": "/var/lib/ir",
                            "env": [
                                {"name": "IR_HOST_ROOT", "value": "/host"},
                                {"name": "IR_HOST_PROC", "value": "/host/proc"},
                                {"name": "HOME", "value": "/var/lib/ir"},
                            ],
                            "envFrom": [{"secretRef": {"name": "ir-store", "optional": True}}],
                            "securityContext": {
                                "privileged": True,
                                "runAsUser": 0,
                                "readOnlyRootFilesystem": True,
                            },
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "2", "memory": "512Mi"},
                            },
                            "volumeMounts": [
                                {
                                    "name": "host-root",
                                    "mountPath": "/host",
                                    "readOnly": True,
                                    "mountPropagation": "HostToContainer",
                                },
                                {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True},
                                {"name": "host-run", "mountPath": "/host/run", "readOnly": True},
                                {"name": "spool", "mountPath": "/var/lib/ir"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "host-root", "hostPath": host_path("/")},
                        {"name": "host-proc", "hostPath": host_path("/proc")},
                        # containerd.sock, docker.sock, crio.sock live under /run
                        {"name": "host-run", "hostPath": host_path("/run")},
                        {"name": "spool", "emptyDir": {"sizeLimit": "8Gi"}},
                    ],
                },
            },
        },
    }


class JobDispatchActions:
    """`capture` as a node-pinned Job; everything else delegated to `inner`."""

    def __init__(
        self,
        inner: ResponseActions,
        client: JobClient,
        *,
        image: str = DEFAULT_IMAGE,
        namespace: str = NAMESPACE,
        store: str | None = None,
        timeout: float = 900.0,
    ) -> None:
        self.inner = inner
        self.client = client
        self.image = image
        self.namespace = namespace
        self.store = store
        self.timeout = timeout

    def capture(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        if not target.pod or not target.namespace:
            return StepResult("capture", FAILED, "dispatch needs a pod target")
        # the node comes from the API, never from the alert
        node = self.client.pod_node(target.namespace, target.pod)
        if not node:
            return StepResult(
                "capture",
                FAILED,
                f"pod {target.namespace}/{target.pod} has no node (gone or unscheduled)",
            )
        timeout = float(params.get("timeout_seconds", self.timeout))
        remaining = context.remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
        manifest = node_collector_job(
            target,
            context,
            node,
            image=self.image,
            namespace=self.namespace,
            store=self.store,
            params=params,
            deadline_seconds=max(60, int(timeout)),
        )
        name = manifest["metadata"]["name"]
        if context.dry_run:
            return StepResult(
                "capture",
                DRY_RUN,
                f"would run collector Job {name} on node {node}",
                requests=[
                    ApiRequest("POST", f"/apis/batch/v1/namespaces/{self.namespace}/jobs", manifest)
                ],
                data={"job": name, "node": node},
            )
        requests = [
            ApiRequest("GET", f"/api/v1/namespaces/{target.namespace}/pods/{target.pod}"),
            ApiRequest("POST", f"/apis/batch/v1/namespaces/{self.namespace}/jobs", manifest),
        ]
        self.client.create_job(self.namespace, manifest)
        outcome = self.client.wait_job(self.namespace, name, timeout)
        requests.append(
            ApiRequest("GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{name}")
        )
        return _capture_result(outcome, name, node, requests)

    def quarantine(
        self, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        return self.inner.quarantine(target, params, context)

    def replace(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        return self.inner.replace(target, params, context)

    def cordon(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        return self.inner.cordon(target, params, context)

    def label(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        return self.inner.label(target, params, context)

    def annotate(
        self, target: Target, params: dict[str, Any], context: ActionContext
    ) -> StepResult:
        return self.inner.annotate(target, params, context)

    def delete(self, target: Target, params: dict[str, Any], context: ActionContext) -> StepResult:
        return self.inner.delete(target, params, context)


def _capture_result(
    outcome: JobOutcome, name: str, node: str, requests: list[ApiRequest]
) -> StepResult:
    data: dict[str, Any] = {"job": name, "node": node}
    try:
        report = json.loads(outcome.message) if outcome.message else {}
    except ValueError:
        report = {}
    if not isinstance(report, dict):
        report = {}
    bundle = report.get("bundle") if isinstance(report.get("bundle"), str) else None
    digest = report.get("bundle_digest") if isinstance(report.get("bundle_digest"), str) else None
    verdict = report.get("outcome")
    if outcome.succeeded and bundle and verdict == "complete":
        status = OK
    elif bundle and verdict in ("complete", "partial"):
        status = PARTIAL
    else:
        status = FAILED
    detail = str(
        report.get("detail")
        or outcome.reason
        or ("job succeeded" if outcome.succeeded else "job failed")
    )
    return StepResult(
        "capture",
        status,
        f"{name} on {node}: {detail[:300]}",
        bundle=bundle,
        bundle_digest=digest,
        requests=requests,
        data=data,
    )
