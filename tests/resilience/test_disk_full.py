"""The evidence directory fills up during a capture: a real 8 MiB tmpfs (mounted here, as root)
and a container whose diff holds 20 MiB of incompressible data.

The promises: `ir capture container` exits non-zero with one `ir: error:` line and no traceback;
no `.tar` appears (nothing looks complete); what is left is a `.tar.partial` that verify reports
as not valid; nothing is written outside the evidence directory (the working directory and
$TMPDIR stay empty).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.resilience.faults import IrRun, check_store, ir_env, run_ir, tree
from tests.testbed.docker import DockerBed

pytestmark = pytest.mark.docker

DIFF_SCRIPT = (
    "mkdir /data; i=1; while [ $i -le 10 ]; do head -c 2097152 /dev/urandom > /data/f$i; i=$((i+1)); done; "
    "echo ready; exec sleep 100000"
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted at teardown."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def big_diff(make_container: Any) -> Any:
    return make_container(["sh", "-c", DIFF_SCRIPT], ready="ready", prefix="diskfull")


def capture_into_full_disk(
    container: Any, disk: Path, backend: str, bed: DockerBed, tmp_path: Path
) -> IrRun:
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmpdir"
    cwd.mkdir()
    tmp.mkdir()
    run = run_ir(
        [
            "capture",
            "container",
            container.name,
            "--store",
            str(disk / "evidence"),
            "--backend",
            backend,
        ],
        ir_env(DOCKER_HOST=bed.host, TMPDIR=str(tmp)),
        cwd=cwd,
        timeout=120,
    )
    assert not list(tree(cwd)) and not list(tree(tmp)), "written outside the evidence directory"
    return run


@pytest.mark.parametrize("backend", ["docker", "node"])
def test_disk_full_fails_cleanly_and_leaves_only_a_partial(
    backend: str, big_diff: Any, small_disk: Path, docker_bed: DockerBed, tmp_path: Path
) -> None:
    """ENOSPC in the evidence directory: non-zero exit, one error line, no traceback, no `.tar`,
    the `.tar.partial` left is reported incomplete, nothing written elsewhere."""
    run = capture_into_full_disk(big_diff, small_disk, backend, docker_bed, tmp_path)
    run.assert_clean_error()
    check = check_store(small_disk / "evidence")
    assert not check.sealed and len(check.partial) == 1, check
    assert {p.parent.parent for p in tree(small_disk)} <= {small_disk / "evidence"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "full", "tmpdir"]


def test_disk_full_error_names_the_cause(
    big_diff: Any, small_disk: Path, docker_bed: DockerBed, tmp_path: Path
) -> None:
    """The one error line says the evidence directory is full (No space left on device) and
    where the partial bundle is."""
    run = capture_into_full_disk(big_diff, small_disk, "node", docker_bed, tmp_path)
    line = run.assert_clean_error()
    assert "No space left on device" in line and ".tar.partial" in line, line
