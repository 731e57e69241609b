"""A fake Realtime API (OpenAI's and Azure OpenAI's): a WebSocket server on loopback.

OpenAI's URL is ``/v1/realtime?model=<model>`` with ``Authorization: Bearer <key>``;
Azure's ``/openai/realtime?api-version=<v>&deployment=<name>`` with ``api-key``. A socket
without them is refused with 401 before the upgrade.

Once open it sends ``session.created``; then, for each client event:

    response.create      response.created, a text delta, then response.done with usage
                         (``INPUT`` input tokens of which ``CACHED`` cached, ``OUTPUT`` output)
    test.close           closes the socket: code 1011, reason "fake upstream closing"
    test.drop            drops the TCP connection without a close frame
    anything else        kept; binary frames are echoed back as they came

``sockets`` keeps each connection's request (path, query, headers) and the events it got;
``closed`` counts connections that ended, however.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

REALTIME_KEY = "sk-realtime-upstream-1"
AZURE_REALTIME_KEY = "azure-realtime-upstream-1"
AZURE_REALTIME_VERSION = "2025-04-01-preview"
INPUT, CACHED, OUTPUT = 120, 20, 30


class FakeRealtime:
    def __init__(self) -> None:
        self.port = 0
        self.sockets: list[dict[str, Any]] = []
        self.closed = 0
        self.open = 0
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _refuse(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query))
        if parts.path == "/openai/realtime":
            ok = (
                request.headers.get("api-key") == AZURE_REALTIME_KEY
                and query.get("api-version") == AZURE_REALTIME_VERSION
                and "deployment" in query
            )
        else:
            ok = (
                parts.path == "/v1/realtime"
                and request.headers.get("authorization") == f"Bearer {REALTIME_KEY}"
                and "model" in query
            )
        if ok:
            return None
        body = orjson.dumps(
            {"error": {"message": "refused by the fake", "type": "invalid_request_error"}}
        )
        return Response(401, "Unauthorized", Headers([("content-type", "application/json")]), body)

    def _event(self, kind: str, **fields: Any) -> str:
        return orjson.dumps(
            {"type": kind, "event_id": f"event_{next(self._ids)}", **fields}
        ).decode()

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query))
        kept: dict[str, Any] = {
            "path": parts.path,
            "query": query,
            "headers": {k.lower(): v for k, v in request.headers.raw_items()},
            "events": [],
            "binary": [],
        }
        self.sockets.append(kept)
        self.open += 1
        model = query.get("model") or query.get("deployment")
        try:
            await connection.send(self._event("session.created", session={"model": model}))
            async for message in connection:
                if isinstance(message, bytes):
                    kept["binary"].append(message)
                    await connection.send(message)
                    continue
                event = orjson.loads(message)
                kept["events"].append(event)
                kind = event.get("type")
                if kind == "response.create":
                    await self._respond(connection)
                elif kind == "test.close":
                    await connection.close(1011, "fake upstream closing")
                    return
                elif kind == "test.drop":
                    assert connection.transport is not None
                    connection.transport.abort()
                    return
        except ConnectionClosed:
            pass
        finally:
            self.open -= 1
            self.closed += 1

    async def _respond(self, connection: ServerConnection) -> None:
        response_id = f"resp_{next(self._ids)}"
        await connection.send(self._event("response.created", response={"id": response_id}))
        await connection.send(
            self._event("response.output_text.delta", response_id=response_id, delta="hello")
        )
        usage = {
            "total_tokens": INPUT + OUTPUT,
            "input_tokens": INPUT,
            "output_tokens": OUTPUT,
            "input_token_details": {
                "cached_tokens": CACHED,
                "text_tokens": INPUT,
                "audio_tokens": 0,
            },
            "output_token_details": {"text_tokens": OUTPUT, "audio_tokens": 0},
        }
        done = {"id": response_id, "status": "completed", "usage": usage}
        await connection.send(self._event("response.done", response=done))

    def start(self) -> FakeRealtime:
        ready = threading.Event()

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(
                self._handle, "127.0.0.1", 0, process_request=self._refuse, max_size=None
            ) as server:
                self._server = server
                self.port = next(iter(server.sockets)).getsockname()[1]
                ready.set()
                await self._stop.wait()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
