"""The S3 evidence store: bundles stream to S3 while they are captured, and nothing is lost when
S3 is not there.

Objects, for a store `s3://BUCKET/PREFIX`:
  PREFIX/<case>/<bundle-id>.tar                 the bundle (multipart, SHA-256 checked per part)
  PREFIX/<case>/<bundle-id>.tar.manifest.json   its manifest.json, byte for byte (so its SHA-256
                                                is the root digest), with summary metadata for `ls`
  PREFIX/<case>/<bundle-id>.tar.custody/<seq>.json   one object per custody record (S3 cannot append)

The bundle is always written to the local spool first (`ir.store.spool`); the upload follows the
writer (`ir.store.multipart`). On any S3 failure the sealed bundle stays in the spool with its
upload state, the result says `confirmed=False, spooled=<path>`, and `ir bundle push` finishes the
job later. The spooled copy is deleted only once S3 confirmed the checksum and every record landed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ir.bundle import layout
from ir.bundle.custody import FileCustody, append_record
from ir.bundle.reader import BundleReader
from ir.bundle.signing import load_signer
from ir.clock import rfc3339, utcnow
from ir.errors import BundleFormatError, IrError, StoreError, UsageError
from ir.store.base import BundleHandle, BundleListing, StoreResult
from ir.store.local import describe_target, record_created
from ir.store.multipart import (
    FIRST_PART,
    MIN_PART,
    MultipartUpload,
    PartLayout,
    UploadOutcome,
    iter_range,
    object_matches,
)
from ir.store.s3client import (
    S3Connection,
    S3Ref,
    error_code,
    is_denied,
    is_not_found,
    parse_s3_uri,
    store_error,
)
from ir.store.spool import (
    UploadState,
    custody_path,
    default_spool_dir,
    ensure_dir,
    read_state,
    remove_spooled,
    state_path,
    try_lock,
    write_state,
)

MANIFEST_SUFFIX = ".manifest.json"
CUSTODY_DIR_SUFFIX = ".custody/"
SSE_MODES = ("AES256", "aws:kms")
RETENTION_MODES = ("GOVERNANCE", "COMPLIANCE")
MAX_USER_TAGS = 6  # S3 allows 10 tags per object; ir sets 4
META_LIMIT = 256
_TAG_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@")


@dataclass
class S3Options:
    """How bundles are stored: encryption, immutability, labels, and upload tuning."""

    sse: str | None = None  # "AES256" or "aws:kms"
    kms_key_id: str | None = None
    retention_mode: str | None = None  # "GOVERNANCE" or "COMPLIANCE"
    retention_days: int | None = None
    legal_hold: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    storage_class: str | None = None
    part_size: int = FIRST_PART
    concurrency: int = 4
    keep_spool: bool = False

    def __post_init__(self) -> None:
        if self.sse is not None:
            normal = {"aes256": "AES256", "kms": "aws:kms", "aws:kms": "aws:kms"}.get(
                self.sse.lower()
            )
            if normal is None:
                raise UsageError(
                    f"server-side encryption must be one of {', '.join(SSE_MODES)}, not {self.sse!r}"
                )
            self.sse = normal
        if self.kms_key_id and self.sse is None:
            self.sse = "aws:kms"
        if self.kms_key_id and self.sse != "aws:kms":
            raise UsageError("a KMS key id needs --sse aws:kms")
        if self.retention_mode is not None:
            self.retention_mode = self.retention_mode.upper()
            if self.retention_mode not in RETENTION_MODES:
                raise UsageError(
                    f"retention mode must be GOVERNANCE or COMPLIANCE, not {self.retention_mode!r}"
                )
            if not self.retention_days or self.retention_days <= 0:
                raise UsageError("a retention mode needs a positive number of retention days")
        elif self.retention_days:
            raise UsageError("retention days need a retention mode (GOVERNANCE or COMPLIANCE)")
        if len(self.tags) > MAX_USER_TAGS:
            raise UsageError(f"at most {MAX_USER_TAGS} tags (S3 allows 10 per object; ir sets 4)")
        if self.part_size < MIN_PART:
            raise UsageError(f"part size must be at least {MIN_PART} bytes (S3's minimum)")
        if self.concurrency < 1:
            raise UsageError("upload concurrency must be at least 1")

    @property
    def wants_lock(self) -> bool:
        return bool(self.retention_mode or self.legal_hold)

    def encryption_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def lock_args(self, retain_until: datetime | None) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.retention_mode and retain_until is not None:
            args["ObjectLockMode"] = self.retention_mode
            args["ObjectLockRetainUntilDate"] = retain_until
        if self.legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    def retain_until(self) -> datetime | None:
        if not self.retention_mode or not self.retention_days:
            return None
        return utcnow() + timedelta(days=self.retention_days)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> S3Options:
        """Options saved in a spool state file (unknown keys, like `retain_until`, are ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in names})


@dataclass
class _Upload:
    """One bundle on its way to S3: the open file, the engine, and what to say about it."""

    bundle_id: str
    bucket: str
    key: str
    fd: int
    path: Callable[[], Path]
    options: S3Options
    retain_until: datetime | None
    engine: MultipartUpload
    owned: bool = True  # the spool owns the bundle: delete it once S3 confirmed everything
    warnings: list[str] = field(default_factory=list)
    lock_ok: bool = True
    checked: bool = False


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
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()

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

    def attach(self, writer: Any) -> None:
        """Start streaming the writer's file to S3 in the background (never blocks the capture)."""
        key = self.key_for(writer.manifest.case_id, writer.bundle_id)
        fd = os.open(writer.path, os.O_RDONLY)
        try_lock(fd)  # a concurrent `ir bundle push` of the spool leaves this bundle alone
        upload = self._new_upload(
            writer.bundle_id,
            key,
            fd,
            self.options,
            _bundle_metadata(writer.manifest),
            path=lambda: writer.final_path if writer.sealed else writer.path,
        )
        with self._lock:
            self._uploads[writer.bundle_id] = upload
        writer.on_progress(upload.engine.wake)
        upload.engine.follow(lambda: int(writer.stable_offset))

    def finish(self, sealed: Any, custody_signer: Any = None) -> StoreResult:
        """Upload the rest of a sealed bundle, complete and confirm it, write the manifest object,
        custody records and tags. On failure the bundle stays spooled (confirmed=False)."""
        record_created(sealed, custody_signer)
        with self._lock:
            upload = self._uploads.pop(sealed.manifest.bundle_id, None)
        if upload is None:
            return self.push(sealed.path, custody_signer=custody_signer)
        try:
            upload.engine.finish(sealed.size)
            return self._conclude(upload, sealed.path, custody_signer)
        finally:
            os.close(upload.fd)

    def abandon(self, writer: Any) -> None:
        """The capture stopped unsealed: stop uploading, keep the `.partial` and the upload state."""
        with self._lock:
            upload = self._uploads.pop(writer.bundle_id, None)
        if upload is None:
            return
        try:
            upload.engine.stop()
            self._save_state(upload, error="capture abandoned before the bundle was sealed")
        finally:
            os.close(upload.fd)

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
            with BundleReader(_FdSource(fd, str(bundle))) as reader:
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
            upload = self._new_upload(
                manifest.bundle_id,
                key,
                fd,
                options,
                _bundle_metadata(manifest),
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
                    completed = self._already_there(upload, size, state.version_id)
                    upload.engine.upload_id = None
                if completed is None and upload.engine.upload_id is not None:
                    self._adopt(upload, size, {p.number: p for p in state.parts} if state else {})
                if completed is None and upload.engine.upload_id is None:
                    completed = self._already_there(upload, size, None)  # a lost completion answer
            except StoreError as exc:
                return self._spool(upload, bundle, exc)
            if completed is None:
                upload.engine.finish(size)
            return self._conclude(upload, bundle, custody_signer, size=size, completed=completed)
        finally:
            os.close(fd)

    def _adopt(self, upload: _Upload, size: int, known: dict[int, Any]) -> None:
        """Reuse what S3 holds of the earlier upload; forget the upload if S3 no longer has it."""
        try:
            upload.engine.adopt_existing(size, known)
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) != "NoSuchUpload":
                raise store_error(exc, "ListParts", upload.engine.where, self.connection) from None
            upload.engine.upload_id = None
            upload.warnings.append(
                "the earlier multipart upload is gone (aborted or expired); sending the "
                "whole bundle again"
            )

    def _already_there(
        self, upload: _Upload, size: int, version_id: str | None
    ) -> UploadOutcome | None:
        outcome = object_matches(
            self.client,
            self.connection,
            self.bucket,
            upload.key,
            upload.fd,
            size,
            upload.engine.layout,
            version_id,
        )
        if outcome is not None:
            upload.warnings.extend(outcome.warnings)
        return outcome

    # -- the shared ending -----------------------------------------------------------------------
    def _new_upload(
        self,
        bundle_id: str,
        key: str,
        fd: int,
        options: S3Options,
        metadata: dict[str, str],
        *,
        path: Callable[[], Path],
        upload_id: str | None = None,
        first_part: int | None = None,
        retain_until: datetime | None = None,
    ) -> _Upload:
        retain_until = retain_until or options.retain_until()
        create_args: dict[str, Any] = {
            "Metadata": metadata,
            "ContentType": "application/x-tar",
            **options.encryption_args(),
            **options.lock_args(retain_until),
        }
        if options.storage_class:
            create_args["StorageClass"] = options.storage_class
        engine = MultipartUpload(
            self.client,
            self.connection,
            self.bucket,
            key,
            fd,
            create_args=create_args,
            part_layout=PartLayout(first_part or options.part_size),
            concurrency=options.concurrency,
            upload_id=upload_id,
        )
        upload = _Upload(bundle_id, self.bucket, key, fd, path, options, retain_until, engine)
        engine.on_state = lambda _engine: self._save_state(upload)
        engine.before_create = lambda: self._check_bucket(upload)
        return upload

    def _check_bucket(self, upload: _Upload) -> None:
        """Once per upload, before it is created: the bucket exists and can lock, if asked to."""
        if upload.checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001
            # Write-only credentials may not look at the bucket; creating the upload will tell.
            if not is_denied(exc):
                raise store_error(
                    exc, "HeadBucket", f"s3://{self.bucket}", self.connection
                ) from None
        if upload.options.wants_lock:
            upload.warnings.extend(self._lock_warnings(upload))
            if not upload.lock_ok:
                for name in (
                    "ObjectLockMode",
                    "ObjectLockRetainUntilDate",
                    "ObjectLockLegalHoldStatus",
                ):
                    upload.engine.create_args.pop(name, None)
        upload.checked = True

    def _lock_warnings(self, upload: _Upload) -> list[str]:
        wanted = ", ".join(
            filter(
                None,
                [
                    f"{upload.options.retention_mode} retention for {upload.options.retention_days} days"
                    if upload.options.retention_mode
                    else "",
                    "legal hold" if upload.options.legal_hold else "",
                ],
            )
        )
        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = (
                config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            )
        except Exception as exc:  # noqa: BLE001
            code = error_code(exc)
            if code in (
                "ObjectLockConfigurationNotFoundError",
                "ObjectLockConfigurationNotFound",
            ) or is_not_found(exc):
                enabled = False
            else:
                return [
                    f"cannot read the Object Lock configuration of bucket {self.bucket!r} "
                    f"({store_error(exc, 'GetObjectLockConfiguration', self.uri, self.connection).message}); "
                    f"asking for {wanted} anyway"
                ]
        warnings = []
        if not enabled:
            upload.lock_ok = False
            warnings.append(
                f"bucket {self.bucket!r} does not have Object Lock enabled: the requested {wanted} "
                "CANNOT be applied; the bundle is stored without immutability (create the bucket with "
                "Object Lock to get it)"
            )
        try:
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
            if status != "Enabled":
                warnings.append(
                    f"bucket {self.bucket!r} has versioning {status or 'off'}: "
                    "the bundle object can be overwritten or deleted"
                )
        except Exception as exc:  # noqa: BLE001
            warnings.append(
                f"cannot read the versioning state of bucket {self.bucket!r}: "
                f"{store_error(exc, 'GetBucketVersioning', self.uri, self.connection).message}"
            )
        return warnings

    def _save_state(
        self,
        upload: _Upload,
        *,
        error: str | None = None,
        stage: str = "uploading",
        version_id: str | None = None,
    ) -> None:
        engine = upload.engine
        options = upload.options.to_dict()
        options["retain_until"] = upload.retain_until.isoformat() if upload.retain_until else None
        if not upload.lock_ok:
            options.update(retention_mode=None, retention_days=None, legal_hold=False)
        state = UploadState(
            bucket=self.bucket,
            key=upload.key,
            store_uri=self.uri,
            bundle_id=upload.bundle_id,
            endpoint_url=self.connection.effective_endpoint,
            region=self.connection.region,
            upload_id=engine.upload_id,
            first_part_size=engine.layout.first,
            parts=sorted(engine.parts.values(), key=lambda p: p.number),
            options=options,
            stage=stage,
            version_id=version_id,
            error=error,
            spooled=upload.owned,
        )
        write_state(upload.path(), state)

    def _spool(
        self,
        upload: _Upload,
        bundle: Path,
        error: StoreError,
        stage: str = "uploading",
        version_id: str | None = None,
    ) -> StoreResult:
        warnings = [f"S3 upload failed: {error.message}", *upload.warnings]
        detail: dict[str, Any] = {
            "error": error.message,
            "state": None,
            "bundle_id": upload.bundle_id,
        }
        try:
            self._save_state(upload, error=error.message, stage=stage, version_id=version_id)
            detail["state"] = str(state_path(bundle))
        except StoreError as exc:
            warnings.append(exc.message)
        size, digest = _size_and_digest(bundle)
        warnings.append(
            f"the bundle is kept in the spool: {bundle} (finish with: ir bundle push {bundle} "
            f"--store {self.uri})"
        )
        return StoreResult(
            self.location(upload.key),
            digest,
            size,
            confirmed=False,
            spooled=str(bundle),
            detail=detail,
            warnings=warnings,
        )

    def _conclude(
        self,
        upload: _Upload,
        bundle: Path,
        custody_signer: Any,
        *,
        size: int | None = None,
        completed: UploadOutcome | None = None,
    ) -> StoreResult:
        size = os.fstat(upload.fd).st_size if size is None else size
        engine = upload.engine
        if completed is None:
            if engine.error is not None or not engine.done:
                return self._spool(
                    upload, bundle, engine.error or StoreError("upload did not finish")
                )
            try:
                completed = engine.complete(size)
            except StoreError as exc:
                return self._spool(upload, bundle, exc)
        upload.warnings.extend(completed.warnings)
        try:
            with BundleReader(_FdSource(upload.fd, str(bundle))) as reader:
                manifest_bytes, manifest = reader.manifest_bytes, reader.manifest
            root_digest = hashlib.sha256(manifest_bytes).hexdigest()
            self._tag(upload, completed, manifest, root_digest)
            record = self._record_custody(upload, bundle, completed, root_digest, custody_signer)
            self._put_manifest(upload, completed, manifest, manifest_bytes, root_digest)
        except StoreError as exc:
            return self._spool(
                upload, bundle, exc, stage="completed", version_id=completed.version_id
            )
        detail = {
            "bundle_id": upload.bundle_id,
            "version_id": completed.version_id,
            "object_sha256": completed.object_sha256,
            "s3_checksum_sha256": completed.s3_checksum,
            "confirmed_by": completed.confirmed_by,
            "parts": len(completed.parts),
            "parts_sent": completed.parts_sent,
            "parts_reused": completed.parts_reused,
            "custody_seq": record.get("seq"),
            "kept": None,
        }
        if (
            upload.options.keep_spool or not upload.owned
        ):  # never delete what the spool does not own
            detail["kept"] = str(bundle)
            with contextlib.suppress(FileNotFoundError):
                state_path(bundle).unlink()
        else:
            remove_spooled(bundle)
        return StoreResult(
            self.location(upload.key),
            root_digest,
            size,
            confirmed=True,
            detail=detail,
            warnings=upload.warnings,
        )

    def _tag(
        self, upload: _Upload, outcome: UploadOutcome, manifest: Any, root_digest: str
    ) -> None:
        tags = {
            "ir-case": manifest.case_id,
            "ir-bundle-id": manifest.bundle_id,
            "ir-root-digest": root_digest,
            "ir-outcome": manifest.outcome,
            **upload.options.tags,
        }
        version = _version_arg(outcome.version_id)
        try:
            self.client.put_object_tagging(
                Bucket=self.bucket,
                Key=upload.key,
                **version,
                Tagging={
                    "TagSet": [
                        {"Key": _tag_text(k, 128), "Value": _tag_text(v, 256)}
                        for k, v in tags.items()
                    ]
                },
            )
        except Exception as exc:  # noqa: BLE001 -- tags help searching; the evidence is safe without
            upload.warnings.append(
                f"tags not set: {store_error(exc, 'PutObjectTagging', self.location(upload.key), self.connection).message}"
            )

    def _object_args(self, upload: _Upload) -> dict[str, Any]:
        args = {**upload.options.encryption_args()}
        if upload.lock_ok:
            args.update(upload.options.lock_args(upload.retain_until))
        return args

    def _put_manifest(
        self,
        upload: _Upload,
        outcome: UploadOutcome,
        manifest: Any,
        manifest_bytes: bytes,
        root_digest: str,
    ) -> None:
        metadata = {
            **_bundle_metadata(manifest),
            "ir-ended": manifest.ended_at or "",
            "ir-outcome": manifest.outcome,
            "ir-root-digest": root_digest,
            "ir-size": str(outcome.size),
            "ir-object-sha256": outcome.object_sha256,
            "ir-version-id": outcome.version_id or "",
        }
        key = upload.key + MANIFEST_SUFFIX
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=manifest_bytes,
                ContentType="application/json",
                ChecksumSHA256=_b64sha(manifest_bytes),
                Metadata=metadata,
                **self._object_args(upload),
            )
        except Exception as exc:  # noqa: BLE001
            raise store_error(exc, "PutObject", self.location(key), self.connection) from None

    def _record_custody(
        self, upload: _Upload, bundle: Path, outcome: UploadOutcome, root_digest: str, signer: Any
    ) -> dict[str, Any]:
        """Copy the local custody records to S3 (those it lacks), then append 'uploaded'."""
        s3_log = S3Custody(
            self.client, self.connection, self.bucket, upload.key, self._object_args(upload)
        )
        local = FileCustody(custody_path(bundle))
        local_lines = local.read_lines()
        remote_lines = s3_log.try_read_lines()
        remote: S3Custody | _WriteOnlyCustody = s3_log
        if remote_lines is None:
            # Write-only credentials: S3 cannot be read, so the local chain is the reference
            # and If-None-Match keeps every record number from being written twice.
            remote_lines = []
            remote = _WriteOnlyCustody(s3_log, local)
        if remote_lines[: len(local_lines)] == local_lines:
            for line in remote_lines[len(local_lines) :]:  # an earlier run got further in S3
                local.append_line(line)
            local_lines = remote_lines
        elif remote_lines != local_lines[: len(remote_lines)]:
            raise StoreError(
                f"{remote.where}: S3 holds custody records that differ from the local ones "
                f"({custody_path(bundle)}); resolve by hand, nothing was overwritten"
            )
        for line in local_lines[len(remote_lines) :]:
            remote.append_line(line)
        last = json.loads(local_lines[-1]) if local_lines else {}
        if (
            last.get("action") == "uploaded"
            and last.get("detail", {}).get("object_sha256") == outcome.object_sha256
        ):
            return last  # recorded by an earlier run whose ending was cut short
        detail = {
            "location": self.location(upload.key),
            "version_id": outcome.version_id,
            "size": outcome.size,
            "object_sha256": outcome.object_sha256,
            "s3_checksum_sha256": outcome.s3_checksum,
            "confirmed_by": outcome.confirmed_by,
            "parts": len(outcome.parts),
            "part_size": upload.engine.layout.first,
            "parts_reused": outcome.parts_reused,
            "sse": upload.options.sse,
            "kms_key_id": upload.options.kms_key_id,
            "retention": {
                "mode": upload.options.retention_mode,
                "until": rfc3339(upload.retain_until),
            }
            if upload.lock_ok and upload.options.retention_mode
            else None,
            "legal_hold": upload.lock_ok and upload.options.legal_hold,
        }
        bundle_id = (
            json.loads(local_lines[0]).get("bundle_id", upload.bundle_id)
            if local_lines
            else upload.bundle_id
        )
        return append_record(
            _TeeCustody(remote, local),
            action="uploaded",
            bundle_id=bundle_id,
            bundle_digest=root_digest,
            detail=detail,
            signer=signer,
        )

    # -- listing ---------------------------------------------------------------------------------
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

    # -- pull -------------------------------------------------------------------------------------
    def pull(self, ref: S3Ref, to: Path, *, public_key: Any = None) -> PullResult:
        """Download one bundle to `to/<case>/<id>.tar`, verify it there, and record the download
        in both custody logs. Raises StoreError/UsageError; a failed verification is in the result."""
        return pull_bundle(self.client, self.connection, ref, to, public_key=public_key)


# -- reading bundles from S3 -----------------------------------------------------------------------
class S3Source:
    """A ByteSource over one S3 object version: ranged GETs through a read-ahead buffer that
    grows while reads are sequential (256 KiB up to 16 MiB) and shrinks when they jump."""

    MIN_WINDOW = 256 * 1024
    MAX_WINDOW = 16 * 1024 * 1024

    def __init__(
        self,
        client: Any,
        connection: S3Connection,
        bucket: str,
        key: str,
        version_id: str | None = None,
    ) -> None:
        self.client, self.connection = client, connection
        self.bucket, self.key = bucket, key
        self.name = f"s3://{bucket}/{key}"
        try:
            self.head = client.head_object(Bucket=bucket, Key=key, **_version_arg(version_id))
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc):
                raise BundleFormatError(f"{self.name}: no such bundle object") from None
            raise store_error(exc, "HeadObject", self.name, connection) from None
        self.size = int(self.head.get("ContentLength", 0))
        self.version_id: str | None = self.head.get("VersionId") or version_id
        if self.version_id == "null":
            self.version_id = None
        self.etag = self.head.get("ETag")
        self.bytes_read = 0
        self.requests = 0
        self._buf = b""
        self._buf_start = 0
        self._window = self.MIN_WINDOW

    def read_at(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size or offset < 0:
            return b""
        end = min(offset + length, self.size)
        buf_end = self._buf_start + len(self._buf)
        if self._buf_start <= offset and end <= buf_end:
            return self._buf[offset - self._buf_start : end - self._buf_start]
        head = b""
        if self._buf_start <= offset < buf_end:  # the start is buffered: keep it, fetch the rest
            head = self._buf[offset - self._buf_start :]
            self._window = min(self.MAX_WINDOW, self._window * 2)
        elif offset == buf_end:
            self._window = min(self.MAX_WINDOW, self._window * 2)
        else:
            self._window = self.MIN_WINDOW
        start = offset + len(head)
        fetch_end = min(self.size, max(end, start + self._window))
        data = self._get(start, fetch_end)
        self._buf, self._buf_start = data, start
        return head + data[: end - start]

    def _get(self, start: int, end: int) -> bytes:
        pin = _version_arg(self.version_id) or ({"IfMatch": self.etag} if self.etag else {})
        last: Exception | None = None
        for _attempt in range(3):
            try:
                self.requests += 1
                body = self.client.get_object(
                    Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}", **pin
                )["Body"]
                data: bytes = body.read()
            except Exception as exc:  # noqa: BLE001
                if error_code(exc) in ("PreconditionFailed", "412"):
                    raise StoreError(f"{self.name} changed while it was being read") from None
                last = exc
                continue
            if len(data) == end - start:
                self.bytes_read += len(data)
                return data
            last = StoreError(
                f"{self.name}: short read ({len(data)} of {end - start} bytes at {start})"
            )
        assert last is not None
        raise store_error(last, "GetObject", self.name, self.connection)

    def close(self) -> None:
        self._buf = b""


class S3Custody:
    """The custody log of an S3 bundle: one object per record, `<key>.custody/<seq:06d>.json`,
    written with If-None-Match so two handlers can never write the same record number."""

    def __init__(
        self,
        client: Any,
        connection: S3Connection,
        bucket: str,
        key: str,
        object_args: dict[str, Any] | None = None,
    ) -> None:
        self.client, self.connection = client, connection
        self.bucket = bucket
        self.prefix = key + CUSTODY_DIR_SUFFIX
        self.where = f"s3://{bucket}/{self.prefix}"
        self.object_args = object_args
        self._bundle_key = key
        self._bundle_version: str | None = None
        self.rewritten: list[str] = []  # found by the last read (see _rewritten)

    def try_read_lines(self) -> list[bytes] | None:
        """The records, or None when the credentials may not read them (write-only)."""
        try:
            return self._read()
        except Exception as exc:  # noqa: BLE001
            if is_denied(exc):
                return None
            raise store_error(exc, "GetObject", self.where, self.connection) from None

    def read_lines(self) -> list[bytes]:
        try:
            return self._read()
        except Exception as exc:  # noqa: BLE001
            raise store_error(exc, "GetObject", self.where, self.connection) from None

    def _read(self) -> list[bytes]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            keys.extend(
                obj["Key"] for obj in page.get("Contents", []) if obj["Key"].endswith(".json")
            )
        lines = []
        for key in sorted(keys):  # zero-padded sequence numbers: name order is record order
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            lines.append(body.read(1024 * 1024 + 1).rstrip(b"\n"))
        self.rewritten = self._rewritten()
        return lines

    def _rewritten(self) -> list[str]:
        """Records written more than once or deleted (a versioned, e.g. Object Lock, bucket keeps
        every version: a record replaced after a delete marker shows here). Empty when the bucket
        keeps no versions or the credentials may not list them (nothing can be said then)."""
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            versions: dict[str, int] = {}
            deleted: set[str] = set()
            for page in pages:
                for v in page.get("Versions", []):
                    versions[v["Key"]] = versions.get(v["Key"], 0) + 1
                deleted.update(m["Key"] for m in page.get("DeleteMarkers", []))
        except Exception:  # noqa: BLE001 -- no versions to compare: say nothing
            return []
        found = [
            f"custody record {key.rsplit('/', 1)[-1]} was rewritten: {n} versions in S3"
            for key, n in sorted(versions.items())
            if n > 1
        ]
        found += [
            f"custody record {key.rsplit('/', 1)[-1]} was deleted (a delete marker in S3)"
            for key in sorted(deleted)
        ]
        return found

    def append_line(self, line: bytes) -> None:
        try:
            seq = int(json.loads(line).get("seq"))
        except (ValueError, TypeError, AttributeError):
            seq = len(self.read_lines()) + 1
        key = f"{self.prefix}{seq:06d}.json"
        body = line + b"\n"
        put = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "ContentType": "application/json",
            "ChecksumSHA256": _b64sha(body),
            **self._args(),
        }
        try:
            try:
                self.client.put_object(IfNoneMatch="*", **put)
            except Exception as exc:  # noqa: BLE001
                if error_code(exc) != "NotImplemented":
                    raise
                # A server without conditional writes: check, then write (a small race window).
                if self._exists(key):
                    raise _Taken() from None
                self.client.put_object(**put)
        except _Taken:
            raise self._taken(seq) from None
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise self._taken(seq) from None
            raise store_error(
                exc, "PutObject", f"s3://{self.bucket}/{key}", self.connection
            ) from None

    def _taken(self, seq: int) -> StoreError:
        return StoreError(
            f"custody record {seq} of s3://{self.bucket}/{self._bundle_key} was written by "
            "someone else at the same time; run the command again"
        )

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc):
                return False
            raise
        return True

    def _args(self) -> dict[str, Any]:
        """Records appended later inherit the bundle's encryption and retention."""
        if self.object_args is not None:
            return self.object_args
        args: dict[str, Any] = {}
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._bundle_key)
        except Exception:  # noqa: BLE001 -- inheriting is best effort; the record matters more
            self.object_args = args
            return args
        if head.get("ServerSideEncryption"):
            args["ServerSideEncryption"] = head["ServerSideEncryption"]
        if head.get("SSEKMSKeyId"):
            args["SSEKMSKeyId"] = head["SSEKMSKeyId"]
        if head.get("ObjectLockMode") and head.get("ObjectLockRetainUntilDate"):
            args["ObjectLockMode"] = head["ObjectLockMode"]
            args["ObjectLockRetainUntilDate"] = head["ObjectLockRetainUntilDate"]
        self.object_args = args
        return args


class _Taken(Exception):
    """A custody record number is already used."""


class _WriteOnlyCustody:
    """S3 custody records that these credentials cannot read back: the local chain stands in."""

    def __init__(self, remote: S3Custody, local: FileCustody) -> None:
        self.remote, self.local = remote, local
        self.where = remote.where

    def read_lines(self) -> list[bytes]:
        return self.local.read_lines()

    def append_line(self, line: bytes) -> None:
        self.remote.append_line(line)


class _TeeCustody:
    """Appends to the S3 log and to a local copy kept beside a local bundle."""

    def __init__(self, primary: Any, copy: FileCustody | None) -> None:
        self.primary, self.copy = primary, copy

    def read_lines(self) -> list[bytes]:
        return list(self.primary.read_lines())

    def append_line(self, line: bytes) -> None:
        self.primary.append_line(line)
        if self.copy is not None:
            self.copy.append_line(line)


@dataclass
class S3BundleHandle(BundleHandle):
    """A bundle read from S3 by ranged GETs. With `record_access` (a handling that copies
    evidence out, e.g. `ir bundle extract`), closing it appends a 'downloaded' custody record
    when anything beyond the tar index (manifest, artifacts) was read; reading verbs (verify,
    show, replay) write nothing into custody unless asked."""

    source: S3Source | None = None
    baseline: int = 0
    record_access: bool = False

    def close(self) -> None:
        try:
            self._record()
        finally:
            self.reader.close()

    def __exit__(self, *exc: object) -> None:
        if not exc or exc[0] is None:
            self.close()
            return
        with contextlib.suppress(IrError):  # never hide the error that is already on its way
            self._record()
        self.reader.close()

    def _record(self) -> None:
        source = self.source
        if (
            not self.record_access
            or source is None
            or source.bytes_read <= self.baseline
            or not self.reader.sealed
        ):
            return
        self.record_access = False
        append_record(
            self.custody,
            action="downloaded",
            bundle_id=self.reader.manifest.bundle_id,
            bundle_digest=self.reader.root_digest,
            detail={
                "location": self.display,
                "mode": "stream",
                "bytes": source.bytes_read,
                "requests": source.requests,
                "version_id": source.version_id,
            },
            signer=load_signer(None),  # the hand that writes the record signs it
        )


def open_s3_bundle(
    ref: str,
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    client: Any = None,
    record_access: bool = False,
) -> S3BundleHandle:
    """Open `s3://bucket/key[?versionId=...]` for streaming reads (verify, show, cat, extract).

    Raises UsageError for a bad URI, BundleFormatError when it is no bundle, StoreError for S3."""
    parsed = parse_s3_uri(ref)
    if not parsed.key or parsed.key.endswith("/"):
        raise UsageError(f"{ref}: name a bundle object (s3://BUCKET/PREFIX/<case>/<id>.tar)")
    connection = S3Connection(endpoint_url, profile, region)
    client = client or connection.client()
    source = S3Source(client, connection, parsed.bucket, parsed.key, parsed.version_id)
    reader = BundleReader(source)
    custody = S3Custody(client, connection, parsed.bucket, parsed.key)
    return S3BundleHandle(
        reader,
        custody,
        str(parsed),
        None,
        source=source,
        baseline=source.bytes_read,
        record_access=record_access,
    )


@dataclass
class PullResult:
    path: Path
    verdict: str
    report: Any
    object_sha256: str
    custody_seq: int | None


def pull_bundle(
    client: Any,
    connection: S3Connection,
    ref: S3Ref,
    to: Path,
    *,
    public_key: Any = None,
    progress: Callable[[int], None] | None = None,
) -> PullResult:
    """Stream one bundle object to `to/<case>/<id>.tar`, check it against the digest recorded at
    upload, verify it, and append a 'downloaded' custody record to the S3 log and the local copy.

    A bundle that fails verification is kept as `<id>.tar.download` (evidence is never deleted)."""
    from ir.bundle.verify import TAMPERED, verify_bundle

    source = S3Source(client, connection, ref.bucket, ref.key, ref.version_id)
    custody = S3Custody(client, connection, ref.bucket, ref.key)
    lines = custody.read_lines()
    recorded = _recorded_sha256(lines)
    ensure_dir(to)
    tmp = to / (ref.key.rsplit("/", 1)[-1] + ".download")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        raise StoreError(f"{tmp} exists (an earlier pull?); remove it or pull elsewhere") from None
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            pin = _version_arg(source.version_id) or (
                {"IfMatch": source.etag} if source.etag else {}
            )
            body = client.get_object(Bucket=ref.bucket, Key=ref.key, **pin)["Body"]
            for chunk in body.iter_chunks(1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
                if progress:
                    progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except Exception as exc:  # noqa: BLE001
        raise store_error(exc, "GetObject", str(ref), connection) from None
    object_sha256 = digest.hexdigest()
    with BundleReader.open(tmp) as reader:
        report = verify_bundle(reader, trust=public_key, custody_lines=lines)
        if recorded and recorded != object_sha256:
            report.fail(
                TAMPERED,
                f"downloaded object has sha256 {object_sha256}, the upload recorded {recorded}",
            )
        manifest = reader.manifest if reader.sealed else None
    path = tmp
    if report.intact and manifest is not None:
        directory = ensure_dir(to / layout.safe_component(manifest.case_id, "uncased"))
        path = directory / f"{manifest.bundle_id}{layout.BUNDLE_SUFFIX}"
        if path.exists():
            raise StoreError(f"{path} already exists; the download stays at {tmp}")
        os.replace(tmp, path)
    local = FileCustody(custody_path(path))
    if not local.read_lines():
        for line in lines:
            local.append_line(line)
    seq = None
    if report.root_digest:
        record = append_record(
            _TeeCustody(custody, local),
            action="downloaded",
            bundle_id=report.bundle_id or "",
            bundle_digest=report.root_digest,
            detail={
                "location": str(ref),
                "version_id": source.version_id,
                "to": str(path.resolve()),
                "object_sha256": object_sha256,
                "verdict": report.verdict,
            },
            signer=load_signer(None),
        )
        seq = record.get("seq")
    return PullResult(path, report.verdict, report, object_sha256, seq)


# -- small pieces ------------------------------------------------------------------------------------
class _FdSource:
    """A ByteSource over an already open (and locked) file descriptor; closing leaves it open."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd, self.name = fd, name
        self.size = os.fstat(fd).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        return b"".join(iter_range(self.fd, offset, min(length, self.size - offset)))

    def close(self) -> None:
        return None


def _bundle_metadata(manifest: Any) -> dict[str, str]:
    """Object metadata (percent-encoded: S3 metadata travels as ASCII HTTP headers)."""
    values = {
        "ir-bundle-id": manifest.bundle_id,
        "ir-case": manifest.case_id,
        "ir-target": describe_target(manifest.target),
        "ir-started": manifest.started_at,
        "ir-operator": manifest.operator,
    }
    return {k: quote(str(v)[:META_LIMIT], safe=" :/@+=,._-") for k, v in values.items()}


def _tag_text(text: str, limit: int) -> str:
    return "".join(c if c in _TAG_SAFE else "_" for c in str(text))[:limit]


def _b64sha(data: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _version_arg(version_id: str | None) -> dict[str, str]:
    return {"VersionId": version_id} if version_id and version_id != "null" else {}


def _recorded_sha256(lines: list[bytes]) -> str | None:
    for line in reversed(lines):
        with contextlib.suppress(ValueError, AttributeError):
            record = json.loads(line)
            if record.get("action") == "uploaded":
                value = record.get("detail", {}).get("object_sha256")
                return str(value) if value else None
    return None


def _size_and_digest(bundle: Path) -> tuple[int, str]:
    try:
        with BundleReader.open(bundle) as reader:
            return bundle.stat().st_size, reader.root_digest if reader.sealed else ""
    except (IrError, OSError):
        return 0, ""


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True
