"""The MCP gateway of every gateway (tenant): ``/gw/<name>/mcp`` and a tenant's hosts
serve its own servers to its own consumers, with the official ``mcp`` SDK through a
running gateway; nothing (keys, sessions, stdio processes, metrics, audit rows) crosses
from one gateway to another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.mcp_servers import ROOT, McpProcess, stdio_command
from tests.integration.mcp_client import all_tools, connect  # skips without the mcp SDK

ADMIN = "adm-mcp-tenants-123456"
KEY_DEFAULT = "sk-mcp-default-ops-1"
KEY_TEAM = "sk-mcp-team-a-ops-1"
KEY_READER = "sk-mcp-team-a-reader-1"
HOST = "team-a.mcp.example.com"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, McpProcess]]:
    started = {
        "counter": McpProcess("counter", free_port()).start(),
        "tickets": McpProcess("tickets", free_port()).start(),
    }
    yield started
    for proc in started.values():
        proc.kill()


def notes() -> dict[str, Any]:
    return {"name": "notes", "command": stdio_command("notes"), "cwd": str(ROOT)}


@pytest.fixture(scope="module")
def gateway(
    servers: dict[str, McpProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    folder: Path = tmp_path_factory.mktemp("mcp-tenants")
    config = {
        "gateway": {"store": f"sqlite:///{folder / 'gw.db'}", "admin_key": ADMIN},
        "mcp_servers": [{"name": "counter", "url": servers["counter"].url}, notes()],
        # The same consumer name in both gateways: only the gateway tells them apart.
        "consumers": [{"name": "ops", "keys": [KEY_DEFAULT]}],
        "gateways": [
            {
                "name": "team-a",
                "hosts": [HOST],
                "mcp_servers": [{"name": "tickets", "url": servers["tickets"].url}, notes()],
                "consumers": [
                    {"name": "ops", "keys": [KEY_TEAM]},
                    {"name": "reader", "keys": [KEY_READER], "mcp": ["tickets/read_*"]},
                ],
            }
        ],
    }
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_tenant_lists_and_calls_its_own_tools_only(gateway: RunningGateway) -> None:
    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(f"{gateway.url}/gw/team-a/mcp", KEY_TEAM) as session:
            out["team"] = await all_tools(session)
            status = await session.call_tool("tickets__read_status", {})
            out["status"] = status.content[0].text
            with pytest.raises(Exception) as refused:  # a JSON-RPC error: no such tool here
                await session.call_tool("counter__increment", {})
            out["refused"] = str(refused.value)
        async with connect(f"{gateway.url}/gw/team-a/mcp/tickets", KEY_READER) as session:
            out["reader"] = await all_tools(session)
        async with connect(f"{gateway.url}/mcp", KEY_DEFAULT) as session:
            out["default"] = await all_tools(session)
        return out

    out = run(go())
    assert {"tickets__read_status", "tickets__write_ticket", "notes__read_note"} <= set(out["team"])
    assert not any(name.startswith("counter__") for name in out["team"])
    assert out["status"] == "all systems nominal"
    assert "Unknown tool: counter__increment" in out["refused"]
    assert set(out["reader"]) == {"read_ticket", "read_status"}  # its own allow list
    assert "counter__increment" in out["default"]
    assert not any(name.startswith("tickets__") for name in out["default"])

    # The default gateway's server is no endpoint of the tenant's.
    headers = {"Authorization": f"Bearer {KEY_TEAM}"}
    missing = httpx.post(f"{gateway.url}/gw/team-a/mcp/counter", json=INIT, headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "mcp_server_not_found"


def test_a_tenant_is_served_on_its_host(gateway: RunningGateway) -> None:
    headers = {"Authorization": f"Bearer {KEY_TEAM}", "Host": HOST}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=10) as http:
        opened = http.post("/mcp", json=INIT)
        assert opened.status_code == 200, opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"]}
        listed = http.post("/mcp", json=LIST, headers=session).json()
        names = {tool["name"] for tool in listed["result"]["tools"]}
        assert "tickets__read_ticket" in names and not any(n.startswith("counter__") for n in names)
        assert http.delete("/mcp", headers=session).status_code == 204


def test_keys_are_the_gateways_own(gateway: RunningGateway) -> None:
    for url, key in (
        (f"{gateway.url}/gw/team-a/mcp", KEY_DEFAULT),
        (f"{gateway.url}/mcp", KEY_TEAM),
        (f"{gateway.url}/gw/team-a/mcp/tickets", KEY_DEFAULT),
    ):
        answer = httpx.post(url, json=INIT, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 401, (url, answer.text)
        assert answer.json()["error"]["type"] == "authentication_error"


def test_a_session_of_one_gateway_is_refused_by_the_other(gateway: RunningGateway) -> None:
    team = {"Authorization": f"Bearer {KEY_TEAM}"}
    default = {"Authorization": f"Bearer {KEY_DEFAULT}"}
    opened = httpx.post(f"{gateway.url}/gw/team-a/mcp", json=INIT, headers=team)
    minted = {"mcp-session-id": opened.headers["mcp-session-id"]}
    # Both callers are consumers named "ops": the gateway alone tells the sessions apart.
    elsewhere = httpx.post(f"{gateway.url}/mcp", json=LIST, headers={**default, **minted})
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["message"] == "Session not found"
    at_home = httpx.post(f"{gateway.url}/gw/team-a/mcp", json=LIST, headers={**team, **minted})
    assert at_home.status_code == 200 and "tools" in at_home.json()["result"]

    back = httpx.post(f"{gateway.url}/mcp", json=INIT, headers=default)
    theirs = {"mcp-session-id": back.headers["mcp-session-id"]}
    refused = httpx.post(f"{gateway.url}/gw/team-a/mcp", json=LIST, headers={**team, **theirs})
    assert refused.status_code == 404


def test_stdio_servers_metrics_and_audit_rows_are_kept_apart(gateway: RunningGateway) -> None:
    async def go() -> tuple[str, str]:
        async with connect(f"{gateway.url}/gw/team-a/mcp", KEY_TEAM) as session:
            await session.call_tool("notes__add_note", {"name": "plan", "text": "team-a's"})
            mine = await session.call_tool("notes__read_note", {"name": "plan"})
        async with connect(f"{gateway.url}/mcp", KEY_DEFAULT) as session:
            other = await session.call_tool("notes__read_note", {"name": "plan"})
        return mine.content[0].text, other.content[0].text

    mine, other = run(go())
    assert mine == "team-a's"
    assert other == "no such note"  # the default gateway's own notes process

    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'sluicegate_mcp_server_up{gateway="team-a",server="tickets"} 1.0' in metrics
    assert 'sluicegate_mcp_server_up{gateway="default",server="counter"} 1.0' in metrics
    assert (
        'sluicegate_mcp_tool_calls_total{consumer="ops",gateway="team-a",server="notes",'
        'status="ok",tool="add_note"} 1.0'
    ) in metrics
    assert 'gateway="default",server="notes",status="ok",tool="add_note"' not in metrics

    admin = {"Authorization": f"Bearer {ADMIN}"}
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not any(r["model"] == "add_note" for r in rows) and time.monotonic() < deadline:
        found = httpx.get(f"{gateway.url}/admin/gateways/team-a/logs?endpoint=mcp", headers=admin)
        rows = found.json()["data"]
        time.sleep(0.2)
    assert {r["gateway"] for r in rows} == {"team-a"}
    assert ("notes", "add_note") in {(r["service"], r["model"]) for r in rows}
    default_rows = httpx.get(f"{gateway.url}/admin/logs?endpoint=mcp", headers=admin).json()
    assert "add_note" not in {r["model"] for r in default_rows["data"]}

    health = httpx.get(f"{gateway.url}/admin/gateways/team-a/mcp-health", headers=admin).json()
    assert {s["name"] for s in health["data"]} == {"tickets", "notes"}


def test_a_tenants_servers_through_the_admin_api(
    gateway: RunningGateway, servers: dict[str, McpProcess]
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    base = f"{gateway.url}/admin/gateways/team-a/mcp-servers"
    listed = httpx.get(base, headers=admin).json()["data"]
    assert {s["name"] for s in listed} == {"tickets", "notes"}
    made = httpx.post(base, json={"name": "tally", "url": servers["counter"].url}, headers=admin)
    assert made.status_code == 201, made.text
    try:

        async def go() -> tuple[list[str], list[str]]:
            async with connect(f"{gateway.url}/gw/team-a/mcp", KEY_TEAM) as session:
                team = await all_tools(session)
            async with connect(f"{gateway.url}/mcp", KEY_DEFAULT) as session:
                default = await all_tools(session)
            return team, default

        team, default = run(go())
        assert "tally__increment" in team
        assert not any(name.startswith("tally__") for name in default)
        assert "tally" not in {
            s["name"]
            for s in httpx.get(f"{gateway.url}/admin/mcp-servers", headers=admin).json()["data"]
        }
    finally:
        httpx.delete(f"{base}/tally", headers=admin)


def test_a_tenants_jwt_clients_discover_its_authorization_server(
    servers: dict[str, McpProcess],
) -> None:
    import jwt

    from tests.fakes.jwks_server import AUDIENCE, ISSUER, claims_for

    secret = "hs256-shared-secret-for-the-mcp-tenants-1"
    config = {
        "mcp_servers": [{"name": "counter", "url": servers["counter"].url}],
        "consumers": [{"name": "ops", "keys": [KEY_DEFAULT]}],
        "gateways": [
            {
                "name": "team-j",
                "auth": {"jwt": {"secret": secret, "issuer": ISSUER, "audience": AUDIENCE}},
                "mcp_servers": [{"name": "tickets", "url": servers["tickets"].url}],
                "consumers": [{"name": "team-j", "mcp": ["tickets/read_*"]}],
            }
        ],
    }
    gateway = RunningGateway(config, keyless=False).start()
    try:
        refused = httpx.post(f"{gateway.url}/gw/team-j/mcp", json=INIT)
        assert refused.status_code == 401
        where = f"{gateway.url}/.well-known/oauth-protected-resource/gw/team-j/mcp"
        assert refused.headers["www-authenticate"] == f'Bearer resource_metadata="{where}"'
        found = httpx.get(where).json()
        assert found["resource"] == f"{gateway.url}/gw/team-j/mcp"
        assert found["authorization_servers"] == [ISSUER]
        # The default gateway takes no tokens: it points nowhere, and serves no metadata.
        plain = httpx.post(f"{gateway.url}/mcp", json=INIT)
        assert plain.status_code == 401 and "www-authenticate" not in plain.headers
        default_meta = f"{gateway.url}/.well-known/oauth-protected-resource/mcp"
        assert httpx.get(default_meta).status_code == 404

        token = jwt.encode(claims_for(sub="team-j"), secret, algorithm="HS256")

        async def go() -> list[str]:
            async with connect(f"{gateway.url}/gw/team-j/mcp", token) as session:
                return await all_tools(session)

        names = run(go())
        assert names and all(n.startswith("tickets__read_") for n in names)
        elsewhere = httpx.post(
            f"{gateway.url}/mcp", json=INIT, headers={"Authorization": f"Bearer {token}"}
        )
        assert elsewhere.status_code == 401
    finally:
        gateway.stop()


def test_config_apply_and_export_carry_a_tenants_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from sluicegate.cli import main

    store = f"sqlite:///{tmp_path / 'gw.db'}"
    doc = {
        "gateway": {"store": store},
        "mcp_servers": [{"name": "counter", "url": "http://127.0.0.1:9/mcp"}],
        "gateways": [
            {
                "name": "team-a",
                "mcp_servers": [{"name": "tickets", "url": "http://127.0.0.1:9/mcp"}],
                "consumers": [{"name": "reader", "mcp": ["tickets/read_*"]}],
            }
        ],
    }
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["config", "apply", str(path)]) == 0
    applied = capsys.readouterr().out.splitlines()
    assert "+ mcp_server tickets (gateway team-a)" in applied
    assert "+ mcp_server counter" in applied
    out = tmp_path / "export.yaml"
    assert main(["config", "export", "--store", store, "-o", str(out)]) == 0
    exported = yaml.safe_load(out.read_text())
    assert [s["name"] for s in exported["mcp_servers"]] == ["counter"]
    (team,) = exported["gateways"]
    assert [s["name"] for s in team["mcp_servers"]] == ["tickets"]
    assert team["consumers"][0]["mcp"] == ["tickets/read_*"]


def test_a_gateway_made_through_the_admin_api_serves_mcp_until_deleted(
    gateway: RunningGateway, servers: dict[str, McpProcess]
) -> None:
    key = "sk-mcp-team-c-ops-1"
    admin = httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=20
    )
    assert admin.post("/admin/gateways", json={"name": "team-c"}).status_code == 201
    server = {"name": "tally", "url": servers["counter"].url}
    assert admin.post("/admin/gateways/team-c/mcp-servers", json=server).status_code == 201
    consumer = {"name": "ops", "keys": [key], "mcp": ["tally/increment"]}
    assert admin.post("/admin/gateways/team-c/consumers", json=consumer).status_code == 201
    named_elsewhere = {"name": "other", "mcp": ["tickets"]}  # team-a's server, not team-c's
    refused = admin.post("/admin/gateways/team-c/consumers", json=named_elsewhere)
    assert refused.status_code == 422, refused.text

    async def go() -> tuple[list[str], list[str]]:
        async with connect(f"{gateway.url}/gw/team-c/mcp", key) as session:
            names = await all_tools(session)
            counted = [
                (await session.call_tool("tally__increment", {})).content[0].text for _ in range(2)
            ]
            return names, counted

    names, counted = run(go())
    assert names == ["tally__increment"]
    assert counted == ["1", "2"]  # one server session for the client session
    app = gateway.server.config.app
    assert "team-c" in app.mcp.hubs

    busy = admin.delete("/admin/gateways/team-c")
    assert busy.status_code == 409 and "mcp_servers/tally" in busy.json()["error"]["message"]
    assert admin.delete("/admin/gateways/team-c/consumers/ops").status_code == 204
    assert admin.delete("/admin/gateways/team-c/mcp-servers/tally").status_code == 204
    assert admin.delete("/admin/gateways/team-c").status_code == 204
    gone = httpx.post(
        f"{gateway.url}/gw/team-c/mcp", json=INIT, headers={"Authorization": f"Bearer {key}"}
    )
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "gateway_not_found"
    # The next MCP message anywhere lets the deleted gateway's servers go.
    httpx.post(f"{gateway.url}/mcp", json=INIT, headers={"Authorization": f"Bearer {KEY_DEFAULT}"})
    assert "team-c" not in app.mcp.hubs
