"""Every transport failure becomes a fixed phrase: nothing of the exception's text
(the URL with its query, the request's headers, the upstream's bytes) survives."""

from __future__ import annotations

import ssl
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from yarl import URL

from sluicegate.errors import ConnectFailed, TimedOut
from sluicegate.proxy import transport_errors as kinds
from sluicegate.proxy.transport_errors import classify

SECRET = "AIzaSecretInTheQuery0001"
URL_WITH_KEY = URL(f"https://generativelanguage.googleapis.com/v1beta/models/x?key={SECRET}")
KEY: Any = SimpleNamespace(host="example.com", port=443, is_ssl=True, ssl=True)


def _request_info() -> aiohttp.RequestInfo:
    headers: Any = {"x-goog-api-key": SECRET}
    return aiohttp.RequestInfo(URL_WITH_KEY, "POST", headers, URL_WITH_KEY)


def verified(reason: str) -> ssl.SSLCertVerificationError:
    """A refusal as OpenSSL makes it: its reason in ``verify_message``, the text elsewhere."""
    error = ssl.SSLCertVerificationError(SECRET)
    error.verify_message = reason
    return error


CASES: list[tuple[BaseException, str, type[Exception], str]] = [
    (
        aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, SECRET)),
        "open",
        ConnectFailed,
        kinds.REFUSED,
    ),
    (
        aiohttp.ClientConnectorError(KEY, OSError(101, SECRET)),
        "open",
        ConnectFailed,
        kinds.UNREACHABLE,
    ),
    (
        aiohttp.ClientConnectorDNSError(KEY, OSError(-2, SECRET)),
        "open",
        ConnectFailed,
        kinds.NOT_RESOLVED,
    ),
    (
        aiohttp.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError(SECRET)),
        "open",
        ConnectFailed,
        kinds.CERTIFICATE + kinds.CA_HINT,
    ),
    (
        aiohttp.ClientConnectorCertificateError(KEY, verified("self-signed certificate")),
        "open",
        ConnectFailed,
        kinds.CERTIFICATE + " (self-signed certificate)" + kinds.CA_HINT,
    ),
    (aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(SECRET)), "open", ConnectFailed, kinds.TLS),
    (
        aiohttp.ClientResponseError(_request_info(), (), status=400, message=SECRET),
        "open",
        ConnectFailed,
        kinds.MALFORMED,
    ),
    (aiohttp.ServerDisconnectedError(SECRET), "open", ConnectFailed, kinds.CLOSED["open"]),
    (aiohttp.ClientPayloadError(SECRET), "read", ConnectFailed, kinds.CLOSED["read"]),
    (aiohttp.ClientPayloadError(SECRET), "stream", ConnectFailed, kinds.CLOSED["stream"]),
    (aiohttp.InvalidURL(URL_WITH_KEY), "open", ConnectFailed, kinds.BAD_URL),
    (ConnectionResetError(104, SECRET), "open", ConnectFailed, kinds.RESET),
    (ValueError(SECRET), "open", ConnectFailed, kinds.BAD_REQUEST),
    (aiohttp.ConnectionTimeoutError(SECRET), "open", TimedOut, kinds.CONNECT_TIMEOUT),
    (aiohttp.SocketTimeoutError(SECRET), "stream", TimedOut, kinds.NO_ANSWER["stream"]),
    (TimeoutError(), "read", TimedOut, kinds.NO_ANSWER["read"]),
    (aiohttp.ClientError(SECRET), "open", ConnectFailed, "the connection failed (ClientError)"),
]


@pytest.mark.parametrize(("exc", "phase", "kind", "phrase"), CASES)
def test_each_failure_is_a_fixed_phrase(
    exc: BaseException, phase: Any, kind: type[Exception], phrase: str
) -> None:
    error = classify(exc, phase)
    assert type(error) is kind
    assert str(error) == phrase
    assert SECRET not in str(error) and SECRET not in repr(error)
