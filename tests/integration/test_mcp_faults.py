"""MCP servers that are down at start or die mid-session: the others keep working, a call
to a dead one is an error naming it, and each is used again once it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.mcp_servers import McpProcess
from tests.integration.mcp_client import all_tools, connect

KEY = "sk-mcp-faults-12345"


@pytest.fixture
def servers() -> Iterator[dict[str, McpProcess]]:
    made = {
        "counter": McpProcess("counter", free_port()).start(),
        "tickets": McpProcess("tickets", free_port()).start(),
        "late": McpProcess("notes", free_port()),  # not started: down at start
    }
    yield made
    for proc in made.values():
        proc.kill()


@pytest.fixture
def gateway(servers: dict[str, McpProcess]) -> Iterator[RunningGateway]:
    config: dict[str, Any] = {
        "mcp_servers": [
            {"name": name, "url": proc.url, "timeout": "2s"} for name, proc in servers.items()
        ],
        "consumers": [{"name": "ops", "keys": [KEY]}],
    }
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


async def until(check: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.25)


def test_down_and_killed_servers_are_left_out_and_come_back(
    gateway: RunningGateway, servers: dict[str, McpProcess]
) -> None:
    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(f"{gateway.url}/mcp", KEY) as session:
            out["start"] = set(await all_tools(session))
            with pytest.raises(Exception) as dead:
                await session.call_tool("late__read_note", {"name": "hello"})
            out["dead"] = str(dead.value)
            out["one"] = (await session.call_tool("counter__increment", {})).content[0].text

            servers["counter"].kill()
            out["killed"] = set(await all_tools(session))
            with pytest.raises(Exception) as gone:
                await session.call_tool("counter__increment", {})
            out["gone"] = str(gone.value)
            out["tickets"] = (await session.call_tool("tickets__read_status", {})).content[0].text

            servers["counter"].start()
            servers["late"].start()

            async def both_back() -> set[str]:
                names = set(await all_tools(session))
                ok = {"counter__increment", "late__read_note"} <= names
                return names if ok else set()

            out["back"] = await until(both_back)
            out["again"] = (await session.call_tool("counter__increment", {})).content[0].text
            out["late"] = (await session.call_tool("late__read_note", {"name": "hello"})).content
        return out

    out = asyncio.run(go())
    assert "tickets__read_status" in out["start"] and "counter__increment" in out["start"]
    assert not any(n.startswith("late__") for n in out["start"])
    assert "MCP server 'late'" in out["dead"]
    assert out["dead"].count("late") == 1, out["dead"]  # said once, not "down (server 'late' …)"
    assert out["one"] == "1"
    assert not any(n.startswith("counter__") for n in out["killed"])
    assert "tickets__read_status" in out["killed"]
    assert "MCP server 'counter'" in out["gone"]
    assert out["tickets"] == "all systems nominal"
    assert out["back"], "the servers did not come back"
    assert out["again"] == "1"  # a new server session: the restarted server's
    assert out["late"][0].text == "world"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'sluicegate_mcp_server_up{gateway="default",server="counter"} 1.0' in metrics
    # A tool name is a label only once the server has shown it exists: the call while
    # "late" was down counts as tool "other"; once it answered, as read_note.
    assert 'server="late",status="unavailable",tool="other"} 1.0' in metrics
    assert 'server="late",status="ok",tool="read_note"} 1.0' in metrics
    left_out = 'sluicegate_mcp_server_left_out_total{gateway="default",reason="down",server="late"}'
    assert left_out in metrics


def test_a_slow_server_is_left_out_within_its_timeout(
    gateway: RunningGateway, servers: dict[str, McpProcess]
) -> None:
    servers["tickets"].proc.send_signal(19)  # SIGSTOP: it accepts and never answers

    async def go() -> tuple[float, set[str]]:
        started = time.monotonic()
        async with connect(f"{gateway.url}/mcp", KEY) as session:
            names = set(await all_tools(session))
        return time.monotonic() - started, names

    try:
        took, names = asyncio.run(go())
    finally:
        servers["tickets"].proc.send_signal(18)  # SIGCONT
    assert "counter__increment" in names
    assert not any(n.startswith("tickets__") for n in names)
    assert took < 8  # its 2s timeout, not a hang


def test_a_stdio_server_that_dies_is_started_again(tmp_path: Any) -> None:
    import os
    import signal

    from tests.fakes.mcp_servers import ROOT, stdio_command

    config = {
        "mcp_servers": [{"name": "notes", "command": stdio_command("notes"), "cwd": str(ROOT)}],
        "consumers": [{"name": "ops", "keys": [KEY]}],
    }
    gateway = RunningGateway(config, keyless=False).start()
    try:
        app = gateway.server.config.app

        async def go() -> tuple[str, str, str, str | None]:
            async with connect(f"{gateway.url}/mcp", KEY) as session:
                await session.call_tool("notes__add_note", {"name": "a", "text": "kept"})
                first = (await session.call_tool("notes__read_note", {"name": "a"})).content
                hub = app.mcp.hubs[app.runtime.gateway]
                notes = hub.servers.clients["notes"]  # made at the first message
                pid = notes.pid
                os.kill(pid, signal.SIGKILL)
                await asyncio.sleep(1.5)  # past the restart pause
                restarted = notes.pid  # started again by the gateway, before any use
                assert restarted is not None and restarted != pid
                again = (await session.call_tool("notes__read_note", {"name": "hello"})).content
                lost = (await session.call_tool("notes__read_note", {"name": "a"})).content
                new_pid = notes.pid
                return first[0].text, again[0].text, lost[0].text, str(new_pid != pid)

        first, again, lost, moved = asyncio.run(go())
        assert first == "kept"
        assert again == "world"  # answered by a new process
        assert lost == "no such note"  # its state was the old process's
        assert moved == "True"
        rid = httpx.post(
            f"{gateway.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"x-api-key": KEY, "x-request-id": "req-mcp-1"},
        )
        assert rid.headers["x-request-id"] == "req-mcp-1"
    finally:
        gateway.stop()
