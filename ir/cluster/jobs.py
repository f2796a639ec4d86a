"""The JobClient that `ir serve --dispatch jobs` uses to run captures as node-pinned Jobs."""

from __future__ import annotations

import time

from ir.cluster.kube import ApiError, Kube
from ir.cluster.resolve import check_name, pod_path
from ir.serve.dispatch import JobOutcome


class KubeJobClient:
    def __init__(self, kube: Kube, poll: float = 1.0) -> None:
        self.kube = kube
        self.poll = poll

    def pod_node(self, namespace: str, pod: str) -> str | None:
        doc = self.kube.get_optional(
            pod_path(check_name("namespace", namespace), check_name("pod", pod))
        )
        return None if doc is None else doc.get("spec", {}).get("nodeName")

    def create_job(self, namespace: str, manifest: dict) -> None:  # type: ignore[type-arg]
        try:
            self.kube.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", manifest)
        except ApiError as exc:
            if exc.status != 409:  # AlreadyExists: an idempotent retry of the same run
                raise

    def wait_job(self, namespace: str, name: str, timeout: float) -> JobOutcome:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
            for cond in job.get("status", {}).get("conditions") or []:
                if cond.get("status") != "True":
                    continue
                if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
                    return JobOutcome(True, self._message(namespace, name), "")
                if cond.get("type") in ("Failed", "FailureTarget"):
                    return JobOutcome(
                        False, self._message(namespace, name), str(cond.get("reason") or "Failed")
                    )
            time.sleep(self.poll)
        return JobOutcome(False, self._message(namespace, name), "timeout")

    def _message(self, namespace: str, name: str) -> str:
        """The collector container's termination message (ir writes its result JSON there)."""
        pods = self.kube.get(
            f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"job-name={name}"
        ).get("items", [])
        for pod in pods:
            for status in pod.get("status", {}).get("containerStatuses") or []:
                terminated = (status.get("state") or {}).get("terminated") or {}
                if terminated.get("message"):
                    return str(terminated["message"])
        return ""
