"""What a completed multipart upload is (`UploadOutcome`), and how it is confirmed that S3 holds
exactly the bundle file: S3's own SHA-256 checksum (the composite of the part digests, or the
whole-object one), else the object read back and hashed (`confirm_object`); and whether an object
already at the key is this very file (`object_matches`: a completion whose answer was lost).

Imports ir.errors and the store's S3 client helpers, parts and spool state only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ir.errors import StoreError
from ir.store.s3client import S3Connection, is_denied, is_not_found, store_error
from ir.store.s3parts import READ_CHUNK, PartLayout, b64, iter_range
from ir.store.spool import PartState


@dataclass
class UploadOutcome:
    """What the server confirmed about one completed upload."""

    upload_id: str
    parts: list[PartState]
    size: int
    object_sha256: str  # hex, of the whole file
    s3_checksum: str  # composite "base64-N" as S3 defines it for SHA-256 multipart objects
    version_id: str | None
    etag: str | None
    confirmed_by: str  # "s3-checksum" or "read-back"
    parts_sent: int = 0
    parts_reused: int = 0
    warnings: list[str] = field(default_factory=list)


def composite_checksum(parts: list[PartState]) -> str:
    """S3's checksum of a multipart object: SHA-256 of the parts' SHA-256 digests, then -N."""
    joined = b"".join(bytes.fromhex(p.sha256) for p in parts)
    return f"{b64(hashlib.sha256(joined).digest())}-{len(parts)}"


def confirm_object(
    client: Any,
    connection: S3Connection,
    bucket: str,
    key: str,
    outcome: UploadOutcome,
    reported: str | None = None,
) -> None:
    """Set `outcome.confirmed_by` once S3 shows it holds exactly the file; raise StoreError if not.

    Accepted: S3's checksum equal to the composite computed here (or to the whole-file SHA-256);
    otherwise (servers that do not keep checksums) the object is read back and hashed.
    """
    where = f"s3://{bucket}/{key}"
    whole = b64(bytes.fromhex(outcome.object_sha256))
    accepted = {outcome.s3_checksum, whole}
    if reported in accepted:
        # The completion itself names the parts' digests: enough, and it needs no read
        # permission (write-only credentials are what a cluster should hold).
        outcome.confirmed_by = "s3-checksum"
        return
    version = (
        {"VersionId": outcome.version_id}
        if outcome.version_id and outcome.version_id != "null"
        else {}
    )
    try:
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **version)
    except Exception as exc:  # noqa: BLE001
        raise store_error(exc, "HeadObject", where, connection) from None
    if int(head.get("ContentLength", -1)) != outcome.size:
        raise StoreError(
            f"{where}: S3 holds {head.get('ContentLength')} bytes, the bundle has {outcome.size}"
        )
    outcome.version_id = outcome.version_id or head.get("VersionId")
    outcome.etag = outcome.etag or head.get("ETag")
    if head.get("ChecksumSHA256") in accepted:
        outcome.confirmed_by = "s3-checksum"
        return
    claimed = reported or head.get("ChecksumSHA256")
    digest = hashlib.sha256()
    try:
        body = client.get_object(Bucket=bucket, Key=key, **version)["Body"]
        for chunk in body.iter_chunks(READ_CHUNK):
            digest.update(chunk)
    except Exception as exc:  # noqa: BLE001
        raise store_error(exc, "GetObject", where, connection) from None
    if digest.hexdigest() != outcome.object_sha256:
        raise StoreError(
            f"{where}: the object read back from S3 does not match the bundle (sha256 "
            f"{digest.hexdigest()}, expected {outcome.object_sha256})"
        )
    outcome.confirmed_by = "read-back"
    outcome.warnings.append(
        f"the S3 server did not confirm the SHA-256 checksum (it reported {claimed or 'none'}); "
        "the object was read back and its SHA-256 matches the bundle"
    )


def object_matches(
    client: Any,
    connection: S3Connection,
    bucket: str,
    key: str,
    fd: int,
    total: int,
    part_layout: PartLayout,
    version_id: str | None = None,
) -> UploadOutcome | None:
    """If S3 already holds this exact file at `key` (a completion whose answer was lost),
    return the confirmed outcome; None when there is no such object. Raises StoreError when a
    different object is there."""
    where = f"s3://{bucket}/{key}"
    version = {"VersionId": version_id} if version_id and version_id != "null" else {}
    try:
        head = client.head_object(Bucket=bucket, Key=key, **version)
    except Exception as exc:  # noqa: BLE001
        if is_not_found(exc) or is_denied(exc):
            return None  # nothing there, or write-only credentials that cannot tell: upload
        raise store_error(exc, "HeadObject", where, connection) from None
    if int(head.get("ContentLength", -1)) != total:
        raise StoreError(
            f"{where} already exists with other content ({head.get('ContentLength')} bytes, "
            f"the bundle has {total}); refusing to overwrite it"
        )
    parts: list[PartState] = []
    full = hashlib.sha256()
    for number, offset, size in part_layout.parts_for(total):
        sha = hashlib.sha256()
        for chunk in iter_range(fd, offset, size):
            sha.update(chunk)
            full.update(chunk)
        parts.append(PartState(number, offset, size, sha.hexdigest(), None))
    outcome = UploadOutcome(
        upload_id="",
        parts=parts,
        size=total,
        object_sha256=full.hexdigest(),
        s3_checksum=composite_checksum(parts),
        version_id=head.get("VersionId"),
        etag=head.get("ETag"),
        confirmed_by="",
    )
    try:
        confirm_object(client, connection, bucket, key, outcome)
    except StoreError as exc:
        raise StoreError(
            f"{where} already exists with other content; refusing to overwrite it ({exc})"
        ) from None
    return outcome
