"""Coverage-guided fuzzing with atheris (libFuzzer) of the bundle reader/verifier/extractor, the
manifest parser and the alert parsers + playbook matching, seeded with real inputs (see
atheris_fuzz.py). Each target runs IR_ATHERIS_SECONDS (default 15) in CI; any exception other
than a clean IrError, any input running over 10 s (a hang) or any write outside the extraction
target fails the test, and libFuzzer's crash file is named in the failure for replay:
`python tests/resilience/atheris_fuzz.py TARGET DIR CRASH_FILE`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is in the test extras: scripts/setup installs it")

HARNESS = Path(__file__).with_name("atheris_fuzz.py")
SECONDS = int(os.environ.get("IR_ATHERIS_SECONDS", "15"))


@pytest.mark.parametrize("target", ["bundle", "manifest", "alerts"])
def test_atheris_finds_nothing(target: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            target,
            str(tmp_path),
            f"-max_total_time={SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=1024",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    found = sorted(
        p.name
        for p in tmp_path.iterdir()
        if p.name.split("-")[0] in {"crash", "timeout", "oom", "leak"}
    )
    tail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0 and not found, f"{found}\n{tail}"
    runs = [line for line in run.stderr.splitlines() if line.startswith("Done ")]
    assert runs, tail  # libFuzzer ran to its time budget
    print(f"\natheris {target}: {runs[-1]}")
