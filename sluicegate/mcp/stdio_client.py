"""An MCP server the gateway starts and speaks to over stdio, one JSON-RPC message a line.

One process per server and instance serves every client session: requests get ids of
the gateway's own, so answers find their callers, and a progress token is mapped the
same way. A process that exits is started again ``RESTART_DELAY`` after its last start,
and initialized as before (and on the next use, if that start failed); its session is
then a new one, which callers see as ``SessionLost`` and open anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from sluicegate.mcp.table import ServerSpec
from sluicegate.mcp.upstream import Opened, ServerDown, SessionLost
from sluicegate.mcp.wire import LATEST, METHOD_NOT_FOUND, Message, error, is_response

log = logging.getLogger("sluicegate.mcp")

RESTART_DELAY = 1.0
_LINE_LIMIT = 16 * 1024 * 1024

# What a stdio server inherits from the gateway's environment: what a program needs to
# find its tools, its home, its locale and a temporary folder, and nothing that may hold
# a secret (provider keys, SLUICEGATE_*, proxies with passwords). The rest is the
# server's own ``env``.
_INHERITED = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ"),
        *("TMPDIR", "TEMP", "TMP"),
        *("SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "USERPROFILE"),
        *("APPDATA", "LOCALAPPDATA", "PROGRAMDATA", "PROGRAMFILES"),
    }
)


def environment(own: Mapping[str, str]) -> dict[str, str]:
    """A stdio server's environment: the safe part of the gateway's, and its own."""
    base = {k: v for k, v in os.environ.items() if k.upper() in _INHERITED or k.startswith("LC_")}
    return {**base, **own}


class _Process:
    def __init__(self, proc: asyncio.subprocess.Process, generation: int) -> None:
        self.proc = proc
        self.generation = str(generation)
        self.opened: Opened | None = None
        self.waiting: dict[int, asyncio.Queue[Message | None]] = {}
        self.tokens: dict[str, tuple[asyncio.Queue[Message | None], Any]] = {}
        self.reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class StdioUpstream:
    def __init__(self, spec: ServerSpec) -> None:
        assert spec.command is not None
        self.spec = spec
        self._process: _Process | None = None
        self._generations = itertools.count(1)
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._started = 0.0
        self._listeners: set[asyncio.Queue[Message]] = set()
        self._params: Message | None = None  # the last initialize params, to start again
        self._closed = False
        self._revive: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id (for operators and tests); None before the first use."""
        process = self._process
        return process.proc.pid if process is not None and process.alive else None

    async def _running(self) -> _Process:
        async with self._lock:
            current = self._process
            if current is not None and current.alive:
                return current
            wait = self._started + RESTART_DELAY - time.monotonic()
            if current is not None and wait > 0:
                raise ServerDown(self.spec.name, "exited; it is started again shortly")
            self._started = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.spec.command or (),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    env=environment(self.spec.env),
                    cwd=self.spec.cwd,
                    limit=_LINE_LIMIT,
                )
            except OSError as exc:
                raise ServerDown(self.spec.name, f"could not start ({exc.strerror})") from None
            process = _Process(proc, next(self._generations))
            process.reader = asyncio.create_task(self._read(process))
            self._process = process
            if current is not None:
                log.warning(
                    "MCP server '%s': started again (its process had exited)", self.spec.name
                )
            return process

    async def _read(self, process: _Process) -> None:
        stdout = process.proc.stdout
        assert stdout is not None
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                try:
                    message = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a server's stray output
                if isinstance(message, dict):
                    await self._route(process, message)
        except (ValueError, OSError):
            pass  # a line over the limit, or the pipe broke: the process is done for
        finally:
            for queue in process.waiting.values():
                queue.put_nowait(None)
            if not self._closed and process is self._process and self._params is not None:
                self._revive = asyncio.get_running_loop().create_task(self._start_again())

    async def _start_again(self) -> None:
        """A supervisor's restart: the process again, initialized, without waiting for a
        client to need it (its list changes and log messages reach listeners again)."""
        # A little past the pause: a timer may fire a hair early, and _running would refuse.
        await asyncio.sleep(max(0.0, self._started + RESTART_DELAY - time.monotonic()) + 0.05)
        if self._closed or self._params is None:
            return
        try:
            await self.open(self._params)
        except ServerDown as exc:
            log.warning("%s; started again on its next use", exc)

    async def _route(self, process: _Process, message: Message) -> None:
        if is_response(message):
            queue = process.waiting.get(message.get("id"))  # type: ignore[arg-type]
            if queue is not None:
                queue.put_nowait(message)
            return
        if message.get("method") == "notifications/progress":
            params = message.get("params") or {}
            found = process.tokens.get(str(params.get("progressToken")))
            if found is not None:
                queue, token = found
                queue.put_nowait({**message, "params": {**params, "progressToken": token}})
            return
        if "id" not in message:
            for listener in self._listeners:  # list changes, log messages
                if listener.qsize() < 1000:
                    listener.put_nowait(message)
            return
        if "id" in message:
            # A request of the server's own (sampling, roots): with one process for every
            # session there is no client to put it to.
            refused = error(message["id"], METHOD_NOT_FOUND, "Not relayed over stdio")
            await self._write(process, refused)

    async def _write(self, process: _Process, message: Message) -> None:
        stdin = process.proc.stdin
        if stdin is None or not process.alive:
            raise SessionLost(self.spec.name, "exited", "down")
        try:
            stdin.write(orjson.dumps(message) + b"\n")
            await stdin.drain()
        except (ConnectionError, OSError):
            raise SessionLost(self.spec.name, "exited", "down") from None

    async def open(self, params: Message) -> Opened:
        self._params = params
        process = await self._running()
        if process.opened is not None:
            return process.opened._replace(session=process.generation)
        mine = {**params, "capabilities": {}}  # no client to relay its requests to
        message = {"jsonrpc": "2.0", "method": "initialize", "params": mine}
        answer: Message | None = None
        async for item in self._ask(process, message):
            answer = item
        if answer is None or "result" not in answer:
            raise ServerDown(self.spec.name, "refused initialize", "status")
        result: Message = answer["result"]
        version = str(result.get("protocolVersion") or LATEST)
        await self._write(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        process.opened = Opened(process.generation, version, result)
        return process.opened

    async def _ask(self, process: _Process, message: Message) -> AsyncIterator[Message]:
        mine = next(self._ids)
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        process.waiting[mine] = queue
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        sent = {**message, "id": mine}
        if token is not None:
            own = f"sg-{mine}"
            process.tokens[own] = (queue, token)
            sent["params"] = {**params, "_meta": {**meta, "progressToken": own}}  # type: ignore[dict-item]
        try:
            await self._write(process, sent)
            async with asyncio.timeout(self.spec.timeout):
                while True:
                    item = await queue.get()
                    if item is None:
                        raise SessionLost(self.spec.name, "exited while answering", "down")
                    if is_response(item):
                        yield {**item, "id": message.get("id")}
                        return
                    yield item
        except TimeoutError:
            raise ServerDown(self.spec.name, "did not answer in time", "timeout") from None
        finally:
            process.waiting.pop(mine, None)
            if token is not None:
                process.tokens.pop(f"sg-{mine}", None)

    async def exchange(
        self, session: str | None, version: str, message: Message
    ) -> AsyncIterator[Message]:
        process = await self._running()
        if process.generation != session or process.opened is None:
            raise SessionLost(self.spec.name, "was started again", "down")
        async for item in self._ask(process, message):
            yield item

    async def post(self, session: str | None, version: str, message: Message) -> None:
        process = self._process
        if process is None or process.generation != session:
            return
        if "id" not in message:
            # A client's notification names its own requests (cancelled: by the client's
            # id, not the one the process saw) or its roots, and the process serves every
            # session: nothing to tell it.
            return
        await self._write(process, message)

    async def listen(self, session: str | None, version: str) -> AsyncIterator[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.discard(queue)

    async def end(self, session: str | None) -> None:
        return None  # the process serves other sessions

    async def close(self) -> None:
        self._closed = True
        if self._revive is not None:
            self._revive.cancel()
        process, self._process = self._process, None
        if process is None:
            return
        if process.alive:
            process.proc.terminate()
            try:
                async with asyncio.timeout(3):
                    await process.proc.wait()
            except TimeoutError:
                process.proc.kill()
                await process.proc.wait()
        if process.reader is not None:
            process.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await process.reader
