"""One collector's run into a real bundle (the project's writer, a LocalStore), as a capture runs
it, for the collectors' tests: a container collector through `capture_container` (so the
registry picks it, and `capture.json` closes the scope), the Kubernetes collectors through the
session with the pod registry's selection, as `ir capture pod` runs them (`pod_capture`: of a pod
of the test bed's real cluster, through ir's own client of its apiserver)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docker.models.containers import Container

from ir.bundle.layout import safe_component
from ir.bundle.manifest import CollectorEntry
from ir.bundle.reader import BundleReader
from ir.cluster.context import KubeTarget, PodAsk, pod_collectors
from ir.cluster.kube import Kube
from ir.cluster.resolve import resolve_pod
from ir.collect.base import CaptureOptions, Scope
from ir.collect.container import capture_container
from ir.collect.session import CaptureRequest, CaptureResult, CaptureSession
from ir.runtime import ContainerHandle
from ir.store.local import LocalStore
from tests.test_capture_container import Bundle


@dataclass
class Captured:
    result: CaptureResult
    bundle: Bundle  # read per container scope
    container: Container | None = None  # the Docker container captured, when there is one

    def entry(self, collector: str) -> CollectorEntry:
        return next(c for c in self.result.collectors if c.name == collector)

    def ok(self, collector: str) -> CollectorEntry:
        """The collector's entry, which says it ran whole."""
        entry = self.entry(collector)
        assert entry.status == "ok" and entry.error is None, entry
        return entry


@contextmanager
def container_capture(
    handle: ContainerHandle,
    collector: str,
    tmp_path: Path,
    options: CaptureOptions | None = None,
) -> Iterator[Captured]:
    """Capture `handle` with the one container collector named (the handle is closed after)."""
    try:
        request = CaptureRequest(case_id="T", target=handle.target())
        with CaptureSession(LocalStore(tmp_path / "evidence"), request) as session:
            capture_container(session, handle, options or CaptureOptions(), collectors=[collector])
            result = session.finish()
    finally:
        handle.close()
    bundle = Bundle(str(result.sealed.path), handle.name)
    try:
        yield Captured(result, bundle)
    finally:
        bundle.close()


@contextmanager
def pod_capture(
    kube: Kube,
    namespace: str,
    name: str,
    tmp_path: Path,
    asked: PodAsk | None = None,
    scopes: tuple[Scope, ...] = ("pod", "container"),
) -> Iterator[BundleReader]:
    """The Kubernetes collectors `asked` for, of the test bed's pod namespace/name, resolved
    through `kube` (ir's own client: the identity it connects as is the one the apiserver
    authorizes) and run where `ir capture pod` runs them, in one bundle: the pod's context at the
    top, then each started container's under its scope (only the `scopes` named); yield the
    sealed bundle's reader."""
    pod = resolve_pod(kube, namespace, name)
    target = KubeTarget(kube, pod, asked or PodAsk())
    label = f"pod {namespace}/{name}"
    request = CaptureRequest(case_id="T", target=pod.describe())
    with CaptureSession(LocalStore(tmp_path / "evidence"), request) as session:
        chosen = pod_collectors("pod", target) if "pod" in scopes else []
        if chosen:
            session.run(chosen, scope=None, target=target, options={}, label=label)
        for ref in pod.containers if "container" in scopes else []:
            if ref.container_id is None:  # never started: `ir capture pod` skips it too
                continue
            here = target.of_container(ref)
            extra = pod_collectors("container", here)
            if extra:
                session.run(
                    extra,
                    scope=f"containers/{safe_component(ref.name, 'container')}",
                    target=here,
                    options={},
                    label=label,
                    container=ref.name,
                )
        result = session.finish()
    with BundleReader.open(result.sealed.path) as reader:
        yield reader
