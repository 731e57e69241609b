"""A real aiohttp server on a loopback port, run in a thread of the test process."""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

import orjson
from aiohttp import web


class FakeServer:
    """Subclasses add their routes; every request body is recorded for assertions. With
    ``tls`` (a server-side SSL context) it speaks HTTPS."""

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    def count(self, key: str) -> int:
        self.calls[key] = self.calls.get(key, 0) + 1
        return self.calls[key]

    async def record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body: dict[str, Any] = orjson.loads(raw) if raw else {}
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
                "raw": raw,
            }
        )
        return body

    def start(self) -> Any:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application(client_max_size=32 * 1024 * 1024)
            self.routes(app)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(
                self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.tls
            )
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._runner = self._thread = None

    async def _shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
