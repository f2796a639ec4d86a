"""The S3 evidence store: bundles stream to S3 while they are captured, and nothing is lost when
S3 is not there. `S3Store` is the facade the rest of ir uses (the `Store` protocol, push, pull,
listing); the work is done beside it:
  ir.store.s3options   S3Options: encryption, Object Lock, tags, upload tuning
  ir.store.s3layout    the objects of a bundle in S3, their metadata and tags
  ir.store.s3upload    the write path: upload, spool state, completion, tags, manifest object
  ir.store.s3lock      whether the bucket can honour the Object Lock asked for
  ir.store.s3custody   the custody log as one object per record
  ir.store.s3read      the read path: ranged reads of a bundle in place, and pull
  ir.store.s3listing   the bundles and uploads in progress under a prefix
Every public name of those modules that callers used to import from here still is (`__all__`).

The bundle is always written to the local spool first (`ir.store.spool`); the upload follows the
writer (`ir.store.multipart`). On any S3 failure the sealed bundle stays in the spool with its
upload state, the result says `confirmed=False, spooled=<path>`, and `ir bundle push` finishes the
job later. The spooled copy is deleted only once S3 confirmed the checksum and every record landed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ir.bundle import layout
from ir.bundle.reader import BundleReader
from ir.bundle.signing import Signer
from ir.bundle.writer import BundleWriter, SealedBundle
from ir.clock import utcnow
from ir.errors import StoreError, UsageError
from ir.store.base import BundleListing, StoreResult
from ir.store.local import document_name, record_created, write_once
from ir.store.multipart import FIRST_PART, UploadOutcome
from ir.store.s3client import (
    S3Connection,
    S3Ref,
    parse_s3_uri,
    put_once,
    store_error,
)
from ir.store.s3custody import S3Custody
from ir.store.s3layout import (
    CUSTODY_DIR_SUFFIX,
    MANIFEST_SUFFIX,
    META_LIMIT,
    b64sha,
    bundle_metadata,
)
from ir.store.s3listing import S3Listing
from ir.store.s3lock import lock_check
from ir.store.s3options import MAX_USER_TAGS, RETENTION_MODES, SSE_MODES, S3Options
from ir.store.s3read import PullResult, S3BundleHandle, S3Source, open_s3_bundle, pull_bundle
from ir.store.s3upload import FdSource, S3Uploader, Upload
from ir.store.spool import default_spool_dir, ensure_dir, read_state, try_lock

__all__ = [
    "CUSTODY_DIR_SUFFIX",
    "MANIFEST_SUFFIX",
    "MAX_USER_TAGS",
    "META_LIMIT",
    "RETENTION_MODES",
    "SSE_MODES",
    "PullResult",
    "S3BundleHandle",
    "S3Custody",
    "S3Options",
    "S3Source",
    "S3Store",
    "open_s3_bundle",
    "pull_bundle",
]


class S3Store:
    """`s3://BUCKET/PREFIX` as an evidence store (see the module docstring)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        connection: S3Connection | None = None,
        options: S3Options | None = None,
        spool_dir: Path | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.connection = connection or S3Connection()
        self.options = options or S3Options()
        self.spool_dir = Path(spool_dir) if spool_dir else default_spool_dir()
        self.client = client or self.connection.client(max_connections=self.options.concurrency + 4)
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()
        self._uploader = S3Uploader(self.client, self.connection, bucket, self.uri)

    @staticmethod
    def open_bundle(ref: str, **options: Any) -> S3BundleHandle:
        """A bundle object `s3://bucket/key[?versionId=...]`, for reading (ir.store.s3read)."""
        return open_s3_bundle(ref, **options)

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        spool_dir: str | Path | None = None,
        keep_spool: bool = False,
        sse: str | None = None,
        kms_key_id: str | None = None,
        retention_mode: str | None = None,
        retention_days: int | None = None,
        legal_hold: bool = False,
        tags: dict[str, str] | None = None,
        storage_class: str | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> S3Store:
        """A store from `s3://BUCKET[/PREFIX]` and options (None means the default).

        Raises UsageError for a malformed URI or option, StoreError for an unknown AWS profile.
        """
        ref = parse_s3_uri(uri)
        if ref.version_id:
            raise UsageError(f"{uri}: a store is a bucket and prefix, not an object version")
        options = S3Options(
            sse=sse,
            kms_key_id=kms_key_id,
            retention_mode=retention_mode,
            retention_days=retention_days,
            legal_hold=legal_hold,
            tags=dict(tags or {}),
            storage_class=storage_class,
            part_size=part_size or FIRST_PART,
            concurrency=concurrency or 4,
            keep_spool=keep_spool,
        )
        return cls(
            ref.bucket,
            ref.key,
            connection=S3Connection(endpoint_url, profile, region),
            options=options,
            spool_dir=Path(spool_dir) if spool_dir else None,
        )

    # -- naming ----------------------------------------------------------------------------------
    def key_for(self, case_id: str, bundle_id: str) -> str:
        name = f"{layout.safe_component(case_id, 'uncased')}/{bundle_id}{layout.BUNDLE_SUFFIX}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- the Store protocol: capture -----------------------------------------------------------
    def staging_dir(self, case_id: str) -> Path:
        """The spool directory of a case: the bundle is written there, then uploaded."""
        return ensure_dir(ensure_dir(self.spool_dir) / layout.safe_component(case_id, "uncased"))

    def attach(self, writer: BundleWriter) -> None:
        """Start streaming the writer's file to S3 in the background (never blocks the capture)."""
        key = self.key_for(writer.manifest.case_id, writer.bundle_id)
        fd = os.open(writer.path, os.O_RDONLY)
        try_lock(fd)  # a concurrent `ir bundle push` of the spool leaves this bundle alone
        upload = self._uploader.new_upload(
            writer.bundle_id,
            key,
            fd,
            self.options,
            bundle_metadata(writer.manifest),
            path=lambda: writer.final_path if writer.sealed else writer.path,
        )
        with self._lock:
            self._uploads[writer.bundle_id] = upload
        writer.on_progress(upload.engine.wake)
        upload.engine.follow(lambda: int(writer.stable_offset))

    def finish(self, sealed: SealedBundle, custody_signer: Signer | None = None) -> StoreResult:
        """Upload the rest of a sealed bundle, complete and confirm it, write the manifest object,
        custody records and tags. On failure the bundle stays spooled (confirmed=False)."""
        record_created(sealed, custody_signer)
        with self._lock:
            upload = self._uploads.pop(sealed.manifest.bundle_id, None)
        if upload is None:
            return self.push(sealed.path, custody_signer=custody_signer)
        try:
            upload.engine.finish(sealed.size)
            return self._uploader.conclude(upload, sealed.path, custody_signer)
        finally:
            os.close(upload.fd)

    def abandon(self, writer: BundleWriter) -> None:
        """The capture stopped unsealed: stop uploading, keep the `.partial` and the upload state."""
        with self._lock:
            upload = self._uploads.pop(writer.bundle_id, None)
        if upload is None:
            return
        try:
            upload.engine.stop()
            self._uploader.save_state(
                upload, error="capture abandoned before the bundle was sealed"
            )
        finally:
            os.close(upload.fd)

    # -- case documents (a case index and its signature) ----------------------------------------
    def put_document(self, case_id: str, name: str, data: bytes) -> StoreResult:
        """PREFIX/<case>/<name>, written once: If-None-Match (a second write of the name is
        refused), its SHA-256 checked by S3 (ChecksumSHA256), with the store's encryption and
        Object Lock. When S3 fails, the document is kept in the spool (confirmed=False)."""
        name = document_name(name)
        in_case = f"{layout.safe_component(case_id, 'uncased')}/{name}"
        key = f"{self.prefix}/{in_case}" if self.prefix else in_case
        location = self.location(key)
        digest = hashlib.sha256(data).hexdigest()
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": "application/json",
            "ChecksumSHA256": b64sha(data),
            **self.options.encryption_args(),
        }
        warnings: list[str] = []
        if self.options.wants_lock:
            warnings, lock_ok = lock_check(
                self.client, self.connection, self.bucket, self.uri, self.options
            )
            if lock_ok:
                args.update(self.options.lock_args(self.options.retain_until()))
        try:
            answer = put_once(self.client, args)
        except Exception as exc:  # noqa: BLE001 -- S3 failed: the document is kept in the spool
            error = store_error(exc, "PutObject", location, self.connection).message
            spooled = self.staging_dir(case_id) / name
            write_once(spooled, data)
            return StoreResult(
                location,
                digest,
                len(data),
                confirmed=False,
                spooled=str(spooled),
                warnings=[
                    *warnings,
                    f"S3 upload failed: {error}",
                    f"kept in the spool: {spooled} (copy it to {location} once S3 is back)",
                ],
            )
        if answer is None:
            raise StoreError(f"{location} exists; a stored document is never overwritten")
        return StoreResult(
            location,
            digest,
            len(data),
            confirmed=True,
            detail={"version_id": answer.get("VersionId")},
            warnings=warnings,
        )

    # -- push: a sealed bundle from the spool (or anywhere) ------------------------------------------
    def push(
        self,
        bundle: Path,
        custody_signer: Any = None,
        progress: Callable[[int], None] | None = None,
    ) -> StoreResult:
        """Upload a sealed local bundle, resuming its multipart upload when S3 still holds parts.
        `progress(n)` is called with the bytes of each part sent or found already in S3.

        Raises StoreError when the bundle cannot even be read or is in use; S3 failures give a
        result with confirmed=False (the local copy is kept)."""
        bundle = Path(bundle)
        if bundle.name.endswith(layout.PARTIAL_SUFFIX):
            raise StoreError(
                f"{bundle}: a {layout.PARTIAL_SUFFIX} (the capture did not finish); nothing "
                "pushed (`ir bundle verify` tells whether it was sealed before it stopped)"
            )
        try:
            fd = os.open(bundle, os.O_RDONLY)
        except OSError as exc:
            raise StoreError(f"{bundle}: cannot open: {exc.strerror}") from None
        try:
            if not try_lock(fd):
                raise StoreError(
                    f"{bundle}: in use by another ir process (a capture or push); try later"
                )
            with BundleReader(FdSource(fd, str(bundle))) as reader:
                if not reader.sealed:
                    raise StoreError(f"{bundle}: not sealed (no manifest); nothing pushed")
                manifest = reader.manifest
            state = read_state(bundle)
            key = self.key_for(manifest.case_id, manifest.bundle_id)
            same_target = state is not None and state.bucket == self.bucket and state.key == key
            # Resuming: the options the upload was begun with. Elsewhere: this store's options.
            options = (
                S3Options.from_dict(state.options)
                if same_target and state is not None and state.options
                else self.options
            )
            options.keep_spool = self.options.keep_spool
            retain_until = None
            if same_target and state is not None and state.options.get("retain_until"):
                retain_until = datetime.fromisoformat(state.options["retain_until"])
                if retain_until <= utcnow():
                    retain_until = None  # long spooled: the period runs from this upload instead
            upload = self._uploader.new_upload(
                manifest.bundle_id,
                key,
                fd,
                options,
                bundle_metadata(manifest),
                path=lambda: bundle,
                upload_id=state.upload_id if same_target and state is not None else None,
                first_part=state.first_part_size
                if same_target and state is not None and state.first_part_size
                else None,
                retain_until=retain_until,
            )
            upload.engine.on_part = progress
            # Decided before any state file is written: a bundle outside the spool is never deleted.
            upload.owned = (state is not None and state.spooled) or _inside(bundle, self.spool_dir)
            size = os.fstat(fd).st_size
            completed: UploadOutcome | None = None
            try:
                if same_target and state is not None and state.stage == "completed":
                    # Completed earlier; only the records after it are missing.
                    completed = self._uploader.already_there(upload, size, state.version_id)
                    upload.engine.upload_id = None
                if completed is None and upload.engine.upload_id is not None:
                    self._uploader.adopt(
                        upload, size, {p.number: p for p in state.parts} if state else {}
                    )
                if completed is None and upload.engine.upload_id is None:
                    # A lost completion answer: the object may be complete in S3 already.
                    completed = self._uploader.already_there(upload, size, None)
            except StoreError as exc:
                return self._uploader.spool(upload, bundle, exc)
            if completed is None:
                upload.engine.finish(size)
            return self._uploader.conclude(
                upload, bundle, custody_signer, size=size, completed=completed
            )
        finally:
            os.close(fd)

    # -- listing ---------------------------------------------------------------------------------
    def list_bundles(self) -> Iterator[BundleListing]:
        """Bundles under the prefix (status = capture outcome from the manifest object, or
        'unrecorded' when the manifest object is missing), then multipart uploads in progress."""
        listing = S3Listing(self.client, self.connection, self.bucket, self.prefix, self.uri)
        return listing.list_bundles()

    # -- pull -------------------------------------------------------------------------------------
    def pull(self, ref: S3Ref, to: Path, *, public_key: Any = None) -> PullResult:
        """Download one bundle to `to/<case>/<id>.tar`, verify it there, and record the download
        in both custody logs. Raises StoreError/UsageError; a failed verification is in the result."""
        return pull_bundle(self.client, self.connection, ref, to, public_key=public_key)


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True
