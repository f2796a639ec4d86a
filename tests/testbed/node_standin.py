"""TEST-ONLY stand-in for a kubelet (and the scheduler): never use it outside tests.

The test bed has no kubelet.  ``NodeStandIn`` registers a Node, binds every
unscheduled pod to it, runs each pod's containers as real Docker containers on
a given engine, reports pod status the way a kubelet with dockershim /
cri-dockerd would, and cleans up deleted pods.  It is a poll loop in one
thread, deliberately simple:

* Each pod gets a sandbox container ``k8s_POD_<pod>_<ns>_<uid>_0`` whose
  network namespace the app containers join (hostNetwork/hostPID honoured),
  named and labelled like cri-dockerd's (io.kubernetes.pod.name,
  io.kubernetes.pod.namespace, io.kubernetes.pod.uid,
  io.kubernetes.container.name, io.kubernetes.docker.type,
  io.kubernetes.sandbox.id); app containers are ``k8s_<c>_<pod>_<ns>_<uid>_<n>``
  with ``n`` the restart count.
* Every image is replaced by ``image_map(image)``: nothing is pulled.
* command/args/env (plain values and fieldRefs to the pod's own metadata),
  workingDir, privileged, runAsUser/runAsGroup, capabilities,
  readOnlyRootFilesystem, hostPath and emptyDir volumes are honoured; init
  containers run one after another; restartPolicy is honoured with a short
  back-off.  Probes, resources, other volume kinds and image pulls are not.
* Deleting a pod kills its containers at once (no grace period) and then
  finalizes the deletion with gracePeriodSeconds=0.
* The node's Lease and Ready condition are renewed every few seconds, so the
  node-lifecycle controller stays enabled and never evicts its pods.

Talks to the apiserver through ``kubernetes.client`` API methods with dict
bodies and ``_preload_content=False`` (raw JSON), which behave the same in
the older and the pydantic-based (37+) Python clients.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import kubernetes.client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)

LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_DOCKER_TYPE = "io.kubernetes.docker.type"
LABEL_SANDBOX_ID = "io.kubernetes.sandbox.id"
LABEL_RESTART_COUNT = "annotation.io.kubernetes.container.restartCount"
SANDBOX_NAME = "POD"
# The sandbox only holds the network namespace; PID 1 ignores SIGTERM, so it
# is always removed with SIGKILL (force).
SANDBOX_COMMAND = ["sleep", "2147483647"]
HOST_IP = "127.0.0.1"
MAX_BACKOFF = 10.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _docker_time(value: str | None) -> str | None:
    """Docker's nanosecond RFC 3339 time -> Kubernetes' second precision."""
    if not value or value.startswith("0001-"):
        return None
    return value[:19] + "Z"


def _json(resp: Any) -> Any:
    return json.loads(resp.data) if resp.data else None


class NodeStandIn:
    """Kubelet + scheduler stand-in for one node, backed by a Docker engine.

    ``kube_api_client`` is a ``kubernetes.client.ApiClient`` with rights to
    nodes, leases, pods, pods/binding, pods/status and events (admin is
    simplest); ``docker_client`` a ``docker.DockerClient``; ``image_map`` maps
    each image named in a pod spec to a local image of that engine.

    Starts at construction (``start=False`` to delay; then call :meth:`start`).
    Errors in the loop are logged and kept in :attr:`errors`; it goes on.
    """

    def __init__(
        self,
        kube_api_client: kubernetes.client.ApiClient,
        docker_client: docker.DockerClient,
        node_name: str,
        image_map: Callable[[str], str],
        *,
        poll_interval: float = 0.5,
        heartbeat_interval: float = 10.0,
        start: bool = True,
    ) -> None:
        self.node_name = node_name
        self.image_map = image_map
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.core = kubernetes.client.CoreV1Api(kube_api_client)
        self.coordination = kubernetes.client.CoordinationV1Api(kube_api_client)
        self.docker = docker_client
        self.errors: list[str] = []
        self.volume_root = Path(tempfile.mkdtemp(prefix=f"node-standin-{node_name}-"))
        self._created: set[str] = set()  # ids of every container made here
        self._reported: dict[str, dict[str, Any]] = {}  # pod uid -> last status sent
        self._announced: set[tuple[str, str]] = set()  # (uid, event key) already emitted
        self._listed: dict[str, list[dict[str, Any]]] = {}  # pod uid -> this pass's `docker ps -a`
        self._inspected: dict[str, tuple[Any, dict[str, Any]]] = {}  # container id -> inspect
        # (pod uid, container) -> (Docker's error, failures in a row, monotonic retry time)
        self._failures: dict[tuple[str, str], tuple[str, int, float]] = {}
        self._finalized: set[str] = set()  # pod uids whose deletion was finalized
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self._docker_version = str(docker_client.version().get("Version", "unknown"))
        if start:
            self.start()

    @property
    def created_containers(self) -> frozenset[str]:
        """Ids of the containers this stand-in made and has not removed yet."""
        return frozenset(self._created)

    # -- life cycle -------------------------------------------------------

    def start(self) -> NodeStandIn:
        """Register the node and start the loop thread; returns self."""
        if self._thread is not None:
            return self
        self._register_node()
        self._heartbeat()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"node-standin-{self.node_name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and remove every container this stand-in created."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for cid in list(self._created):
            self._remove_container(cid)
        shutil.rmtree(self.volume_root, ignore_errors=True)

    def __enter__(self) -> NodeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sync_once(self) -> None:
        """One pass of the loop (exposed for tests that want determinism)."""
        if time.monotonic() - self._last_heartbeat >= self.heartbeat_interval:
            self._heartbeat()
        pods = _json(self.core.list_pod_for_all_namespaces(_preload_content=False))["items"]
        containers = self._containers_by_pod()
        self._listed = dict(containers)
        live_uids = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            node = pod["spec"].get("nodeName")
            if not node:
                if pod["spec"].get(
                    "schedulerName", "default-scheduler"
                ) == "default-scheduler" and not pod["metadata"].get("deletionTimestamp"):
                    try:
                        self._bind(pod)
                    except ApiException as err:
                        # A pod created just as its namespace is deleted cannot be bound (403,
                        # "being terminated"): the real scheduler meets the same refusal.
                        if not (err.status == 403 and "being terminated" in str(err.body or "")):
                            raise
                continue
            if node != self.node_name:
                continue
            live_uids.add(uid)
            try:
                if pod["metadata"].get("deletionTimestamp"):
                    self._finish_deletion(pod, containers.get(uid, []))
                else:
                    self._sync_pod(pod, containers.get(uid, []))
            except Exception as err:  # one bad pod must not stop the others
                self._record(
                    f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}: {err!r}"
                )
        # Pods force-deleted behind our back: their containers go too.
        for uid, ctrs in containers.items():
            if uid not in live_uids:
                for c in ctrs:
                    if c["Id"] in self._created:
                        self._remove_container(c["Id"])
                self._reported.pop(uid, None)

    # -- loop ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except ApiException as err:
                body = str(err.body or "")
                if not (err.status == 403 and "being terminated" in body):
                    self._record(f"sync: {err!r} {body[:300]}")
            except Exception as err:
                self._record(f"sync: {err!r}")
            self._stop.wait(self.poll_interval)

    def _record(self, message: str) -> None:
        log.warning("node stand-in %s: %s", self.node_name, message)
        self.errors.append(message)
        del self.errors[:-100]

    # -- node ---------------------------------------------------------------

    def _node_conditions(self) -> list[dict[str, Any]]:
        now = _now()
        conditions = []
        for ctype, status, reason, message in (
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            ("Ready", "True", "KubeletReady", "node stand-in is posting ready status"),
        ):
            conditions.append(
                {
                    "type": ctype,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self._node_since,
                }
            )
        return conditions

    def _register_node(self) -> None:
        self._node_since = _now()
        version = _json(
            kubernetes.client.VersionApi(self.core.api_client).get_code(_preload_content=False)
        )
        kubelet_version = version.get("gitVersion", "v0.0.0") if version else "v0.0.0"
        resources = {
            "cpu": str(os.cpu_count() or 1),
            "memory": "16Gi",
            "pods": "110",
            "ephemeral-storage": "50Gi",
        }
        uname = platform.uname()
        node: Any = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                },
                "annotations": {"ir.testbed/node-standin": "true"},
            },
            "spec": {},
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": self._node_conditions(),
                "addresses": [
                    {"type": "InternalIP", "address": HOST_IP},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": uuid.uuid4().hex,
                    "systemUUID": str(uuid.uuid4()),
                    "bootID": str(uuid.uuid4()),
                    "kernelVersion": uname.release,
                    "osImage": "ir test bed node stand-in",
                    "containerRuntimeVersion": f"docker://{self._docker_version}",
                    "kubeletVersion": kubelet_version,
                    "kubeProxyVersion": kubelet_version,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }
        try:
            created = _json(self.core.create_node(node, _preload_content=False))
        except ApiException as err:
            if err.status != 409:
                raise
            created = _json(self.core.read_node(self.node_name, _preload_content=False))
            self._patch_node_status({"status": node["status"]})
        self._node_uid = created["metadata"]["uid"]

    def _patch_node_status(self, body: dict[str, Any]) -> None:
        self.core.patch_node_status(
            self.node_name,
            body,
            _content_type="application/strategic-merge-patch+json",
            _preload_content=False,
        )

    def _heartbeat(self) -> None:
        self._last_heartbeat = time.monotonic()
        self._patch_node_status({"status": {"conditions": self._node_conditions()}})
        lease: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node_name,
                "namespace": "kube-node-lease",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": self.node_name,
                        "uid": self._node_uid,
                    }
                ],
            },
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": 40,
                "renewTime": _micro_now(),
            },
        }
        try:
            self.coordination.patch_namespaced_lease(
                self.node_name,
                "kube-node-lease",
                {"spec": lease["spec"]},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        except ApiException as err:
            if err.status != 404:
                raise
            self.coordination.create_namespaced_lease(
                "kube-node-lease", lease, _preload_content=False
            )

    # -- scheduling -------------------------------------------------------

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        binding: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            self.core.create_namespaced_pod_binding(
                meta["name"], meta["namespace"], binding, _preload_content=False
            )
        except ApiException as err:
            if err.status in (404, 409):  # gone, or bound meanwhile
                return
            raise
        self._event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.node_name}",
            component="default-scheduler",
        )

    # -- docker -------------------------------------------------------------

    def _containers_by_pod(self) -> dict[str, list[dict[str, Any]]]:
        """Pod uid -> raw `docker ps -a` entries of its containers, newest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        for c in self.docker.api.containers(all=True, filters={"label": LABEL_POD_UID}):
            out.setdefault(c["Labels"][LABEL_POD_UID], []).append(c)
        for ctrs in out.values():
            ctrs.sort(key=lambda c: c["Created"], reverse=True)
        return out

    def _remove_container(self, cid: str) -> None:
        try:
            self.docker.api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if "already in progress" not in str(err):
                self._record(f"remove {cid[:12]}: {err}")
                return
        self._created.discard(cid)
        self._inspected.pop(cid, None)

    def _container_name(self, pod: dict[str, Any], cname: str, attempt: int) -> str:
        meta = pod["metadata"]
        return f"k8s_{cname}_{meta['name']}_{meta['namespace']}_{meta['uid']}_{attempt}"

    def _pod_labels(self, pod: dict[str, Any], cname: str) -> dict[str, str]:
        meta = pod["metadata"]
        return {
            LABEL_POD_NAME: meta["name"],
            LABEL_POD_NAMESPACE: meta["namespace"],
            LABEL_POD_UID: meta["uid"],
            LABEL_CONTAINER_NAME: cname,
        }

    def _ensure_sandbox(self, pod: dict[str, Any], mine: list[dict[str, Any]]) -> dict[str, Any]:
        for c in mine:
            if c["Labels"].get(LABEL_CONTAINER_NAME) == SANDBOX_NAME:
                if c["State"] == "running":
                    return self._inspect(c)
                self.docker.api.start(c["Id"])
                return self.docker.api.inspect_container(c["Id"])
        spec = pod["spec"]
        first_image = (spec.get("containers") or [{}])[0].get("image", "pause")
        labels = self._pod_labels(pod, SANDBOX_NAME) | {LABEL_DOCKER_TYPE: "podsandbox"}
        host_config = self.docker.api.create_host_config(
            network_mode="host" if spec.get("hostNetwork") else "bridge",
            pid_mode="host" if spec.get("hostPID") else None,
            ipc_mode="host" if spec.get("hostIPC") else "shareable",
        )
        created = self.docker.api.create_container(
            self.image_map(first_image),
            command=SANDBOX_COMMAND,
            name=self._container_name(pod, SANDBOX_NAME, 0),
            hostname=None if spec.get("hostNetwork") else pod["metadata"]["name"][:63],
            labels=labels,
            host_config=host_config,
        )
        self._created.add(created["Id"])
        self.docker.api.start(created["Id"])
        return self.docker.api.inspect_container(created["Id"])

    def _env(self, pod: dict[str, Any], container: dict[str, Any], pod_ip: str) -> list[str]:
        meta = pod["metadata"]
        fields = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
            "status.podIP": pod_ip,
            "status.hostIP": HOST_IP,
        }
        env = []
        for item in container.get("env") or []:
            if "value" in item:
                env.append(f"{item['name']}={item['value']}")
            elif (ref := (item.get("valueFrom") or {}).get("fieldRef")) and ref[
                "fieldPath"
            ] in fields:
                env.append(f"{item['name']}={fields[ref['fieldPath']]}")
        return env

    def _binds(self, pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        binds = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "hostPath" in volume:
                source = volume["hostPath"]["path"]
            elif "emptyDir" in volume:
                source = str(self.volume_root / pod["metadata"]["uid"] / mount["name"])
                os.makedirs(source, exist_ok=True)
            else:
                continue  # secrets, configMaps, projected tokens: not provided
            mode = "ro" if mount.get("readOnly") else "rw"
            binds.append(f"{source}:{mount['mountPath']}:{mode}")
        return binds

    def _run_container(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        sandbox: dict[str, Any],
        attempt: int,
        pod_ip: str,
    ) -> None:
        spec = pod["spec"]
        security = container.get("securityContext") or {}
        pod_security = spec.get("securityContext") or {}
        user = security.get("runAsUser", pod_security.get("runAsUser"))
        group = security.get("runAsGroup", pod_security.get("runAsGroup"))
        capabilities = security.get("capabilities") or {}
        host_config = self.docker.api.create_host_config(
            network_mode=f"container:{sandbox['Id']}",
            pid_mode="host" if spec.get("hostPID") else None,
            ipc_mode=f"container:{sandbox['Id']}",
            privileged=bool(security.get("privileged")),
            cap_add=capabilities.get("add"),
            cap_drop=capabilities.get("drop"),
            read_only=bool(security.get("readOnlyRootFilesystem")),
            binds=self._binds(pod, container),
        )
        labels = self._pod_labels(pod, container["name"]) | {
            LABEL_DOCKER_TYPE: "container",
            LABEL_SANDBOX_ID: sandbox["Id"],
            LABEL_RESTART_COUNT: str(attempt),
        }
        created = self.docker.api.create_container(
            self.image_map(container["image"]),
            entrypoint=container.get("command") or None,
            command=container.get("args") or None,
            environment=self._env(pod, container, pod_ip),
            working_dir=container.get("workingDir") or None,
            user=None if user is None else (f"{user}:{group}" if group is not None else str(user)),
            tty=bool(container.get("tty")),
            stdin_open=bool(container.get("stdin")),
            name=self._container_name(pod, container["name"], attempt),
            labels=labels,
            host_config=host_config,
        )
        self._created.add(created["Id"])
        try:
            self.docker.api.start(created["Id"])
        except docker.errors.APIError:
            self._remove_container(created["Id"])  # the next attempt reuses its name
            raise
        verb = "Restarted" if attempt else "Started"
        self._event(
            pod,
            "Started",
            f"{verb} container {container['name']}",
            key=f"{container['name']}/{attempt}",
        )

    def _start_attempt(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        sandbox: dict[str, Any],
        attempt: int,
        pod_ip: str,
    ) -> list[dict[str, Any]]:
        """Start one attempt of a container unless a failed one is backing off.

        A Docker error is not the stand-in's fault but the pod's: it is kept
        for the container's waiting state and retried after a back-off.
        Returns the container's attempts, fresh.
        """
        key = (pod["metadata"]["uid"], container["name"])
        failure = self._failures.get(key)
        if failure is not None and time.monotonic() < failure[2]:
            return self._attempts(pod, container["name"])
        try:
            self._run_container(pod, container, sandbox, attempt, pod_ip)
        except docker.errors.APIError as err:
            count = failure[1] + 1 if failure else 1
            message = str(err.explanation or err)
            self._failures[key] = (
                message,
                count,
                time.monotonic() + min(MAX_BACKOFF, 0.5 * 2**count),
            )
            log.warning(
                "node stand-in %s: pod %s container %s: %s",
                self.node_name,
                pod["metadata"]["name"],
                container["name"],
                message,
            )
        else:
            self._failures.pop(key, None)
        return self._attempts(pod, container["name"], fresh=True)

    # -- pods ---------------------------------------------------------------

    def _sync_pod(self, pod: dict[str, Any], mine: list[dict[str, Any]]) -> None:
        uid = pod["metadata"]["uid"]
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and uid in self._reported:
            return
        sandbox = self._ensure_sandbox(pod, mine)
        pod_ip = self._pod_ip(pod, sandbox)
        spec = pod["spec"]
        policy = spec.get("restartPolicy", "Always")

        def exited(runs: list[dict[str, Any]]) -> int | None:
            """Exit code of the latest attempt, None if none or still running."""
            if runs and runs[0]["State"]["Status"] in ("exited", "dead"):
                return int(runs[0]["State"]["ExitCode"])
            return None

        init_statuses = []
        initialized = True
        for container in spec.get("initContainers") or []:
            runs = self._attempts(pod, container["name"]) if initialized else []
            code = exited(runs)
            if initialized and (
                not runs
                or (
                    code not in (None, 0)
                    and policy != "Never"
                    and self._backoff_over(runs[0], len(runs))
                )
            ):
                runs = self._start_attempt(pod, container, sandbox, len(runs), pod_ip)
                code = exited(runs)
            init_statuses.append(self._container_status(pod, container, runs, init=True))
            initialized = initialized and code == 0

        statuses = []
        for container in spec.get("containers") or []:
            runs = self._attempts(pod, container["name"]) if initialized else []
            code = exited(runs)
            if initialized and (
                not runs
                or (
                    code is not None
                    and (policy == "Always" or (policy == "OnFailure" and code != 0))
                    and self._backoff_over(runs[0], len(runs))
                )
            ):
                runs = self._start_attempt(pod, container, sandbox, len(runs), pod_ip)
            statuses.append(self._container_status(pod, container, runs))

        status = self._pod_status(
            pod, sandbox, pod_ip, initialized, init_statuses, statuses, policy
        )
        if status["phase"] in ("Succeeded", "Failed"):
            # As a kubelet does: the sandbox goes once the pod is done.
            with contextlib.suppress(docker.errors.APIError):
                self.docker.api.kill(sandbox["Id"])
        if self._reported.get(uid) != status:
            meta = pod["metadata"]
            self.core.patch_namespaced_pod_status(
                meta["name"],
                meta["namespace"],
                {"status": status},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            self._reported[uid] = status

    def _attempts(
        self, pod: dict[str, Any], cname: str, fresh: bool = False
    ) -> list[dict[str, Any]]:
        """Inspected containers of one pod container, latest attempt first.

        Uses this pass's container list unless ``fresh`` (after starting one).
        """
        uid = pod["metadata"]["uid"]
        if fresh or uid not in self._listed:
            self._listed[uid] = self.docker.api.containers(
                all=True, filters={"label": f"{LABEL_POD_UID}={uid}"}
            )
        found = [
            self._inspect(c)
            for c in self._listed[uid]
            if c["Labels"].get(LABEL_CONTAINER_NAME) == cname
        ]
        return sorted(
            found,
            key=lambda c: int(c["Config"]["Labels"].get(LABEL_RESTART_COUNT, "0")),
            reverse=True,
        )

    def _inspect(self, listed: dict[str, Any]) -> dict[str, Any]:
        """docker inspect, cached while the container's listed state is unchanged."""
        key = (listed["Id"], listed["State"])
        cached = self._inspected.get(listed["Id"])
        if cached is None or cached[0] != key:
            cached = (key, self.docker.api.inspect_container(listed["Id"]))
            self._inspected[listed["Id"]] = cached
        return cached[1]

    def _backoff_over(self, last: dict[str, Any], restarts: int) -> bool:
        finished = last["State"].get("FinishedAt") or ""
        try:
            ended = datetime.datetime.fromisoformat(finished[:26].rstrip("Z") + "+00:00")
        except ValueError:
            return True
        waited = (datetime.datetime.now(datetime.UTC) - ended).total_seconds()
        return waited >= min(MAX_BACKOFF, 0.5 * 2 ** max(0, restarts - 1))

    def _pod_ip(self, pod: dict[str, Any], sandbox: dict[str, Any]) -> str:
        if pod["spec"].get("hostNetwork"):
            return HOST_IP
        settings = sandbox.get("NetworkSettings") or {}
        ip = settings.get("IPAddress")
        for net in (settings.get("Networks") or {}).values():
            ip = ip or net.get("IPAddress")
        return ip or HOST_IP

    def _image_id(self, spec_image: str, inspected: dict[str, Any]) -> str:
        repo = spec_image.split("@", 1)[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        return f"docker-pullable://{repo}@{inspected['Image']}"

    def _container_status(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        runs: list[dict[str, Any]],
        init: bool = False,
    ) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": max(0, len(runs) - 1),
            "state": {
                "waiting": {
                    "reason": "ContainerCreating"
                    if init or not pod["spec"].get("initContainers")
                    else "PodInitializing"
                }
            },
            "lastState": {},
        }
        failure = self._failures.get((pod["metadata"]["uid"], container["name"]))
        if failure is not None:
            status["state"] = {"waiting": {"reason": "RunContainerError", "message": failure[0]}}
        if not runs:
            return status
        current = runs[0]
        status["containerID"] = f"docker://{current['Id']}"
        status["imageID"] = self._image_id(container["image"], current)
        if failure is not None:
            status["lastState"] = self._state(current)
            return status
        status["state"] = self._state(current)
        if len(runs) > 1:
            status["lastState"] = self._state(runs[1])
        running = current["State"]["Status"] == "running"
        status["started"] = running
        if init:  # an init container counts as ready once it has succeeded
            status["ready"] = "terminated" in status["state"] and current["State"]["ExitCode"] == 0
        else:
            status["ready"] = running
        return status

    def _state(self, inspected: dict[str, Any]) -> dict[str, Any]:
        state = inspected["State"]
        if state["Status"] == "running":
            return {"running": {"startedAt": _docker_time(state["StartedAt"])}}
        if state["Status"] in ("exited", "dead"):
            return {
                "terminated": {
                    "exitCode": state["ExitCode"],
                    "reason": "Completed"
                    if state["ExitCode"] == 0
                    else ("OOMKilled" if state.get("OOMKilled") else "Error"),
                    "startedAt": _docker_time(state["StartedAt"]),
                    "finishedAt": _docker_time(state["FinishedAt"]),
                    "containerID": f"docker://{inspected['Id']}",
                }
            }
        return {"waiting": {"reason": "ContainerCreating"}}

    def _pod_status(
        self,
        pod: dict[str, Any],
        sandbox: dict[str, Any],
        pod_ip: str,
        initialized: bool,
        init_statuses: list[dict[str, Any]],
        statuses: list[dict[str, Any]],
        policy: str,
    ) -> dict[str, Any]:
        start = _docker_time(sandbox["State"]["StartedAt"]) or _now()
        all_ready = bool(statuses) and all(s["ready"] for s in statuses)
        states = [s["state"] for s in statuses]
        terminated = [st["terminated"] for st in states if "terminated" in st]
        if (
            initialized
            and terminated
            and len(terminated) == len(states)
            and (
                policy == "Never"
                or (policy == "OnFailure" and all(t["exitCode"] == 0 for t in terminated))
            )
        ):
            phase = "Succeeded" if all(t["exitCode"] == 0 for t in terminated) else "Failed"
        elif initialized and statuses and all("containerID" in st for st in statuses):
            phase = "Running"
        else:
            phase = "Pending"
        ready_since = max(
            (st["running"]["startedAt"] for st in states if "running" in st), default=start
        )
        scheduled = (
            next(
                (
                    c.get("lastTransitionTime")
                    for c in pod.get("status", {}).get("conditions") or []
                    if c["type"] == "PodScheduled"
                ),
                None,
            )
            or start
        )

        def condition(ctype: str, ok: bool, since: str) -> dict[str, Any]:
            cond = {
                "type": ctype,
                "status": "True" if ok else "False",
                "lastTransitionTime": since,
                "lastProbeTime": None,
            }
            if not ok:
                cond["reason"] = (
                    "ContainersNotReady"
                    if ctype in ("Ready", "ContainersReady")
                    else "ContainersNotInitialized"
                )
            return cond

        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                condition("PodReadyToStartContainers", True, start),
                condition("Initialized", initialized, start),
                condition("Ready", all_ready, ready_since),
                condition("ContainersReady", all_ready, ready_since),
                condition("PodScheduled", True, scheduled),
            ],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": start,
            "containerStatuses": statuses,
            "qosClass": pod.get("status", {}).get("qosClass", "BestEffort"),
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status

    def _finish_deletion(self, pod: dict[str, Any], mine: list[dict[str, Any]]) -> None:
        meta = pod["metadata"]
        if mine:
            self._event(pod, "Killing", "Stopping pod containers", key="killing")
        for c in mine:
            self._remove_container(c["Id"])
        shutil.rmtree(self.volume_root / meta["uid"], ignore_errors=True)
        if meta["uid"] in self._finalized:
            return  # a finalizer of someone else's holds it; it goes when they let go
        delete_options: Any = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        try:
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                body=delete_options,
                grace_period_seconds=0,
                _preload_content=False,
            )
        except ApiException as err:
            if err.status not in (404, 409):
                raise
        self._finalized.add(meta["uid"])
        self._reported.pop(meta["uid"], None)

    # -- events -------------------------------------------------------------

    def _event(
        self,
        pod: dict[str, Any],
        reason: str,
        message: str,
        *,
        component: str = "kubelet",
        key: str | None = None,
    ) -> None:
        meta = pod["metadata"]
        marker = (meta["uid"], key or reason)
        if marker in self._announced:
            return
        self._announced.add(marker)
        now = _now()
        event: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Normal",
            "source": {"component": component, "host": self.node_name},
            "reportingComponent": component,
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], event, _preload_content=False)
        except ApiException as err:  # events are best effort, as in a kubelet
            if err.status == 403 and "being terminated" in str(err.body or ""):
                return  # the namespace is being deleted: a kubelet's event is refused there too
            self._record(f"event {reason} for {meta['name']}: {err.status}")
