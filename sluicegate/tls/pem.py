"""Loading a PEM certificate and key: never an interactive prompt, and a reason fit for a
config error when it fails (never a file's content)."""

from __future__ import annotations

import ssl


def load_chain(
    context: ssl.SSLContext, cert_file: str, key_file: str | None, password: str | None
) -> None:
    """``load_cert_chain`` with the key's password, or none: without one, OpenSSL would ask
    for it on the terminal (and wait there) when the key is encrypted."""
    context.load_cert_chain(cert_file, key_file, password if password else lambda: b"")


def why(exc: OSError) -> str:
    """OpenSSL's reason (KEY_VALUES_MISMATCH, BAD_DECRYPT, …) or the OS error."""
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason) if exc.reason else "not PEM that OpenSSL can read"
    return exc.strerror or str(exc)
