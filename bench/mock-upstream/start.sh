#!/usr/bin/env bash
# Start the static mock upstream (nginx, one worker) on 127.0.0.1:18080 as a daemon.
# Runtime files (pid, error log, temp dirs) go to $MOCK_PREFIX, default bench/.run/mock-upstream.
# Stop it with stop.sh (kill -QUIT <master pid from the pid file>).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${MOCK_PREFIX:-$HERE/../.run/mock-upstream}"
CONF="$HERE/nginx.conf"
command -v nginx >/dev/null || { echo "nginx not found: apt-get install -y nginx" >&2; exit 1; }
mkdir -p "$PREFIX/tmp"
PREFIX="$(cd "$PREFIX" && pwd)"
if [[ -f "$PREFIX/nginx.pid" ]] && kill -0 "$(cat "$PREFIX/nginx.pid")" 2>/dev/null; then
  echo "mock upstream already running (pid $(cat "$PREFIX/nginx.pid"))"; exit 0
fi
nginx -t -q -p "$PREFIX/" -e "$PREFIX/error.log" -c "$CONF"
nginx -p "$PREFIX/" -e "$PREFIX/error.log" -c "$CONF"
for _ in $(seq 50); do
  curl -fsS -m 1 http://127.0.0.1:18080/health >/dev/null 2>&1 && break; sleep 0.1
done
curl -fsS -m 1 http://127.0.0.1:18080/health >/dev/null
echo "mock upstream up on 127.0.0.1:18080 (nginx master pid $(cat "$PREFIX/nginx.pid"))"
