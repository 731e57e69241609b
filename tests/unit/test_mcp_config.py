"""The ``mcp_servers:`` section and the ``mcp`` allow lists of consumers and groups."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.config.load import parse_config
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
