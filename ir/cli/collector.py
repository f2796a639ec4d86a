"""`ir collector send FILE`: what ir's node collector pod runs for the responder's ir (hidden).

Streams FILE to stdout in 1 MiB pieces and, at the end, writes its SHA-256 (hex) as the last
line of stderr: the collector's hash of the bundle in the same single read that sends it, which
the responder compares with its own hash of what arrived (ir.cluster.collector). With --offset N
(resuming a transfer that broke after N bytes) the first N bytes are hashed, not sent: the hash is
still the whole file's. A file that changes size while it is sent is refused (exit 1).

`ir collector remove DIR` deletes a capture's work directory once its bundle arrived.

Both act only below ir's own work directories (the collector pod's emptyDir, the debug
container's scratch directory): exec into the collector is admitted for these commands alone
(deploy/kustomize/base/admission.yaml), and confining them here keeps that grant from reading or
deleting anything else on the node, whoever asks."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys

import click

from ir.cluster.collector import WORK as COLLECTOR_WORK
from ir.cluster.debug import WORK as DEBUG_WORK
from ir.errors import UsageError

CHUNK = 1024 * 1024
#: where ir's collector writes: the collector pod's emptyDir, the debug container's scratch dir
WORK_ROOTS = (COLLECTOR_WORK, DEBUG_WORK)


def confined(path: str, roots: tuple[str, ...] = WORK_ROOTS) -> str:
    """`path` resolved (symlinks followed) if it lies strictly below one of `roots`, else a
    UsageError: the collector reads and deletes nothing else."""
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real.startswith(base.rstrip("/") + "/"):
            return real
    raise UsageError(f"{path}: outside ir's collector work directories ({', '.join(roots)})")


@click.group("collector", hidden=True)
def collector() -> None:
    """Commands ir runs inside its own node-collector pod (not for interactive use)."""


@collector.command("send")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Send from this byte on.")
def send(path: str, offset: int) -> int:
    """Write PATH (from --offset) to stdout and the whole file's SHA-256 to stderr."""
    digest = hashlib.sha256()
    out = sys.stdout.buffer
    with open(confined(path), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if offset > size:
            raise UsageError(f"{path}: offset {offset} is past its end ({size} bytes)")
        read = 0
        while read < offset and (chunk := fh.read(min(CHUNK, offset - read))):
            digest.update(chunk)  # already at the other end: hashed, not sent
            read += len(chunk)
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            read += len(chunk)
    out.flush()
    if read != size:
        raise UsageError(f"{path} changed while it was sent ({read} of {size} bytes)")
    sys.stderr.write(f"sha256 {digest.hexdigest()} {read}\n")
    sys.stderr.flush()
    return 0


@collector.command("remove")
@click.argument("path", type=click.Path(file_okay=False, exists=False))
def remove(path: str) -> int:
    """Delete PATH, a capture's work directory (gone already: nothing to do)."""
    real = confined(path)
    if os.path.isdir(real):
        shutil.rmtree(real)
    return 0


COMMANDS = [collector]
