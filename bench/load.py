"""The requests a benchmark sends: one request checked by hand, and the load tools.

post, check_chat and check_stream send a single request and validate its answer
(a chat completion; a stream of chunks ending in [DONE]) before any load runs.
wrk (closed loop, bench/lua/chat.lua) measures saturation; loadgen runs
loadgen.py (open loop, next to this file) at a fixed rate. Both run under
`timeout`, and require_loopback refuses to aim them anywhere but this machine.
tool_versions records the versions of wrk and of nginx (the mock upstream).

Standard library only; used by bench.py, matrix.py and limits.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "lua", "chat.lua")
LOADGEN = os.path.join(HERE, "loadgen.py")


def require_loopback(url: str) -> None:
    """Exit unless every address `url` names is on this machine."""
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        addrs = {str(ai[4][0]) for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        sys.exit(f"cannot resolve {host!r}")
    for a in addrs:
        if not (a.startswith("127.") or a == "::1"):
            sys.exit(f"refusing to send load to non-loopback address {a} ({url})")


def post(
    url: str, body: dict[str, Any], api_key: str, timeout: float = 30
) -> tuple[int, dict[str, str], bytes, float]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = r.read()
        return r.status, dict(r.headers), data, time.perf_counter() - t0


def check_chat(url: str, body: dict[str, Any], api_key: str) -> dict[str, Any]:
    status, _, data, secs = post(url, body, api_key)
    obj = json.loads(data)
    content = obj["choices"][0]["message"]["content"]
    assert status == 200 and content, f"bad response {status}: {data[:300]!r}"
    return {
        "status": status,
        "bytes": len(data),
        "secs": round(secs, 4),
        "content_chars": len(content),
        "usage": obj.get("usage", {}).get("total_tokens"),
    }


def check_response(url: str, body: dict[str, Any], api_key: str) -> dict[str, Any]:
    """A Responses API answer: a completed response with text."""
    status, _, data, secs = post(url, body, api_key)
    obj = json.loads(data)
    texts = [
        part.get("text", "")
        for item in obj.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
    ]
    content = "".join(texts)
    assert status == 200 and obj.get("status") == "completed" and content, (
        f"bad response {status}: {data[:300]!r}"
    )
    return {
        "status": status,
        "bytes": len(data),
        "secs": round(secs, 4),
        "content_chars": len(content),
        "usage": (obj.get("usage") or {}).get("total_tokens"),
    }


def check_stream(url: str, body: dict[str, Any], api_key: str) -> dict[str, Any]:
    status, headers, data, secs = post(url, body, api_key)
    text = data.decode()
    events = [ln[5:].strip() for ln in text.splitlines() if ln.startswith("data:")]
    assert events and events[-1] == "[DONE]", f"stream does not end with [DONE]: {text[-300:]!r}"
    content = ""
    for e in events[:-1]:
        obj = json.loads(e)
        assert obj.get("object") == "chat.completion.chunk", f"not a chunk: {e[:200]}"
        for ch in obj.get("choices") or []:
            content += (ch.get("delta") or {}).get("content") or ""
    assert content, f"stream carried no content: {text[:300]!r}"
    ctype = headers.get("Content-Type") or headers.get("content-type") or ""
    return {
        "status": status,
        "bytes": len(data),
        "secs": round(secs, 4),
        "events": len(events),
        "content_chars": len(content),
        "content_type": ctype,
    }


# --------------------------------------------------------------------------- load tools
def run_tool(cmd: list[str], duration: float) -> str:
    full = ["timeout", "-k", "5", str(int(duration + 60)), *cmd]
    p = subprocess.run(full, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed rc={p.returncode}: {p.stderr[-2000:]}")
    return p.stdout


def wrk(
    url: str, body_file: str, api_key: str, conc: int, duration: int, threads: int
) -> dict[str, Any]:
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{duration}s", "--timeout", "10s"]
    cmd += ["--latency", "-s", LUA, url, "--", body_file, api_key]
    out = run_tool(cmd, duration)
    m = re.search(r"^WRKJSON (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"no WRKJSON in wrk output:\n{out}")
    j = json.loads(m.group(1))
    secs = j["duration_us"] / 1e6
    return {
        "tool": "wrk",
        "concurrency": conc,
        "threads": threads,
        "duration_s": round(secs, 3),
        "requests": j["requests"],
        "rps": round(j["requests"] / secs, 1),
        "errors": sum(j["errors"].values()),
        "error_detail": j["errors"],
        "latency_ms": {k: round(v / 1000, 3) for k, v in j["latency_us"].items()},
    }


def loadgen(
    url: str,
    body_file: str,
    api_key: str,
    rate: int,
    duration: int,
    timeout: float = 10,
    max_conns: int = 512,
) -> dict[str, Any]:
    """Open-loop fixed rate (see loadgen.py); latencies in ms, measured from the actual send."""
    cmd = [sys.executable, LOADGEN, "--url", url, "--body", body_file]
    cmd += ["-H", f"Authorization: Bearer {api_key}", "--rate", str(rate)]
    cmd += ["--duration", str(duration), "--timeout", str(timeout), "--max-conns", str(max_conns)]
    j = json.loads(run_tool(cmd, duration))
    keep = ("mean", "p50", "p90", "p99", "p99.9", "max")
    r: dict[str, Any] = {
        "tool": "loadgen",
        "target_rps": rate,
        "duration_s": duration,
        "requests": j["completed"],
        "rps": j["rps"],
        "ok": j["ok"],
        "errors": j["errors"],
        "status": j["status"],
        "error_detail": j["error_detail"],
        "unsent": j["unsent"],
        "abandoned": j["abandoned"],
        "conns_peak": j["conns_peak"],
    }
    for k in ("latency_ms", "latency_sched_ms", "ttfb_ms", "ttfe_ms", "late_ms"):
        r[k] = {q: j[k].get(q) for q in keep}
    return r


def tool_versions() -> dict[str, str | None]:
    v: dict[str, str | None] = {}
    for name, cmd in (("wrk", ["wrk", "-v"]), ("nginx", ["nginx", "-v"])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
            v[name] = (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            v[name] = None
    return v
