#!/usr/bin/env python3
"""What the MCP gateway adds to a tool call: ``tools/call`` through sluicegate's
``/mcp/{server}`` against the same call sent to the MCP server directly.

  .venv/bin/python bench/mcp_calls.py [--rate 200] [--duration 10] [--rounds 3]

One MCP server written with the official SDK (bench/mcp_upstream.py, streamable HTTP,
its default SSE answers) and one sluicegate process (one worker, `auth: none`) in front
of it. Each target gets a session (initialize, then notifications/initialized) and then
the same open-loop load of `tools/call echo` (loadgen.py) at `--rate` calls per second,
direct and through the gateway alternately, round by round. The added latency is the
gateway's p50 (and p99) minus the direct one of the same round. Writes
bench/results/mcp-<UTC time>.json and prints a markdown table. Both processes are
stopped by process id at the end.
"""

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from gateways import free_port, serve
from procs import log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LOADGEN = os.path.join(HERE, "loadgen.py")
ACCEPT = "application/json, text/event-stream"
VERSION = "2025-11-25"


def post(url, message, session=None):
    headers = {"content-type": "application/json", "accept": ACCEPT}
    if session:
        headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = VERSION
    request = urllib.request.Request(url, json.dumps(message).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
        return answer.headers.get("mcp-session-id")


def open_session(url):
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    session = post(url, init)
    post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    return session


def load(url, session, body_file, rate, duration, python):
    cmd = [python, LOADGEN, "--url", url, "--body", body_file, "--rate", str(rate)]
    cmd += ["-H", f"Accept: {ACCEPT}", "-H", f"Mcp-Session-Id: {session}"]
    cmd += ["-H", f"Mcp-Protocol-Version: {VERSION}", "--duration", str(duration)]
    cmd += ["--jsonrpc-ids"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode:
        sys.exit(f"loadgen failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def upstream(python, workdir):
    port = free_port()
    with open(os.path.join(workdir, "upstream.log"), "w") as out:
        proc = subprocess.Popen(
            [python, os.path.join(HERE, "mcp_upstream.py"), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("the MCP server exited during start-up")
        try:
            open_session(url)
            break
        except OSError:
            time.sleep(0.1)
    log(f"upstream: pid {proc.pid} on {url}")
    return proc, url


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=200.0, help="tool calls per second")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--redis", help="gateway.redis: sessions kept in Redis (any instance)")
    ap.add_argument("--python", default=os.path.join(REPO, ".venv", "bin", "python"))
    a = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="sluicegate-bench-mcp-")
    body_file = os.path.join(workdir, "body.json")
    with open(body_file, "w") as f:
        call = {"name": "echo", "arguments": {"text": "hello from the benchmark"}}
        # Each call gets an id of its own (loadgen --jsonrpc-ids varies this one).
        json.dump({"jsonrpc": "2.0", "id": 100000000, "method": "tools/call", "params": call}, f)
    procs = []
    runs = []
    try:
        up, up_url = upstream(a.python, workdir)
        procs.append(up)
        redis = f", redis: {json.dumps(a.redis)}" if a.redis else ""
        config = (
            f"gateway: {{name: bench-mcp{redis}}}\nauth: none\n"
            f"mcp_servers:\n  - {{name: bench, url: {json.dumps(up_url)}}}\n"
        )
        gw, gw_url = serve("gateway", config, workdir, a.python)
        procs.append(gw)
        targets = {"direct": up_url, "gateway": gw_url + "/mcp/bench"}
        sessions = {name: open_session(url) for name, url in targets.items()}
        for name, url in targets.items():  # warm up both
            load(url, sessions[name], body_file, a.rate, 3, a.python)
        for rnd in range(a.rounds):
            order = ["direct", "gateway"] if rnd % 2 == 0 else ["gateway", "direct"]
            for name in order:
                out = load(targets[name], sessions[name], body_file, a.rate, a.duration, a.python)
                lat = out["latency_ms"]
                runs.append(
                    {
                        "target": name,
                        "round": rnd,
                        "rate": a.rate,
                        "rps": out["rps"],
                        "ok": out["ok"],
                        "errors": out["errors"],
                        "status": out.get("status"),
                        "error_detail": out.get("error_detail"),
                        "p50_ms": lat.get("p50"),
                        "p99_ms": lat.get("p99"),
                    }
                )
                log(f"round {rnd} {name}: p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    added = []
    for rnd in range(a.rounds):
        pair = {r["target"]: r for r in runs if r["round"] == rnd}
        added.append(
            {
                "round": rnd,
                "p50_ms": round(pair["gateway"]["p50_ms"] - pair["direct"]["p50_ms"], 3),
                "p99_ms": round(pair["gateway"]["p99_ms"] - pair["direct"]["p99_ms"], 3),
            }
        )
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rate": a.rate,
        "duration": a.duration,
        "sessions": "redis" if a.redis else "process",
        "runs": runs,
        "added": added,
        "added_p50_ms_median": statistics.median(x["p50_ms"] for x in added),
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(HERE, "results", f"mcp-{stamp}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print("| round | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for rnd in range(a.rounds):
        pair = {r["target"]: r for r in runs if r["round"] == rnd}
        d, g = pair["direct"], pair["gateway"]
        print(
            f"| {rnd} | {d['p50_ms']:.2f} ms | {g['p50_ms']:.2f} ms | "
            f"{g['p50_ms'] - d['p50_ms']:+.2f} ms | {d['p99_ms']:.2f} ms | {g['p99_ms']:.2f} ms | "
            f"{d['errors'] + g['errors']} |"
        )
    print(f"\nadded p50 (median of rounds): {result['added_p50_ms_median']:.2f} ms; {path}")


if __name__ == "__main__":
    main()
