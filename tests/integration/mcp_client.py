"""The official ``mcp`` SDK's client, connected through a running gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp SDK (a dev dependency) is not installed")

import httpx2
from mcp import ClientSession, types
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client


@contextlib.asynccontextmanager
async def connect(
    url: str, key: str | None, transport: Any = None, **callbacks: Any
) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    timeout = httpx2.Timeout(30, read=60)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, transport=transport) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, **callbacks) as session,
    ):
        await session.initialize()
        yield session


__all__ = ["ClientRequestContext", "ClientSession", "all_tools", "connect", "types"]


async def all_tools(session: ClientSession) -> list[str]:
    """Every tool name, page after page."""
    names: list[str] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        names += [t.name for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return names
