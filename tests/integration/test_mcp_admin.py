"""MCP servers through the Admin API (``/admin/mcp-servers``): created in the store with
their secrets sealed, served at once by ``/mcp``, listed with the file's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.mcp_servers import ROOT, McpProcess, stdio_command
from tests.integration.mcp_client import all_tools, connect

KEY = "sk-mcp-admin-123456"
ADMIN = "adm-mcp-admin-1234567"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, McpProcess]]:
    made = {
        "counter": McpProcess("counter", free_port()).start(),
        "tickets": McpProcess("tickets", free_port()).start(),
    }
    yield made
    for proc in made.values():
        proc.kill()


@pytest.fixture(scope="module")
def gateway(
    servers: dict[str, McpProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    folder: Path = tmp_path_factory.mktemp("mcp-admin")
    mp = pytest.MonkeyPatch()
    mp.setenv("SLUICEGATE_MASTER_KEY", Fernet.generate_key().decode())
    config: dict[str, Any] = {
        "gateway": {"store": f"sqlite:///{folder / 'gw.db'}", "admin_key": ADMIN},
        "mcp_servers": [
            {"name": "tickets", "url": servers["tickets"].url},
            {
                "name": "notes",
                "command": stdio_command("notes"),
                "cwd": str(ROOT),
                "env": {"NOTES_TOKEN": "env-secret-123"},
            },
        ],
        "consumers": [{"name": "ops", "keys": [KEY]}],
    }
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()
    mp.undo()


def admin(gateway: RunningGateway) -> httpx.Client:
    return httpx.Client(base_url=f"{gateway.url}/admin", headers={"x-api-key": ADMIN})


def test_mcp_servers_are_managed_through_the_admin_api(
    gateway: RunningGateway, servers: dict[str, McpProcess]
) -> None:
    api = admin(gateway)
    created = api.post(
        "/mcp-servers",
        json={
            "name": "counter",
            "url": servers["counter"].url,
            "credentials": {"header_name": "Authorization", "header_value": "Bearer up-secret"},
            "tools": ["increment", "whoami"],
            "tags": ["team-a"],
        },
    )
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["source"] == "store"
    assert shown["credentials"]["secrets_set"] == ["header_value"]
    assert "up-secret" not in created.text
    listed = api.get("/mcp-servers").json()["data"]
    assert {(s["name"], s["source"]) for s in listed} == {
        ("tickets", "file"),
        ("notes", "file"),
        ("counter", "store"),
    }
    notes = api.get("/mcp-servers/notes").json()
    assert notes["env"] == {"NOTES_TOKEN": "set"}  # a stdio server's environment: names only
    assert "env-secret-123" not in api.get("/mcp-servers").text
    refused = api.post("/mcp-servers", json={"name": "shell", "command": ["sh", "-c", "id"]})
    assert refused.status_code == 422 and "config file only" in refused.text
    read_only = api.delete("/mcp-servers/tickets")
    assert read_only.status_code == 409

    async def tools() -> tuple[list[str], str]:
        async with connect(f"{gateway.url}/mcp", KEY) as session:
            names = await all_tools(session)
            who = await session.call_tool("counter__whoami", {})
            return names, who.content[0].text

    names, who = asyncio.run(tools())
    assert {"counter__increment", "counter__whoami", "tickets__read_status"} <= set(names)
    assert "counter__slow_count" not in names  # the server's own tools list
    assert who.startswith("authorization=Bearer up-secret")  # sealed, then opened to use

    # A consumer that names the server keeps it from being deleted.
    patched = api.patch("/consumers/ops", json={"mcp": ["counter"]})
    assert patched.status_code == 409  # the file's consumer is read-only
    api.post("/consumers", json={"name": "team-b", "mcp": ["counter/increment"]})
    in_use = api.delete("/mcp-servers/counter")
    assert in_use.status_code == 409 and "consumers/team-b" in in_use.text
    assert api.delete("/consumers/team-b").status_code == 204
    assert api.delete("/mcp-servers/counter").status_code == 204
    assert {s["name"] for s in api.get("/mcp-servers").json()["data"]} == {"tickets", "notes"}


def test_a_minted_key_narrows_its_consumers_mcp_list(gateway: RunningGateway) -> None:
    api = admin(gateway)
    minted = api.post("/consumers/ops/keys", json={"name": "bot", "mcp": ["tickets/read_status"]})
    assert minted.status_code == 201, minted.text
    key = minted.json()["key"]
    assert minted.json()["mcp"] == ["tickets/read_status"]
    listed = api.get("/consumers/ops/keys").json()["data"]
    assert [k["mcp"] for k in listed if k["name"] == "bot"] == [["tickets/read_status"]]
    bad = api.post("/consumers/ops/keys", json={"mcp": ["tickets/"]})
    assert bad.status_code == 422

    async def go() -> tuple[list[str], str, str]:
        async with connect(f"{gateway.url}/mcp", key) as session:
            names = await all_tools(session)
            status = (await session.call_tool("tickets__read_status", {})).content[0].text
            with pytest.raises(Exception) as refused:
                await session.call_tool("tickets__read_ticket", {"ticket": 1})
            return names, status, str(refused.value)

    names, status, refused = asyncio.run(go())
    assert names == ["tickets__read_status"]
    assert status == "all systems nominal"
    assert "Unknown tool: tickets__read_ticket" in refused


def test_a_server_removed_under_an_open_session(
    gateway: RunningGateway, servers: dict[str, McpProcess]
) -> None:
    api = admin(gateway)
    created = api.post("/mcp-servers", json={"name": "counter", "url": servers["counter"].url})
    assert created.status_code == 201, created.text

    async def go() -> tuple[list[str], list[str], str]:
        async with connect(f"{gateway.url}/mcp", KEY) as session:
            before = await all_tools(session)
            assert api.delete("/mcp-servers/counter").status_code == 204
            after = await all_tools(session)
            with pytest.raises(Exception) as gone:
                await session.call_tool("counter__increment", {})
            await session.send_ping()
            return before, after, str(gone.value)

    before, after, gone = asyncio.run(go())
    assert "counter__increment" in before
    assert not any(n.startswith("counter__") for n in after)
    assert "Unknown tool: counter__increment" in gone
