"""Choosing a backend for one container: `open_container()`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ir.errors import IrError, Unsupported, UsageError
from ir.runtime.base import ActionLog, ContainerHandle
from ir.runtime.cri_node import LAYOUTS, CriContainer, node_has_runtime_state
from ir.runtime.node_backend import open_node
from ir.runtime.procfs import PROC

if TYPE_CHECKING:  # the Docker SDK (and requests) only when a capture goes through Docker
    from ir.runtime.docker_backend import DockerContainer

BACKENDS = ("auto", "docker", "node")


def open_container(
    ref: str | None,
    *,
    backend: str = "auto",
    docker_host: str | None = None,
    pid: int | None = None,
    allow_exec: bool = False,
    name: str | None = None,
    root_walk: bool = False,
    whole_node: bool = False,
) -> ContainerHandle:
    """Reach container `ref` (id or name on the Docker engine) and/or host pid `pid`.

    backend "docker": the Docker API (plus the local /proc when the engine is local and ir is
    root). "node": host /proc + overlay upperdir (root on the node; `pid` alone works without a
    runtime). "auto": node when it can see the container, else docker; the reason is recorded in
    `handle.decisions["backend"]`. Raises UsageError (bad input), ClusterError (engine down)."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    actions = ActionLog()
    handle: ContainerHandle
    if whole_node:
        if ref is not None or pid is not None or root_walk or backend == "docker":
            raise UsageError(
                "--whole-node takes no container, --pid, --root-walk or docker backend"
            )
        handle = open_node(whole_node=True, name=name or "node")
        handle.decisions["backend"] = "node: the node itself (every process, its sockets)"
        return handle
    if ref is None:
        if pid is None:
            raise UsageError("give a container id or name, or --pid")
        if backend == "docker":
            raise UsageError("--pid without a container needs the node backend")
        handle = open_node(pid=pid, name=name, root_walk=root_walk)
        handle.decisions["backend"] = "node: given a host pid"
        return handle
    from ir.runtime.docker_backend import open_docker

    docker = open_docker(ref, docker_host=docker_host, allow_exec=allow_exec, actions=actions)
    if backend == "docker":
        docker.decisions["backend"] = "docker: asked for"
        return docker
    if backend == "node":
        node = open_node(runtime=docker, pid=pid)
        node.decisions["backend"] = "node: asked for"
        node.decisions.update({f"docker.{k}": v for k, v in docker.decisions.items()})
        return node
    why = _node_unusable(docker)
    if why:
        docker.decisions["backend"] = f"docker: node backend not usable ({why})"
        return docker
    try:
        node = open_node(runtime=docker, pid=pid)
        node.overlay()
    except (Unsupported, IrError, OSError) as exc:
        docker.decisions["backend"] = f"docker: node backend not usable ({exc})"
        return docker
    node.decisions["backend"] = "node: root on the engine's host, overlay upperdir visible"
    node.decisions.update({f"docker.{k}": v for k, v in docker.decisions.items()})
    return node


def _node_unusable(docker: DockerContainer) -> str | None:
    if os.geteuid() != 0:
        return "ir is not root"
    if not docker.runtime.local:
        return "the engine is not on this host"
    driver = (docker.first_inspect.get("GraphDriver") or {}).get("Name")
    if driver not in ("overlay2", "overlay", "overlayfs"):
        return f"storage driver {driver!r} is not overlay"
    from ir.runtime.docker_backend import state_of

    state = state_of(docker.first_inspect)
    if state.running and not (docker.decisions.get("procfs", "").startswith("used")):
        return "this host's /proc does not show the container"
    return None


def open_cri_container(
    runtime: str,
    container_id: str,
    *,
    node_root: str = "/",
    proc: str = PROC,
    pod: dict[str, str] | None = None,
) -> ContainerHandle:
    """Reach a CRI runtime's container (containerd, CRI-O) from its node: the task state under
    `node_root` gives the pid and OCI spec, /proc the rest. Raises Unsupported when this node
    root shows no such runtime or container (ir is not on the container's node)."""
    if runtime not in LAYOUTS:
        raise Unsupported(f"runtime {runtime!r}: ir reads {', '.join(sorted(LAYOUTS))} node state")
    if not node_has_runtime_state(runtime, node_root):
        raise Unsupported(
            f"no {runtime} task state under node root {node_root!r}: ir is not on this "
            "container's node (run it there, give --node-root, or let the collector pod do it)"
        )
    if os.geteuid() != 0:
        raise UsageError("reading a node's runtime state and /proc needs root on the node")
    actions = ActionLog()
    record = CriContainer(
        runtime, container_id, node_root=node_root, proc=proc, actions=actions, pod=pod
    )
    if not record.found():
        raise Unsupported(
            f"{runtime} has no task state for container {container_id[:12]} under {node_root!r} "
            "(exited, or on another node)"
        )
    handle = open_node(runtime=record, proc=proc, node_root=node_root)
    handle.decisions["backend"] = f"node: {runtime} task state under {node_root}"
    return handle
