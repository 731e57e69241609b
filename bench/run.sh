#!/usr/bin/env bash
# Benchmark sluicegate against a static mock upstream; this is `make bench`.
#
#   bench/run.sh [--workers N] [--server uvicorn|granian] [--port P] [bench.py run options...]
#   e.g. bench/run.sh --workers 2
#        bench/run.sh --rates 50,100,200,500,1000 --stream-rates 20,50 --repeat 3
#   bench/run.sh --scenario limits [limits.py options...]
#        the cost of a Redis rate-limit check: sluicegate with and without one (bench/limits.py)
#
# 1. starts the nginx mock on 127.0.0.1:18080 (bench/mock-upstream/) unless one answers there;
# 2. starts sluicegate with bench/sluicegate.yaml on the first free loopback port from 18090
#    and waits for /readyz;
# 3. runs bench/bench.py: the mock alone ("direct"), then the same load through sluicegate;
# 4. stops what it started, by pid, and prints the tables.
# Results: bench/results/NAME-TIMESTAMP.json.  The default profile takes about 4 minutes.
# --server granian serves the same app with granian instead of uvicorn (for comparison
# only; granian is not a sluicegate dependency: pip install granian into .venv first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."   # the repository root; every path below is relative to it

PY="${PYTHON:-.venv/bin/python}"
CONFIG=bench/sluicegate.yaml
RUN_DIR=bench/.run
WORKERS=1
SERVER=uvicorn
PORT=""
SCENARIO=gateway
PASS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --server) SERVER="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --scenario) SCENARIO="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
[[ "$SERVER" == uvicorn || "$SERVER" == granian ]] || { echo "--server: uvicorn or granian" >&2; exit 2; }

missing=()
for tool in nginx wrk curl ss timeout; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "missing: ${missing[*]}. Install with:" >&2
  echo "  apt-get update && apt-get install -y nginx wrk curl iproute2" >&2
  exit 1
fi
[[ -x "$PY" ]] || { echo "no $PY: run 'make install' first (or set PYTHON)" >&2; exit 1; }
[[ "$SCENARIO" == gateway || "$SCENARIO" == limits ]] || { echo "--scenario: gateway or limits" >&2; exit 2; }
if [[ "$SCENARIO" == limits ]]; then
  # limits.py starts (and stops) the mock and both gateways itself.
  exec timeout -k 10 "${BENCH_TIMEOUT:-1800}" "$PY" bench/limits.py ${PASS[@]+"${PASS[@]}"}
fi
if [[ "$SERVER" == granian ]] && ! "$PY" -c "import granian" 2>/dev/null; then
  echo "granian is not installed: $PY -m pip install granian" >&2; exit 1
fi
mkdir -p "$RUN_DIR"

started_mock=0
gw_pid=""

descendants() {  # a pid and all its descendants, parents first
  local p
  echo "$1"
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do descendants "$p"; done
}

stop_gateway() {
  [[ -n "$gw_pid" ]] || return 0
  local pids
  pids="$(descendants "$gw_pid" | tr '\n' ' ')"
  kill -TERM "$gw_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
  for p in $pids; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait "$gw_pid" 2>/dev/null || true
  echo "sluicegate stopped (pid $gw_pid)" >&2
  gw_pid=""
}

cleanup() {
  stop_gateway
  if [[ $started_mock == 1 ]]; then bench/mock-upstream/stop.sh >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! curl -fsS -m 1 http://127.0.0.1:18080/health >/dev/null 2>&1; then
  bench/mock-upstream/start.sh >&2
  started_mock=1
else
  echo "using the mock upstream already answering on 127.0.0.1:18080" >&2
fi

if [[ -z "$PORT" ]]; then
  PORT="$("$PY" - <<'EOF'
import socket
for port in range(18090, 18190):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
EOF
)"
fi
[[ -n "$PORT" ]] || { echo "no free port in 18090-18189" >&2; exit 1; }

LOG="$RUN_DIR/sluicegate-$PORT.log"
if [[ "$SERVER" == uvicorn ]]; then
  "$PY" -m sluicegate serve --config "$CONFIG" --host 127.0.0.1 --port "$PORT" \
    --workers "$WORKERS" >"$LOG" 2>&1 &
else
  SLUICEGATE_CONFIG="$PWD/$CONFIG" "$PY" -m granian --interface asgi --factory \
    --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" --loop uvloop --http 1 \
    --log-level warning --no-access-log sluicegate.cli:app_factory >"$LOG" 2>&1 &
fi
gw_pid=$!
echo "sluicegate ($SERVER, $WORKERS worker(s)) starting on 127.0.0.1:$PORT, pid $gw_pid, log $LOG" >&2
for _ in $(seq 300); do
  if ! kill -0 "$gw_pid" 2>/dev/null; then
    echo "sluicegate exited during start-up; its log:" >&2; tail -n 30 "$LOG" >&2; gw_pid=""; exit 1
  fi
  curl -fsS -m 1 "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS -m 1 "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "no /readyz after 30 s" >&2; exit 1; }
if [[ $WORKERS -gt 1 ]]; then sleep 3; fi   # let every worker finish booting

version="$("$PY" -c 'import sluicegate; print(sluicegate.__version__)')"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain --untracked-files=no -- sluicegate 2>/dev/null)" ]]; then
  commit="$commit+dirty"
fi
name="sluicegate-${WORKERS}w"
[[ "$SERVER" == uvicorn ]] || name="sluicegate-$SERVER-${WORKERS}w"

# bench.py bounds each phase itself; this bounds the whole run.
timeout -k 10 "${BENCH_TIMEOUT:-1800}" "$PY" bench/bench.py run \
  --target "http://127.0.0.1:$PORT" --pid "$gw_pid" --name "$name" --version "$version" \
  --notes "server=$SERVER workers=$WORKERS commit=$commit config=$CONFIG" \
  ${PASS[@]+"${PASS[@]}"}
