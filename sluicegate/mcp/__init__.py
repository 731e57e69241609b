"""The MCP gateway: ``/mcp`` and ``/mcp/{server}`` in front of the configured MCP servers.

room.py          the ASGI endpoint (streamable HTTP): auth, sessions, JSON or SSE answers
hub.py           one gateway's servers, allow lists and relaying (each gateway has its own)
dispatch.py      one client message: permissions, naming, policies, relaying
aggregate.py     the aggregated endpoint's lists, and which server a resource is on
listen.py        a session's GET stream: servers' messages merged, list changes debounced
relay.py         messages to one server within a client session (its server session)
servers.py       the upstream servers: a client for each, their health
http_client.py, stdio_client.py   the two transports to a server (upstream.py: their seam)
oauth.py         client-credentials tokens for servers behind an authorization server
sessions.py      client sessions: in process, the workers' file (session_file.py), or Redis
policy.py        guardrails on tool arguments and results
telemetry.py     metrics and audit rows of tool calls
discovery.py     RFC 9728 protected resource metadata
table.py         mcp_servers and allow lists, compiled once per config
context.py       what one client message is handled with
wire.py          JSON-RPC and naming helpers (sans-IO)
"""
