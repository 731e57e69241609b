"""The MCP gateway through a running gateway, with the official ``mcp`` SDK on both sides:
two streamable HTTP servers (one stateful) and one stdio server behind ``/mcp`` and
``/mcp/{server}``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.mcp_servers import ROOT, McpProcess, stdio_command
from tests.integration.mcp_client import (  # skips the module without the mcp SDK
    ClientRequestContext,
    all_tools,
    connect,
    types,
)

ALL = "sk-mcp-everything-1"
READER = "sk-mcp-reader-12345"
EXTRA = 120  # tickets' extra tools: the aggregated list spans pages


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, McpProcess]]:
    started = {
        "counter": McpProcess("counter", free_port()).start(),
        "tickets": McpProcess("tickets", free_port(), extra=EXTRA).start(),
    }
    yield started
    for proc in started.values():
        proc.kill()


def mcp_config(servers: dict[str, McpProcess]) -> dict[str, Any]:
    return {
        "mcp_servers": [
            {
                "name": "counter",
                "url": servers["counter"].url,
                "credentials": {"header_name": "Authorization", "header_value": "Bearer up-1"},
                "timeout": "5s",
            },
            {"name": "tickets", "url": servers["tickets"].url, "timeout": "5s"},
            {"name": "notes", "command": stdio_command("notes"), "cwd": str(ROOT)},
        ],
        "consumers": [
            {"name": "everything", "keys": [ALL]},
            {"name": "reader", "keys": [READER], "mcp": ["tickets/read_*"]},
        ],
    }


@pytest.fixture(scope="module")
def gateway(servers: dict[str, McpProcess]) -> Iterator[RunningGateway]:
    running = RunningGateway(mcp_config(servers), keyless=False).start()
    yield running
    running.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_aggregated_list_names_every_server_and_pages(gateway: RunningGateway) -> None:
    async def go() -> list[str]:
        async with connect(f"{gateway.url}/mcp", ALL) as session:
            first = await session.list_tools()
            assert first.next_cursor is not None  # more than one page
            return await all_tools(session)

    names = run(go())
    assert len(names) == len(set(names))
    assert {"counter__increment", "tickets__read_ticket", "notes__read_note"} <= set(names)
    assert sum(n.startswith("tickets__read_bulk_") for n in names) == EXTRA


def test_stateful_server_keeps_its_session(gateway: RunningGateway) -> None:
    async def go() -> tuple[list[str], list[str]]:
        seen, other = [], []
        async with connect(f"{gateway.url}/mcp", ALL) as session:
            for _ in range(3):
                result = await session.call_tool("counter__increment", {})
                seen.append(result.content[0].text)
            async with connect(f"{gateway.url}/mcp/counter", ALL) as second:
                result = await second.call_tool("increment", {})
                other.append(result.content[0].text)
        return seen, other

    seen, other = run(go())
    assert seen == ["1", "2", "3"]  # one upstream session across calls
    assert other == ["1"]  # another client session: another upstream session


def test_calls_prompts_and_resources_through_both_endpoints(gateway: RunningGateway) -> None:
    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(f"{gateway.url}/mcp", ALL) as session:
            out["ticket"] = (await session.call_tool("tickets__read_ticket", {"ticket": 7})).content
            out["note"] = (await session.call_tool("notes__read_note", {"name": "hello"})).content
            prompts = await session.list_prompts()
            out["prompts"] = {p.name for p in prompts.prompts}
            greeting = await session.get_prompt("counter__greet", {"name": "Ada"})
            out["greeting"] = greeting.messages[0].content.text
            resources = await session.list_resources()
            out["resources"] = {str(r.uri) for r in resources.resources}
            templates = await session.list_resource_templates()
            out["templates"] = {t.uri_template for t in templates.resource_templates}
            out["open"] = (await session.read_resource("tickets://open")).contents[0].text
            out["one"] = (await session.read_resource("tickets://ticket/42")).contents[0].text
            out["notes"] = (await session.read_resource("notes://all")).contents[0].text
            await session.send_ping()
        async with connect(f"{gateway.url}/mcp/tickets", ALL) as session:
            names = await all_tools(session)
            out["single"] = names
            out["status"] = (await session.call_tool("read_status", {})).content[0].text
        return out

    out = run(go())
    assert out["ticket"][0].text == "ticket 7: printer on fire"
    assert out["note"][0].text == "world"  # the stdio server
    assert {"counter__greet", "tickets__summarize"} <= out["prompts"]
    assert out["greeting"] == "Hello, Ada!"
    assert {"counter://about", "tickets://open", "notes://all"} <= out["resources"]
    assert "tickets://ticket/{ticket}" in out["templates"]
    assert (out["open"], out["one"], out["notes"]) == ("1, 2, 3", "ticket 42 in full", "hello")
    assert "read_ticket" in out["single"] and len(out["single"]) == 3 + EXTRA
    assert out["status"] == "all systems nominal"


def test_progress_and_sampling_are_relayed(gateway: RunningGateway) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    asked: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="forty-two"),
            model="test-model",
        )

    async def go(url: str, prefix: str) -> tuple[str, str]:
        async with connect(url, ALL, sampling_callback=sampling) as session:
            counted = await session.call_tool(
                f"{prefix}slow_count", {"steps": 3}, progress_callback=on_progress
            )
            answer = await session.call_tool(f"{prefix}ask_model", {"question": "meaning?"})
            return counted.content[0].text, answer.content[0].text

    assert run(go(f"{gateway.url}/mcp", "counter__")) == ("counted to 3", "model said: forty-two")
    assert [p[0] for p in progress] == [1, 2, 3] and progress[-1][2] == "step 3"
    assert run(go(f"{gateway.url}/mcp/counter", "")) == ("counted to 3", "model said: forty-two")
    assert asked == ["meaning?", "meaning?"]


def test_the_servers_credentials_go_up_never_the_clients_key(gateway: RunningGateway) -> None:
    async def go() -> str:
        async with connect(f"{gateway.url}/mcp", ALL) as session:
            return (await session.call_tool("counter__whoami", {})).content[0].text

    text = run(go())
    assert text == "authorization=Bearer up-1 key=None"
    assert ALL not in text


def test_a_consumer_sees_and_calls_only_what_it_may(gateway: RunningGateway) -> None:
    async def refused(session: Any, name: str, args: dict[str, Any]) -> str:
        with pytest.raises(Exception) as caught:
            await session.call_tool(name, args)
        return str(caught.value)

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(f"{gateway.url}/mcp", READER) as session:
            out["listed"] = await all_tools(session)
            out["read"] = (await session.call_tool("tickets__read_status", {})).content[0].text
            out["write"] = await refused(session, "tickets__write_ticket", {"title": "x"})
            out["other"] = await refused(session, "counter__increment", {})
            out["prompts"] = {p.name for p in (await session.list_prompts()).prompts}
        async with connect(f"{gateway.url}/mcp/tickets", READER) as session:
            out["single"] = await all_tools(session)
            out["single_write"] = await refused(session, "write_ticket", {"title": "x"})
        return out

    out = run(go())
    assert out["read"] == "all systems nominal"
    assert "tickets__read_ticket" in out["listed"]
    assert all(n.startswith("tickets__read_") for n in out["listed"]), out["listed"]
    assert "Unknown tool: tickets__write_ticket" in out["write"]
    assert "Unknown tool: counter__increment" in out["other"]
    assert out["prompts"] == {"tickets__summarize"}  # a server it may not use lists nothing
    assert "write_ticket" not in out["single"] and "read_status" in out["single"]
    assert "Unknown tool: write_ticket" in out["single_write"]


def test_a_server_the_caller_may_not_use_is_refused_at_the_door(gateway: RunningGateway) -> None:
    import httpx

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}},
    }
    headers = {"accept": "application/json, text/event-stream"}
    refused = httpx.post(
        f"{gateway.url}/mcp/counter", json=init, headers={**headers, "x-api-key": READER}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    nobody = httpx.post(f"{gateway.url}/mcp", json=init, headers=headers)
    assert nobody.status_code == 401
    unknown = httpx.post(
        f"{gateway.url}/mcp/nope", json=init, headers={**headers, "x-api-key": ALL}
    )
    assert unknown.status_code == 404


def test_a_session_is_its_holders_only(gateway: RunningGateway) -> None:
    import httpx

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}},
    }
    headers = {"accept": "application/json, text/event-stream", "x-api-key": ALL}
    opened = httpx.post(f"{gateway.url}/mcp", json=init, headers=headers)
    assert opened.status_code == 200 and opened.json()["result"]["protocolVersion"] == "2025-06-18"
    sid = opened.headers["mcp-session-id"]
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    mine = httpx.post(f"{gateway.url}/mcp", json=ping, headers={**headers, "mcp-session-id": sid})
    assert mine.json() == {"jsonrpc": "2.0", "id": 2, "result": {}}
    theirs = httpx.post(
        f"{gateway.url}/mcp",
        json=ping,
        headers={**headers, "x-api-key": READER, "mcp-session-id": sid},
    )
    assert theirs.status_code == 404
    odd = {**headers, "mcp-session-id": sid, "mcp-protocol-version": "1999-01-01"}
    unsupported = httpx.post(f"{gateway.url}/mcp", json=ping, headers=odd)
    assert unsupported.status_code == 400
    assert "Unsupported protocol version" in unsupported.json()["error"]["message"]
    ended = httpx.delete(f"{gateway.url}/mcp", headers={**headers, "mcp-session-id": sid})
    assert ended.status_code == 204
    after = httpx.post(f"{gateway.url}/mcp", json=ping, headers={**headers, "mcp-session-id": sid})
    assert after.status_code == 404


class Notes:
    """The notifications a client session received, by method."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, message: Any) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        if isinstance(method, str):
            self.seen.append(method)


async def listening(session: Any, notes: Notes, prefix: str) -> None:
    """Once the session's GET stream reaches the counter server: a tool added until its
    list change comes through (the client opens the stream on its own, a moment after
    initialize)."""
    for i in range(40):
        await session.call_tool(f"{prefix}grow", {"name": f"probe_{i}"})
        await asyncio.sleep(0.3)
        if "notifications/tools/list_changed" in notes.seen:
            return
    raise AssertionError("the session's GET stream never brought a notification")


def test_list_changes_reach_the_client_once_per_burst(gateway: RunningGateway) -> None:
    notes = Notes()

    async def go() -> list[str]:
        async with connect(f"{gateway.url}/mcp", ALL, message_handler=notes) as session:
            await listening(session, notes, "counter__")
            await asyncio.sleep(0.5)
            notes.seen.clear()
            await session.call_tool("counter__grow", {"name": "fresh_tool"})  # three at once
            await asyncio.sleep(1.0)
            return await all_tools(session)

    names = run(go())
    assert "counter__fresh_tool" in names
    assert notes.seen.count("notifications/tools/list_changed") == 1, notes.seen


def test_elicitation_and_roots_are_relayed_both_ways(gateway: RunningGateway) -> None:
    asked: list[str] = []

    async def elicitation(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"ok": True})

    async def roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/project", name="p")])

    async def go(url: str, prefix: str) -> tuple[str, str]:
        notes = Notes()
        async with connect(
            url,
            ALL,
            elicitation_callback=elicitation,
            list_roots_callback=roots,
            message_handler=notes,
        ) as session:
            await listening(session, notes, prefix)  # the roots request takes the GET stream
            confirmed = await session.call_tool(f"{prefix}confirm", {"question": "Ship it?"})
            listed = await session.call_tool(f"{prefix}roots", {})
            return confirmed.content[0].text, listed.content[0].text

    for url, prefix in ((f"{gateway.url}/mcp", "counter__"), (f"{gateway.url}/mcp/counter", "")):
        confirmed, listed = run(go(url, prefix))
        assert confirmed == "accept: ok=True"
        assert listed == "file:///srv/project"
    assert asked == ["Ship it?", "Ship it?"]


def test_the_sdks_default_client_falls_back_from_its_stateless_probe(
    servers: dict[str, McpProcess],
) -> None:
    from mcp import Client

    open_gateway = RunningGateway(
        {"mcp_servers": [{"name": "tickets", "url": servers["tickets"].url}]}  # auth: none
    ).start()

    async def go() -> tuple[str, str]:
        async with Client(f"{open_gateway.url}/mcp") as client:  # mode="auto": discover first
            answer = await client.call_tool("tickets__read_status", {})
            return client.protocol_version, answer.content[0].text

    try:
        assert run(go()) == ("2025-11-25", "all systems nominal")
    finally:
        open_gateway.stop()


def test_lists_at_once_in_one_session_get_their_own_answers(gateway: RunningGateway) -> None:
    async def go() -> list[int]:
        async with connect(f"{gateway.url}/mcp", ALL) as session:
            pages = await asyncio.gather(*(session.list_tools() for _ in range(8)))
            prompts = await asyncio.gather(*(session.list_prompts() for _ in range(4)))
            assert all(len(p.prompts) == len(prompts[0].prompts) for p in prompts)
            return [len(p.tools) for p in pages]

    sizes = run(go())
    assert len(set(sizes)) == 1 and sizes[0] == 100  # each the first page, in full


def test_a_cancelled_call_is_cancelled_at_the_server(gateway: RunningGateway) -> None:
    import anyio

    async def go() -> tuple[str, float]:
        async with connect(f"{gateway.url}/mcp/counter", ALL) as session:
            before = (await session.call_tool("was_cancelled", {})).content[0].text
            started = time.monotonic()
            with anyio.move_on_after(0.5):
                await session.call_tool("wait_long", {})
            took = time.monotonic() - started
            await asyncio.sleep(0.5)
            after = (await session.call_tool("was_cancelled", {})).content[0].text
            return f"{before}->{after}", took

    counts, took = run(go())
    assert took < 2
    first, second = (int(n) for n in counts.split("->"))
    assert second == first + 1  # the server's own handler was cancelled
