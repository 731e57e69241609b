"""Why a PEM file could not be loaded, in words fit for a config error (never its content)."""

from __future__ import annotations

import ssl


def why(exc: OSError) -> str:
    """OpenSSL's reason (KEY_VALUES_MISMATCH, BAD_DECRYPT, …) or the OS error."""
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason) if exc.reason else "not PEM that OpenSSL can read"
    return exc.strerror or str(exc)
