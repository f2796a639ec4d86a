"""Where bundles live: a local directory (default ./evidence), S3, and the local spool.
Knows nothing of containers; imports only ir.errors, ir.clock and ir.bundle's reading side."""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

from ir.errors import UsageError
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


#: The stores by URI scheme, as "module:Class" (imported when first used: boto3 is slow to
#: import). A class gives `from_uri(uri, **options)` (a Store) and `open_bundle(ref, **options)`
#: (a BundleHandle for reading). A reference without a scheme is a local directory or file.
STORES: dict[str, str] = {
    "s3": "ir.store.s3:S3Store",
}
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*)://")


def store_class(uri: str) -> Any:
    """The store class for `uri` (LocalStore for a path). Raises UsageError naming the schemes
    known when the scheme is not one of them."""
    match = _SCHEME.match(uri)
    if match is None:
        return LocalStore
    target = STORES.get(match.group(1))
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(STORES))
        raise UsageError(f"unknown store {match.group(1)}:// in {uri!r}: use {known} or a path")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_store(uri: str | None, **options: object) -> Store:
    """`s3://bucket/prefix` or a directory path."""
    uri = store_uri(uri)
    store: Store = store_class(uri).from_uri(uri, **options)
    return store


def open_bundle(ref: str, *, record_access: bool = False, **options: object) -> BundleHandle:
    """Open a bundle by local path or `s3://bucket/key` for reading (and custody appends).
    `record_access`: an S3 read records a 'downloaded' custody record (copying evidence out)."""
    cls = store_class(ref)
    if cls is LocalStore:
        return LocalStore.open_path(ref)
    handle: BundleHandle = cls.open_bundle(ref, record_access=record_access, **options)
    return handle
