"""The client side of TLS to an upstream: one ``ssl.SSLContext`` per service or pool.

Built when the config compiles (never per request) from the ``tls_*`` fields, and handed
to the HTTP client with each request to that service (``Transport.open(..., tls=)``) and
to the pool's health probes. A service or pool without ``tls_*`` fields gets ``None``:
the HTTP client's default context, which verifies against the system's CAs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from sluicegate.config.tls import UPSTREAM_TLS_FIELDS
from sluicegate.errors import ConfigError
from sluicegate.tls.pem import load_chain, why


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_file: str | None = None  # replaces the system's CAs
    cert_file: str | None = None  # the gateway's client certificate (mTLS)
    key_file: str | None = None  # its key; unset: in cert_file
    verify: bool = True

    @classmethod
    def of(cls, model: Any, base: TlsSettings | None = None) -> TlsSettings:
        """A service's or an upstream's ``tls_*`` fields. With ``base`` (a service of type
        upstream: its upstream's), only the fields the model set itself replace base's."""
        chosen = model.model_fields_set if base is not None else UPSTREAM_TLS_FIELDS
        base = base or cls()

        def pick(name: str, inherited: Any) -> Any:
            return getattr(model, name) if name in chosen else inherited

        return cls(
            pick("tls_ca_file", base.ca_file),
            pick("tls_client_cert_file", base.cert_file),
            pick("tls_client_key_file", base.key_file),
            pick("tls_verify", base.verify),
        )

    @property
    def default(self) -> bool:
        return self == TlsSettings()


def client_context(
    settings: TlsSettings, where: str, owner: str, warnings: list[str]
) -> ssl.SSLContext | None:
    """The context for ``settings``; ``ConfigError`` naming ``where``'s field when a file
    cannot be read. ``owner`` ("service 'x'") names it in the warning about ``verify``."""
    if settings.default:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [f"{where}.tls_ca_file: cannot read {settings.ca_file} ({why(exc)})"]
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        warnings.append(
            f"{where}.tls_verify: false, so {owner} accepts any certificate "
            "(anyone on the network path can read and change its traffic)"
        )
    if settings.cert_file is not None:
        try:
            load_chain(context, settings.cert_file, settings.key_file, None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                [
                    f"{where}.tls_client_cert_file: cannot load {settings.cert_file} with its "
                    f"key ({why(exc)})"
                ]
            ) from None
    return context
