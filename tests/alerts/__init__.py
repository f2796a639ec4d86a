"""Tests of alert intake (ir/playbook/alerts/), as its sources are found: one file per source,
test_<source>.py (test_every_source.py checks there is one), and test_common.py for what they all
share: strict JSON, source detection, the model and its exact times, every sample and upstream
payload in one table, hostile input. Here: where the samples are, and the helpers the files
share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "alerts"
# Payloads from the upstream projects' own repositories, or derived from them by their code
# (samples/alerts/README.md says which and how)
UPSTREAM = SAMPLES / "upstream"


def _upstream(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((UPSTREAM / name).read_text())
    return document


def _with_labels(alert: dict[str, Any], **labels: str | None) -> dict[str, Any]:
    """An Alertmanager webhook document of one alert, its labels changed (None removes one)."""
    changed = {k: v for k, v in {**alert["labels"], **labels}.items() if v is not None}
    return {"version": "4", "receiver": "ir-serve", "alerts": [dict(alert, labels=changed)]}
