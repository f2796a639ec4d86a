"""Listing an S3 store: the bundles under its prefix, each described from the metadata of its
manifest object (one HEAD each, in parallel), then the multipart uploads still in progress."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from ir.bundle import layout
from ir.clock import rfc3339
from ir.store.base import BundleListing
from ir.store.s3client import S3Connection, error_code, store_error
from ir.store.s3layout import MANIFEST_SUFFIX


class S3Listing:
    """The bundles of the store `uri`: `prefix` (no trailing slash) in `bucket`."""

    def __init__(
        self, client: Any, connection: S3Connection, bucket: str, prefix: str, uri: str
    ) -> None:
        self.client, self.connection = client, connection
        self.bucket, self.prefix, self.uri = bucket, prefix, uri

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def list_bundles(self) -> Iterator[BundleListing]:
        """Bundles under the prefix (status = capture outcome from the manifest object, or
        'unrecorded' when the manifest object is missing), then multipart uploads in progress."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        bundles: dict[str, int] = {}
        manifests: set[str] = set()
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith(layout.BUNDLE_SUFFIX):
                        bundles[key] = int(obj.get("Size", 0))
                    elif key.endswith(layout.BUNDLE_SUFFIX + MANIFEST_SUFFIX):
                        manifests.add(key[: -len(MANIFEST_SUFFIX)])
        except Exception as exc:  # noqa: BLE001
            raise store_error(exc, "ListObjectsV2", self.uri, self.connection) from None
        with ThreadPoolExecutor(8) as pool:
            rows = list(
                pool.map(lambda k: self._listing(k, bundles[k], k in manifests), sorted(bundles))
            )
        yield from sorted(rows, key=lambda r: (r.started_at or "", r.location))
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for up in page.get("Uploads", []):
                    key = up["Key"]
                    name = key.rsplit("/", 1)[-1].removesuffix(layout.BUNDLE_SUFFIX)
                    case = (
                        key[len(prefix) :].split("/", 1)[0] if "/" in key[len(prefix) :] else None
                    )
                    yield BundleListing(
                        self.location(key),
                        name,
                        case,
                        None,
                        rfc3339(up.get("Initiated")),
                        0,
                        "uploading (incomplete multipart upload)",
                    )
        except Exception as exc:  # noqa: BLE001 -- uploads in progress are a bonus; bundles were listed
            if error_code(exc) not in ("AccessDenied", "NotImplemented"):
                raise store_error(exc, "ListMultipartUploads", self.uri, self.connection) from None

    def _listing(self, key: str, size: int, has_manifest: bool) -> BundleListing:
        location = self.location(key)
        name = key.rsplit("/", 1)[-1].removesuffix(layout.BUNDLE_SUFFIX)
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=key + MANIFEST_SUFFIX if has_manifest else key
            )
        except Exception as exc:  # noqa: BLE001
            return BundleListing(
                location,
                name,
                None,
                None,
                None,
                size,
                f"unreadable: {store_error(exc, 'HeadObject', location, self.connection).message}",
            )
        meta = {k: unquote(v) for k, v in head.get("Metadata", {}).items()}
        status = (
            meta.get("ir-outcome", "unknown")
            if has_manifest
            else "unrecorded (no manifest object; push again)"
        )
        return BundleListing(
            location,
            meta.get("ir-bundle-id", name),
            meta.get("ir-case"),
            meta.get("ir-target"),
            meta.get("ir-started"),
            size,
            status,
            meta.get("ir-root-digest"),
        )
