"""A server's policies on tool calls (rate limits, guardrails on arguments and results)
and the record of every call (audit rows, metrics), through a running gateway."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.mcp_servers import McpProcess
from tests.fakes.server import FakeServer
from tests.integration.mcp_client import connect

KEY = "sk-mcp-policies-1"
ADMIN = "adm-mcp-policies-123456"


@pytest.fixture(scope="module")
def tickets() -> Iterator[McpProcess]:
    proc = McpProcess("tickets", free_port()).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def gateway(tickets: McpProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("mcp-audit")
    config = {
        "gateway": {"store": f"sqlite:///{folder / 'gw.db'}", "admin_key": ADMIN},
        "mcp_servers": [
            {
                "name": "tickets",
                "url": tickets.url,
                "rate_limit": {"requests": 4, "window": "1m", "per": "consumer"},
                "guardrails": {
                    "pii": "redact",
                    "deny": [
                        {
                            "name": "fire",
                            "patterns": ["on fire"],
                            "applies_to": "response",
                            "action": "block",
                        }
                    ],
                },
            }
        ],
        "consumers": [{"name": "ops", "keys": [KEY]}],
    }
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


def test_guardrails_rate_limits_audit_and_metrics(gateway: RunningGateway) -> None:
    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(f"{gateway.url}/mcp", KEY) as session:
            written = await session.call_tool(
                "tickets__write_ticket", {"title": "call jane.doe@example.com"}
            )
            out["written"] = written.content[0].text
            with pytest.raises(Exception) as blocked:
                await session.call_tool("tickets__read_ticket", {"ticket": 1})
            out["blocked"] = str(blocked.value)
            out["status"] = (await session.call_tool("tickets__read_status", {})).content[0].text
            await session.call_tool("tickets__read_status", {})
            with pytest.raises(Exception) as limited:
                await session.call_tool("tickets__read_status", {})
            out["limited"] = str(limited.value)
        return out

    out = asyncio.run(go())
    # The server saw a placeholder, never the address.
    assert out["written"] == "opened: call [EMAIL_1]"
    assert "on fire" not in out["blocked"] and "blocked" in out["blocked"].lower()
    assert out["status"] == "all systems nominal"
    assert "Rate limit reached" in out["limited"]

    admin = {"Authorization": f"Bearer {ADMIN}"}
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(rows) < 5 and time.monotonic() < deadline:
        found = httpx.get(f"{gateway.url}/admin/logs?endpoint=mcp", headers=admin)
        rows = found.json()["data"]
        time.sleep(0.2)
    by_tool = sorted((r["model"], r["status"]) for r in rows)
    assert by_tool == [
        ("read_status", 200),
        ("read_status", 200),
        ("read_status", 429),
        ("read_ticket", 400),
        ("write_ticket", 200),
    ]
    assert {r["service"] for r in rows} == {"tickets"} and {r["consumer"] for r in rows} == {"ops"}
    assert all(r["endpoint"] == "mcp" and r["latency_ms"] is not None for r in rows)

    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert (
        'sluicegate_mcp_tool_calls_total{consumer="ops",gateway="default",server="tickets",'
        'status="ok",tool="read_status"} 2.0'
    ) in metrics
    assert 'status="rate_limited",tool="read_status"} 1.0' in metrics
    assert "sluicegate_mcp_tool_call_duration_seconds_bucket" in metrics


def test_jwt_clients_discover_the_authorization_server(tickets: McpProcess) -> None:
    import jwt

    from tests.fakes.jwks_server import AUDIENCE, ISSUER, claims_for

    secret = "hs256-shared-secret-for-the-mcp-tests-01"
    config = {
        "mcp_servers": [{"name": "tickets", "url": tickets.url}],
        "consumers": [{"name": "team-a", "keys": [KEY], "mcp": ["tickets/read_*"]}],
        "auth": {"jwt": {"secret": secret, "issuer": ISSUER, "audience": AUDIENCE}},
    }
    gateway = RunningGateway(config, keyless=False).start()
    try:
        refused = httpx.post(f"{gateway.url}/mcp", json={"jsonrpc": "2.0", "id": 1})
        assert refused.status_code == 401
        where = f"{gateway.url}/.well-known/oauth-protected-resource/mcp"
        assert refused.headers["www-authenticate"] == f'Bearer resource_metadata="{where}"'
        found = httpx.get(where).json()
        assert found["resource"] == f"{gateway.url}/mcp"
        assert found["authorization_servers"] == [ISSUER]
        token = jwt.encode(claims_for(sub="team-a"), secret, algorithm="HS256")

        async def go() -> list[str]:
            async with connect(f"{gateway.url}/mcp", token) as session:
                return [t.name for t in (await session.list_tools()).tools]

        names = asyncio.run(go())
        assert names and all(n.startswith("tickets__read_") for n in names)
    finally:
        gateway.stop()


class TokenServer(FakeServer):
    """An OAuth 2.0 token endpoint (client credentials, client authenticated with Basic)."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        wanted = "Basic " + base64.b64encode(b"gateway:s3cret-client").decode()
        if request.headers.get("authorization") != wanted:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "tools":
            return web.json_response({"error": "invalid_request"}, status=400)
        issued = self.count("token")
        return web.json_response({"access_token": f"tok-{issued}", "expires_in": 3600})


def test_oauth_client_credentials_for_a_server() -> None:
    idp = TokenServer().start()
    counter = McpProcess("counter", free_port()).start()
    credentials = {
        "oauth_token_url": f"{idp.url}/token",
        "oauth_client_id": "gateway",
        "oauth_client_secret": "s3cret-client",
        "oauth_scope": "tools",
    }
    config = {
        "mcp_servers": [{"name": "counter", "url": counter.url, "credentials": credentials}],
        "consumers": [{"name": "ops", "keys": [KEY]}],
    }
    gateway = RunningGateway(config, keyless=False).start()
    try:

        async def go() -> list[str]:
            async with connect(f"{gateway.url}/mcp/counter", KEY) as session:
                return [(await session.call_tool("whoami", {})).content[0].text for _ in range(3)]

        seen = asyncio.run(go())
        assert seen == ["authorization=Bearer tok-1 key=None"] * 3
        assert idp.calls["token"] == 1  # kept until it nears its expiry
    finally:
        gateway.stop()
        counter.kill()
        idp.stop()
