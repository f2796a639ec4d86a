"""The write path of the S3 store: one bundle's upload from its start to S3's confirmation.

`S3Uploader` creates the multipart upload (`ir.store.multipart` sends the parts), saves its state
in the spool after every part, completes and confirms it, then tags the object, copies the custody
records and appends 'uploaded', and writes the manifest object. Any S3 failure leaves the bundle
in the spool with its upload state (`confirmed=False, spooled=<path>`) for `ir bundle push`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ir.bundle.custody import FileCustody, append_record
from ir.bundle.reader import BundleReader
from ir.clock import rfc3339
from ir.errors import IrError, StoreError
from ir.store.base import StoreResult
from ir.store.multipart import (
    MultipartUpload,
    PartLayout,
    UploadOutcome,
    iter_range,
    object_matches,
)
from ir.store.s3client import S3Connection, error_code, is_denied, store_error
from ir.store.s3custody import S3Custody, TeeCustody, WriteOnlyCustody
from ir.store.s3layout import MANIFEST_SUFFIX, b64sha, bundle_metadata, tag_text, version_arg
from ir.store.s3lock import LOCK_ARGS, lock_check
from ir.store.s3options import S3Options
from ir.store.spool import UploadState, custody_path, remove_spooled, state_path, write_state


@dataclass
class Upload:
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


class S3Uploader:
    """Uploads bundles into one bucket for the store `uri` (the write path of `S3Store`)."""

    def __init__(self, client: Any, connection: S3Connection, bucket: str, uri: str) -> None:
        self.client, self.connection = client, connection
        self.bucket, self.uri = bucket, uri

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def adopt(self, upload: Upload, size: int, known: dict[int, Any]) -> None:
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

    def already_there(
        self, upload: Upload, size: int, version_id: str | None
    ) -> UploadOutcome | None:
        """The outcome when S3 already holds this exact object (an earlier run completed it, or
        the answer to its completion was lost); None when it does not."""
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

    def new_upload(
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
    ) -> Upload:
        """The upload of the open bundle file `fd` to `key`: the multipart engine with the object's
        metadata, encryption and Object Lock arguments. Its state is saved in the spool at every
        change, and the bucket is checked once before the multipart upload is created."""
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
        upload = Upload(bundle_id, self.bucket, key, fd, path, options, retain_until, engine)
        engine.on_state = lambda _engine: self.save_state(upload)
        engine.before_create = lambda: self._check_bucket(upload)
        return upload

    def _check_bucket(self, upload: Upload) -> None:
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
            warnings, upload.lock_ok = lock_check(
                self.client, self.connection, self.bucket, self.uri, upload.options
            )
            upload.warnings.extend(warnings)
            if not upload.lock_ok:
                for name in LOCK_ARGS:
                    upload.engine.create_args.pop(name, None)
        upload.checked = True

    def save_state(
        self,
        upload: Upload,
        *,
        error: str | None = None,
        stage: str = "uploading",
        version_id: str | None = None,
    ) -> None:
        """Write the upload's state beside the bundle (what `ir bundle push` resumes from)."""
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

    def spool(
        self,
        upload: Upload,
        bundle: Path,
        error: StoreError,
        stage: str = "uploading",
        version_id: str | None = None,
    ) -> StoreResult:
        """The result of an upload that failed: the bundle stays in the spool with its state, and
        the warnings say how to finish it."""
        warnings = [f"S3 upload failed: {error.message}", *upload.warnings]
        detail: dict[str, Any] = {
            "error": error.message,
            "state": None,
            "bundle_id": upload.bundle_id,
        }
        try:
            self.save_state(upload, error=error.message, stage=stage, version_id=version_id)
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

    def conclude(
        self,
        upload: Upload,
        bundle: Path,
        custody_signer: Any,
        *,
        size: int | None = None,
        completed: UploadOutcome | None = None,
    ) -> StoreResult:
        """Complete and confirm the upload (unless `completed` says S3 has it), then tag the
        object, copy the custody records and append 'uploaded', and write the manifest object.
        Any failure keeps the bundle in the spool (`spool`)."""
        size = os.fstat(upload.fd).st_size if size is None else size
        engine = upload.engine
        if completed is None:
            if engine.error is not None or not engine.done:
                return self.spool(
                    upload, bundle, engine.error or StoreError("upload did not finish")
                )
            try:
                completed = engine.complete(size)
            except StoreError as exc:
                return self.spool(upload, bundle, exc)
        upload.warnings.extend(completed.warnings)
        try:
            with BundleReader(FdSource(upload.fd, str(bundle))) as reader:
                manifest_bytes, manifest = reader.manifest_bytes, reader.manifest
            root_digest = hashlib.sha256(manifest_bytes).hexdigest()
            self._tag(upload, completed, manifest, root_digest)
            record = self._record_custody(upload, bundle, completed, root_digest, custody_signer)
            self._put_manifest(upload, completed, manifest, manifest_bytes, root_digest)
        except StoreError as exc:
            return self.spool(
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

    def _tag(self, upload: Upload, outcome: UploadOutcome, manifest: Any, root_digest: str) -> None:
        tags = {
            "ir-case": manifest.case_id,
            "ir-bundle-id": manifest.bundle_id,
            "ir-root-digest": root_digest,
            "ir-outcome": manifest.outcome,
            **upload.options.tags,
        }
        version = version_arg(outcome.version_id)
        try:
            self.client.put_object_tagging(
                Bucket=self.bucket,
                Key=upload.key,
                **version,
                Tagging={
                    "TagSet": [
                        {"Key": tag_text(k, 128), "Value": tag_text(v, 256)}
                        for k, v in tags.items()
                    ]
                },
            )
        except Exception as exc:  # noqa: BLE001 -- tags help searching; the evidence is safe without
            upload.warnings.append(
                f"tags not set: {store_error(exc, 'PutObjectTagging', self.location(upload.key), self.connection).message}"
            )

    def _object_args(self, upload: Upload) -> dict[str, Any]:
        args = {**upload.options.encryption_args()}
        if upload.lock_ok:
            args.update(upload.options.lock_args(upload.retain_until))
        return args

    def _put_manifest(
        self,
        upload: Upload,
        outcome: UploadOutcome,
        manifest: Any,
        manifest_bytes: bytes,
        root_digest: str,
    ) -> None:
        metadata = {
            **bundle_metadata(manifest),
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
                ChecksumSHA256=b64sha(manifest_bytes),
                Metadata=metadata,
                **self._object_args(upload),
            )
        except Exception as exc:  # noqa: BLE001
            raise store_error(exc, "PutObject", self.location(key), self.connection) from None

    def _record_custody(
        self, upload: Upload, bundle: Path, outcome: UploadOutcome, root_digest: str, signer: Any
    ) -> dict[str, Any]:
        """Copy the local custody records to S3 (those it lacks), then append 'uploaded'."""
        s3_log = S3Custody(
            self.client, self.connection, self.bucket, upload.key, self._object_args(upload)
        )
        local = FileCustody(custody_path(bundle))
        local_lines = local.read_lines()
        remote_lines = s3_log.try_read_lines()
        remote: S3Custody | WriteOnlyCustody = s3_log
        if remote_lines is None:
            # Write-only credentials: S3 cannot be read, so the local chain is the reference
            # and If-None-Match keeps every record number from being written twice.
            remote_lines = []
            remote = WriteOnlyCustody(s3_log, local)
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
            TeeCustody(remote, local),
            action="uploaded",
            bundle_id=bundle_id,
            bundle_digest=root_digest,
            detail=detail,
            signer=signer,
        )


class FdSource:
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


def _size_and_digest(bundle: Path) -> tuple[int, str]:
    try:
        with BundleReader.open(bundle) as reader:
            return bundle.stat().st_size, reader.root_digest if reader.sealed else ""
    except (IrError, OSError):
        return 0, ""
