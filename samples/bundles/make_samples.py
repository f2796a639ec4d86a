#!/usr/bin/env python3
"""Regenerate the sample bundles in this directory (byte-identical for the same ir version).

  compromised.tar (+ .custody.jsonl)  a pod after an intrusion, with planted facts: a process
      running from a deleted binary in /tmp, a listener not in the pod spec (31337), an outbound
      connection (203.0.113.7:4444), files added to /usr/bin and /usr/local/bin, /etc/passwd
      changed, executables in /tmp and /dev/shm, logs in several formats (nginx common log, Go
      log, klog, syslog, JSON with epoch, RFC 3339 with offsets; a previous instance without
      runtime times), Kubernetes events, the Falco alert, ir's actions and custody records
      (quarantine, replace). Hostile text too: an HTML/script injection and a terminal escape.
  clean.tar (+ .custody.jsonl)  the replacement pod, for `ir bundle diff`.
  tampered.tar  compromised.tar with one byte of one artifact flipped (replay must refuse it).

Both good bundles are signed with demo-signing.key (a demo key, committed on purpose: never use
it for real evidence). Check with `--public-key samples/bundles/demo-signing.pub`.

Run from the repository root:  python samples/bundles/make_samples.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repository root: tests.replay_fixtures

from ir.bundle.reader import BundleReader  # noqa: E402
from ir.bundle.signing import generate_keypair, load_signer  # noqa: E402
from ir.store.local import custody_path  # noqa: E402
from tests.replay_fixtures import build_bundle, clean_spec, compromised_spec  # noqa: E402


def main() -> None:
    key = HERE / "demo-signing.key"
    if not key.exists():
        generate_keypair(HERE, "demo-signing")
    signer = load_signer(str(key))
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in (("compromised", compromised_spec()), ("clean", clean_spec())):
            sealed = build_bundle(Path(tmp), spec, signer=signer)
            target = HERE / f"{name}.tar"
            shutil.copyfile(sealed.path, target)
            shutil.copyfile(custody_path(sealed.path), custody_path(target))
            print(
                f"{target.relative_to(HERE.parent.parent)}: {sealed.size} bytes, root digest {sealed.root_digest}"
            )
    tampered = HERE / "tampered.tar"
    shutil.copyfile(HERE / "compromised.tar", tampered)
    shutil.copyfile(custody_path(HERE / "compromised.tar"), custody_path(tampered))
    with BundleReader.open(tampered) as reader:
        entry = reader.entry("containers/web/processes.jsonl")
    with open(tampered, "r+b") as fh:  # flip one byte in the middle of the stored artifact
        fh.seek(entry.offset + entry.stored_size // 2)
        byte = fh.read(1)
        fh.seek(entry.offset + entry.stored_size // 2)
        fh.write(bytes([byte[0] ^ 0x20]))
    print(
        f"{tampered.relative_to(HERE.parent.parent)}: one byte of containers/web/processes.jsonl flipped"
    )


if __name__ == "__main__":
    main()
