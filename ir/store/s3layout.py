"""How a bundle lies in S3: the names of its objects, the metadata and tags written on them, and
the small request arguments every S3 module shares (object version, SHA-256 checksum).

Objects, for a store `s3://BUCKET/PREFIX`:
  PREFIX/<case>/<bundle-id>.tar                 the bundle (multipart, SHA-256 checked per part)
  PREFIX/<case>/<bundle-id>.tar.manifest.json   its manifest.json, byte for byte (so its SHA-256
                                                is the root digest), with summary metadata for `ls`
  PREFIX/<case>/<bundle-id>.tar.custody/<seq>.json   one object per custody record (S3 cannot append)
  PREFIX/<case>/<name>                          a case's own documents (S3Store.put_document:
                                                a case index .json and its .sig), written once

May import ir.store.local (describe_target) and the standard library only.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

from ir.store.local import describe_target

MANIFEST_SUFFIX = ".manifest.json"
CUSTODY_DIR_SUFFIX = ".custody/"
META_LIMIT = 256
_TAG_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@")


def bundle_metadata(manifest: Any) -> dict[str, str]:
    """Object metadata (percent-encoded: S3 metadata travels as ASCII HTTP headers)."""
    values = {
        "ir-bundle-id": manifest.bundle_id,
        "ir-case": manifest.case_id,
        "ir-target": describe_target(manifest.target),
        "ir-started": manifest.started_at,
        "ir-operator": manifest.operator,
    }
    return {k: quote(str(v)[:META_LIMIT], safe=" :/@+=,._-") for k, v in values.items()}


def tag_text(text: str, limit: int) -> str:
    """A tag key or value S3 accepts: characters outside its set become `_`, cut at `limit`."""
    return "".join(c if c in _TAG_SAFE else "_" for c in str(text))[:limit]


def b64sha(data: bytes) -> str:
    """The `ChecksumSHA256` of a small object's body."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def version_arg(version_id: str | None) -> dict[str, str]:
    """`VersionId=...` for a request, or nothing for an unversioned object ("null")."""
    return {"VersionId": version_id} if version_id and version_id != "null" else {}
