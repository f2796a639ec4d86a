"""The multipart upload engine: sends a bundle file to S3 as it grows, part by part.

Every part carries `ChecksumSHA256`, so S3 itself checks what it received; the upload is only
called done when S3 reports the checksum of the whole object (composite of the part digests)
that was computed here, or, on a server that reports none, when the object read back matches.

While a capture runs, the writer appends to `<id>.tar.partial` and rewrites one 512-byte block
only: the placeholder tar header of the artifact being written, which starts exactly at
`writer.stable_offset`. So any part lying wholly before `stable_offset`, or wholly after that
block and within what the file already holds, is final and can be sent now: a multi-GiB artifact
streams out while it is being written, and only the part holding its header waits for it to
close. Parts are read back from the file (never kept in memory beyond a small window), and the
file size is read before `stable_offset`, so a header patched in between is never sent stale.

The parts' layout and how they are read from the file are in `ir.store.s3parts`; what a completed
upload is and how S3's copy is confirmed, in `ir.store.s3confirm`. The names other modules import
from here stay importable from here (`__all__`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ir.bundle import layout
from ir.errors import StoreError
from ir.store.s3client import (
    S3Connection,
    TransientStoreError,
    error_code,
    is_transient,
    store_error,
)
from ir.store.s3confirm import UploadOutcome, composite_checksum, confirm_object, object_matches
from ir.store.s3parts import (
    FIRST_PART,
    MAX_PARTS,
    MIN_PART,
    MiB,
    PartLayout,
    b64,
    iter_range,
    read_part,
)
from ir.store.spool import PartState

__all__ = [
    "FIRST_PART",
    "MAX_PARTS",
    "MIN_PART",
    "ChecksumMismatch",
    "MultipartUpload",
    "PartLayout",
    "UploadOutcome",
    "iter_range",
    "object_matches",
]

HASH_SLICE = 64 * MiB  # hashing work per scheduler round, so part scheduling stays responsive
MAX_BACKOFF = 30.0
FINAL_ROUNDS = 2  # after the bundle is sealed, transient failures get this many more rounds
STATE_INTERVAL = 2.0


class MultipartUpload:
    """One multipart upload of one bundle file, fed from an open file descriptor.

    `follow(stable)` makes it follow a growing file (a background thread); `run_sealed(size)`
    sends whatever is missing of a finished file in the calling thread. Parts already held by
    S3 are reused after their checksum is checked against the file (`adopt_existing`).
    """

    def __init__(
        self,
        client: Any,
        connection: S3Connection,
        bucket: str,
        key: str,
        fd: int,
        *,
        create_args: dict[str, Any],
        part_layout: PartLayout,
        concurrency: int = 4,
        upload_id: str | None = None,
        on_state: Callable[[MultipartUpload], None] | None = None,
    ) -> None:
        self.client = client
        self.connection = connection
        self.bucket, self.key = bucket, key
        self.where = f"s3://{bucket}/{key}"
        self.fd = fd
        self.create_args = create_args
        self.layout = part_layout
        self.concurrency = max(1, concurrency)
        self.upload_id = upload_id
        self.parts: dict[int, PartState] = {}
        self.parts_reused = 0
        self.parts_sent = 0
        self.error: StoreError | None = None  # the last failure (transient ones may clear)
        self.fatal = False
        self.on_state = on_state
        self.before_create: Callable[[], None] | None = None  # e.g. check the bucket, once
        self.on_part: Callable[[int], None] | None = None  # bytes of a part sent or reused
        self._inflight: dict[int, Future[PartState]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stable: Callable[[], int] = lambda: 0
        self._final_size: int | None = None
        self._stopping = False
        self._backoff_until = 0.0
        self._failures = 0
        self._final_failures = 0
        self._hashed_to = 0
        self._full_hash = hashlib.sha256()
        self._last_state = 0.0
        self._low = 1  # every part below this one is sent

    # -- driving -----------------------------------------------------------------------------
    def follow(self, stable: Callable[[], int]) -> None:
        """Start sending parts of the growing file in a background thread."""
        self._stable = stable
        self._thread = threading.Thread(
            target=self._loop, name=f"ir-s3-upload-{self.key}", daemon=True
        )
        self._thread.start()

    def wake(self, _offset: int = 0) -> None:
        """A writer progress hook: cheap, called from the writer's thread."""
        self._wake.set()

    def finish(self, final_size: int) -> None:
        """The file is sealed at `final_size` bytes: send the rest, then return (no completion)."""
        self._final_size = final_size
        self._backoff_until = 0.0  # whatever the last failure was, try once more right away
        if self._thread is None:
            self._loop()
        else:
            self._wake.set()
            self._thread.join()

    def stop(self) -> None:
        """Stop sending (the capture was abandoned); parts in flight are allowed to land."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def done(self) -> bool:
        return (
            self._final_size is not None
            and self._complete_parts(self._final_size)
            and not self._inflight
        )

    # -- the scheduler -------------------------------------------------------------------------
    def _loop(self) -> None:
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ir-s3-part")
        try:
            while True:
                self._harvest()
                if self.fatal:
                    break
                final = self._final_size is not None
                if self._stopping and not self._inflight:
                    break
                if final and not self._inflight:
                    assert self._final_size is not None
                    if (
                        self._complete_parts(self._final_size)
                        and self._hashed_to >= self._final_size
                    ):
                        self.error = None
                        break
                    if self._final_failures > FINAL_ROUNDS:
                        break
                now = time.monotonic()
                if now >= self._backoff_until and not self._stopping:
                    if self.upload_id is None:
                        self._create()
                    if self.upload_id is not None:
                        self._schedule()
                self._hash_follow()
                self._save_state(final=False)
                if final and self._hashed_to < (self._final_size or 0):
                    continue  # more hashing to do: no sleep
                timeout = 0.5 if now >= self._backoff_until else min(0.5, self._backoff_until - now)
                self._wake.wait(timeout)
                self._wake.clear()
        except Exception as exc:  # noqa: BLE001 -- a bug or an OS error must not kill the capture
            self.error = store_error(exc, "upload", self.where, self.connection)
            self.fatal = True
        finally:
            self._executor.shutdown(wait=True)
            self._harvest()
            self._save_state(final=True)

    def _snapshot(self) -> tuple[int, int]:
        """(bytes in the file, stable offset). Size first: see the module docstring."""
        if self._final_size is not None:
            return self._final_size, self._final_size
        size = os.fstat(self.fd).st_size
        return size, self._stable()

    def _schedule(self) -> None:
        size, stable = self._snapshot()
        final = self._final_size is not None
        while self._low in self.parts:
            self._low += 1
        number = self._low
        while len(self._inflight) < self.concurrency:
            if number > MAX_PARTS:
                if size > self.layout.capacity:
                    self._fail(
                        StoreError(
                            f"{self.where}: bundle is larger than one S3 object can be "
                            f"({self.layout.capacity} bytes in {MAX_PARTS} parts)"
                        ),
                        fatal=True,
                    )
                return
            offset = self.layout.offset_of(number)
            if offset >= size:
                return
            part_size = self.layout.size_of(number)
            end = offset + part_size
            if final:
                part_size = max(0, min(part_size, size - offset))
                ready = True
            else:
                ready = end <= size and (end <= stable or offset >= stable + layout.BLOCK)
            if ready and number not in self.parts and number not in self._inflight:
                future = self._executor.submit(self._send, number, offset, part_size)  # type: ignore[union-attr]
                future.add_done_callback(lambda _f: self._wake.set())
                self._inflight[number] = future
            number += 1

    def _complete_parts(self, total: int) -> bool:
        return all(
            n in self.parts and self.parts[n].size == size
            for n, _, size in self.layout.parts_for(total)
        )

    def _harvest(self) -> None:
        for number, future in list(self._inflight.items()):
            if not future.done():
                continue
            del self._inflight[number]
            exc = future.exception()
            if exc is None:
                self.parts[number] = future.result()
                self.parts_sent += 1
                if self.on_part is not None:
                    self.on_part(self.parts[number].size)
                self._failures = 0
                if self.error is not None and not self.fatal:
                    self.error = None
            else:
                self._fail(exc)

    def _fail(self, exc: BaseException, fatal: bool | None = None) -> None:
        if fatal is None:
            fatal = not is_transient(exc)
        self.error = store_error(exc, "UploadPart", self.where, self.connection)
        if fatal:
            self.fatal = True
            return
        self._failures += 1
        if self._final_size is not None:
            self._final_failures += 1
            delay = 1.0
        else:
            delay = min(MAX_BACKOFF, 2.0 ** min(self._failures, 5))
        self._backoff_until = time.monotonic() + delay

    def _create(self) -> None:
        try:
            if self.before_create is not None:
                self.before_create()
            response = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="SHA256", **self.create_args
            )
        except Exception as exc:  # noqa: BLE001 -- classified by _fail
            self._fail(store_error(exc, "CreateMultipartUpload", self.where, self.connection))
            return
        self.upload_id = response["UploadId"]
        self._save_state(final=True)

    def _save_state(self, final: bool) -> None:
        if self.on_state is None:
            return
        now = time.monotonic()
        if final or now - self._last_state >= STATE_INTERVAL:
            self._last_state = now
            try:
                self.on_state(self)
            except StoreError as exc:
                self.error = exc  # a spool that cannot hold state is worth reporting, not dying for

    # -- hashing the whole file, in order, as far as it is final ----------------------------------
    def _hash_follow(self) -> None:
        _size, stable = self._snapshot()
        limit = min(stable, self._hashed_to + HASH_SLICE)
        for chunk in iter_range(self.fd, self._hashed_to, limit - self._hashed_to):
            self._full_hash.update(chunk)
            self._hashed_to += len(chunk)

    @property
    def object_sha256(self) -> str:
        return self._full_hash.hexdigest()

    # -- one part ---------------------------------------------------------------------------------
    def _send(self, number: int, offset: int, size: int) -> PartState:
        digest, body = read_part(self.fd, offset, size)
        checksum = b64(digest)
        response = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
            ContentLength=size,
            ChecksumSHA256=checksum,
        )
        echoed = response.get("ChecksumSHA256")
        if echoed and echoed != checksum:
            raise ChecksumMismatch(
                f"{self.where}: S3 recorded checksum {echoed} for part {number}, sent {checksum}"
            )
        return PartState(number, offset, size, digest.hex(), response.get("ETag"))

    # -- resuming ---------------------------------------------------------------------------------
    def adopt_existing(self, total: int, known: dict[int, PartState]) -> None:
        """Reuse the parts S3 holds for `self.upload_id` whose bytes match the file (checked by
        S3's ChecksumSHA256, else by the ETag the state file recorded for the same SHA-256, else
        by the part's MD5 ETag). Raises the ClientError of ListParts (e.g. NoSuchUpload)."""
        expected = {n: (o, s) for n, o, s in self.layout.parts_for(total)}
        listed = list(self._list_parts())
        numbers = [int(held["PartNumber"]) for held in listed]
        for held in listed:
            number = int(held["PartNumber"])
            if number not in expected or int(held.get("Size", -1)) != expected[number][1]:
                continue
            if numbers.count(number) > 1:
                continue  # listed twice (SeaweedFS keeps replaced parts): send it again, unambiguously
            offset, size = expected[number]
            sha = hashlib.sha256()
            for chunk in iter_range(self.fd, offset, size):
                sha.update(chunk)
            etag = str(held.get("ETag", ""))
            server_sum = held.get("ChecksumSHA256")
            record = known.get(number)
            if server_sum:
                ok = server_sum == b64(sha.digest())
            elif record is not None and record.etag == etag and record.sha256 == sha.hexdigest():
                ok = True
            else:  # no checksum from the server and no record of this part: its MD5 ETag decides
                md5 = hashlib.md5()
                for chunk in iter_range(self.fd, offset, size):
                    md5.update(chunk)
                ok = etag.strip('"') == md5.hexdigest()
            if ok:
                self.parts[number] = PartState(number, offset, size, sha.hexdigest(), etag)
                self.parts_reused += 1
                if self.on_part is not None:
                    self.on_part(size)

    def _list_parts(self) -> Iterator[dict[str, Any]]:
        marker = 0
        while True:
            response = self.client.list_parts(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumberMarker=marker
            )
            yield from response.get("Parts", [])
            if not response.get("IsTruncated"):
                return
            marker = int(response.get("NextPartNumberMarker", 0))

    # -- completing -------------------------------------------------------------------------------
    def complete(self, total: int) -> UploadOutcome:
        """Complete the upload and confirm the checksum. Raises StoreError (nothing recorded)."""
        if not self.done or self.upload_id is None:
            raise self.error or StoreError(f"{self.where}: upload is not finished")
        parts = [self.parts[n] for n, _, _ in self.layout.parts_for(total)]
        composite = composite_checksum(parts)
        try:
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={
                    "Parts": [
                        {
                            "PartNumber": p.number,
                            "ETag": p.etag,
                            "ChecksumSHA256": b64(bytes.fromhex(p.sha256)),
                        }
                        for p in parts
                    ]
                },
            )
        except Exception as exc:  # noqa: BLE001 -- a lost response to a completion that happened
            if error_code(exc) != "NoSuchUpload":
                raise store_error(
                    exc, "CompleteMultipartUpload", self.where, self.connection
                ) from None
            response = {}
        outcome = UploadOutcome(
            upload_id=self.upload_id,
            parts=parts,
            size=total,
            object_sha256=self.object_sha256,
            s3_checksum=composite,
            version_id=response.get("VersionId"),
            etag=response.get("ETag"),
            confirmed_by="",
            parts_sent=self.parts_sent,
            parts_reused=self.parts_reused,
        )
        confirm_object(
            self.client,
            self.connection,
            self.bucket,
            self.key,
            outcome,
            reported=response.get("ChecksumSHA256"),
        )
        return outcome


class ChecksumMismatch(TransientStoreError):
    """S3 answered a part with another checksum than the one sent: worth sending again."""
