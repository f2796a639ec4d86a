"""The read path of the S3 store: bundles read in place by ranged GETs (`S3Source`, opened as
an `S3BundleHandle` for verify, show, cat, extract and replay), and `pull_bundle`, which downloads
one bundle, checks it against the digest recorded at upload, verifies it and records the download
in custody."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ir.bundle import layout
from ir.bundle.custody import FileCustody, append_record
from ir.bundle.reader import BundleReader
from ir.bundle.signing import load_signer
from ir.errors import BundleFormatError, IrError, StoreError, UsageError
from ir.store.base import BundleHandle
from ir.store.s3client import (
    S3Connection,
    S3Ref,
    error_code,
    is_not_found,
    parse_s3_uri,
    store_error,
)
from ir.store.s3custody import S3Custody, TeeCustody
from ir.store.s3layout import version_arg
from ir.store.spool import custody_path, ensure_dir


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
            self.head = client.head_object(Bucket=bucket, Key=key, **version_arg(version_id))
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
        pin = version_arg(self.version_id) or ({"IfMatch": self.etag} if self.etag else {})
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
            pin = version_arg(source.version_id) or (
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
            TeeCustody(custody, local),
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


def _recorded_sha256(lines: list[bytes]) -> str | None:
    for line in reversed(lines):
        with contextlib.suppress(ValueError, AttributeError):
            record = json.loads(line)
            if record.get("action") == "uploaded":
                value = record.get("detail", {}).get("object_sha256")
                return str(value) if value else None
    return None
