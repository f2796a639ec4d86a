"""`ir collector send FILE`: what ir's node collector pod runs for the responder's ir (hidden).

Streams FILE to stdout in 1 MiB pieces and, at the end, writes its SHA-256 (hex) as the last
line of stderr: the collector's hash of the bundle in the same single read that sends it, which
the responder compares with its own hash of what arrived (ir.cluster.collector). A file that
changes size while it is sent is refused (exit 1)."""

from __future__ import annotations

import hashlib
import os
import sys

import click

from ir.errors import UsageError

CHUNK = 1024 * 1024


@click.group("collector", hidden=True)
def collector() -> None:
    """Commands ir runs inside its own node-collector pod (not for interactive use)."""


@collector.command("send")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
def send(path: str) -> int:
    """Write PATH to stdout and its SHA-256 to stderr (one read, both ends hash)."""
    digest = hashlib.sha256()
    out = sys.stdout.buffer
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        sent = 0
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            sent += len(chunk)
    out.flush()
    if sent != size:
        raise UsageError(f"{path} changed while it was sent ({sent} of {size} bytes)")
    sys.stderr.write(f"sha256 {digest.hexdigest()} {sent}\n")
    sys.stderr.flush()
    return 0


COMMANDS = [collector]
