"""The Kubernetes collectors of a pod capture, through the API server: the pod's context (the pod
as served, its owners, events, node, service account and the RBAC bound to it, Services and
NetworkPolicies that select it, the names -- never the values -- of ConfigMaps and Secrets it
references, image digests), each container's logs, and a kubelet checkpoint when asked.

They follow the collector contract of ir.collect.base, as the container collectors do: one
stateless object each, registered in `POD_COLLECTORS` (in run order, each with its `scope`), given
the pod as `ctx.target` (`KubeTarget`), and `wanted(target)` says whether the operator asked for
it (a collector not wanted leaves no manifest entry; one that does not apply says why in `check`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ir.clock import parse_timestamp, rfc3339
from ir.cluster.kube import ApiError, Kube
from ir.cluster.resolve import ContainerRef, PodTarget
from ir.cluster.selectors import selector_matches, service_selects
from ir.collect.base import Artifact, CaptureContext, Collector, Scope
from ir.collect.registry import Registry
from ir.errors import Unsupported
from ir.records import LogLine

KUBE_COLLECTOR = "kubernetes"  # the name playbooks use for the Kubernetes context collectors


@dataclass(frozen=True)
class PodAsk:
    """What the operator asked of the Kubernetes collectors (`ir capture pod`'s options)."""

    collectors: tuple[str, ...] = ()  # the `collectors:` filter; empty: all
    api_logs: bool = True  # each container's logs through the API
    checkpoint: bool = False  # a kubelet checkpoint of each running container
    since: str | None = None  # API logs from this time (None: all the kubelet keeps)
    tail: int | None = None  # API logs: the last N lines per instance (None: all)


@dataclass(frozen=True)
class KubeTarget:
    """What a Kubernetes collector gets as `ctx.target`: the API server, the pod as resolved, what
    the operator asked, and -- for a collector of the container scope -- the container."""

    kube: Kube
    pod: PodTarget
    asked: PodAsk = PodAsk()
    container: ContainerRef | None = None

    def of_container(self, ref: ContainerRef) -> KubeTarget:
        return replace(self, container=ref)

    def the_container(self) -> ContainerRef:
        """The container, for a collector of the container scope; Unsupported without one."""
        if self.container is None:
            raise Unsupported("no container given: a collector of the container scope")
        return self.container


KubeContext = CaptureContext[KubeTarget]


class PodCollector(Collector[KubeTarget], Protocol):
    """A Kubernetes collector: a `Collector` given a `KubeTarget`, and:

    - `wanted(target)`: whether the operator asked for it for this pod (or container); True or
      False, never raising. Not wanted, it is not run and leaves no entry in the manifest."""

    def wanted(self, target: KubeTarget) -> bool: ...


def _json(name: str, kind: str, document: Any) -> Artifact:
    data = (json.dumps(document, indent=1, sort_keys=True, default=str) + "\n").encode()
    return Artifact(name, kind, "application/json", chunks=[data])


class KubeContextCollector:
    """Bundle-level artifacts under `k8s/`; the playbook name `kubernetes` selects it."""

    name = "k8s-context"
    scope: Scope = "pod"

    def wanted(self, target: KubeTarget) -> bool:
        return not target.asked.collectors or KUBE_COLLECTOR in target.asked.collectors

    def check(self, ctx: KubeContext) -> None:
        return None

    def collect(self, ctx: KubeContext) -> Iterator[Artifact]:
        kube, t = ctx.target.kube, ctx.target.pod
        ns = t.namespace
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
            ("k8s/events.json", "k8s-events", _events),
            ("k8s/node.json", "k8s-node", _node),
            ("k8s/serviceaccount.json", "k8s-serviceaccount", _service_account),
            ("k8s/rbac.json", "k8s-rbac", _rbac),
            ("k8s/services.json", "k8s-services", _services),
            ("k8s/networkpolicies.json", "k8s-networkpolicies", _policies),
        ):
            try:
                document = fetch(kube, t)
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


def _events(kube: Kube, t: PodTarget) -> list[dict[str, Any]]:
    doc = kube.get(
        f"/api/v1/namespaces/{t.namespace}/events", fieldSelector=f"involvedObject.uid={t.uid}"
    )
    return list(doc.get("items") or [])


def _node(kube: Kube, t: PodTarget) -> Any:
    return kube.get_optional(f"/api/v1/nodes/{t.node}") if t.node else None


def _sa_name(t: PodTarget) -> str:
    return str(t.pod.get("spec", {}).get("serviceAccountName") or "default")


def _service_account(kube: Kube, t: PodTarget) -> Any:
    return kube.get_optional(f"/api/v1/namespaces/{t.namespace}/serviceaccounts/{_sa_name(t)}")


def _rbac(kube: Kube, t: PodTarget) -> dict[str, Any]:
    ns, sa = t.namespace, _sa_name(t)

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
        for b in kube.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings").get(
            "items", []
        )
        if binds(b)
    ]
    crbs = [
        b
        for b in kube.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings").get("items", [])
        if binds(b)
    ]
    roles = []
    for b in rbs + crbs:
        ref = b.get("roleRef", {})
        if ref.get("kind") == "Role":
            roles.append(
                kube.get_optional(
                    f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{ref.get('name')}"
                )
            )
        elif ref.get("kind") == "ClusterRole":
            roles.append(
                kube.get_optional(
                    f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{ref.get('name')}"
                )
            )
    return {
        "service_account": f"{ns}/{sa}",
        "role_bindings": rbs,
        "cluster_role_bindings": crbs,
        "roles": [r for r in roles if r],
    }


def _services(kube: Kube, t: PodTarget) -> list[dict[str, Any]]:
    items = kube.get(f"/api/v1/namespaces/{t.namespace}/services").get("items", [])
    return [s for s in items if service_selects(s, t.labels)]


def _policies(kube: Kube, t: PodTarget) -> list[dict[str, Any]]:
    items = kube.get(f"/apis/networking.k8s.io/v1/namespaces/{t.namespace}/networkpolicies").get(
        "items", []
    )
    return [
        p for p in items if selector_matches(p.get("spec", {}).get("podSelector", {}), t.labels)
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
    """Container logs through the API (which proxies the kubelet): current and previous instance.
    On unless the operator turns the API logs off."""

    name = "k8s-logs"
    scope: Scope = "container"

    def wanted(self, target: KubeTarget) -> bool:
        return target.asked.api_logs

    def check(self, ctx: KubeContext) -> None:
        ctx.target.the_container()

    def collect(self, ctx: KubeContext) -> Iterator[Artifact]:
        kube, t, asked = ctx.target.kube, ctx.target.pod, ctx.target.asked
        ref = ctx.target.the_container()
        for instance, previous in (("current", False), ("previous", True)):
            query: dict[str, Any] = {"container": ref.name, "timestamps": "true"}
            if previous:
                query["previous"] = "true"
            if asked.tail is not None:
                query["tailLines"] = asked.tail
            if asked.since:
                query["sinceTime"] = rfc3339(parse_timestamp(asked.since).utc)
            path = f"/api/v1/namespaces/{t.namespace}/pods/{t.name}/log"
            try:
                first = kube.stream_text(path, query)
                head = next(first, b"")
            except ApiError as exc:
                ctx.record_action(
                    "k8s-get-logs",
                    outcome="failed",
                    path=path,
                    instance=instance,
                    error=exc.message,
                )
                if previous and ref.restart_count == 0:
                    ctx.note("no previous instance: the container has not restarted")
                else:
                    ctx.shortfall(f"logs ({instance}) through the API not available: {exc.message}")
                continue
            head = _head(head, first, len(_STAMP_SHAPE))
            if head and not _STAMPED.match(head):
                # asked with timestamps, every line the kubelet serves starts with its time: a
                # body without one is the kubelet's own message (HTTP 200), e.g. a previous
                # instance whose log file is gone -- not a log line of the container
                said = _bounded(head, first).decode("utf-8", "backslashreplace").strip()
                ctx.record_action(
                    "k8s-get-logs",
                    outcome="failed",
                    path=path,
                    instance=instance,
                    error=f"the kubelet answered with no log line: {said}",
                )
                ctx.shortfall(f"logs ({instance}) not served: the kubelet answered: {said}")
                continue
            ctx.record_action("k8s-get-logs", path=path, instance=instance)
            yield Artifact(
                f"logs-api-{instance}.jsonl",
                "logs",
                LogLine.media_type(),
                chunks=_log_records(head, first, ref.name, instance),
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


_STAMP_SHAPE = b"2006-01-02T15:04:05"
_STAMPED = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
MAX_KUBELET_MESSAGE = 4096


def _head(head: bytes, rest: Iterator[bytes], want: int) -> bytes:
    """At least `want` bytes of the answer's start (fewer only when it ends first)."""
    while len(head) < want:
        more = next(rest, b"")
        if not more:
            break
        head += more
    return head


def _bounded(head: bytes, rest: Iterator[bytes]) -> bytes:
    """The answer, up to MAX_KUBELET_MESSAGE bytes (a message, not a log: never read it all)."""
    while len(head) < MAX_KUBELET_MESSAGE:
        more = next(rest, b"")
        if not more:
            break
        head += more
    return head[:MAX_KUBELET_MESSAGE]


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
    scope: Scope = "container"

    def wanted(self, target: KubeTarget) -> bool:
        return (
            target.asked.checkpoint
            and target.container is not None
            and target.container.state == "running"
        )

    def check(self, ctx: KubeContext) -> None:
        ctx.target.the_container()
        if not ctx.target.pod.node:
            raise Unsupported("pod is not on a node")

    def collect(self, ctx: KubeContext) -> Iterator[Artifact]:
        kube, t = ctx.target.kube, ctx.target.pod
        container = ctx.target.the_container().name
        path = f"/api/v1/nodes/{t.node}/proxy/checkpoint/{t.namespace}/{t.name}/{container}"
        try:
            answer = kube.request("POST", path, retry=False)
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


#: The Kubernetes collectors, in the order a pod capture runs them within their scope: the pod's
#: context before the containers; each container's logs, then its checkpoint, after the
#: container's own collectors (ir.collect.registry.CONTAINER_COLLECTORS).
POD_COLLECTORS: Registry[PodCollector] = Registry(
    KubeContextCollector(),
    KubeLogsCollector(),
    KubeletCheckpointCollector(),
)


def pod_collectors(scope: Scope, target: KubeTarget) -> list[PodCollector]:
    """The Kubernetes collectors of `scope` the operator asked for `target`, in run order."""
    return [c for c in POD_COLLECTORS.in_scope(scope) if c.wanted(target)]
