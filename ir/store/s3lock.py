"""Object Lock for S3 bundles: whether the bucket can honour the retention or legal hold the
options ask for (Object Lock enabled, versioning on), said as warnings before the upload is
created, and which request arguments to drop when it cannot."""

from __future__ import annotations

from typing import Any

from ir.store.s3client import S3Connection, error_code, is_not_found, store_error
from ir.store.s3options import S3Options

# The CreateMultipartUpload arguments that ask for Object Lock (dropped when the bucket has none).
LOCK_ARGS = ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")


def lock_check(
    client: Any, connection: S3Connection, bucket: str, uri: str, options: S3Options
) -> tuple[list[str], bool]:
    """(warnings, lock_ok): what stands in the way of the Object Lock `options` ask for in
    `bucket`, and False when the bucket has no Object Lock (the lock cannot be applied at all).
    A configuration that cannot be read gives one warning and asks for the lock anyway."""
    wanted = ", ".join(
        filter(
            None,
            [
                f"{options.retention_mode} retention for {options.retention_days} days"
                if options.retention_mode
                else "",
                "legal hold" if options.legal_hold else "",
            ],
        )
    )
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)
        enabled = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
    except Exception as exc:  # noqa: BLE001
        code = error_code(exc)
        if code in (
            "ObjectLockConfigurationNotFoundError",
            "ObjectLockConfigurationNotFound",
        ) or is_not_found(exc):
            enabled = False
        else:
            return [
                f"cannot read the Object Lock configuration of bucket {bucket!r} "
                f"({store_error(exc, 'GetObjectLockConfiguration', uri, connection).message}); "
                f"asking for {wanted} anyway"
            ], True
    warnings = []
    lock_ok = True
    if not enabled:
        lock_ok = False
        warnings.append(
            f"bucket {bucket!r} does not have Object Lock enabled: the requested {wanted} "
            "CANNOT be applied; the bundle is stored without immutability (create the bucket with "
            "Object Lock to get it)"
        )
    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != "Enabled":
            warnings.append(
                f"bucket {bucket!r} has versioning {status or 'off'}: "
                "the bundle object can be overwritten or deleted"
            )
    except Exception as exc:  # noqa: BLE001
        warnings.append(
            f"cannot read the versioning state of bucket {bucket!r}: "
            f"{store_error(exc, 'GetBucketVersioning', uri, connection).message}"
        )
    return warnings, lock_ok
