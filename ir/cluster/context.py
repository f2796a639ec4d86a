"""Collectors of Kubernetes context: the pod as served, its owners, events, node, service account
and the RBAC bound to it, Services and NetworkPolicies that select it, the names (never the
values) of ConfigMaps and Secrets it references, image digests, and logs through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ir.clock import parse_timestamp, rfc3339
from ir.cluster.kube import ApiError, Kube
from ir.cluster.resolve import PodTarget
from ir.cluster.selectors import selector_matches, service_selects
from ir.collect.base import Artifact
from ir.records import LogLine


def _json(name: str, kind: str, document: Any) -> Artifact:
    data = (json.dumps(document, indent=1, sort_keys=True, default=str) + "\n").encode()
    return Artifact(name, kind, "application/json", chunks=[data])


class KubeContextCollector:
    """Bundle-level artifacts under `k8s/`."""

    name = "k8s-context"

    def __init__(self, kube: Kube, target: PodTarget) -> None:
        self.kube = kube
        self.target = target

    def check(self, ctx: Any) -> None:
        return None

    def collect(self, ctx: Any) -> Iterator[Artifact]:
        t, ns = self.target, self.target.namespace
        ctx.record_action("k8s-get", path=f"/api/v1/namespaces/{ns}/pods/{t.name}")
        yield _json("k8s/pod.json", "k8s-pod", t.pod)
        yield _json("k8s/owners.json", "k8s-owners", t.owners)
        yield _json(
            "k8s/images.json",
            "k8s-images",
            [
                {
                    "container": c.name,
                    "kind": c.kind,
                    "image": c.image,
                    "image_id": c.image_id,
                    "container_id": c.container_id,
                }
                for c in t.containers
            ],
        )
        yield _json("k8s/references.json", "k8s-references", references_of(t.pod))
        for name, kind, fetch in (
            ("k8s/events.json", "k8s-events", self._events),
            ("k8s/node.json", "k8s-node", self._node),
            ("k8s/serviceaccount.json", "k8s-serviceaccount", self._service_account),
            ("k8s/rbac.json", "k8s-rbac", self._rbac),
            ("k8s/services.json", "k8s-services", self._services),
            ("k8s/networkpolicies.json", "k8s-networkpolicies", self._policies),
        ):
            try:
                document = fetch()
            except ApiError as exc:
                # One missing permission must not cost the rest of the context: record and go on.
                ctx.note(f"{name}: {exc.message}")
                yield Artifact(
                    name,
                    kind,
                    "application/json",
                    chunks=[b"null\n"],
                    status="failed",
                    error=exc.message,
                )
                continue
            yield _json(name, kind, document)

    def _events(self) -> list[dict[str, Any]]:
        t = self.target
        doc = self.kube.get(
            f"/api/v1/namespaces/{t.namespace}/events", fieldSelector=f"involvedObject.uid={t.uid}"
        )
        return list(doc.get("items") or [])

    def _node(self) -> Any:
        return (
            self.kube.get_optional(f"/api/v1/nodes/{self.target.node}")
            if self.target.node
            else None
        )

    def _sa_name(self) -> str:
        return str(self.target.pod.get("spec", {}).get("serviceAccountName") or "default")

    def _service_account(self) -> Any:
        return self.kube.get_optional(
            f"/api/v1/namespaces/{self.target.namespace}/serviceaccounts/{self._sa_name()}"
        )

    def _rbac(self) -> dict[str, Any]:
        ns, sa = self.target.namespace, self._sa_name()

        def binds(binding: dict[str, Any]) -> bool:
            for s in binding.get("subjects") or []:
                if (
                    s.get("kind") == "ServiceAccount"
                    and s.get("name") == sa
                    and s.get("namespace", ns) == ns
                ):
                    return True
                if s.get("kind") == "Group" and s.get("name") in (
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{ns}",
                    "system:authenticated",
                ):
                    return True
            return False

        rbs = [
            b
            for b in self.kube.get(
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
            ).get("items", [])
            if binds(b)
        ]
        crbs = [
            b
            for b in self.kube.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings").get(
                "items", []
            )
            if binds(b)
        ]
        roles = []
        for b in rbs + crbs:
            ref = b.get("roleRef", {})
            if ref.get("kind") == "Role":
                roles.append(
                    self.kube.get_optional(
                        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{ref.get('name')}"
                    )
                )
            elif ref.get("kind") == "ClusterRole":
                roles.append(
                    self.kube.get_optional(
                        f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{ref.get('name')}"
                    )
                )
        return {
            "service_account": f"{ns}/{sa}",
            "role_bindings": rbs,
            "cluster_role_bindings": crbs,
            "roles": [r for r in roles if r],
        }

    def _services(self) -> list[dict[str, Any]]:
        items = self.kube.get(f"/api/v1/namespaces/{self.target.namespace}/services").get(
            "items", []
        )
        return [s for s in items if service_selects(s, self.target.labels)]

    def _policies(self) -> list[dict[str, Any]]:
        items = self.kube.get(
            f"/apis/networking.k8s.io/v1/namespaces/{self.target.namespace}/networkpolicies"
        ).get("items", [])
        return [
            p
            for p in items
            if selector_matches(p.get("spec", {}).get("podSelector", {}), self.target.labels)
        ]


def references_of(pod: dict[str, Any]) -> dict[str, list[str]]:
    """Names of ConfigMaps and Secrets the pod references (values are never read)."""
    spec = pod.get("spec", {})
    configmaps: set[str] = set()
    secrets: set[str] = {s.get("name") for s in spec.get("imagePullSecrets") or [] if s.get("name")}
    for vol in spec.get("volumes") or []:
        if "configMap" in vol:
            configmaps.add(vol["configMap"].get("name"))
        if "secret" in vol:
            secrets.add(vol["secret"].get("secretName"))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if "configMap" in src:
                configmaps.add(src["configMap"].get("name"))
            if "secret" in src:
                secrets.add(src["secret"].get("name"))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for ef in c.get("envFrom") or []:
                if "configMapRef" in ef:
                    configmaps.add(ef["configMapRef"].get("name"))
                if "secretRef" in ef:
                    secrets.add(ef["secretRef"].get("name"))
            for env in c.get("env") or []:
                vf = env.get("valueFrom") or {}
                if "configMapKeyRef" in vf:
                    configmaps.add(vf["configMapKeyRef"].get("name"))
                if "secretKeyRef" in vf:
                    secrets.add(vf["secretKeyRef"].get("name"))
    return {
        "configmaps": sorted(n for n in configmaps if n),
        "secrets": sorted(n for n in secrets if n),
    }


class KubeLogsCollector:
    """Container logs through the API (which proxies the kubelet): current and previous instance."""

    name = "k8s-logs"

    def __init__(
        self,
        kube: Kube,
        target: PodTarget,
        container: str,
        since: str | None = None,
        tail: int | None = None,
    ) -> None:
        self.kube, self.target, self.container = kube, target, container
        self.since, self.tail = since, tail

    def check(self, ctx: Any) -> None:
        return None

    def _restarts(self) -> int | None:
        for ref in self.target.containers:
            if ref.name == self.container:
                return ref.restart_count
        return None

    def collect(self, ctx: Any) -> Iterator[Artifact]:
        for instance, previous in (("current", False), ("previous", True)):
            query: dict[str, Any] = {"container": self.container, "timestamps": "true"}
            if previous:
                query["previous"] = "true"
            if self.tail is not None:
                query["tailLines"] = self.tail
            if self.since:
                query["sinceTime"] = rfc3339(parse_timestamp(self.since).utc)
            path = f"/api/v1/namespaces/{self.target.namespace}/pods/{self.target.name}/log"
            try:
                first = self.kube.stream_text(path, query)
                head = next(first, b"")
            except ApiError as exc:
                ctx.record_action(
                    "k8s-get-logs",
                    outcome="failed",
                    path=path,
                    instance=instance,
                    error=exc.message,
                )
                if previous and self._restarts() == 0:
                    ctx.note("no previous instance: the container has not restarted")
                else:
                    ctx.shortfall(f"logs ({instance}) through the API not available: {exc.message}")
                continue
            ctx.record_action("k8s-get-logs", path=path, instance=instance)
            yield Artifact(
                f"logs-api-{instance}.jsonl",
                "logs",
                LogLine.media_type(),
                chunks=_log_records(head, first, self.container, instance),
                meta={"instance": instance, "source": "kube-api"},
            )


def _log_records(
    head: bytes, rest: Iterator[bytes], container: str, instance: str
) -> Iterator[bytes]:
    pending = b""
    for chunk in _chain(head, rest):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield _log_line(line, container, instance)
    if pending:
        yield _log_line(pending, container, instance)


def _chain(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _log_line(line: bytes, container: str, instance: str) -> bytes:
    text = line.decode("utf-8", "backslashreplace")
    stamp, _, message = text.partition(" ")
    try:
        time = rfc3339(parse_timestamp(stamp).utc)
    except ValueError:
        time, message = None, text
    return LogLine(
        time=time, stream="combined", message=message, container=container, instance=instance
    ).to_line()


def _checkpoint_reason(exc: ApiError) -> str:
    """Which of the known refusals this is, in words (the kubelet passes the runtime's on)."""
    text = exc.message.lower()
    if exc.status == 404:
        return "the kubelet does not offer checkpoints (ContainerCheckpoint feature off)"
    if "not implemented" in text or "unimplemented" in text:
        return "the container runtime has no checkpoint support"
    if "criu" in text and ("not found" in text or "no such file" in text):
        return "the container runtime cannot checkpoint (no CRIU)"
    if "criu" in text:
        return "CRIU failed on this node"
    if exc.status == 403:
        return "no permission for nodes/proxy"
    return f"HTTP {exc.status}"


class KubeletCheckpointCollector:
    """Ask the kubelet (through the API server's node proxy) to checkpoint a container (CRIU).

    Opt-in (`--checkpoint`): it is an action on the container, recorded as such. The archive stays
    on the node (the kubelet writes it under /var/lib/kubelet/checkpoints); the bundle records
    the kubelet's answer. Clusters without the ContainerCheckpoint feature say so, and that is
    recorded too."""

    name = "kubelet-checkpoint"

    def __init__(self, kube: Kube, target: PodTarget, container: str) -> None:
        self.kube, self.target, self.container = kube, target, container

    def check(self, ctx: Any) -> None:
        from ir.errors import Unsupported

        if not self.target.node:
            raise Unsupported("pod is not on a node")

    def collect(self, ctx: Any) -> Iterator[Artifact]:
        t = self.target
        path = f"/api/v1/nodes/{t.node}/proxy/checkpoint/{t.namespace}/{t.name}/{self.container}"
        try:
            answer = self.kube.request("POST", path, retry=False)
        except ApiError as exc:
            ctx.record_action("kubelet-checkpoint", outcome="refused", path=path, error=exc.message)
            yield _json(
                "checkpoint.json",
                "kubelet-checkpoint",
                {"request": path, "refused": {"status": exc.status, "message": exc.message}},
            )
            ctx.shortfall(f"kubelet checkpoint refused ({_checkpoint_reason(exc)}): {exc.message}")
            return
        ctx.record_action("kubelet-checkpoint", path=path)
        yield _json("checkpoint.json", "kubelet-checkpoint", {"request": path, "answer": answer})
