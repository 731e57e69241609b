"""The MCP gateway: ``/mcp`` and ``/mcp/{server}`` in front of the configured MCP servers.

room.py       the ASGI endpoint (streamable HTTP): auth, sessions, JSON or SSE answers
dispatch.py   one client message: permissions, naming, aggregation, relaying
servers.py    the upstream servers: their clients, health, opening sessions
http_client.py, stdio_client.py   the two transports to an upstream server
sessions.py   client sessions, in process or in Redis (any instance serves any session)
table.py      mcp_servers and allow lists, compiled once per config
wire.py       JSON-RPC and naming helpers (sans-IO)
"""
