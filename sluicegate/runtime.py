"""The one ``Runtime``: the current routing table and the clients that outlive it.

Requests read ``runtime.table`` once and finish on that table; ``swap``
replaces it atomically (a single attribute store) when config changes.
"""

from __future__ import annotations

from sluicegate.config.load import Loaded
from sluicegate.proxy.upstream import HttpTransport, Transport
from sluicegate.routing.compile import compile_config
from sluicegate.routing.probes import Prober
from sluicegate.routing.table import RoutingTable
from sluicegate.telemetry.metrics import Metrics


class Runtime:
    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.table: RoutingTable = compile_config(loaded.config, loaded.warnings)
        self._http: HttpTransport | None = None
        self._prober: Prober | None = None
        self.metrics = Metrics(lambda: self.table)

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
        self.loaded, self.table = loaded, table
        if self._http is not None:
            await self._start_probes()
        return table

    async def start(self) -> None:
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
