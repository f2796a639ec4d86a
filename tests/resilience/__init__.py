"""The resilience suite: faults, hostile input, fuzzing (see each module's docstring)."""

from pathlib import Path

# Inputs fuzzing once crashed ir with, one folder per atheris target (bundle, manifest, alerts):
# seeds for atheris, and cases of the parsers' own tests.
ATHERIS_REGRESSIONS = Path(__file__).with_name("atheris-regressions")
