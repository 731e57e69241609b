"""The one ``Runtime``: the current routing table and the clients that outlive it.

Requests read ``runtime.table`` once and finish on that table; ``swap`` and
``install`` replace it atomically (a single attribute store) when config
changes. With ``gateway.store`` set, the running config is the YAML file's
entities followed by the store's (see ``admin.layers``), loaded at start.

Once started, the runtime follows changes on its own: an edit of the config
file (``config_path``) and a write to the store by another instance (or by
``sluicegate config apply``) rebuild the table; an invalid change is logged
and the running table stays. Every change of the running config, Admin API
writes included, happens under ``lock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from sluicegate.admin.layers import Built, build
from sluicegate.config.load import Loaded, load_config
from sluicegate.config.watch import watch_file
from sluicegate.errors import ConfigError
from sluicegate.proxy.upstream import HttpTransport, Transport
from sluicegate.routing.compile import compile_config
from sluicegate.routing.probes import Prober
from sluicegate.routing.table import RoutingTable
from sluicegate.stores.base import Store, open_store
from sluicegate.stores.follow import follow_store
from sluicegate.stores.secrets import Vault
from sluicegate.stores.sqlite import SqliteStore
from sluicegate.telemetry.audit import AuditWriter
from sluicegate.telemetry.metrics import Metrics

log = logging.getLogger("sluicegate")

# Settings read once at start: an edit of these waits for a restart.
_AT_START = ("name", "listen", "store")


class Runtime:
    def __init__(
        self,
        loaded: Loaded,
        store: Store | None = None,
        vault: Vault | None = None,
        config_path: str | Path | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self.file = loaded  # the YAML layer: gateway settings and read-only entities
        self.loaded = loaded
        self.table: RoutingTable = compile_config(loaded.config, loaded.warnings)
        url = loaded.config.gateway.store
        self.store: Store | None = store or (open_store(url) if url else None)
        self.vault = vault or Vault.from_env()
        self.config_path = Path(config_path) if config_path is not None else None
        self.poll_interval = poll_interval
        self.lock = asyncio.Lock()  # serialises changes of the running config in this process
        self.store_version: int | None = None  # the store version the table was built from
        self._store_open = False
        self._http: HttpTransport | None = None
        self._prober: Prober | None = None
        self._followers: list[asyncio.Task[None]] = []
        self.metrics = Metrics(lambda: self.table)
        # The audit log: in gateway.store, or in a SQLite file of its own (audit.path).
        self.audit: AuditWriter | None = None
        self.audit_store: Store | None = None
        self._audit_store: Store | None = None  # the file of audit.path, opened here
        audit = loaded.config.audit
        if audit.enabled and self.store is None and audit.path is not None:
            self._audit_store = SqliteStore(audit.path)
        self.audit_store = (self.store or self._audit_store) if audit.enabled else None
        if self.audit_store is not None:
            self.audit = AuditWriter(
                self.audit_store,
                self.metrics,
                self.gateway,
                audit.spill_path,
                queue_size=audit.queue_size,
                batch_size=audit.batch_size,
                flush_interval=audit.flush_interval,
            )

    @property
    def gateway(self) -> str:
        return self.file.config.gateway.name

    @property
    def http(self) -> Transport:
        if self._http is None:
            raise RuntimeError("the runtime has not been started")
        return self._http

    @property
    def ready(self) -> bool:
        return self._http is not None

    async def swap(self, loaded: Loaded) -> RoutingTable:
        table = compile_config(loaded.config, loaded.warnings, self.table)
        await self.install(loaded, table)
        return table

    async def install(self, loaded: Loaded, table: RoutingTable) -> None:
        """Make an already compiled table the running one."""
        self.loaded, self.table = loaded, table
        if self._http is not None:
            await self._start_probes()

    async def _build(self, file: Loaded) -> Built:
        """File + store, compiled; raises ``ConfigError``."""
        if self.store is None:
            return Built(file, compile_config(file.config, file.warnings, self.table))
        if not self._store_open:
            await self.store.open()
            self._store_open = True
            await self.store.ensure_gateway(self.gateway)
        # Read the version first: a write after it is seen by the next check.
        self.store_version = await self.store.config_version()
        return build(file, await self.store.entities(self.gateway), self.vault, self.table)

    async def load_store(self) -> None:
        """Open the store (migrating it) and run file + store entities."""
        if self.store is None:
            return
        built = await self._build(self.file)
        await self.install(built.loaded, built.table)

    async def reload_store(self) -> bool:
        """Rebuild from the store after another writer changed it; False if it was refused."""
        async with self.lock:
            try:
                await self.load_store()
            except ConfigError as exc:
                log.error(
                    "config store change refused, the running config stays: %s",
                    "; ".join(exc.issues),
                )
                return False
        return True

    async def reload_file(self) -> bool:
        """Re-read the config file; an invalid edit is logged and changes nothing."""
        path = self.config_path
        if path is None:
            return False
        try:
            loaded = load_config(path)
            async with self.lock:
                loaded = self._keep_start_settings(loaded)
                built = await self._build(loaded)
                self.file = loaded
                await self.install(built.loaded, built.table)
        except ConfigError as exc:
            log.error("%s: edit refused, the running config stays: %s", path, "; ".join(exc.issues))
            return False
        log.info("%s: reloaded (%d rules)", path, len(self.table.rules))
        return True

    def _keep_start_settings(self, loaded: Loaded) -> Loaded:
        running = self.file.config.gateway
        edited = loaded.config.gateway
        changed = [f for f in _AT_START if getattr(running, f) != getattr(edited, f)]
        if not changed:
            return loaded
        log.warning(
            "%s: gateway.%s changed; that takes effect at the next start",
            self.config_path,
            ", gateway.".join(changed),
        )
        gateway = edited.model_copy(update={f: getattr(running, f) for f in _AT_START})
        config = loaded.config.model_copy(update={"gateway": gateway})
        return Loaded(config, loaded.warnings, loaded.source)

    async def start(self) -> None:
        await self.load_store()
        if self._audit_store is not None:
            await self._audit_store.open()
        if self.audit is not None:
            await self.audit.start()
        if self._http is None:
            self._http = HttpTransport()
        await self._start_probes()
        self._start_followers()

    def _start_followers(self) -> None:
        if self._followers:
            return
        if self.config_path is not None:
            watcher = watch_file(self.config_path, self.reload_file, self.poll_interval)
            self._followers.append(asyncio.create_task(watcher, name="config file watch"))
        if self.store is not None:
            store_version = self._store_version
            follower = follow_store(
                self.store, store_version, self.reload_store, self.poll_interval
            )
            self._followers.append(asyncio.create_task(follower, name="config store follow"))

    def _store_version(self) -> int | None:
        return self.store_version

    async def _start_probes(self) -> None:
        if self._prober is not None:
            await self._prober.stop()
        self._prober = Prober(self.table.probes, self.http) if self.table.probes else None

    async def close(self) -> None:
        for task in self._followers:
            task.cancel()
        for task in self._followers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._followers = []
        if self.audit is not None:  # before the store closes: it writes what is queued
            await self.audit.close()
        if self._audit_store is not None:
            await self._audit_store.close()
        if self._prober is not None:
            await self._prober.stop()
            self._prober = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.store is not None and self._store_open:
            await self.store.close()
            self._store_open = False
