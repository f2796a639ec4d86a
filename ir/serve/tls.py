"""TLS for `ir serve`: a server context (TLS 1.2 minimum) from a PEM certificate chain and key, and
its reload when the files change. Kubernetes rotates a mounted kubernetes.io/tls Secret by swapping
the `..data` symlink; other tools rewrite the files in place. So each new connection reads both
files through their symlinks (a few KiB, from the page cache: microseconds beside a handshake) and
compares their digests with the pair in use; a changed pair is loaded into a new context for the
connections that follow, open connections keep theirs. (A stat alone can miss an in-place rewrite
of the same size within one tick of the file system's coarse clock.) A pair that does not load
(half written, key not matching) is refused, reported once, and the context in use is kept.

May import ir.errors only.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ir.errors import UsageError

TLS_CERT_FILE = "tls.crt"  # the keys of a kubernetes.io/tls Secret
TLS_KEY_FILE = "tls.key"
MIN_VERSION = ssl.TLSVersion.TLSv1_2
# read at every new connection: a server chain is a few KiB; a larger file is refused
MAX_PEM_BYTES = 64 * 1024
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.S)

_Stamp = tuple[str, str]  # SHA-256 of the certificate file and of the key file, or why unreadable


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: str | Path) -> TlsFiles:
        """The pair of a mounted kubernetes.io/tls Secret: DIR/tls.crt and DIR/tls.key."""
        return cls(Path(directory) / TLS_CERT_FILE, Path(directory) / TLS_KEY_FILE)


@dataclass(frozen=True)
class TlsLoad:
    """One change of the pair seen: loaded (the new leaf certificate's fingerprint) or refused."""

    loaded: bool
    cert: str
    key: str
    fingerprint: str = ""  # SHA-256 of the leaf certificate (DER), hex
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"status": "loaded" if self.loaded else "refused", "cert": self.cert, "key": self.key}
        if self.fingerprint:
            out["fingerprint"] = self.fingerprint
        if self.reason:
            out["reason"] = self.reason
        return out


def leaf_fingerprint(pem: bytes) -> str:
    """SHA-256 (hex) of the first certificate of a PEM chain. Raises ValueError without one."""
    found = _PEM_CERT.search(pem)
    if found is None:
        raise ValueError("no PEM certificate in the certificate file")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(found.group().decode("ascii"))).hexdigest()


def server_context(files: TlsFiles) -> tuple[ssl.SSLContext, str]:
    """A server context for the pair, and the leaf's fingerprint. Raises OSError (ssl.SSLError
    included) or ValueError; `refusal_reason` words them."""
    for path in (files.cert, files.key):  # name a missing or huge file: load_cert_chain would not
        if path.stat().st_size > MAX_PEM_BYTES:
            raise ValueError(f"{path} is larger than {MAX_PEM_BYTES} bytes")
    fingerprint = leaf_fingerprint(files.cert.read_bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(files.cert, files.key)
    return context, fingerprint


def refusal_reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "KEY_VALUES_MISMATCH":
            return "the key does not match the certificate"
        detail = re.sub(r" \(_ssl\.c:\d+\)$", "", str(exc.args[-1]))
        return f"not a complete PEM certificate chain and private key (half written?): {detail}"
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    return str(exc)


def _stamp(files: TlsFiles) -> _Stamp:
    def one(path: Path) -> str:
        try:
            with open(path, "rb", buffering=0) as handle:  # through the symlinks (`..data`)
                content = handle.read(MAX_PEM_BYTES + 1)
        except OSError as exc:
            return f"unreadable: {exc.errno}"
        if len(content) > MAX_PEM_BYTES:
            return f"larger than {MAX_PEM_BYTES} bytes"
        return hashlib.sha256(content).hexdigest()

    return one(files.cert), one(files.key)


class ReloadingContext:
    """The server context of `files`, current for every new connection. Construction loads the
    pair (UsageError if it does not load); `notify` hears of every later change, loaded or
    refused, once per change."""

    def __init__(self, files: TlsFiles, notify: Callable[[TlsLoad], None]) -> None:
        self.files = files
        self._notify = notify
        self._lock = threading.Lock()
        self._tried = _stamp(files)
        try:
            self._context, self.fingerprint = server_context(files)
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"TLS: cannot use {files.cert} and {files.key}: {refusal_reason(exc)}"
            ) from None

    def context(self) -> ssl.SSLContext:
        """The context for a new connection, reloaded first when either file's content has
        changed since the last attempt."""
        stamp = _stamp(self.files)
        if stamp == self._tried:
            return self._context
        with self._lock:
            if stamp != self._tried:
                self._reload(stamp)
            return self._context

    def _reload(self, stamp: _Stamp) -> None:
        files = self.files
        try:
            context, fingerprint = server_context(files)
        except (OSError, ValueError) as exc:
            if _stamp(files) != stamp:
                return  # changed while loading (half written): the next connection tries again
            self._tried = stamp
            reason = refusal_reason(exc)
            self._notify(TlsLoad(False, str(files.cert), str(files.key), reason=reason))
            return
        if _stamp(files) != stamp:
            return  # changed while loading: what was loaded may mix two generations
        self._context, self.fingerprint = context, fingerprint
        self._tried = stamp  # after the context: a connection that sees this stamp gets it
        self._notify(TlsLoad(True, str(files.cert), str(files.key), fingerprint))
