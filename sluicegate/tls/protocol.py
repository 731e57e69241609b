"""The listener as uvicorn runs it: the HTTP protocol class and, with ``gateway.tls``, the
SSL context factory (``listener_options``).

uvicorn does not pass a client certificate to the application; ``PeerCertProtocol`` reads
the verified one from the TLS transport when the connection is made (the handshake is
complete by then) and adds it to the scope of each request on the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sluicegate.config.tls import GatewayTls
from sluicegate.http_protocol import HeadTimeoutProtocol
from sluicegate.tls.identity import CLIENT_CERT, ClientCert, client_cert
from sluicegate.tls.server import ServerTls


class PeerCertProtocol(HeadTimeoutProtocol):
    _client_cert: ClientCert | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            self._client_cert = client_cert(tls.getpeercert())
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()  # a new scope for the request
        if self._client_cert is not None:
            self.scope[CLIENT_CERT] = self._client_cert  # type: ignore[literal-required]


def listener_options(tls: GatewayTls | None, interval: float = 1.0) -> dict[str, Any]:
    """uvicorn ``Config`` options for the gateway's listener; ``interval``: how often the
    certificate files are looked at for a renewal."""
    if tls is None:
        return {"http": HeadTimeoutProtocol}
    return {"http": PeerCertProtocol, "ssl_context_factory": ServerTls.of(tls, interval)}
