"""The evidence bundle format: writer (streams in, hashes and compresses), reader, manifest,
custody log, signing, verification and safe extraction. Imports only ir.errors/ir.clock."""

from ir.bundle.manifest import ArtifactEntry, CollectorEntry, Manifest
from ir.bundle.reader import BundleReader
from ir.bundle.writer import ArtifactSink, BundleWriter

__all__ = [
    "ArtifactEntry",
    "ArtifactSink",
    "BundleReader",
    "BundleWriter",
    "CollectorEntry",
    "Manifest",
]
