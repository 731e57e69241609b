"""``mcp_servers`` and the ``mcp`` allow lists, compiled once per config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from sluicegate.config.mcp import McpServer, split_allowed
from sluicegate.config.model import Config, Policies
from sluicegate.guardrails.policy import Guard, compile_guard
from sluicegate.mcp.globs import glob
from sluicegate.mcp.oauth import ClientCredentials
from sluicegate.policies.rate_limit import Limit

Pattern = re.Pattern[str]


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    url: str | None  # streamable HTTP; the credentials' query parameter included
    command: tuple[str, ...] | None  # stdio
    env: Mapping[str, str]
    cwd: str | None
    headers: tuple[tuple[str, str], ...]  # its credentials' header and its own headers
    timeout: float
    tools: tuple[Pattern, ...] | None  # None: every tool it offers
    description: str | None = None
    tags: tuple[str, ...] = ()
    limits: tuple[Limit, ...] = ()  # tool calls
    oauth: ClientCredentials | None = None  # a bearer token from an authorization server
    guard: Guard | None = None  # arguments screened as requests, results as answers

    def same_client(self, other: ServerSpec | None) -> bool:
        """Whether ``other`` is reached the same way (so its client and sessions stay)."""
        return other is not None and (
            self.url,
            self.command,
            dict(self.env),
            self.cwd,
            self.headers,
            self.timeout,
            self.oauth,
        ) == (
            other.url,
            other.command,
            dict(other.env),
            other.cwd,
            other.headers,
            other.timeout,
            other.oauth,
        )

    def offers(self, tool: str) -> bool:
        return self.tools is None or any(p.fullmatch(tool) for p in self.tools)

    @property
    def where(self) -> str:
        """How it is reached, for operators: its URL without the query (which may carry
        its credentials), or its command."""
        return self.url.partition("?")[0] if self.url else " ".join(self.command or ())

    @property
    def transport(self) -> str:
        return "http" if self.url is not None else "stdio"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a log or an error about this server."""
        return tuple(v for _, v in self.headers if len(v) >= 4)


def compile_server(server: McpServer) -> ServerSpec:
    headers = dict(server.headers)
    url = server.url
    creds = server.credentials
    if creds is not None and creds.header_name and creds.header_value is not None:
        headers[creds.header_name] = creds.header_value
    if url is not None and creds is not None and creds.param_name and creds.param_value:
        parts = urlsplit(url)
        query = "&".join(
            q for q in (parts.query, urlencode({creds.param_name: creds.param_value})) if q
        )
        url = urlunsplit(parts._replace(query=query))
    oauth = None
    if creds is not None and creds.oauth_token_url and creds.oauth_client_id:
        oauth = ClientCredentials(
            creds.oauth_token_url,
            creds.oauth_client_id,
            creds.oauth_client_secret or "",
            creds.oauth_scope,
            creds.oauth_audience,
        )
    return ServerSpec(
        name=server.name,
        oauth=oauth,
        url=url,
        command=tuple(server.command) if server.command is not None else None,
        env=dict(server.env),
        cwd=server.cwd,
        headers=tuple(headers.items()),
        timeout=server.timeout,
        tools=tuple(glob(t) for t in server.tools) if server.tools is not None else None,
        description=server.description,
        tags=tuple(server.tags),
        limits=tuple(
            Limit(f"mcp:{server.name}", limit.per, limit.requests, None, limit.window)
            for limit in server.rate_limit or ()
        ),
        guard=compile_guard(Policies(guardrails=server.guardrails)) if server.guardrails else None,
    )


@dataclass(frozen=True, slots=True)
class Allow:
    """Which servers and tools a caller may use: every list in ``lists`` must permit it
    (a consumer's own, and each of its groups'); no lists, everything."""

    lists: tuple[tuple[tuple[Pattern, Pattern | None], ...], ...] = ()

    @classmethod
    def of(cls, items: list[str] | None) -> Allow:
        if items is None:
            return EVERYTHING
        compiled = []
        for item in items:
            server, tool = split_allowed(item)
            compiled.append((glob(server), glob(tool) if tool is not None else None))
        return cls((tuple(compiled),))

    def narrowed(self, other: Allow) -> Allow:
        return Allow(self.lists + other.lists)

    def server(self, name: str) -> bool:
        """Whether some tool of the server may be used (so it is listed at all)."""
        return all(any(s.fullmatch(name) for s, _ in items) for items in self.lists)

    def tool(self, server: str, tool: str) -> bool:
        return all(
            any(s.fullmatch(server) and (t is None or t.fullmatch(tool)) for s, t in items)
            for items in self.lists
        )


EVERYTHING = Allow()


@dataclass(frozen=True, slots=True)
class McpTable:
    servers: Mapping[str, ServerSpec] = field(default_factory=dict)
    allows: Mapping[str, Allow] = field(default_factory=dict)  # by consumer name
    default: Allow = EVERYTHING  # a token's consumer that the config does not name

    narrowed: dict[tuple[str, tuple[str, ...]], Allow] = field(default_factory=dict)

    def allow(self, consumer: str, key: tuple[str, ...] | None = None) -> Allow:
        """A consumer's allow list; a minted key's own list narrows it further."""
        found = self.allows.get(consumer, self.default)
        if key is None:
            return found
        made = self.narrowed.get((consumer, key))
        if made is None:
            made = found.narrowed(Allow.of(list(key)))
            if len(self.narrowed) < 4096:  # bounded: one per key in use
                self.narrowed[(consumer, key)] = made
        return made


def compile_mcp(config: Config) -> McpTable:
    groups = {g.name: Allow.of(g.mcp) for g in config.groups}
    allows: dict[str, Allow] = {}
    for consumer in config.consumers:
        allow = Allow.of(consumer.mcp)
        for name in consumer.groups:
            if name in groups:
                allow = allow.narrowed(groups[name])
        allows[consumer.name] = allow
    jwt = config.auth.jwt
    fallback = jwt.default_consumer if jwt is not None else None
    default = allows.get(fallback, EVERYTHING) if fallback is not None else EVERYTHING
    return McpTable(
        servers={s.name: compile_server(s) for s in config.mcp_servers},
        allows=allows,
        default=default,
    )
