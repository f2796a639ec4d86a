"""Coverage-guided fuzzing (atheris, libFuzzer) of what reads untrusted bytes: bundles (reader,
verifier, extractor), manifests, and alerts (parsers, then matching against the shipped playbooks).

    python tests/resilience/atheris_fuzz.py TARGET WORKDIR [libFuzzer flags, e.g. -max_total_time=60]

TARGET is bundle, manifest or alerts. WORKDIR receives the seed corpus (built from real inputs:
a sealed signed bundle, its manifest, the alert samples), the grown corpus and any crash file.
Expectation for every input: a clean IrError or a correct read; any other exception, a hang
(libFuzzer's -timeout) or a file written outside the extraction target is a crash. Run by
tests/resilience/test_fuzz_atheris.py with a short budget; give it hours by hand.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

with atheris.instrument_imports(include=["ir"]):
    from ir.bundle.extract import extract_bundle
    from ir.bundle.manifest import Manifest
    from ir.bundle.reader import BundleReader
    from ir.bundle.verify import verify_bundle
    from ir.errors import IrError
    from ir.playbook.alerts import parse_alerts
    from ir.playbook.loader import load_playbooks_strict
    from ir.playbook.match import TargetRefused, match_alert, resolve_target

from tests.fixtures_bundle import write_seed_bundle  # noqa: E402
from tests.resilience import ATHERIS_REGRESSIONS  # noqa: E402

PLAYBOOKS = load_playbooks_strict([REPO / "playbooks"])
SCRATCH = Path(tempfile.mkdtemp(prefix="ir-atheris-"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fuzz_bundle(data: bytes) -> None:
    work = Path(tempfile.mkdtemp(dir=SCRATCH))
    path, target = work / "b.tar", work / "out"
    path.write_bytes(data)
    fds = open_fds()
    try:
        with BundleReader.open(path) as reader:
            if verify_bundle(reader).intact:
                extract_bundle(reader, target)
    except IrError as exc:
        assert exc.message
    assert open_fds() == fds, "a file descriptor leaked"
    outside = {p.name for p in work.iterdir()} - {"b.tar", "out"}
    assert not outside, f"written outside the target: {outside}"
    if target.exists():
        for p in target.rglob("*"):
            assert p.resolve().is_relative_to(target.resolve()), p
    shutil.rmtree(work, ignore_errors=True)


def fuzz_manifest(data: bytes) -> None:
    try:
        Manifest.from_bytes(data)
    except IrError as exc:
        assert exc.message


def fuzz_alerts(data: bytes) -> None:
    try:
        alerts = parse_alerts(data)
    except IrError as exc:
        assert exc.message
        return
    for alert in alerts:
        assert isinstance(alert.rule, str) and alert.rule
        for result in match_alert(PLAYBOOKS, alert):
            if result.matched:
                try:
                    resolve_target(result.playbook, alert)
                except TargetRefused as exc:
                    assert str(exc)


def seed_corpus(target: str, corpus: Path) -> int:
    """Write the real seeds for TARGET into CORPUS; returns the largest seed's size."""
    corpus.mkdir(parents=True, exist_ok=True)
    seeds: dict[str, bytes] = {}
    if target in ("bundle", "manifest"):
        bundle = write_seed_bundle(Path(tempfile.mkdtemp(dir=SCRATCH)))
        with BundleReader.open(bundle) as reader:
            seeds[target] = bundle.read_bytes() if target == "bundle" else reader.manifest_bytes
    if target == "alerts":
        for sample in sorted((REPO / "samples" / "alerts").glob("*.json")):
            seeds[sample.name] = sample.read_bytes()
    for found in sorted((ATHERIS_REGRESSIONS / target).glob("*")):  # what fuzzing found once
        seeds[f"regression-{found.name}"] = found.read_bytes()
    for name, data in seeds.items():
        (corpus / f"seed-{name}").write_bytes(data)
    return max(len(data) for data in seeds.values())


TARGETS: dict[str, Callable[[bytes], None]] = {
    "bundle": fuzz_bundle,
    "manifest": fuzz_manifest,
    "alerts": fuzz_alerts,
}


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] not in TARGETS:
        raise SystemExit(__doc__)
    target, workdir = argv[1], Path(argv[2])
    corpus = workdir / "corpus"
    largest = seed_corpus(target, corpus)
    flags = [a for a in argv[3:] if a.startswith("-")]
    if not any(f.startswith("-max_len=") for f in flags):
        flags.append(f"-max_len={largest + 4096}")
    flags.append(f"-artifact_prefix={workdir}/")
    atheris.Setup([argv[0], *flags, str(corpus)], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
