"""Verification of a bundle: structure, root digest, every artifact's stored and content digests,
checksum list, journal, signature and custody chain. Each failure names the artifact or record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ir.bundle import layout
from ir.bundle.custody import CustodyCheck, check_chain
from ir.bundle.pipeline import BackgroundHasher, prefetch
from ir.bundle.reader import BundleReader, decompress_bounded
from ir.bundle.signing import KeyLookup, PublicKey, SignatureCheck, check_signature
from ir.bundle.trust import as_trust
from ir.bundle.writer import content_sums, stored_sums
from ir.errors import ExitCode, IntegrityError

# Verdicts, from best to worst. VALID: intact and signed by a trusted key. UNSIGNED and
# UNTRUSTED: intact (every digest agrees), origin not proven (no signature; a key not trusted).
# INCOMPLETE: the capture did not finish (no seal: the writer stopped; or sealed `interrupted`).
# TAMPERED: the bytes are not what was sealed -- altered, or a finished bundle damaged or cut
# short afterwards (verify cannot tell malice from accident; the message says what it saw).
VALID, UNSIGNED, UNTRUSTED = "valid", "unsigned", "untrusted"
INCOMPLETE, TAMPERED = "incomplete", "tampered"


def origin_accepted(
    verdict: str, *, allow_unsigned: bool = False, allow_untrusted: bool = False
) -> bool:
    """Does the policy accept `verdict` -- a bundle's, or a signature check's status (the same
    words) -- as proof enough of origin: valid, or unsigned / untrusted where allowed."""
    return verdict == VALID or (verdict, True) in (
        (UNSIGNED, allow_unsigned),
        (UNTRUSTED, allow_untrusted),
    )


@dataclass
class VerifyReport:
    bundle: str
    integrity: str = VALID  # valid | incomplete | tampered: do the digests agree?
    root_digest: str | None = None
    bundle_id: str | None = None
    outcome: str | None = None
    signature: SignatureCheck | None = None
    custody: CustodyCheck | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    artifacts_checked: int = 0
    bytes_checked: int = 0
    summary: str | None = None  # the one sentence that explains a failed integrity verdict

    def fail(self, verdict: str, message: str) -> None:
        self.errors.append(message)
        if verdict == TAMPERED or self.integrity == VALID:
            self.integrity = verdict

    @property
    def intact(self) -> bool:
        """Every digest agrees (whoever made it)."""
        return self.integrity == VALID

    @property
    def verdict(self) -> str:
        """valid (intact and authentic), unsigned, untrusted, incomplete or tampered."""
        if not self.intact:
            return self.integrity
        status = self.signature.status if self.signature is not None else "unsigned"
        return {"valid": VALID, "unsigned": UNSIGNED}.get(status, UNTRUSTED)

    @property
    def authentic(self) -> bool:
        return self.verdict == VALID

    def exit_code_for(self, *, allow_unsigned: bool = False, allow_untrusted: bool = False) -> int:
        """0 valid; 6 (UNTRUSTED) intact but origin not proven, unless the policy allows it;
        1 incomplete or tampered."""
        if origin_accepted(
            self.verdict, allow_unsigned=allow_unsigned, allow_untrusted=allow_untrusted
        ):
            return int(ExitCode.OK)
        return int(ExitCode.UNTRUSTED if self.intact else ExitCode.FAILED)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode(self.exit_code_for())

    def cause(self, *, allow_unsigned: bool = False, allow_untrusted: bool = False) -> str | None:
        """Why exit_code_for(...) is not 0, in one sentence; None when it is 0."""
        if not self.exit_code_for(allow_unsigned=allow_unsigned, allow_untrusted=allow_untrusted):
            return None
        if not self.intact:
            head = self.summary or (self.errors[0] if self.errors else "verification failed")
            more = sum(1 for e in self.errors if e not in head)
            said = head if head.startswith("bundle is ") else f"{self.verdict}: {head}"
            return said + (f" ({more} more problem(s) found)" if more else "")
        if self.verdict == UNSIGNED:
            return "unsigned: every digest agrees, but no signature proves who made the bundle"
        detail = (
            self.signature.detail if self.signature is not None else "not signed by a trusted key"
        )
        return f"untrusted: every digest agrees, but it is {detail}: its origin is not proven"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "verdict": self.verdict,
            "intact": self.intact,
            "authentic": self.authentic,
            "root_digest": self.root_digest,
            "bundle_id": self.bundle_id,
            "outcome": self.outcome,
            "signature": None if self.signature is None else vars(self.signature),
            "custody": None
            if self.custody is None
            else {
                "records": len(self.custody.records),
                "signed": self.custody.signed,
                "trusted": self.custody.trusted,
                "errors": self.custody.errors,
                "warnings": self.custody.warnings,
            },
            "summary": self.summary,
            "errors": self.errors,
            "warnings": self.warnings,
            "artifacts_checked": self.artifacts_checked,
            "bytes_checked": self.bytes_checked,
        }


def verify_bundle(
    reader: BundleReader,
    *,
    trust: KeyLookup | PublicKey | None = None,
    custody_lines: list[bytes] | None = None,
    expected_digest: str | None = None,
    progress: Callable[[int], None] | None = None,
    custody_problems: list[str] | None = None,
) -> VerifyReport:
    """Check everything a bundle declares, and who signed it against `trust` (a TrustStore, or
    one public key). Raises BundleFormatError only for unusable input."""
    trust = as_trust(trust)
    report = VerifyReport(bundle=reader.source.name)
    # Damaged or unfinished? A file whose seal was written (its capture finished) is damaged by
    # any structural problem: tampered. One never sealed is incomplete, unless also altered.
    finished = reader.seal_evidence() if reader.problems or not reader.sealed else None
    verdict = TAMPERED if reader.corrupt or finished else INCOMPLETE
    journal = reader.journal() if not reader.sealed else []
    report.summary = _summary(reader, finished, len(journal))
    for problem in reader.problems:  # each one, unless the summary says it already
        if report.summary is None or problem not in report.summary:
            report.fail(verdict, problem)
    if report.summary is not None:
        report.fail(verdict, report.summary)
    if not reader.sealed:
        for entry in journal:
            report.warnings.append(
                f"journaled artifact {entry.get('name')!r} ({entry.get('size')} bytes, "
                f"status {entry.get('status')})"
            )
        return report
    # a seal cut short by its writer lacks its last members: that is incomplete, not tampered
    sealing = reader.truncated and not finished
    manifest_bytes = reader.manifest_bytes
    report.root_digest = digest = hashlib.sha256(manifest_bytes).hexdigest()
    _check_root_digest(reader, digest, expected_digest, report, sealing)
    manifest = reader.manifest  # BundleFormatError if malformed: unusable input
    report.bundle_id, report.outcome = manifest.bundle_id, manifest.outcome
    header_bytes = reader.read_member(layout.HEADER_MEMBER, 1024 * 1024)
    if hashlib.sha256(header_bytes).hexdigest() != manifest.header_sha256:
        report.fail(TAMPERED, "header.json does not match the digest recorded in the manifest")
    elif reader.header.get("bundle_id") != manifest.bundle_id:
        report.fail(TAMPERED, "header.json and manifest.json name different bundle ids")
    if manifest.outcome == "interrupted":
        report.fail(
            INCOMPLETE, "capture was interrupted: the bundle holds only what was captured before"
        )
    elif manifest.outcome in ("partial", "failed", "recovered"):
        failed = [
            f"{c.name}: {c.error}" for c in manifest.collectors if c.status in ("failed", "partial")
        ]
        report.warnings.append(
            f"capture outcome is {manifest.outcome}" + ("; " + "; ".join(failed) if failed else "")
        )
    _check_artifacts(reader, report, progress)
    _check_members_listed(reader, report)
    _check_sums(reader, report, sealing)
    _check_journal(reader, report)
    report.signature = check_signature(reader.signature_document(), manifest_bytes, trust)
    if report.signature.status == "invalid":
        report.fail(TAMPERED, f"signature: {report.signature.detail}")
    if custody_lines is not None:
        report.custody = check_chain(custody_lines, digest, trust, manifest.bundle_id)
        for error in report.custody.errors:
            report.fail(TAMPERED, error)
        report.warnings.extend(report.custody.warnings)
    for problem in custody_problems or ():  # what the store saw: a record rewritten or deleted
        report.fail(TAMPERED, problem)
    if reader.source.name.endswith(layout.PARTIAL_SUFFIX) and report.intact:
        # Killed between the seal's fsync and the rename: whole and verified, never renamed.
        report.warnings.append(
            f"sealed but still named {layout.PARTIAL_SUFFIX}: the capture stopped after its last "
            f"write and before the rename; everything in it is verified: rename it to "
            f"{layout.BUNDLE_SUFFIX} to file it"
        )
    return report


def _summary(reader: BundleReader, finished: str | None, journaled: int) -> str | None:
    """One sentence for a file whose structure is not whole: damaged after its capture finished,
    or unfinished (and then how far it got). None for a whole file."""
    first = reader.problems[0] if reader.problems else "no manifest"
    if finished and not reader.sealed:
        return (
            f"bundle is damaged: {first}, after its capture had finished ({finished}); its "
            f"manifest cannot be read ({journaled} artifact(s) readable before the damage); use "
            "another copy (the store, the spool)"
        )
    if finished and reader.problems:
        return (
            f"bundle is damaged: {first}, after its capture had finished ({finished}); use "
            "another copy (the store, the spool)"
        )
    if not reader.sealed:
        return (
            f"bundle is incomplete: no manifest (the capture did not finish); {journaled} "
            "artifact(s) were fully written before it stopped"
            + (f"; and it is damaged: {first}" if reader.corrupt else "")
        )
    if reader.problems and not reader.corrupt:
        return f"bundle is incomplete: the capture stopped while it wrote the seal ({first})"
    return None


def _check_root_digest(
    reader: BundleReader, digest: str, expected: str | None, report: VerifyReport, sealing: bool
) -> None:
    if layout.ROOT_DIGEST_MEMBER not in reader.members:
        report.fail(
            INCOMPLETE if sealing else TAMPERED,
            "manifest.json.sha256 is missing" + (" (never written)" if sealing else ""),
        )
    else:
        recorded = reader.read_member(layout.ROOT_DIGEST_MEMBER, 4096)
        if recorded != f"{digest}  {layout.MANIFEST_MEMBER}\n".encode():
            report.fail(
                TAMPERED,
                f"manifest.json does not match manifest.json.sha256 (actual digest {digest}, "
                f"recorded {recorded[:64].decode('ascii', 'replace')})",
            )
    if expected and expected.removeprefix("sha256:") != digest:
        report.fail(TAMPERED, f"root digest {digest} differs from the expected {expected}")


def _check_artifacts(
    reader: BundleReader, report: VerifyReport, progress: Callable[[int], None] | None
) -> None:
    for entry in reader.manifest.artifacts:
        where = f"artifact {entry.name!r}"
        stored_hash = hashlib.sha256()
        content_hash = BackgroundHasher(hashlib.sha256())
        # Three stages in parallel: read + stored hash | decompress | content hash.
        stored = prefetch(_hashed(reader.stored_chunks(entry), stored_hash, report, progress))
        try:
            for out in decompress_bounded(stored, entry.size, entry.name):
                content_hash.update(out)
        except IntegrityError as exc:
            report.fail(TAMPERED, exc.message)
            continue
        finally:
            content_hash.close()
        report.artifacts_checked += 1
        if stored_hash.hexdigest() != entry.stored_sha256:
            report.fail(TAMPERED, f"{where}: stored bytes do not match stored_sha256")
        if content_hash.hexdigest() != entry.sha256:
            report.fail(TAMPERED, f"{where}: content does not match its sha256")
        if entry.status != "ok":
            report.warnings.append(f"{where} is {entry.status}: {entry.error}")


def _hashed(
    chunks: Iterator[bytes],
    digest: Any,
    report: VerifyReport,
    progress: Callable[[int], None] | None,
) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        report.bytes_checked += len(chunk)
        if progress:
            progress(len(chunk))
        yield chunk


def _check_members_listed(reader: BundleReader, report: VerifyReport) -> None:
    listed = {layout.artifact_member(a.name) for a in reader.manifest.artifacts}
    for name in reader.members:
        if name.startswith(layout.ARTIFACT_PREFIX) and name not in listed:
            report.fail(TAMPERED, f"member {name!r} is in the file but not in the manifest")


def _check_sums(reader: BundleReader, report: VerifyReport, sealing: bool) -> None:
    for member, expected in (
        (layout.SUMS_MEMBER, stored_sums(reader.manifest)),
        (layout.CONTENT_SUMS_MEMBER, content_sums(reader.manifest)),
    ):
        if member not in reader.members:
            report.fail(
                INCOMPLETE if sealing else TAMPERED,
                f"{member} is missing" + (" (never written)" if sealing else ""),
            )
        elif reader.read_member(member).decode("utf-8", "replace") != expected:
            report.fail(TAMPERED, f"{member} does not agree with the manifest")


def _check_journal(reader: BundleReader, report: VerifyReport) -> None:
    """Each journal entry must equal the manifest's entry for that artifact, field for field."""
    by_name = {a.name: asdict(a) for a in reader.manifest.artifacts}
    seen = 0
    for entry in reader.journal():
        if "_invalid" in entry:
            report.fail(TAMPERED, f"journal entry {entry['_invalid']} is not a valid JSON object")
            continue
        seen += 1
        if by_name.get(str(entry.get("name"))) != entry:
            report.fail(
                TAMPERED,
                f"journal entry for artifact {entry.get('name')!r} disagrees with the manifest",
            )
    if seen != len(by_name):
        report.fail(
            TAMPERED, f"{seen} journal entries for {len(by_name)} artifacts in the manifest"
        )
