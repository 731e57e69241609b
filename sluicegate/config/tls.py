"""TLS as the config declares it: the gateway's own listener (``gateway.tls``) and the
client side of the connections to an upstream (``tls_*`` fields of services and upstreams).
docs/security.md#tls says how they are used."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sluicegate.config.base import Strict, secret


class GatewayTls(Strict):
    """HTTPS on ``gateway.listen``; the certificate and key files are reloaded when they
    change on disk. With ``client_ca_file`` clients may (``optional``) or must
    (``required``) present a certificate that CA issued."""

    cert_file: str = Field(min_length=1)  # PEM: the certificate, then any intermediates
    key_file: str | None = None  # PEM; unset: the key is in cert_file
    key_password: str | None = secret()  # for an encrypted key_file
    client_ca_file: str | None = None  # PEM: the CAs that issue client certificates
    client_cert: Literal["optional", "required"] | None = None  # default with a CA: optional

    @field_validator("key_file", "key_password", "client_ca_file")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _client(self) -> GatewayTls:
        if self.client_cert is not None and self.client_ca_file is None:
            raise ValueError(
                "client_cert needs client_ca_file (the CAs whose client certificates are accepted)"
            )
        return self

    @property
    def client_mode(self) -> Literal["none", "optional", "required"]:
        if self.client_ca_file is None:
            return "none"
        return self.client_cert or "optional"


def check_upstream_tls(fields: Any) -> None:
    """The ``tls_*`` fields a service or an upstream shares: a key needs its certificate."""
    if fields.tls_client_key_file is not None and fields.tls_client_cert_file is None:
        raise ValueError("tls_client_key_file needs tls_client_cert_file (the certificate)")


UPSTREAM_TLS_FIELDS = ("tls_ca_file", "tls_client_cert_file", "tls_client_key_file", "tls_verify")
