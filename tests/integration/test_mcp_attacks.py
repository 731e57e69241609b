"""Messages a hostile or careless MCP client may send, through a running gateway: none of
them reaches a server unchecked, and each is refused in JSON-RPC's shape
(docs/security.md, "MCP")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.lenient_mcp import LenientMcp
from tests.fakes.mcp_servers import ROOT, McpProcess, stdio_command
from tests.fakes.stores import postgres_schema

KEY = "sk-mcp-attacks-12345"
ADMIN = "adm-mcp-attacks-123456"
VERSION = "2025-06-18"


@pytest.fixture(scope="module")
def counter() -> Iterator[McpProcess]:
    proc = McpProcess("counter", free_port()).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def lenient() -> Iterator[LenientMcp]:
    server = LenientMcp().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    counter: McpProcess, lenient: LenientMcp, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    folder = tmp_path_factory.mktemp("mcp-attacks")
    config: dict[str, Any] = {
        "gateway": {"store": f"sqlite:///{folder / 'gw.db'}", "admin_key": ADMIN},
        "audit": {"spill_path": str(folder / "spill.jsonl")},
        "mcp_servers": [
            {"name": "counter", "url": counter.url},
            {"name": "lenient", "url": lenient.mcp_url},
        ],
        "consumers": [
            {
                "name": "ops",
                "keys": [KEY],
                "mcp": ["counter/increment", "counter/session_id", "lenient/read_*"],
            }
        ],
    }
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


def answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response in a JSON or an SSE answer."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data: "):
                found = orjson.loads(line[6:])
                if "method" not in found:
                    return dict(found)
        raise AssertionError(response.text)
    return dict(response.json())


def test_a_stdio_server_gets_a_small_environment_and_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-provider-secret-123",
        "SLUICEGATE_ADMIN_KEY": "admin-secret-456",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-789",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_TIME", "C")
    config: dict[str, Any] = {
        "mcp_servers": [
            {
                "name": "environ",
                "command": stdio_command("environ"),
                "cwd": str(ROOT),
                "env": {"ENVIRON_TOKEN": "its-own-token"},
            }
        ],
        "consumers": [{"name": "ops", "keys": [KEY]}],
    }
    running = RunningGateway(config, keyless=False).start()
    try:
        client = Client(running.url + "/mcp/environ")
        found = client.call("environment")
        client.close()
    finally:
        running.stop()
    text = found["result"]["content"][0]["text"]
    names = {line.partition("=")[0] for line in text.splitlines()}
    assert "ENVIRON_TOKEN=its-own-token" in text.splitlines()
    assert "PATH" in names and "LC_TIME" in names
    assert not any(value in text for value in secrets.values()), names
    assert not names & set(secrets)


class Client:
    """A client session on one endpoint, in plain HTTP (what an attacker would send)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=30, headers={"authorization": f"Bearer {KEY}"})
        opened = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "attacker", "version": "1"},
                },
            },
            session=False,
        )
        assert opened.status_code == 200, opened.text
        self.session = opened.headers["mcp-session-id"]
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, message: dict[str, Any], session: bool = True) -> httpx.Response:
        headers = {"accept": "application/json, text/event-stream"}
        if session:
            headers |= {"mcp-session-id": self.session, "mcp-protocol-version": VERSION}
        return self.http.post(self.url, content=orjson.dumps(message), headers=headers)

    def call(self, name: str, rid: int = 1) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name}}
        return answer(self.post(message))

    def close(self) -> None:
        self.http.delete(self.url, headers={"mcp-session-id": self.session})
        self.http.close()


@pytest.mark.parametrize("path", ["/mcp/lenient", "/mcp"])
def test_a_request_without_an_id_is_not_relayed(
    gateway: RunningGateway, lenient: LenientMcp, path: str
) -> None:
    client = Client(gateway.url + path)
    name = "write_b" if path != "/mcp" else "lenient__write_b"
    assert answer(client.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))["result"]
    lenient.requests.clear()
    for method in ("tools/call", "Tools/call", "notifications/tools/call", "ping"):
        sent = client.post(
            {"jsonrpc": "2.0", "method": method, "params": {"name": name, "arguments": {}}}
        )
        assert sent.status_code == 202 and sent.content == b""
    # What the gateway knows how to route still reaches the server.
    progress = {"progressToken": "t1", "progress": 1}
    for method, params in (
        ("notifications/roots/list_changed", {}),
        ("notifications/progress", progress),
    ):
        sent = client.post({"jsonrpc": "2.0", "method": method, "params": params})
        assert sent.status_code == 202
    assert lenient.methods() == ["notifications/roots/list_changed", "notifications/progress"]
    client.close()


def test_an_unknown_method_is_not_relayed_to_a_single_server(
    gateway: RunningGateway, lenient: LenientMcp
) -> None:
    client = Client(gateway.url + "/mcp/lenient")
    lenient.requests.clear()
    for method in ("Tools/call", "tools/call ", "x-internal/debug"):
        sent = client.post(
            {"jsonrpc": "2.0", "id": 7, "method": method, "params": {"name": "write_b"}}
        )
        found = answer(sent)
        assert found["id"] == 7 and found["error"]["code"] == -32601, found
    assert lenient.methods() == []
    client.close()


@pytest.mark.parametrize("params", [[1, 2], "x", 3, True])
def test_params_that_are_not_an_object_are_invalid_params(
    gateway: RunningGateway, params: Any
) -> None:
    url = gateway.url + "/mcp/counter"
    http = httpx.Client(timeout=30, headers={"authorization": f"Bearer {KEY}"})
    message = {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": params}
    sent = http.post(url, content=orjson.dumps(message))
    assert sent.status_code == 400 and sent.headers["content-type"] == "application/json"
    assert sent.json()["error"]["code"] == -32602 and sent.json()["id"] == 3
    client = Client(url)
    for method in ("tools/call", "tools/list", "ping"):
        sent = client.post({"jsonrpc": "2.0", "id": 4, "method": method, "params": params})
        assert sent.status_code == 400, sent.text
        assert sent.json()["error"]["code"] == -32602 and sent.json()["id"] == 4
    client.close()


@pytest.mark.parametrize("path", ["/mcp/lenient", "/mcp"])
def test_only_tools_the_server_listed_are_called(
    gateway: RunningGateway, lenient: LenientMcp, path: str
) -> None:
    client = Client(gateway.url + path)
    prefix = "" if path != "/mcp" else "lenient__"
    lenient.requests.clear()
    # Before any tools/list of the client's: the gateway learns the list itself.
    called = client.call(prefix + "read_a")
    assert called["result"]["content"][0]["text"] == "called read_a", called
    invented = ("read_a/../write_b", "read_a\nwrite_b", "read_zzz_invented", "read_\x00")
    for name in invented:
        refused = client.call(prefix + name, rid=9)
        assert refused["error"]["code"] == -32602, refused
        assert refused["error"]["message"] == f"Unknown tool: {prefix + name}"
    calls = [
        r["body"]["params"]["name"]
        for r in lenient.requests
        if r["body"].get("method") == "tools/call"
    ]
    assert calls == ["read_a"]
    # Each made-up name may ask the server for its list again, but at most once a second.
    assert lenient.methods().count("tools/list") <= 1, lenient.methods()
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert "read_zzz_invented" not in metrics and "read_a/" not in metrics
    client.close()


def test_failed_tool_calls_say_why_in_their_audit_rows(
    gateway: RunningGateway, lenient: LenientMcp
) -> None:
    client = Client(gateway.url + "/mcp/lenient")
    for name in ("read_fail", "read_broken", "read_zzz_nowhere", "write_b", "read_b"):
        client.call(name)
    client.close()

    admin = {"Authorization": f"Bearer {ADMIN}"}

    def row(tool: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            found = httpx.get(
                f"{gateway.url}/admin/logs",
                params={"endpoint": "mcp", "model": tool},
                headers=admin,
            ).json()["data"]
            if found or time.monotonic() > deadline:
                assert found, tool
                return dict(found[0])
            time.sleep(0.1)

    def step(found: dict[str, Any]) -> list[dict[str, Any]]:
        return list(found["attempts_detail"] or [])

    failed = row("read_fail")  # the server's JSON-RPC error
    assert failed["error_type"] == "upstream_error" and failed["status"] == 400
    assert [(s["service"], s["outcome"]) for s in step(failed)] == [("lenient", "2xx")]
    assert step(failed)[0]["target"] == lenient.mcp_url
    broken = row("read_broken")  # the tool's own error (isError)
    assert broken["error_type"] == "tool_error" and broken["status"] == 200
    assert [s["outcome"] for s in step(broken)] == ["2xx"]
    unknown = row("read_zzz_nowhere")
    assert unknown["error_type"] == "invalid_request_error" and unknown["attempts"] == 0
    assert step(unknown) == []
    forbidden = row("write_b")
    assert forbidden["error_type"] == "permission_error" and forbidden["attempts"] == 0
    ok = row("read_b")
    assert ok["error_type"] is None and ok["attempts"] == 1
    assert [s["outcome"] for s in step(ok)] == ["2xx"]


def test_a_made_up_tool_name_does_not_stop_the_audit_log(
    lenient: LenientMcp, tmp_path: Path
) -> None:
    """PostgreSQL's text holds no NUL: a name with one in a row refused the whole batch."""
    with postgres_schema() as store:
        config: dict[str, Any] = {
            "gateway": {"store": store, "admin_key": ADMIN},
            "audit": {"spill_path": str(tmp_path / "spill.jsonl")},
            "mcp_servers": [{"name": "lenient", "url": lenient.mcp_url}],
            "consumers": [{"name": "ops", "keys": [KEY]}],
        }
        running = RunningGateway(config, keyless=False).start()
        try:
            client = Client(running.url + "/mcp/lenient")
            assert client.call("read_\x00" + "x" * 500)["error"]["code"] == -32602
            assert "result" in client.call("read_b")
            client.close()
            admin = {"Authorization": f"Bearer {ADMIN}"}
            rows: list[dict[str, Any]] = []
            deadline = time.monotonic() + 10
            while len(rows) < 2 and time.monotonic() < deadline:
                found = httpx.get(f"{running.url}/admin/logs?endpoint=mcp", headers=admin)
                rows = found.json()["data"]
                time.sleep(0.2)
        finally:
            running.stop()
    tools = [r["model"] for r in rows]
    assert len(tools) == 2 and "read_b" in tools, tools
    made_up = next(t for t in tools if t != "read_b")
    assert made_up == "read_\ufffd" + "x" * 122  # kept visible, cut to MCP's longest name
