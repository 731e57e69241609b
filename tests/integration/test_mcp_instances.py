"""One MCP client session served by two gateway instances in turn (sharing PostgreSQL and
Redis), sessions that expire when idle, and DELETE ending the server sessions too."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.mcp_servers import McpProcess
from tests.fakes.stores import postgres_schema
from tests.integration.mcp_client import connect, httpx2

KEY = "sk-mcp-instances-1"
TEAM_KEY = "sk-mcp-instances-team-1"
REDIS = "redis://127.0.0.1:6379/0"


class Alternating(httpx2.AsyncBaseTransport):  # type: ignore[misc]
    """Sends each request to the next instance in turn, as a round-robin balancer does."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent: list[tuple[str, int]] = []
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: Any) -> Any:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append((request.method, port))
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def counter() -> Iterator[McpProcess]:
    proc = McpProcess("counter", free_port()).start()
    yield proc
    proc.kill()


def config(counter: McpProcess, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": gateway,
        "mcp_servers": [{"name": "counter", "url": counter.url}],
        "consumers": [{"name": "team", "keys": [KEY]}],
        "gateways": [
            {
                "name": "tenant",
                "mcp_servers": [{"name": "tally", "url": counter.url}],
                "consumers": [{"name": "team", "keys": [TEAM_KEY]}],
            }
        ],
    }


@pytest.fixture(scope="module")
def pair(counter: McpProcess) -> Iterator[list[RunningGateway]]:
    with postgres_schema() as store:
        doc = config(counter, store=store, redis=REDIS, name="mcp-" + secrets.token_hex(4))
        running = [RunningGateway(doc, keyless=False).start() for _ in range(2)]
        yield running
        for gateway in running:
            gateway.stop()


def test_two_instances_serve_one_session_in_turn(
    pair: list[RunningGateway], counter: McpProcess
) -> None:
    balancer = Alternating([g.port for g in pair])

    async def go() -> tuple[list[str], str]:
        async with connect(f"{pair[0].url}/mcp", KEY, transport=balancer) as session:
            seen = []
            for _ in range(4):
                result = await session.call_tool("counter__increment", {})
                seen.append(result.content[0].text)
            upstream = (await session.call_tool("counter__session_id", {})).content[0].text
        return seen, upstream

    seen, upstream = asyncio.run(go())
    assert seen == ["1", "2", "3", "4"]  # the same server session whichever instance
    posts = [port for method, port in balancer.sent if method == "POST"]
    assert set(posts) == {pair[0].port, pair[1].port}
    assert ("DELETE", pair[0].port) in balancer.sent or ("DELETE", pair[1].port) in balancer.sent
    # The client's DELETE ended the server session as well.
    gone = httpx.post(
        counter.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={
            "mcp-session-id": upstream,
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2025-11-25",
        },
    )
    assert gone.status_code == 404


def test_a_tenants_session_is_served_by_both_and_is_no_other_gateways(
    pair: list[RunningGateway],
) -> None:
    balancer = Alternating([g.port for g in pair])

    async def go() -> list[str]:
        async with connect(f"{pair[0].url}/gw/tenant/mcp", TEAM_KEY, transport=balancer) as s:
            return [(await s.call_tool("tally__increment", {})).content[0].text for _ in range(4)]

    assert asyncio.run(go()) == ["1", "2", "3", "4"]
    assert {port for method, port in balancer.sent if method == "POST"} == {g.port for g in pair}

    # A tenant's session id sent to the default gateway of the other instance (a consumer
    # of the same name there, the same Redis) is unknown there; the tenant's serves it.
    headers = {"accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
    }
    opened = httpx.post(
        f"{pair[0].url}/gw/tenant/mcp", json=init, headers={**headers, "x-api-key": TEAM_KEY}
    )
    headers["mcp-session-id"] = opened.headers["mcp-session-id"]
    listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    other = httpx.post(f"{pair[1].url}/mcp", json=listed, headers={**headers, "x-api-key": KEY})
    assert other.status_code == 404
    own = httpx.post(
        f"{pair[1].url}/gw/tenant/mcp", json=listed, headers={**headers, "x-api-key": TEAM_KEY}
    )
    assert own.status_code == 200
    assert own.json()["result"]["tools"][0]["name"].startswith("tally__")


def test_an_idle_session_expires(counter: McpProcess) -> None:
    gateway = RunningGateway(config(counter, mcp_session_ttl="1s"), keyless=False).start()
    try:
        headers = {"accept": "application/json, text/event-stream", "x-api-key": KEY}
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
        }
        opened = httpx.post(f"{gateway.url}/mcp", json=init, headers=headers)
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        assert httpx.post(f"{gateway.url}/mcp", json=ping, headers=headers).status_code == 200
        asyncio.run(asyncio.sleep(0.6))
        assert httpx.post(f"{gateway.url}/mcp", json=ping, headers=headers).status_code == 200
        asyncio.run(asyncio.sleep(1.3))
        assert httpx.post(f"{gateway.url}/mcp", json=ping, headers=headers).status_code == 404
    finally:
        gateway.stop()


def test_sessions_out_of_reach_are_a_503_and_come_back(counter: McpProcess) -> None:
    from tests.fakes.tcp_proxy import TcpProxy

    proxy = TcpProxy("127.0.0.1", 6379).up()
    doc = config(counter, redis=f"redis://127.0.0.1:{proxy.port}/0")
    gateway = RunningGateway(doc, keyless=False).start()
    try:
        headers = {"accept": "application/json, text/event-stream", "x-api-key": KEY}
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
        }
        opened = httpx.post(f"{gateway.url}/mcp", json=init, headers=headers)
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        proxy.down()
        refused = httpx.post(f"{gateway.url}/mcp", json=ping, headers=headers, timeout=10)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "out of reach" in refused.json()["error"]["message"]
        proxy.up()
        again = httpx.post(f"{gateway.url}/mcp", json=ping, headers=headers, timeout=10)
        assert again.status_code == 200  # the session was kept in Redis all along
    finally:
        gateway.stop()
        proxy.stop()
