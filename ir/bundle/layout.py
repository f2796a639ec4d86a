"""Names and tar framing of the bundle file (see docs/bundle-format.md).

A bundle is a POSIX/GNU tar file. Its members, in order:
  header.json                  what this file is (format, bundle id, start time) -- first, so even
                               a truncated file identifies itself
  artifacts/<name>.zst         one zstd frame per artifact, written as the bytes arrive
  journal/<seq>.json           the artifact's entry (hashes, sizes) right after its data: a file cut
                               short by a crash can still be salvaged up to the last entry
  manifest.json                the sealed manifest (all entries, collectors, actions)
  manifest.json.sha256         `sha256sum` line of manifest.json: the root digest
  SHA256SUMS                   `sha256sum -c` list of every stored artifact member
  CONTENTS.sha256              SHA-256 of every artifact's decompressed content, by artifact name
  manifest.sig                 Ed25519 signature over manifest.json (optional)
"""

from __future__ import annotations

import re
import tarfile

from ir.errors import BundleFormatError

FORMAT_NAME = "ir-bundle"
FORMAT_VERSION = 1
BLOCK = 512
HEADER_MEMBER = "header.json"
MANIFEST_MEMBER = "manifest.json"
ROOT_DIGEST_MEMBER = "manifest.json.sha256"
SUMS_MEMBER = "SHA256SUMS"
CONTENT_SUMS_MEMBER = "CONTENTS.sha256"
SIGNATURE_MEMBER = "manifest.sig"
ARTIFACT_PREFIX = "artifacts/"
ARTIFACT_SUFFIX = ".zst"
JOURNAL_PREFIX = "journal/"
BUNDLE_SUFFIX = ".tar"
PARTIAL_SUFFIX = ".tar.partial"
CUSTODY_SUFFIX = ".custody.jsonl"

# Artifact names are ours, but a tampered manifest may carry anything: keep them boring.
# Short enough that the tar member name always fits one 512-byte header (no GNU long names).
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+@=-]*(/[A-Za-z0-9_][A-Za-z0-9._+@=-]*)*$")
MAX_NAME = 100 - len(ARTIFACT_PREFIX) - len(ARTIFACT_SUFFIX)


def check_artifact_name(name: str) -> str:
    """Return `name` if it is a valid artifact name, else raise BundleFormatError."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name.encode()) > MAX_NAME:
        raise BundleFormatError(f"invalid artifact name {name!r}")
    if any(part in (".", "..") for part in name.split("/")):
        raise BundleFormatError(f"invalid artifact name {name!r}")
    return name


def safe_component(text: str, fallback: str = "x") -> str:
    """Turn arbitrary text (a container name, a case id) into one artifact-name component."""
    cleaned = re.sub(r"[^A-Za-z0-9._+@=-]", "_", text).lstrip("._-")[:60]
    return cleaned or fallback


def artifact_member(name: str) -> str:
    return ARTIFACT_PREFIX + name + ARTIFACT_SUFFIX


def tar_header(name: str, size: int, mtime: float) -> bytes:
    """One 512-byte GNU tar header for a read-only regular file (base-256 sizes past 8 GiB)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = "ir"
    info.type = tarfile.REGTYPE
    buf = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")
    if len(buf) != BLOCK:  # a long name would add extension blocks and break offset patching
        raise BundleFormatError(f"member name too long for a single tar header: {name!r}")
    return buf


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)
