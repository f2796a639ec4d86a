"""The custody log of a bundle in S3: one object per record, `<key>.custody/<seq:06d>.json`
(S3 cannot append), written with If-None-Match so two handlers never write the same record
number; and the stand-ins used beside it (write-only credentials, a local copy kept in step)."""

from __future__ import annotations

import json
from typing import Any

from ir.bundle.custody import FileCustody
from ir.errors import StoreError
from ir.store.s3client import S3Connection, is_denied, put_once, store_error
from ir.store.s3layout import CUSTODY_DIR_SUFFIX, b64sha


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
            "ChecksumSHA256": b64sha(body),
            **self._args(),
        }
        try:
            answer = put_once(self.client, put)
        except Exception as exc:  # noqa: BLE001
            raise store_error(
                exc, "PutObject", f"s3://{self.bucket}/{key}", self.connection
            ) from None
        if answer is None:
            raise self._taken(seq)

    def _taken(self, seq: int) -> StoreError:
        return StoreError(
            f"custody record {seq} of s3://{self.bucket}/{self._bundle_key} was written by "
            "someone else at the same time; run the command again"
        )

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


class WriteOnlyCustody:
    """S3 custody records that these credentials cannot read back: the local chain stands in."""

    def __init__(self, remote: S3Custody, local: FileCustody) -> None:
        self.remote, self.local = remote, local
        self.where = remote.where

    def read_lines(self) -> list[bytes]:
        return self.local.read_lines()

    def append_line(self, line: bytes) -> None:
        self.remote.append_line(line)


class TeeCustody:
    """Appends to the S3 log and to a local copy kept beside a local bundle."""

    def __init__(self, primary: Any, copy: FileCustody | None) -> None:
        self.primary, self.copy = primary, copy

    def read_lines(self) -> list[bytes]:
        return list(self.primary.read_lines())

    def append_line(self, line: bytes) -> None:
        self.primary.append_line(line)
        if self.copy is not None:
            self.copy.append_line(line)
