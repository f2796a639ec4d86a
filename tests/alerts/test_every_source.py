"""Every alert source has its tests: a module of ir/playbook/alerts/ with `SOURCE` (found by
convention, ir.playbook.alerts.source_names()) has its file here, tests/alerts/test_<source>.py."""

from __future__ import annotations

from pathlib import Path

from ir.playbook.alerts import source_names

HERE = Path(__file__).resolve().parent


def test_each_alert_source_has_its_test_file() -> None:
    sources = source_names()
    assert sources, "no alert source found: ir.playbook.alerts.source_names() is empty"
    missing = [name for name in sources if not (HERE / f"test_{name}.py").is_file()]
    assert not missing, "alert sources without their tests: " + ", ".join(
        f"{name} (add tests/alerts/test_{name}.py)" for name in missing
    )
