"""An MCP server over streamable HTTP: POST one message, read JSON or an SSE stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson

from sluicegate.mcp.oauth import Tokens
from sluicegate.mcp.table import ServerSpec
from sluicegate.mcp.upstream import Opened, ServerDown, SessionLost
from sluicegate.mcp.wire import VERSIONS, Message, is_response
from sluicegate.schema.sse import EventSplitter, parse_event

_ACCEPT = "application/json, text/event-stream"


class HttpUpstream:
    def __init__(self, spec: ServerSpec, http: aiohttp.ClientSession) -> None:
        assert spec.url is not None
        self.spec = spec
        self.url = spec.url
        self.http = http
        wait = spec.timeout
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=wait, sock_read=wait)
        self.tokens = Tokens(spec.name, spec.oauth) if spec.oauth is not None else None
        self._base = {"accept": _ACCEPT, "content-type": "application/json", **dict(spec.headers)}

    async def auth(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return await self.tokens.header(self.http, self.spec.timeout)

    def headers_for(self, session: str | None, version: str | None) -> dict[str, str]:
        headers = dict(self._base)
        if session is not None:
            headers["mcp-session-id"] = session
        if version is not None:
            headers["mcp-protocol-version"] = version
        return headers

    async def open(self, params: Message) -> Opened:
        message = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        session: str | None = None
        answer: Message | None = None
        async with asyncio.timeout(self.spec.timeout):
            async with self._post(None, None, message) as response:
                session = response.headers.get("mcp-session-id")
                async for item in self._read(response, 0):
                    if is_response(item):
                        answer = item
        if answer is None or "result" not in answer:
            problem = (answer or {}).get("error", {}).get("message", "no answer")
            raise ServerDown(self.spec.name, f"refused initialize: {problem}", "status")
        result: Message = answer["result"]
        version = str(result.get("protocolVersion") or params.get("protocolVersion"))
        if version not in VERSIONS and version != "2024-11-05":
            raise ServerDown(self.spec.name, f"speaks protocol version {version}", "status")
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await self.post(session, version, done)
        return Opened(session, version, result)

    def _post(self, session: str | None, version: str | None, message: Message) -> _Exchange:
        return _Exchange(self, session, version, message)

    async def exchange(
        self, session: str | None, version: str, message: Message
    ) -> AsyncIterator[Message]:
        async with self._post(session, version, message) as response:
            async for item in self._read(response, message.get("id")):
                yield item

    async def _read(
        self, response: aiohttp.ClientResponse, wanted: object
    ) -> AsyncIterator[Message]:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            body = orjson.loads(await response.read())
            for item in body if isinstance(body, list) else [body]:
                if isinstance(item, dict):
                    yield item
            return
        if kind != "text/event-stream":
            raise ServerDown(self.spec.name, f"answered content type '{kind}'", "status")
        splitter = EventSplitter()
        async for chunk in response.content.iter_any():
            for raw in splitter.feed(chunk):
                _, data = parse_event(raw)
                if not data:
                    continue  # a priming event (an id only) or a comment
                item = orjson.loads(data)
                if isinstance(item, dict):
                    yield item
                    if is_response(item) and item.get("id") == wanted:
                        return
        raise ServerDown(self.spec.name, "closed the stream before answering")

    async def post(self, session: str | None, version: str, message: Message) -> None:
        async with asyncio.timeout(self.spec.timeout), self._post(session, version, message) as r:
            await r.read()

    async def listen(self, session: str | None, version: str) -> AsyncIterator[Message]:
        headers = {**self.headers_for(session, version), "accept": "text/event-stream"}
        try:
            headers.update(await self.auth())
        except ServerDown:
            return
        wait = aiohttp.ClientTimeout(total=None, sock_connect=self.spec.timeout, sock_read=None)
        try:
            async with self.http.get(self.url, headers=headers, timeout=wait) as response:
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if response.status != 200 or kind != "text/event-stream":
                    return  # 405: the server offers no such stream
                splitter = EventSplitter()
                async for chunk in response.content.iter_any():
                    for raw in splitter.feed(chunk):
                        _, data = parse_event(raw)
                        item = orjson.loads(data) if data else None
                        if isinstance(item, dict):
                            yield item
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return  # the stream ended; the client opens its own again

    async def end(self, session: str | None) -> None:
        if session is None:
            return
        try:
            async with asyncio.timeout(self.spec.timeout):
                headers = {**self.headers_for(session, None), **(await self.auth())}
                async with self.http.delete(self.url, headers=headers) as r:
                    await r.read()
        except (aiohttp.ClientError, TimeoutError, ServerDown):
            pass  # it ends the session on its own once idle

    async def close(self) -> None:
        return None


class _Exchange:
    """One POST: raises ``SessionLost`` on a 404 to a session, ``ServerDown`` on any other
    failure, and releases the connection when left."""

    def __init__(
        self, upstream: HttpUpstream, session: str | None, version: str | None, message: Message
    ) -> None:
        self.upstream = upstream
        self.session = session
        self.headers = upstream.headers_for(session, version)
        self.body = orjson.dumps(message)
        self.response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        name = self.upstream.spec.name
        self.headers.update(await self.upstream.auth())
        try:
            response = await self.upstream.http.post(
                self.upstream.url,
                data=self.body,
                headers=self.headers,
                timeout=self.upstream.timeout,
            )
        except aiohttp.ClientError as exc:
            raise ServerDown(name, f"is unreachable ({type(exc).__name__})") from None
        self.response = response
        if response.status == 404 and self.session is not None:
            response.release()
            raise SessionLost(name, "no longer knows the session", "status")
        if response.status == 401 and self.upstream.tokens is not None:
            self.upstream.tokens.forget()  # refused: the next request gets a new token
        if response.status >= 400:
            response.release()
            raise ServerDown(name, f"answered HTTP {response.status}", "status")
        return response

    async def __aexit__(self, *exc: object) -> None:
        if self.response is not None:
            self.response.release()
