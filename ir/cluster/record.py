"""Cluster actions into the bundle's chain of custody (the bundle itself is sealed and immutable)."""

from __future__ import annotations

from ir.bundle.custody import append_record
from ir.bundle.verify import verify_bundle
from ir.cluster.ops import Operator
from ir.errors import RefusedError
from ir.store import open_bundle


def record_actions(bundle_ref: str | None, op: Operator, phase: str, signer: object = None) -> None:
    """Append one `respond` custody record listing every request of this phase, if a bundle is given."""
    if not bundle_ref or not op.log:
        return
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


def check_evidence_for(bundle_ref: str, namespace: str, name: str) -> None:
    """Refuse unless the bundle verifies and is a capture of this pod."""
    with open_bundle(bundle_ref) as handle:
        report = verify_bundle(handle.reader, custody_lines=handle.custody.read_lines())
        target = handle.reader.manifest.target
    if report.verdict != "valid":
        raise RefusedError(
            f"evidence bundle {bundle_ref} does not verify ({report.verdict}); refusing to delete"
        )
    if (
        target.get("kind") != "pod"
        or target.get("namespace") != namespace
        or target.get("name") != name
    ):
        raise RefusedError(
            f"evidence bundle {bundle_ref} is not a capture of pod {namespace}/{name}"
        )
