#!/usr/bin/env bash
# Stop the mock upstream started by start.sh, by the master pid in its pid file
# (never by process name: other nginx instances may run on the same machine).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${MOCK_PREFIX:-$HERE/../.run/mock-upstream}"
PIDF="$PREFIX/nginx.pid"
[[ -f "$PIDF" ]] || { echo "no pid file in $PREFIX (not running?)"; exit 0; }
PID="$(cat "$PIDF")"
if kill -0 "$PID" 2>/dev/null; then
  kill -QUIT "$PID"
  for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; fi
  echo "mock upstream stopped (pid $PID)"
else
  echo "pid $PID not running"; rm -f "$PIDF"
fi
