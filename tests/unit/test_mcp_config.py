"""The ``mcp_servers:`` section and the ``mcp`` allow lists of consumers and groups."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.config.load import parse_config
from sluicegate.config.tenants import tenant_config
from sluicegate.errors import ConfigError


def config(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "mcp_servers": [
            {
                "name": "tickets",
                "url": "http://127.0.0.1:9000/mcp",
                "credentials": {"header_name": "Authorization", "header_value": "Bearer t"},
                "tools": ["search_*", "get_*"],
                "timeout": "5s",
            },
            {"name": "files", "command": ["python", "-m", "files"], "env": {"ROOT": "/srv"}},
        ],
        "groups": [{"name": "ops", "mcp": ["tickets"]}],
        "consumers": [
            {"name": "team-a", "keys": ["sk-team-a-123456"], "mcp": ["tickets", "files/read_*"]}
        ],
    }
    doc.update(extra)
    return doc


def issues(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, env={})
    return caught.value.issues


def test_servers_and_allow_lists_load() -> None:
    loaded = parse_config(config(), env={})
    tickets, files = loaded.config.mcp_servers
    assert tickets.timeout == 5.0 and tickets.tools == ["search_*", "get_*"]
    assert files.command == ["python", "-m", "files"]
    assert loaded.config.consumers[0].mcp == ["tickets", "files/read_*"]
    assert "Bearer t" not in repr(tickets)  # a secret is never in a repr (a log line)


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"name": "a__b", "url": "http://h/mcp"}, "no '__'"),
        ({"name": "a.b", "url": "http://h/mcp"}, "not an MCP server name"),
        ({"name": "x"}, "either url (streamable HTTP) or command (stdio)"),
        ({"name": "x", "url": "http://h/mcp", "command": ["s"]}, "either url"),
        ({"name": "x", "url": "ftp://h/mcp"}, "not an http(s) URL"),
        ({"name": "x", "url": "http://u:pw@h/mcp"}, "takes no user or password"),
        ({"name": "x", "command": ["s"], "headers": {"a": "b"}}, "are for a url server"),
        ({"name": "x", "url": "http://h/mcp", "env": {"A": "1"}}, "for a command (stdio)"),
        ({"name": "x", "url": "http://h/mcp", "credentials": {"header_name": "A"}}, "together"),
    ],
)
def test_bad_servers_are_refused(server: dict[str, Any], expected: str) -> None:
    found = issues({"mcp_servers": [server]})
    assert any(expected in issue and issue.startswith("mcp_servers[0]") for issue in found), found


def test_allow_lists_must_name_declared_servers() -> None:
    doc = config()
    doc["consumers"][0]["mcp"] = ["tickets", "nope/read_*", "files/"]
    doc["groups"][0]["mcp"] = ["gone"]
    found = issues(doc)
    assert "consumers[0].mcp[1]: unknown MCP server 'nope'" in found
    assert "groups[0].mcp[0]: unknown MCP server 'gone'" in found
    assert any(i.startswith("consumers[0].mcp") and "tool glob after '/'" in i for i in found)


def test_duplicate_server_names_are_refused() -> None:
    doc = config()
    doc["mcp_servers"].append({"name": "tickets", "url": "http://127.0.0.1:9001/mcp"})
    assert "mcp_servers[2].name: duplicate name 'tickets'" in issues(doc)


def test_a_tenant_declares_its_own_servers_and_its_lists_name_only_those() -> None:
    tenant = {
        "name": "team-b",
        "mcp_servers": [{"name": "wiki", "url": "http://127.0.0.1:9002/mcp"}],
        "consumers": [{"name": "b", "keys": ["sk-team-b-123456"], "mcp": ["wiki/read_*"]}],
    }
    loaded = parse_config(config(gateways=[tenant]), env={})
    assert [s.name for s in loaded.config.gateways[0].mcp_servers] == ["wiki"]
    split = tenant_config(loaded.config, loaded.config.gateways[0])
    assert [s.name for s in split.mcp_servers] == ["wiki"]  # the default's are not its own

    # The default gateway's servers are not the tenant's to name, nor the tenant's the
    # default's; a tenant's own server names are checked like the default's.
    tenant["consumers"][0]["mcp"] = ["tickets"]
    tenant["mcp_servers"].append({"name": "wiki", "url": "http://127.0.0.1:9003/mcp"})
    doc = config(gateways=[tenant])
    doc["consumers"][0]["mcp"] = ["wiki"]
    found = issues(doc)
    assert "gateways[0].consumers[0].mcp[0]: unknown MCP server 'tickets'" in found
    assert "consumers[0].mcp[0]: unknown MCP server 'wiki'" in found
    assert "gateways[0].mcp_servers[1].name: duplicate name 'wiki'" in found
