"""The one ``Runtime``: the current routing table and the clients that outlive it.

Requests read ``runtime.table`` once and finish on that table; ``swap`` and
``install`` replace it atomically (a single attribute store) when config
changes. With ``gateway.store`` set, the running config is the YAML file's
entities followed by the store's (see ``admin.layers``), loaded at start.
"""

from __future__ import annotations

from sluicegate.admin.layers import build
from sluicegate.config.load import Loaded
from sluicegate.proxy.upstream import HttpTransport, Transport
from sluicegate.routing.compile import compile_config
from sluicegate.routing.probes import Prober
from sluicegate.routing.table import RoutingTable
from sluicegate.stores.base import Store, open_store
from sluicegate.stores.secrets import Vault
from sluicegate.telemetry.metrics import Metrics


class Runtime:
    def __init__(
        self, loaded: Loaded, store: Store | None = None, vault: Vault | None = None
    ) -> None:
        self.file = loaded  # the YAML layer: gateway settings and read-only entities
        self.loaded = loaded
        self.table: RoutingTable = compile_config(loaded.config, loaded.warnings)
        url = loaded.config.gateway.store
        self.store: Store | None = store or (open_store(url) if url else None)
        self.vault = vault or Vault.from_env()
        self._store_open = False
        self._http: HttpTransport | None = None
        self._prober: Prober | None = None
        self.metrics = Metrics(lambda: self.table)

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
        table = compile_config(loaded.config, loaded.warnings)
        await self.install(loaded, table)
        return table

    async def install(self, loaded: Loaded, table: RoutingTable) -> None:
        """Make an already compiled table the running one."""
        self.loaded, self.table = loaded, table
        if self._http is not None:
            await self._start_probes()

    async def load_store(self) -> None:
        """Open the store (migrating it) and run file + store entities."""
        if self.store is None:
            return
        if not self._store_open:
            await self.store.open()
            self._store_open = True
            await self.store.ensure_gateway(self.gateway)
        built = build(self.file, await self.store.entities(self.gateway), self.vault)
        await self.install(built.loaded, built.table)

    async def start(self) -> None:
        await self.load_store()
        if self._http is None:
            self._http = HttpTransport()
        await self._start_probes()

    async def _start_probes(self) -> None:
        if self._prober is not None:
            await self._prober.stop()
        self._prober = Prober(self.table.probes, self.http) if self.table.probes else None

    async def close(self) -> None:
        if self._prober is not None:
            await self._prober.stop()
            self._prober = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.store is not None and self._store_open:
            await self.store.close()
            self._store_open = False
