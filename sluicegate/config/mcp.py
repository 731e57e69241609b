"""MCP servers as the config declares them (``mcp_servers:``; docs/mcp.md).

A server is reached over streamable HTTP (``url``) or started by the gateway and spoken
to over stdio (``command``). Who may use which server and tool is the ``mcp`` allow list
of a consumer or a group: server names and ``server/tool`` globs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator

from sluicegate.config.base import Duration, Strict, secret
from sluicegate.config.guardrails import GuardrailsPolicy

_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

# The separator of an aggregated name, ``{server}__{tool}``: a server name never holds it,
# so the first one splits a name unambiguously (a tool's own name may hold "__").
SEPARATOR = "__"


def check_server_name(value: str) -> str:
    if not _SERVER_NAME.fullmatch(value) or SEPARATOR in value or len(value) > 64:
        raise ValueError(
            f"'{value}' is not an MCP server name: letters, digits, '_' and '-' "
            f"(at most 64), starting with a letter or digit, and no '{SEPARATOR}'"
        )
    return value


McpServerName = Annotated[str, Field(min_length=1, max_length=64)]


class McpCredentials(Strict):
    """What the gateway sends an MCP server: a header (a bearer token, an API key) or a
    query parameter. The client's own token never reaches a server."""

    header_name: str | None = None
    header_value: str | None = secret()
    param_name: str | None = None
    param_value: str | None = secret()
    # OAuth 2.0 client credentials: the gateway gets a token at oauth_token_url and sends
    # it as "Authorization: Bearer …", anew before it expires.
    oauth_token_url: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = secret()
    oauth_scope: str | None = None
    oauth_audience: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> McpCredentials:
        for first, second in (("header_name", "header_value"), ("param_name", "param_value")):
            if (getattr(self, first) is None) != (getattr(self, second) is None):
                raise ValueError(f"{first} and {second} go together")
        oauth = (self.oauth_token_url, self.oauth_client_id, self.oauth_client_secret)
        if any(v is not None for v in oauth) and any(v is None for v in oauth):
            raise ValueError("oauth_token_url, oauth_client_id and oauth_client_secret go together")
        if self.oauth_token_url is not None:
            parts = urlsplit(self.oauth_token_url)
            if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
                raise ValueError("oauth_token_url: an http(s) URL, with no user or password")
            if (self.header_name or "").lower() == "authorization":
                raise ValueError("the OAuth token is the Authorization header; give one or other")
        return self


class McpRateLimit(Strict):
    """Tool calls to one server: ``requests`` per ``window``, counted per consumer, per key
    or for everybody together (``global``)."""

    requests: int = Field(ge=0)
    window: Duration = Field(default=60.0, gt=0)
    per: Literal["consumer", "key", "global"] = "consumer"


def _one_or_many(value: Any) -> Any:
    return value if value is None or isinstance(value, list) else [value]


class McpServer(Strict):
    name: McpServerName
    url: str | None = None  # streamable HTTP
    command: list[Annotated[str, Field(min_length=1)]] | None = None  # stdio
    env: dict[str, str] = Field(default_factory=dict, repr=False)  # stdio: added to ours
    cwd: str | None = None  # stdio: where the command runs
    credentials: McpCredentials | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = Field(default=30.0, gt=0)  # one request, initialize included
    tools: list[Annotated[str, Field(min_length=1)]] | None = None  # globs; unset: all
    rate_limit: Annotated[list[McpRateLimit] | None, BeforeValidator(_one_or_many)] = None
    # Tool arguments are screened as requests, tool results as answers.
    guardrails: GuardrailsPolicy | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_server_name(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{value}' is not an http(s) URL such as http://10.0.0.5:9000/mcp")
        if "@" in parts.netloc:
            # Never quoted: what precedes the host may be a password.
            raise ValueError("a url takes no user or password; put them under credentials")
        return value

    @model_validator(mode="after")
    def _transport(self) -> McpServer:
        if (self.url is None) == (self.command is None):
            raise ValueError("an MCP server needs either url (streamable HTTP) or command (stdio)")
        if self.command is not None and not self.command:
            raise ValueError("command: the program and its arguments, e.g. [python, server.py]")
        if self.url is None and (self.headers or self.credentials is not None):
            raise ValueError("headers and credentials are for a url server; give stdio env")
        if self.url is not None and (self.env or self.cwd is not None):
            raise ValueError("env and cwd are for a command (stdio) server")
        return self


def split_allowed(item: str) -> tuple[str, str | None]:
    """An ``mcp`` allow list item: ``server`` (every tool) or ``server/tool-glob``."""
    server, sep, tool = item.partition("/")
    return server, (tool if sep else None)


def check_allow_list(value: list[str] | None) -> list[str] | None:
    for item in value or ():
        server, tool = split_allowed(item)
        if tool == "":
            raise ValueError(f"'{item}': name a tool glob after '/' or leave the '/' out")
        if server != "*":
            check_server_name(server)
    return value


def mcp_reference_issues(data: dict[str, Any]) -> list[str]:
    """Allow lists that name servers the document does not declare, and duplicates."""
    issues: list[str] = []
    servers: set[str] = set()
    listed = data.get("mcp_servers")
    for i, server in enumerate(listed if isinstance(listed, list) else []):
        name = server.get("name") if isinstance(server, dict) else None
        if isinstance(name, str):
            if name in servers:
                issues.append(f"mcp_servers[{i}].name: duplicate name '{name}'")
            servers.add(name)
    for kind in ("consumers", "groups"):
        entities = data.get(kind)
        for i, entity in enumerate(entities if isinstance(entities, list) else []):
            allowed = entity.get("mcp") if isinstance(entity, dict) else None
            for j, item in enumerate(allowed if isinstance(allowed, list) else []):
                if not isinstance(item, str):
                    continue
                server = split_allowed(item)[0]
                if server != "*" and "*" not in server and server not in servers:
                    issues.append(f"{kind}[{i}].mcp[{j}]: unknown MCP server '{server}'")
    return issues
