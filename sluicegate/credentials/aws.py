"""AWS Signature Version 4, by botocore's own signer.

The signature covers the method, path, query, headers and a hash of the body
of the request exactly as it goes on the wire. The HTTP client normalises a
URL before sending it (it unescapes ``%3A`` in a Bedrock model id to ``:``,
and appends ``params``), so the signer applies the same normalisation first,
then signs and sends that one URL.

botocore's signer logs what it signs at DEBUG; those records are dropped at
their logger (see ``_unsigned``), whatever level the gateway's logging is at.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from sluicegate.providers.base import UpstreamRequest

if TYPE_CHECKING:
    from sluicegate.proxy.upstream import Transport

# The headers SigV4 adds; copied back onto the outgoing request.
_ADDED = ("X-Amz-Date", "X-Amz-Security-Token", "Authorization")


def _unsigned(record: logging.LogRecord) -> bool:
    return False


# botocore's signer logs, at DEBUG, each request's canonical form (the session token
# among its headers), the string it signs and the signature: a gateway run at DEBUG
# would write a credential per request. None of it is ever the gateway's to log.
logging.getLogger("botocore.auth").addFilter(_unsigned)


def wire_url(request: UpstreamRequest) -> str:
    """The URL the HTTP client (aiohttp, via yarl) will put on the wire."""
    url = URL(request.url)
    if request.params:
        url = url.extend_query(request.params)
    return str(url)


class AwsSigV4:
    needs_prepare = False
    signs_body = True

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        region: str = "us-east-1",
        service: str = "bedrock",
    ) -> None:
        self._credentials = Credentials(access_key_id, secret_access_key, session_token)
        self.region = region
        self.service = service

    async def prepare(self, http: Transport) -> None:
        return None

    def sign(self, request: UpstreamRequest) -> None:
        request.url = wire_url(request)
        request.params = {}
        # Drop any earlier signature (a request object is never re-signed, but be safe).
        for name in list(request.headers):
            if name.lower() in ("authorization", "x-amz-date", "x-amz-security-token"):
                del request.headers[name]
        aws = AWSRequest(
            method=request.method, url=request.url, headers=dict(request.headers), data=request.body
        )
        SigV4Auth(self._credentials, self.service, self.region).add_auth(aws)
        for name in _ADDED:
            value = aws.headers.get(name)
            if value is not None:
                request.headers[name.lower()] = value

    def secrets(self, request: UpstreamRequest) -> list[str]:
        creds = self._credentials
        found = [creds.access_key, creds.secret_key, creds.token or ""]
        authorization = request.headers.get("authorization", "")
        return [*found, authorization, authorization.rpartition("Signature=")[2]]

    def __repr__(self) -> str:
        # Never show the secret, nor the key id.
        return f"AwsSigV4(region={self.region!r}, service={self.service!r})"
