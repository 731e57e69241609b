"""The listener's SSL context (``gateway.tls``), and the task that reloads its certificate.

One ``ssl.SSLContext`` serves every connection of a process: each new handshake takes the
certificate the context holds at that moment, so loading a renewed certificate into the
same context applies to new connections without a restart, and connections already open
go on with the one they had. A renewal is checked in a scratch context first: a
certificate whose key has not been written yet, or a file cut short, is refused with an
error line and the running certificate stays.

uvicorn builds the context through ``ssl_context_factory`` (``__call__``) in each worker
process, inside its event loop, which is where the reload task starts. The object is
pickled to the workers, so it carries only its settings.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluicegate.config.tls import GatewayTls
from sluicegate.config.watch import Stamp, stamp
from sluicegate.errors import ConfigError
from sluicegate.tls.pem import load_chain, why

log = logging.getLogger("sluicegate")

_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class ServerTls:
    def __init__(
        self,
        cert_file: str,
        key_file: str | None = None,
        key_password: str | None = None,
        client_ca_file: str | None = None,
        client_mode: str = "none",
        interval: float = 1.0,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._password = key_password
        self.client_ca_file = client_ca_file
        self.client_mode = client_mode
        self.interval = interval
        self._context: ssl.SSLContext | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, settings: GatewayTls, interval: float = 1.0) -> ServerTls:
        return cls(
            settings.cert_file,
            settings.key_file,
            settings.key_password,
            settings.client_ca_file,
            settings.client_mode,
            interval,
        )

    def __repr__(self) -> str:  # never the key's password
        return f"ServerTls(cert_file={self.cert_file!r}, client_cert={self.client_mode!r})"

    def __getstate__(self) -> dict[str, Any]:
        # To a worker process: the settings, not this process's context and task.
        return {**self.__dict__, "_context": None, "_task": None}

    def build(self) -> ssl.SSLContext:
        """A new context from the files; ``ConfigError`` naming the field that is wrong."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        self._load_chain(context)
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    [f"gateway.tls.client_ca_file: cannot read {self.client_ca_file} ({why(exc)})"]
                ) from None
        context.verify_mode = _VERIFY[self.client_mode]
        return context

    def _load_chain(self, context: ssl.SSLContext) -> None:
        try:
            load_chain(context, self.cert_file, self.key_file, self._password)
        except FileNotFoundError:
            missing = self.key_file if Path(self.cert_file).exists() else self.cert_file
            field = "key_file" if missing == self.key_file else "cert_file"
            raise ConfigError(
                [f"gateway.tls.{field}: cannot read {missing} (no such file)"]
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                [
                    f"gateway.tls: cannot load the certificate {self.cert_file} with its key "
                    f"({why(exc)}; is the key the certificate's, and its password right?)"
                ]
            ) from None

    def context(self) -> ssl.SSLContext:
        """This process's context, built on first use."""
        if self._context is None:
            self._context = self.build()
        return self._context

    def __call__(self, config: object, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """uvicorn's ``ssl_context_factory``: called once per server, in its event loop."""
        context = self.context()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return context  # not serving (a check): nothing to watch
        if self._task is None:
            self._task = loop.create_task(self.watch(), name="tls certificate watch")
        return context

    def _stamps(self) -> tuple[Stamp | None, ...] | None:
        """The files' stamps; None while one of them is missing (a rename under way)."""
        files = [f for f in (self.cert_file, self.key_file, self.client_ca_file) if f]
        stamps = tuple(stamp(Path(f)) for f in files)
        return None if None in stamps else stamps

    def reload(self) -> bool:
        """Load the files again into the running context; False (logged) if they are refused."""
        try:
            self._load_chain(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))  # a trial
            self._load_chain(self.context())
        except ConfigError as exc:
            log.error("%s; the running certificate stays", "; ".join(exc.issues))
            return False
        log.info("gateway.tls: loaded the new certificate of %s", self.cert_file)
        return True

    async def watch(self) -> None:
        """Poll the files' stamps; reload once a change has settled (two looks agree)."""
        seen = self._stamps()
        chain = 2 if self.key_file else 1  # the stamps of the certificate and key files
        while True:
            await asyncio.sleep(self.interval)
            now = self._stamps()
            if now is None or now == seen:
                continue
            await asyncio.sleep(min(self.interval, 0.05))
            if self._stamps() != now:
                continue  # still being written: look again next time
            if seen is not None and now[chain:] != seen[chain:]:
                log.warning(
                    "gateway.tls.client_ca_file: %s changed; that takes effect at the next start",
                    self.client_ca_file,
                )
            if seen is None or now[:chain] != seen[:chain]:
                self.reload()
            seen = now
