"""Taking a service's credentials out of what its provider says.

A provider's own error is passed on to the client (its message, code and param),
and a provider, or a proxy in front of it, may quote the request in it: the URL
with its ``key=`` parameter, the ``Authorization`` header it refused. Before such
text leaves the attempt, every credential value the request carried is replaced,
as sent and in the encodings a URL or a form gives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from sluicegate.errors import GatewayError

REDACTED = "[redacted]"
# Shorter values would match ordinary words; no real credential is this short.
_SHORTEST = 6
# An error code as token endpoints send them ("invalid_client", "invalid_grant").
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def _forms(value: str) -> set[str]:
    forms = {value, quote(value, safe=""), quote_plus(value)}
    scheme, _, token = value.partition(" ")
    if token and scheme.lower() in ("bearer", "basic"):
        forms |= _forms(token)  # the credential without its scheme
    return {form for form in forms if len(form) >= _SHORTEST}


def redact(text: str, secrets: Iterable[str]) -> str:
    forms = {form for value in secrets if value for form in _forms(value)}
    for form in sorted(forms, key=len, reverse=True):  # a longer form may hold a shorter one
        text = text.replace(form, REDACTED)
    return text


def redact_error(error: GatewayError, secrets: Iterable[str]) -> GatewayError:
    """``error`` (a provider's, translated) with no credential value in what a client sees."""
    values = [value for value in secrets if value]
    if not values:
        return error
    error.message = redact(error.message, values)
    error.args = (error.message,)
    if error.code is not None:
        error.code = redact(error.code, values)
    if error.param is not None:
        error.param = redact(error.param, values)
    return error


def error_code(value: Any) -> str | None:
    """A token endpoint's ``error`` field when it is a code: its other fields are free
    text, which may quote the request (a client secret, a signed grant)."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else None
