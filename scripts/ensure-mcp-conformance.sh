#!/usr/bin/env bash
# The MCP conformance suite and the reference server, as pinned in
# tests/mcp_conformance/package-lock.json (npm registry; Node 20 runs 0.1.12).
set -euo pipefail
cd "$(dirname "$0")/../tests/mcp_conformance"
if ! command -v npm >/dev/null; then
    echo "npm is not installed: the MCP conformance test will be skipped" >&2
    exit 0
fi
if [ ! -x node_modules/.bin/conformance ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
