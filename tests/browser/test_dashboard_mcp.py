"""The dashboard's MCP page in headless Chromium: each server's health and tool count,
and the latest tool calls, after a call made with the official mcp SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Console, screenshot
from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.mcp_servers import McpProcess
from tests.integration.mcp_client import connect

ADMIN_KEY = "adm-dashboard-mcp-0001"
KEY = "sk-dashboard-mcp-0001"
TEAM_KEY = "sk-dashboard-mcp-team-b-0001"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    folder = tmp_path_factory.mktemp("dashboard-mcp")
    tickets = McpProcess("tickets", free_port()).start()
    config = {
        "gateway": {"admin_key": ADMIN_KEY, "store": f"sqlite:///{folder / 'store.db'}"},
        "audit": {"spill_path": str(folder / "spill.jsonl"), "flush_interval": "50ms"},
        "mcp_servers": [
            {"name": "tickets", "url": tickets.url, "tags": ["support"]},
            {"name": "wiki", "url": f"http://127.0.0.1:{free_port()}/mcp", "timeout": "1s"},
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
        "gateways": [
            {
                "name": "team-b",
                "mcp_servers": [{"name": "helpdesk", "url": tickets.url}],
                "consumers": [{"name": "team-b", "keys": [TEAM_KEY]}],
            }
        ],
    }
    running = RunningGateway(config, keyless=False).start()

    async def call() -> None:  # before the browser opens (its loop holds this thread)
        async with connect(f"{running.url}/mcp", KEY) as session:
            await session.list_tools()
            await session.call_tool("tickets__read_status", {})
        async with connect(f"{running.url}/gw/team-b/mcp", TEAM_KEY) as session:
            await session.list_tools()
            await session.call_tool("helpdesk__read_ticket", {"ticket": 7})

    asyncio.run(call())
    yield running
    running.stop()
    tickets.kill()


def test_mcp_page_shows_health_tools_and_calls(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = httpx.get(
            f"{gateway.url}/admin/logs?endpoint=mcp", headers={"x-api-key": ADMIN_KEY}
        ).json()["data"]
        tenant = httpx.get(
            f"{gateway.url}/admin/gateways/team-b/logs?endpoint=mcp",
            headers={"x-api-key": ADMIN_KEY},
        ).json()["data"]
        if logs and tenant:
            break
        time.sleep(0.05)
    _, page = console_and_page
    page.goto(f"{gateway.url}/ui/")
    page.fill("#login-key", ADMIN_KEY)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()
    page.click("nav >> text=MCP")
    tickets = page.locator("tr[data-mcp-server=tickets]")
    expect(tickets).to_contain_text("healthy")
    expect(tickets).to_contain_text("3")  # its tools
    expect(tickets).to_contain_text("support")
    wiki = page.locator("tr[data-mcp-server=wiki]")
    expect(wiki).to_contain_text("down")
    expect(wiki).to_contain_text("unreachable")
    expect(page.locator("tr[data-call=read_status]")).to_contain_text("200")
    screenshot(page, "mcp")

    # A tenant's page shows its own servers and calls only.
    page.select_option("#gateway", "team-b")
    helpdesk = page.locator("tr[data-mcp-server=helpdesk]")
    expect(helpdesk).to_contain_text("healthy")
    expect(page.locator("tr[data-call=read_ticket]")).to_contain_text("200")
    expect(page.locator("tr[data-mcp-server=tickets]")).to_have_count(0)
    expect(page.locator("tr[data-call=read_status]")).to_have_count(0)
