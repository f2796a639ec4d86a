"""How bundles are stored in S3: encryption, Object Lock retention and legal hold, tags, storage
class and upload tuning (`S3Options`), checked when given and saved with a spooled upload so a
resumed upload keeps the options it was begun with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ir.clock import utcnow
from ir.errors import UsageError
from ir.store.multipart import FIRST_PART, MIN_PART

SSE_MODES = ("AES256", "aws:kms")
RETENTION_MODES = ("GOVERNANCE", "COMPLIANCE")
MAX_USER_TAGS = 6  # S3 allows 10 tags per object; ir sets 4


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
