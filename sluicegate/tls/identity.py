"""What the data plane knows of a client's verified certificate (mTLS).

The server's protocol (``sluicegate.tls.protocol``) reads the certificate once per
connection, after the handshake verified it against ``gateway.tls.client_ca_file``, and
puts a ``ClientCert`` into the scope of every request on that connection under
``CLIENT_CERT``. A consumer's ``mtls_subjects`` are matched against its ``names``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLIENT_CERT = "sluicegate.client_cert"  # the ASGI scope key

# Subject alternative names that name a client (as ssl.getpeercert() spells their types).
_SAN_TYPES = frozenset({"DNS", "URI", "email", "IP Address"})


@dataclass(frozen=True, slots=True)
class ClientCert:
    names: tuple[str, ...]  # the subject's common names, then its alternative names
    subject: str  # for messages: "CN=team-a,O=Example"


def client_cert(peer: dict[str, Any] | None) -> ClientCert | None:
    """From ``SSLObject.getpeercert()``, which is empty unless the handshake verified it."""
    if not peer:
        return None
    attributes = [pair for rdn in peer.get("subject", ()) for pair in rdn]
    names = [value for key, value in attributes if key == "commonName"]
    names += [value for kind, value in peer.get("subjectAltName", ()) if kind in _SAN_TYPES]
    subject = ",".join(f"{_SHORT.get(key, key)}={value}" for key, value in attributes)
    return ClientCert(tuple(dict.fromkeys(names)), subject)


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}
