"""What went wrong below HTTP, in a fixed phrase per kind of failure.

The HTTP client's exceptions carry request data in their text: the URL with its
query (where a Gemini key lives), the request's headers in their repr, the bytes
a broken upstream sent back (which may quote the request). So no exception's text
ever reaches a client, a log line, an audit row, a span or a metric: each is
classified here, once, into a ``TransportError`` whose message is one of the
phrases below, which name the failure and nothing of the request.
"""

from __future__ import annotations

import errno
from typing import Literal

import aiohttp

from sluicegate.errors import ConnectFailed, TimedOut, TransportError

# Where the exchange was when it failed: opening it (connecting, sending the
# request, waiting for the head of the answer), reading a whole answer, or
# relaying a stream.
Phase = Literal["open", "read", "stream"]

REFUSED = "the connection was refused"
UNREACHABLE = "the upstream's network or host is unreachable"
NOT_RESOLVED = "the upstream's host name could not be resolved"
NOT_OPENED = "the connection could not be opened"
RESET = "the connection was reset"
CERTIFICATE = "the upstream's TLS certificate was not accepted"
CA_HINT = "; a private CA goes in the service's tls_ca_file"
TLS = "TLS handshake failed"
MALFORMED = "the upstream sent a malformed HTTP response"
BAD_URL = "the upstream's URL is not valid"
BAD_REQUEST = "the request could not be sent"
CONNECT_TIMEOUT = "the connection timed out"
NO_ANSWER = {
    "open": "the upstream did not answer in time",
    "read": "the upstream did not finish its answer in time",
    "stream": "the upstream stalled in the middle of its stream",
}
CLOSED = {
    "open": "the upstream closed the connection without answering",
    "read": "the upstream's answer was cut off",
    "stream": "the upstream broke off its stream",
}
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN})
_RESET = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def classify(exc: BaseException, phase: Phase) -> TransportError:
    """The ``TransportError`` for ``exc``, raised by the HTTP client in ``phase``."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TimedOut(CONNECT_TIMEOUT)
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        return TimedOut(NO_ANSWER[phase])
    return ConnectFailed(_phrase(exc, phase))


def _phrase(exc: BaseException, phase: Phase) -> str:
    # The most specific classes first: aiohttp's connector errors are OSErrors as well.
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        # OpenSSL's reason comes from its fixed table ("unable to get local issuer
        # certificate"), or names the host it expected: no request data.
        problem = getattr(exc.certificate_error, "verify_message", None)
        reason = f" ({problem})" if isinstance(problem, str) and problem else ""
        return f"{CERTIFICATE}{reason}{CA_HINT}"
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return CERTIFICATE
    if isinstance(exc, aiohttp.ClientSSLError):
        return TLS
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return NOT_RESOLVED
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        if isinstance(exc.os_error, ConnectionRefusedError) or code == errno.ECONNREFUSED:
            return REFUSED
        return UNREACHABLE if code in _UNREACHABLE else NOT_OPENED
    if isinstance(exc, aiohttp.ClientResponseError):  # the parser refused the answer's head
        return MALFORMED
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return CLOSED[phase]
    if isinstance(exc, aiohttp.InvalidURL):
        return BAD_URL
    if isinstance(exc, ConnectionResetError) or getattr(exc, "errno", None) in _RESET:
        return CLOSED[phase] if phase != "open" else RESET
    if isinstance(exc, ValueError):  # a header or body the client library would not send
        return BAD_REQUEST
    # The class name says what happened and carries no request data.
    return f"the connection failed ({type(exc).__name__})"
