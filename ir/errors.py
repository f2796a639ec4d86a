"""Errors that carry an exit code: raised anywhere, turned into exit codes in one place (ir.cli.main)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every ir command (the README's table; tests/test_errors.py keeps the two
    together). A non-zero exit always names its cause: the last line of the text output, the
    `errors` of -o json."""

    OK = 0
    FAILED = 1  # evidence not whole: capture partial/failed/interrupted, bundle incomplete/tampered
    USAGE = 2  # bad arguments or unusable input (no bundle file, malformed manifest, bad alert)
    STORE = 3  # store unreachable or upload failed; evidence kept in the local spool
    # Kubernetes / Docker API unreachable, not an API server, forbidden, failing, object missing;
    # `ir capture pod`: also no Ready replacement in time (the evidence is whole)
    CLUSTER = 4
    REFUSED = 5  # a safety gate refused the action (capture failed, protected namespace, ...)
    UNTRUSTED = 6  # evidence intact but its origin not proven (unsigned, or a key not trusted)
    INTERNAL = 70  # a bug in ir: reported in one line, never a traceback unless IR_DEBUG=1
    INTERRUPTED = 130


class IrError(Exception):
    """An error with a message meant for the operator and a defined exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class UsageError(IrError):
    exit_code = ExitCode.USAGE


class BundleFormatError(IrError):
    """The input is not a usable bundle (malformed, truncated beyond use, hostile)."""

    exit_code = ExitCode.USAGE


class IntegrityError(IrError):
    """The bundle is readable but its content does not match what it declares."""

    exit_code = ExitCode.FAILED


class StoreError(IrError):
    exit_code = ExitCode.STORE


class ClusterError(IrError):
    exit_code = ExitCode.CLUSTER


class RefusedError(IrError):
    exit_code = ExitCode.REFUSED


class Unsupported(Exception):
    """Raised by a collector's applicability check: the collector does not apply (with a reason)."""
