#!/usr/bin/env python3
"""An MCP server for bench/mcp_calls.py, written with the official mcp SDK: one tool, ``echo``.

python bench/mcp_upstream.py --port 14100
"""

import argparse

import uvicorn
from mcp.server.mcpserver import MCPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    server = MCPServer("bench")

    @server.tool()
    def echo(text: str) -> str:
        """Answer the text."""
        return text

    uvicorn.run(
        server.streamable_http_app(json_response=True),
        host="127.0.0.1",
        port=a.port,
        log_level="error",
        access_log=False,
    )


if __name__ == "__main__":
    main()
