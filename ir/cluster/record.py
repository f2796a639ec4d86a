"""Cluster actions into the bundle's chain of custody (the bundle itself is sealed and immutable)."""

from __future__ import annotations

from typing import Any

from ir.bundle.custody import append_record
from ir.bundle.verify import verify_bundle
from ir.cluster.kube import Kube
from ir.cluster.ops import Operator
from ir.errors import RefusedError
from ir.store import open_bundle


def record_actions(bundle_ref: str | None, op: Operator, phase: str, signer: object = None) -> None:
    """Append one `respond` custody record listing every request of this phase, if a bundle is given."""
    if not bundle_ref or not op.log:
        return
    if signer is None:  # the hand that writes the record signs it ($IR_SIGNING_KEY)
        from ir.bundle.signing import load_signer

        signer = load_signer(None)
    with open_bundle(bundle_ref) as handle:
        reader = handle.reader
        append_record(
            handle.custody,
            action="respond",
            bundle_id=reader.manifest.bundle_id,
            bundle_digest=reader.root_digest,
            detail={
                "phase": phase,
                "dry_run": op.dry_run,
                "actions": [a.to_dict() for a in op.log],
            },
            signer=signer,  # type: ignore[arg-type]
        )


def check_evidence_for(
    kube: Kube, bundle_ref: str, namespace: str, name: str, trust: Any = None
) -> None:
    """Refuse a destructive step unless the bundle is evidence of exactly this pod: intact and
    signed by a trusted key (`trust`: a TrustStore), a complete capture, and of the pod that is
    there now (same UID and node: a pod of the same name is another pod)."""
    from ir.cluster.resolve import pod_path

    with open_bundle(bundle_ref) as handle:
        report = verify_bundle(
            handle.reader, trust=trust, custody_lines=handle.custody.read_lines()
        )
        manifest = handle.reader.manifest if handle.reader.sealed else None
    if not report.authentic:
        why = (
            "; ".join(report.errors[:3])
            if not report.intact
            else (report.signature.detail if report.signature else "unsigned")
        )
        raise RefusedError(
            f"evidence bundle {bundle_ref} is {report.verdict}, not authentic evidence ({why}); "
            "refusing to delete (give the capturing key with --trust)"
        )
    assert manifest is not None
    if manifest.outcome != "complete":
        raise RefusedError(
            f"evidence bundle {bundle_ref} is a {manifest.outcome} capture; refusing to delete"
        )
    target = manifest.target
    if (
        target.get("kind") != "pod"
        or target.get("namespace") != namespace
        or target.get("name") != name
    ):
        raise RefusedError(
            f"evidence bundle {bundle_ref} is not a capture of pod {namespace}/{name}"
        )
    live = kube.get_optional(pod_path(namespace, name))
    if live is None:
        raise RefusedError(f"pod {namespace}/{name} is gone; nothing to delete")
    uid, node = live["metadata"].get("uid"), (live.get("spec") or {}).get("nodeName")
    if target.get("uid") != uid or (target.get("node") and target.get("node") != node):
        raise RefusedError(
            f"evidence bundle {bundle_ref} is of pod {namespace}/{name} uid {target.get('uid')} "
            f"on node {target.get('node')}; the pod there now is uid {uid} on node {node}: "
            "another pod of the same name; refusing to delete"
        )
