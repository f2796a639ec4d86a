"""Where bundles live: a local directory (default ./evidence), S3, and the local spool.
Knows nothing of containers; imports only ir.errors, ir.clock and ir.bundle's reading side."""

from __future__ import annotations

import os

from ir.store.base import BundleHandle, BundleListing, Store, StoreResult
from ir.store.local import LocalStore

DEFAULT_STORE = "./evidence"
ENV_STORE = "IR_STORE"

__all__ = [
    "BundleHandle",
    "BundleListing",
    "LocalStore",
    "Store",
    "StoreResult",
    "open_store",
    "open_bundle",
]


def store_uri(explicit: str | None) -> str:
    return explicit or os.environ.get(ENV_STORE) or DEFAULT_STORE


def open_store(uri: str | None, **options: object) -> Store:
    """`s3://bucket/prefix` or a directory path."""
    uri = store_uri(uri)
    if uri.startswith("s3://"):
        from ir.store.s3 import S3Store  # imported lazily: boto3 is slow to import

        return S3Store.from_uri(uri, **options)  # type: ignore[arg-type]
    return LocalStore(uri)


def open_bundle(ref: str, *, record_access: bool = False, **options: object) -> BundleHandle:
    """Open a bundle by local path or `s3://bucket/key` for reading (and custody appends).
    `record_access`: an S3 read records a 'downloaded' custody record (copying evidence out)."""
    if ref.startswith("s3://"):
        from ir.store.s3 import open_s3_bundle

        return open_s3_bundle(ref, record_access=record_access, **options)  # type: ignore[arg-type]
    return LocalStore.open_path(ref)
