"""Talking to S3: `s3://` URIs, a boto3 client built the standard AWS way (profile, region,
credentials chain, `AWS_ENDPOINT_URL`), and botocore failures turned into one-line StoreErrors.

Nothing here knows about bundles; `ir.store.s3` (and the `ir.store.s3*` modules beside it) and
`ir.store.multipart` build on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ir.errors import StoreError, UsageError

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 120
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

# Codes worth trying again: the server or the path to it had a bad moment.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "BadDigest",
        "XAmzContentSHA256Mismatch",
        "InvalidDigest",
        "OperationAborted",
        "500",
        "502",
        "503",
        "504",
    }
)

# What each S3 call needs in an IAM policy, so an AccessDenied can say what to grant.
PERMISSIONS = {
    "HeadBucket": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "PutObject": "s3:PutObject",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObjectTagging": "s3:PutObjectTagging",
    "GetObjectRetention": "s3:GetObjectRetention",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
}


class TransientStoreError(StoreError):
    """An S3 failure that may pass (network, 5xx, throttling, a part damaged in transit)."""


@dataclass(frozen=True)
class S3Ref:
    """`s3://bucket/key[?versionId=...]`: a prefix (store) or an object (bundle)."""

    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.uri + (f"?versionId={self.version_id}" if self.version_id else "")


def parse_s3_uri(uri: str) -> S3Ref:
    """Split an `s3://` URI. Raises UsageError for anything else or an empty bucket name."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise UsageError(f"{uri!r} is not an s3://BUCKET/KEY URI")
    version = parse_qs(parts.query).get("versionId", [None])[0]
    return S3Ref(parts.netloc, parts.path.lstrip("/"), version)


@dataclass(frozen=True)
class S3Connection:
    """How to reach S3. Unset fields follow the AWS conventions (AWS_PROFILE, AWS_REGION,
    AWS_ENDPOINT_URL, ~/.aws/config, instance and pod roles)."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None

    @property
    def effective_endpoint(self) -> str | None:
        return self.endpoint_url or endpoint_from_env()

    def describe(self) -> str:
        return self.effective_endpoint or "AWS S3"

    def client(self, max_connections: int = 10) -> Any:
        """A boto3 S3 client. Raises StoreError for an unknown profile or unusable settings."""
        import boto3
        import botocore.exceptions
        from botocore.config import Config

        try:
            session = boto3.session.Session(profile_name=self.profile or None)
        except botocore.exceptions.ProfileNotFound:
            raise StoreError(
                f"AWS profile {self.profile!r} is not configured (see ~/.aws/config)"
            ) from None
        region = self.region or session.region_name
        endpoint = self.effective_endpoint
        config = Config(
            s3={
                # Every body ir sends carries a SHA-256 checksum header, which the signature covers
                # and S3 verifies: hashing the body once more for the signature is wasted CPU.
                "payload_signing_enabled": False,
                # S3-compatible servers (SeaweedFS, MinIO, Ceph) rarely serve virtual-hosted buckets.
                **({"addressing_style": "path"} if endpoint else {}),
            },
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=max_connections,
            user_agent_extra="ir-evidence",
        )
        try:
            return session.client(
                "s3",
                endpoint_url=endpoint,
                # Without a region botocore cannot sign; us-east-1 is what S3-compatible servers expect.
                region_name=region or "us-east-1",
                config=config,
            )
        except ValueError as exc:  # a malformed endpoint URL
            raise StoreError(f"cannot use S3 endpoint {endpoint!r}: {exc}") from None


def endpoint_from_env() -> str | None:
    """The S3 endpoint the AWS environment variables name, if any."""
    return next((os.environ[name] for name in ENDPOINT_ENV if os.environ.get(name)), None)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError ('' for other exceptions)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(exc: BaseException) -> bool:
    """True when trying again later may succeed (network, 5xx, throttling, a damaged part)."""
    import botocore.exceptions

    if isinstance(exc, TransientStoreError):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        return error_code(exc) in TRANSIENT_CODES or http_status(exc) >= 500
    return isinstance(
        exc,
        (
            botocore.exceptions.HTTPClientError,
            botocore.exceptions.ResponseStreamingError,
            ConnectionError,
            TimeoutError,
        ),
    )


def is_denied(exc: BaseException) -> bool:
    return error_code(exc) in ("AccessDenied", "403") or http_status(exc) == 403


def is_not_found(exc: BaseException) -> bool:
    return (
        error_code(exc) in ("NoSuchKey", "NoSuchVersion", "404", "NotFound")
        or http_status(exc) == 404
    )


def put_once(client: Any, args: dict[str, Any]) -> dict[str, Any] | None:
    """PutObject that never replaces an object: If-None-Match, or on a server without
    conditional writes, a HEAD first (a small race window). Returns the answer, or None when the
    key is taken; other failures as the client raised them."""
    try:
        try:
            return dict(client.put_object(IfNoneMatch="*", **args))
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) != "NotImplemented":
                raise
        try:
            client.head_object(Bucket=args["Bucket"], Key=args["Key"])
        except Exception as missing:  # noqa: BLE001
            if not is_not_found(missing):
                raise
            return dict(client.put_object(**args))
        return None
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return None
        raise


def store_error(
    exc: BaseException, operation: str, where: str, connection: S3Connection | None = None
) -> StoreError:
    """A one-line, precise StoreError for a failed S3 call (`operation` is the S3 API name);
    a TransientStoreError when trying again later may help."""
    if isinstance(exc, StoreError):
        return exc
    error = _describe(exc, operation, where, connection)
    return TransientStoreError(error.message) if is_transient(exc) else error


def _describe(
    exc: BaseException, operation: str, where: str, connection: S3Connection | None
) -> StoreError:
    import botocore.exceptions

    endpoint = connection.describe() if connection else "S3"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return StoreError(
            "no AWS credentials found: set AWS_PROFILE (or --aws-profile), AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run where an instance or pod role provides them"
        )
    if isinstance(exc, botocore.exceptions.PartialCredentialsError):
        return StoreError(f"incomplete AWS credentials: {exc}")
    if isinstance(exc, botocore.exceptions.CredentialRetrievalError):
        return StoreError(f"cannot obtain AWS credentials: {exc}")
    if isinstance(
        exc,
        (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ProxyConnectionError,
        ),
    ):
        return StoreError(
            f"cannot reach the S3 endpoint {endpoint} ({operation} {where}): connection failed"
        )
    if isinstance(exc, botocore.exceptions.SSLError):
        return StoreError(f"TLS error talking to {endpoint} ({operation} {where}): {exc}")
    if isinstance(
        exc,
        (
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.ResponseStreamingError,
            botocore.exceptions.HTTPClientError,
        ),
    ):
        return StoreError(
            f"the S3 endpoint {endpoint} stopped answering ({operation} {where}): {exc}"
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        return StoreError(_client_error_text(exc, operation, where, endpoint))
    if isinstance(exc, OSError):
        return StoreError(f"{operation} {where}: {exc.strerror or exc}")
    return StoreError(f"{operation} {where} failed: {type(exc).__name__}: {exc}")


def _client_error_text(exc: Any, operation: str, where: str, endpoint: str) -> str:
    code = error_code(exc)
    status = http_status(exc)
    message = str(exc.response.get("Error", {}).get("Message", "") or "").strip()
    bucket = where.removeprefix("s3://").split("/", 1)[0]
    if code == "NoSuchBucket" or (operation == "HeadBucket" and status == 404):
        return f"bucket {bucket!r} does not exist at {endpoint}"
    if code == "InvalidAccessKeyId":
        return f"the access key id is not known to {endpoint} (bad or revoked credentials)"
    if code == "SignatureDoesNotMatch":
        return f"the secret access key is wrong for this access key id ({endpoint} rejected the signature)"
    if code in ("ExpiredToken", "TokenRefreshRequired", "RequestExpired"):
        return "the AWS credentials have expired; refresh them (e.g. aws sso login) and try again"
    if code.startswith("KMS.") or "KMS" in code or "kms" in message.lower():
        return f"KMS refused {operation} on {where}: {code}: {message or 'no detail'}"
    if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
        permission = PERMISSIONS.get(operation, "the matching s3:* permission")
        hint = " (or the secret access key is wrong)" if code == "403" else ""
        return f"access denied: {operation} on {where}; the credentials need {permission}{hint}"
    if code == "NoSuchUpload":
        return f"the multipart upload for {where} no longer exists (aborted, expired or completed)"
    if code in ("NoSuchKey", "NoSuchVersion", "404", "NotFound"):
        return f"no such object: {where}"
    if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
        return f"S3 refused the data of {where}: its checksum did not match what was sent ({code})"
    if code == "InvalidBucketName":
        return f"invalid bucket name {bucket!r}"
    return f"S3 error on {operation} {where}: {code or status}: {message or 'no detail'}"
