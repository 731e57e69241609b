#!/usr/bin/env python3
"""sluicegate benchmark driver: the latency a gateway adds and the throughput it
keeps, against a static mock upstream (nginx, bench/mock-upstream/).

Standard library only.  wrk must be on PATH (closed-loop saturation runs);
fixed-rate runs use loadgen.py (open loop, next to this file).  All load goes to
the URLs given, which must be loopback addresses (anything else is refused).

  python3 bench/bench.py run --target http://127.0.0.1:18090 --name sluicegate-1w
  python3 bench/bench.py table bench/results/*.json

bench/run.sh starts the mock and sluicegate and calls `run`; use this file
directly to measure any other gateway that routes the two model names below.

For each target (the mock itself = "direct", then the gateway) one run does:
  sanity       one non-streaming and one streaming request, responses validated
  warmup       wrk, not recorded
  saturation   wrk -c CONC for DURATION, REPEAT times   (RPS at saturation, latency)
  fixed rate   loadgen at each RATE for DURATION       (p50/p90/p99, errors, achieved RPS)
  stream sat   wrk -c CONC on stream=true requests     (RPS, total latency)
  stream rate  loadgen at each STREAM_RATE             (first event and total latency)
while sampling the target's process tree (RSS, PSS, CPU) from /proc.
Added latency = gateway percentile - direct percentile at the same offered rate.

Streaming is selected by path, because nginx cannot read the body: the mock
answers SSE only on /stream/v1/chat/completions.  Direct streaming requests go
to that path; gateway streaming requests go to --stream-path with
model=--stream-model, which the gateway must route to the mock's /stream/v1.
"""

import argparse
import datetime as dt
import glob
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LUA = os.path.join(HERE, "lua", "chat.lua")
LOADGEN = os.path.join(HERE, "loadgen.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def relative(text):
    """Command lines recorded in results name files relative to the repository."""
    return text.replace(REPO + os.sep, "").replace(REPO, ".")


# --------------------------------------------------------------------------- safety
def require_loopback(url):
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        sys.exit(f"cannot resolve {host!r}")
    for a in addrs:
        if not (a.startswith("127.") or a == "::1"):
            sys.exit(f"refusing to send load to non-loopback address {a} ({url})")


# --------------------------------------------------------------------------- /proc sampling
def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def listening_pids(port):
    """pids holding a LISTEN socket on `port` (ss, falling back to /proc)."""
    pids = set()
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True
        ).stdout
        pids |= {int(p) for p in re.findall(r"pid=(\d+)", out)}
    if pids:
        return pids
    inodes = set()
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (_read(fn) or "").splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    for d in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            link = os.readlink(d)
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            pids.add(int(d.split("/")[2]))
    return pids


def process_tree(roots):
    """roots plus all their live descendants."""
    children = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        s = _read(st)
        if not s:
            continue
        rest = s[s.rfind(")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(st.split("/")[2]))
    seen, todo = set(), [r for r in roots if os.path.exists(f"/proc/{r}")]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(children.get(p, []))
    return sorted(seen)


def proc_cpu_s(pid):
    s = _read(f"/proc/{pid}/stat")
    if not s:
        return 0.0
    rest = s[s.rfind(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_mem_kb(pid):
    """(rss_kb, pss_kb) of one process."""
    rss = pss = 0
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
            break
    for line in (_read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
            break
    return rss, pss


def cpu_times():
    """(busy, total, steal) jiffies summed over all CPUs, from /proc/stat."""
    f = [int(x) for x in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    steal = f[7] if len(f) > 7 else 0
    total = sum(f[:8])
    return total - idle, total, steal


def machine_busy(seconds=1.0):
    b0, t0, _ = cpu_times()
    time.sleep(seconds)
    b1, t1, _ = cpu_times()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(threshold, max_wait, label):
    """Wait (up to max_wait s) until the whole machine is below `threshold` busy:
    other jobs on a 2-core box distort every number."""
    t_end = time.monotonic() + max_wait
    busy = machine_busy(1.0)
    while busy > threshold and time.monotonic() < t_end:
        top = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True
        ).stdout.splitlines()[1:4]
        log(
            f"[{label}] machine {100 * busy:.0f}% busy (> {100 * threshold:.0f}%), waiting; top: "
            + "; ".join(" ".join(x.split()) for x in top)
        )
        time.sleep(4)
        busy = machine_busy(1.0)
    if busy > threshold:
        log(f"[{label}] WARNING: machine still {100 * busy:.0f}% busy; results will be noisy")
    return round(100 * busy, 1)


class Sampler:
    """Samples RSS/PSS (sum over the process tree) every `interval` s and CPU time."""

    def __init__(self, roots, interval=0.1, also=()):
        self.roots, self.interval = roots, interval
        self.also = also  # other known load (the mock upstream) to exclude from "foreign" CPU
        self._stop = threading.Event()
        self.peak_rss_kb = self.peak_pss_kb = 0
        self.nprocs = 0

    def snapshot(self):
        pids = process_tree(self.roots)
        rss = pss = 0
        for p in pids:
            r, s = proc_mem_kb(p)
            rss, pss = rss + r, pss + s
        return pids, rss, pss

    def cpu(self):
        return sum(proc_cpu_s(p) for p in process_tree(self.roots))

    def _run(self):
        while not self._stop.is_set():
            pids, rss, pss = self.snapshot()
            self.nprocs = max(self.nprocs, len(pids))
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self._stop.wait(self.interval)

    def _own_cpu(self):
        t = os.times()  # this driver + its finished children (wrk, loadgen)
        return (
            t.user
            + t.system
            + t.children_user
            + t.children_system
            + sum(proc_cpu_s(p) for p in process_tree(self.also))
        )

    def __enter__(self):
        self.cpu0, self.t0 = self.cpu(), time.monotonic()
        self.sys0 = cpu_times()
        self.own0 = self._own_cpu()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.cpu_s = self.cpu() - self.cpu0
        self.wall_s = time.monotonic() - self.t0
        b1, t1, st1 = cpu_times()
        b0, t0, st0 = self.sys0
        self.sys_busy_pct = 100 * (b1 - b0) / max(1, t1 - t0)
        self.sys_steal_pct = 100 * (st1 - st0) / max(1, t1 - t0)
        # CPU used by anything else on the box, in % of one core: the noise indicator
        own = self._own_cpu() - self.own0
        self.foreign_pct = 100 * max(0.0, (b1 - b0) / CLK_TCK - self.cpu_s - own) / self.wall_s

    def result(self, requests=None):
        if not self.roots:
            return {
                "machine_busy_pct": round(self.sys_busy_pct, 1),
                "machine_steal_pct": round(self.sys_steal_pct, 1),
                "foreign_cpu_pct": round(self.foreign_pct, 1),
            }
        r = {
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "peak_pss_mb": round(self.peak_pss_kb / 1024, 1),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_pct": round(100 * self.cpu_s / self.wall_s, 1),
            "procs": self.nprocs,
            "machine_busy_pct": round(self.sys_busy_pct, 1),
            "machine_steal_pct": round(self.sys_steal_pct, 1),
            "foreign_cpu_pct": round(self.foreign_pct, 1),
        }
        if requests:
            r["cpu_ms_per_req"] = round(1000 * self.cpu_s / requests, 3)
        return r


# --------------------------------------------------------------------------- sanity checks
def post(url, body, api_key, timeout=30):
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


def check_chat(url, body, api_key):
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


def check_stream(url, body, api_key):
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
def run_tool(cmd, duration):
    full = ["timeout", "-k", "5", str(int(duration + 60)), *cmd]
    p = subprocess.run(full, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed rc={p.returncode}: {p.stderr[-2000:]}")
    return p.stdout


def wrk(url, body_file, api_key, conc, duration, threads):
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


def loadgen(url, body_file, api_key, rate, duration, timeout=10, max_conns=512):
    """Open-loop fixed rate (see loadgen.py); latencies in ms, measured from the actual send."""
    cmd = [sys.executable, LOADGEN, "--url", url, "--body", body_file]
    cmd += ["-H", f"Authorization: Bearer {api_key}", "--rate", str(rate)]
    cmd += ["--duration", str(duration), "--timeout", str(timeout), "--max-conns", str(max_conns)]
    j = json.loads(run_tool(cmd, duration))
    keep = ("mean", "p50", "p90", "p99", "p99.9", "max")
    r = {
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


# --------------------------------------------------------------------------- one target
def settle(pids, label, max_wait=30.0, threshold=0.05):
    """After an overload phase, wait until the target's processes are idle again."""
    if not pids:
        return
    t_end = time.monotonic() + max_wait
    while time.monotonic() < t_end:
        c0 = sum(proc_cpu_s(p) for p in process_tree(pids))
        time.sleep(0.5)
        if (sum(proc_cpu_s(p) for p in process_tree(pids)) - c0) / 0.5 < threshold:
            return
    log(f"[{label}] WARNING: target still busy {max_wait:.0f}s after the phase")


def _ms(r, key="latency_ms"):
    return f"p50 {r[key]['p50']} ms, p99 {r[key]['p99']} ms"


def bench_target(label, base, paths, models, pids, a, tmp, other_pids=()):
    url, surl = base.rstrip("/") + paths[0], base.rstrip("/") + paths[1]
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "In two sentences, what does an LLM gateway do?"},
    ]
    body = {"model": models[0], "messages": msgs, "max_tokens": 128, "temperature": 0}
    sbody = {"model": models[1], "messages": msgs, "max_tokens": 128, "temperature": 0}
    sbody["stream"] = True
    bf, sbf = os.path.join(tmp, f"{label}-body.json"), os.path.join(tmp, f"{label}-sbody.json")
    for path, obj in ((bf, body), (sbf, sbody)):
        with open(path, "w") as f:
            json.dump(obj, f)
    also = set(other_pids) - set(pids)  # the mock: not "other load" while measuring the gateway

    def sampler():
        return Sampler(pids, also=also)  # no pids: machine-wide numbers only

    def pause():
        settle(pids, label)
        time.sleep(a.pause)
        wait_quiet(a.quiet_threshold, a.wait_quiet_phase, label)

    res = {
        "label": label,
        "base_url": base,
        "path": paths[0],
        "stream_path": paths[1],
        "model": models[0],
        "stream_model": models[1],
        "pids": sorted(pids),
    }
    if pids:
        res["procs"] = [
            {
                "pid": p,
                "cmd": relative(" ".join((_read(f"/proc/{p}/cmdline") or "").split("\0")).strip()),
            }
            for p in process_tree(pids)
        ]
        _, rss, pss = Sampler(pids).snapshot()
        res["idle_rss_mb"], res["idle_pss_mb"] = round(rss / 1024, 1), round(pss / 1024, 1)

    log(f"[{label}] sanity {url}")
    res["sanity"] = {"chat": check_chat(url, body, a.api_key)}
    if not a.skip_stream:
        res["sanity"]["stream"] = check_stream(surl, sbody, a.api_key)
    log(f"[{label}] sanity ok: {res['sanity']}")

    res["machine_busy_before_pct"] = wait_quiet(a.quiet_threshold, a.wait_quiet, label)
    log(f"[{label}] warmup {a.warmup}s")
    wrk(url, bf, a.api_key, a.concurrency, a.warmup, a.wrk_threads)
    if not a.skip_stream:
        wrk(surl, sbf, a.api_key, a.concurrency, max(1, a.warmup // 2), a.wrk_threads)
    pause()

    res["saturation"] = []
    for i in range(a.repeat):
        with sampler() as s:
            r = wrk(url, bf, a.api_key, a.concurrency, a.duration, a.wrk_threads)
        r["proc"] = s.result(r["requests"])
        res["saturation"].append(r)
        log(f"[{label}] saturation #{i + 1}: {r['rps']} rps, {_ms(r)}, errors {r['errors']}")
        log(f"[{label}]   proc {r['proc']}")
        pause()

    res["fixed"] = []
    for rate in a.rates:
        with sampler() as s:
            r = loadgen(url, bf, a.api_key, rate, a.duration)
        r["proc"] = s.result(r["requests"])
        res["fixed"].append(r)
        log(f"[{label}] rate {rate}: achieved {r['rps']} rps, {_ms(r)}, errors {r['errors']}")
        log(f"[{label}]   proc {r['proc']}")
        pause()

    if not a.skip_stream:
        with sampler() as s:
            r = wrk(surl, sbf, a.api_key, a.concurrency, a.duration, a.wrk_threads)
        r["proc"] = s.result(r["requests"])
        res["stream_saturation"] = r
        log(f"[{label}] stream saturation: {r['rps']} rps, {_ms(r)}, errors {r['errors']}")
        pause()
        res["stream_fixed"] = []
        for rate in a.stream_rates:
            with sampler() as s:
                r = loadgen(surl, sbf, a.api_key, rate, a.duration)
                r["first_event_ms"] = r["ttfe_ms"]
            r["proc"] = s.result(r["requests"])
            res["stream_fixed"].append(r)
            log(
                f"[{label}] stream rate {rate}: achieved {r['rps']} rps, first event "
                f"{_ms(r, 'first_event_ms')}; total {_ms(r)}; errors {r['errors']}"
            )
            pause()
    if pids:
        _, rss, pss = Sampler(pids).snapshot()
        res["after_rss_mb"], res["after_pss_mb"] = round(rss / 1024, 1), round(pss / 1024, 1)
    return res


def tool_versions():
    v = {}
    for name, cmd in (("wrk", ["wrk", "-v"]), ("nginx", ["nginx", "-v"])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
            v[name] = (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            v[name] = None
    return v


def port_of(url):
    u = urllib.parse.urlparse(url)
    return u.port or (443 if u.scheme == "https" else 80)


def resolve_pids(url, explicit):
    if explicit == "none":
        return set()
    if explicit:
        return {int(p) for p in explicit.split(",")}
    return listening_pids(port_of(url))


def cmd_run(a):
    for t in ("wrk", "timeout"):
        if not shutil.which(t):
            sys.exit(f"{t} not found on PATH (apt-get install -y wrk)")
    require_loopback(a.target)
    require_loopback(a.direct)
    a.rates = [int(x) for x in a.rates.split(",") if x]
    a.stream_rates = [int(x) for x in a.stream_rates.split(",") if x]
    started = dt.datetime.now(dt.UTC)
    params = ["target", "direct", "path", "stream_path", "direct_stream_path", "model"]
    params += ["stream_model", "duration", "warmup", "concurrency", "repeat", "rates"]
    params += ["stream_rates", "wrk_threads", "skip_stream", "skip_direct"]
    out = {
        "name": a.name,
        "version": a.version,
        "notes": a.notes,
        "started_utc": started.isoformat(timespec="seconds"),
        "host": {
            "machine": platform.machine(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": _read("/proc/loadavg").split()[:3],
        },
        "tools": tool_versions(),
        "params": {k: getattr(a, k) for k in params},
    }
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmp:
        direct_pids = resolve_pids(a.direct, a.direct_pid)
        if not a.skip_direct:
            out["direct"] = bench_target(
                "direct",
                a.direct,
                (a.path, a.direct_stream_path),
                (a.model, a.model),
                direct_pids,
                a,
                tmp,
            )
        gp = resolve_pids(a.target, a.pid)
        if not gp:
            log(f"WARNING: nothing found listening on port {port_of(a.target)}; no RSS/CPU figures")
        out["gateway"] = bench_target(
            a.name,
            a.target,
            (a.path, a.stream_path),
            (a.model, a.stream_model),
            gp,
            a,
            tmp,
            other_pids=direct_pids,
        )
    out["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if "direct" in out:
        out["overhead"] = overhead(out["direct"], out["gateway"])
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, f"{a.name}-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    log(f"wrote {relative(path)}")
    print(summary(out) + "\n" + render([out]))


# --------------------------------------------------------------------------- reporting
def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _sub(x, y):
    return None if x is None or y is None else round(x - y, 3)


def _at(phases, rate):
    return next((r for r in phases or [] if r["target_rps"] == rate), None)


def overhead(d, g):
    o = {"saturation_rps_ratio": None, "fixed": [], "stream_fixed": []}
    drps = _med([r["rps"] for r in d.get("saturation", [])])
    grps = _med([r["rps"] for r in g.get("saturation", [])])
    if drps and grps:
        o["saturation_rps_ratio"] = round(grps / drps, 4)
    for gr in g.get("fixed", []):
        dr = _at(d.get("fixed"), gr["target_rps"])
        if dr:
            added = {
                f"added_{k}_ms": _sub(gr["latency_ms"][k], dr["latency_ms"][k])
                for k in ("p50", "p90", "p99")
            }
            o["fixed"].append({"target_rps": gr["target_rps"], **added})
    for gr in g.get("stream_fixed", []):
        dr = _at(d.get("stream_fixed"), gr["target_rps"])
        if dr:
            added = {}
            for k in ("p50", "p99"):
                fe = _sub(gr["first_event_ms"][k], dr["first_event_ms"][k])
                added[f"added_first_event_{k}_ms"] = fe
                added[f"added_total_{k}_ms"] = _sub(gr["latency_ms"][k], dr["latency_ms"][k])
            o["stream_fixed"].append({"target_rps": gr["target_rps"], **added})
    return o


def f1(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def _pair(lat, nd=2):
    return "-" if not lat else f"{f1(lat.get('p50'), nd)} / {f1(lat.get('p99'), nd)}"


def _row(*cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _head(*cells):
    return _row(*cells) + "\n" + "|" + "---|" * len(cells)


def _pct(x, y):
    return f"{100 * x / y:.2g}%" if x and y else "-"


def _over(r):
    return " (overloaded)" if r["rps"] < 0.97 * r["target_rps"] else ""


def _procs(t):
    phases = t.get("saturation", []) + t.get("fixed", []) + t.get("stream_fixed", [])
    if t.get("stream_saturation"):
        phases.append(t["stream_saturation"])
    return phases, [p.get("proc") or {} for p in phases]


def summary(r):
    """One run, side by side: direct (the mock alone), through the gateway, and the difference."""
    g, d, name = r["gateway"], r.get("direct") or {}, r["name"]
    lines = [f"### {name}: direct vs through the gateway, same run (latency in ms)\n"]
    lines.append(_head("load", "direct", name, "added by the gateway / ratio"))
    gsat = [s["rps"] for s in g.get("saturation", [])]
    dsat = [s["rps"] for s in d.get("saturation", [])]
    runs = " / ".join(f1(x, 0) for x in gsat)
    lines.append(
        _row(
            f"saturation RPS, wrk c={a_conc(g)} (median of {len(gsat)})",
            f1(_med(dsat), 0),
            f"{f1(_med(gsat), 0)} ({runs})",
            f"ratio {_pct(_med(gsat), _med(dsat))}",
        )
    )
    dl = {k: _med([s["latency_ms"][k] for s in d.get("saturation", [])]) for k in ("p50", "p99")}
    gl = {k: _med([s["latency_ms"][k] for s in g.get("saturation", [])]) for k in ("p50", "p99")}
    lines.append(_row("saturation p50 / p99", _pair(dl), _pair(gl), "(queueing; not overhead)"))
    for gx in g.get("fixed", []):
        dx = _at(d.get("fixed"), gx["target_rps"])
        add = "-"
        if dx:
            add = _pair({k: _sub(gx["latency_ms"][k], dx["latency_ms"][k]) for k in ("p50", "p99")})
        lines.append(
            _row(
                f"{gx['target_rps']} RPS p50 / p99 (achieved {f1(gx['rps'], 0)}{_over(gx)})",
                _pair(dx["latency_ms"]) if dx else "-",
                _pair(gx["latency_ms"]),
                add,
            )
        )
    ss, ds = g.get("stream_saturation"), d.get("stream_saturation")
    if ss:
        lines.append(
            _row(
                f"stream saturation RPS, wrk c={ss['concurrency']}",
                f1(ds["rps"], 0) if ds else "-",
                f1(ss["rps"], 0),
                f"ratio {_pct(ss['rps'], ds['rps'] if ds else None)}",
            )
        )
    for gx in g.get("stream_fixed", []):
        dx = _at(d.get("stream_fixed"), gx["target_rps"])
        for key, what in (("first_event_ms", "first event"), ("latency_ms", "total")):
            add = "-"
            if dx:
                add = _pair({k: _sub(gx[key][k], dx[key][k]) for k in ("p50", "p99")})
            lines.append(
                _row(
                    f"stream {gx['target_rps']} RPS, {what} p50 / p99{_over(gx)}",
                    _pair(dx[key]) if dx else "-",
                    _pair(gx[key]),
                    add,
                )
            )
    phases, procs = _procs(g)
    cpu = _med([(s.get("proc") or {}).get("cpu_ms_per_req") for s in g.get("saturation", [])])
    peak = max((p.get("peak_rss_mb") or 0) for p in procs) if procs else None
    other = max((p.get("foreign_cpu_pct") or 0) for p in procs) if procs else None
    lines.append(_row("gateway CPU ms per request (saturation)", "-", f1(cpu, 2), ""))
    lines.append(
        _row("gateway RSS MB, idle / peak", "-", f"{f1(g.get('idle_rss_mb'))} / {f1(peak)}", "")
    )
    lines.append(_row("errors, all phases", "-", sum(p.get("errors", 0) for p in phases), ""))
    lines.append(_row("other load on the box, max % of a core", "-", f1(other, 0), ""))
    return "\n".join(lines) + "\n"


def a_conc(t):
    sat = t.get("saturation") or [{}]
    return sat[0].get("concurrency", "?")


def _tag(r):
    """name, version, commit (from --notes "commit=..."), start time."""
    parts = [r["name"], r.get("version") or ""]
    commit = re.search(r"\bcommit=(\S+)", r.get("notes") or "")
    parts.append(commit.group(1) if commit else "")
    parts.append(f"@{r['started_utc'][11:16]}Z")
    return " ".join(p for p in parts if p)


def _labelled(results):
    rows = []  # (label, target, paired direct or None)
    for r in results:
        at = f"@{r['started_utc'][11:16]}Z"
        tag = _tag(r)
        if "direct" in r:
            rows.append((f"direct (paired with {r['name']} {at})", r["direct"], None))
        rows.append((tag, r["gateway"], r.get("direct")))
    return rows


def render(results):
    """Markdown tables for one or more result files (each: direct + gateway)."""
    rows = _labelled(results)
    lines = ["### Saturation (wrk closed loop, non-streaming)\n"]
    lines.append(
        _head(
            "target",
            "conc",
            "RPS per run",
            "RPS median",
            "vs direct",
            "p50 ms",
            "p99 ms",
            "errors",
            "peak RSS MB",
            "CPU %",
            "CPU ms/req",
            "other load %",
        )
    )
    for label, t, d in rows:
        sat = t.get("saturation", [])
        if not sat:
            continue
        rps = [s["rps"] for s in sat]
        ratio = _pct(_med(rps), _med([s["rps"] for s in d["saturation"]])) if d else "-"
        procs = [s.get("proc") or {} for s in sat]
        lines.append(
            _row(
                label,
                sat[0]["concurrency"],
                " / ".join(f1(x, 0) for x in rps),
                f1(_med(rps), 0),
                ratio,
                f1(_med([s["latency_ms"]["p50"] for s in sat]), 2),
                f1(_med([s["latency_ms"]["p99"] for s in sat]), 2),
                sum(s["errors"] for s in sat),
                f1(max((p.get("peak_rss_mb") or 0) for p in procs) or None),
                f1(_med([p.get("cpu_pct") for p in procs]), 0),
                f1(_med([p.get("cpu_ms_per_req") for p in procs]), 3),
                f1(max((p.get("foreign_cpu_pct") or 0) for p in procs), 0),
            )
        )

    lines.append("\n### Fixed rate (non-streaming, loadgen open loop): latency ms\n")
    lines.append(
        _head(
            "target",
            "offered RPS",
            "achieved RPS",
            "p50",
            "p90",
            "p99",
            "p99 incl. client queue",
            "added p50",
            "added p99",
            "errors",
            "peak RSS MB",
            "CPU %",
            "CPU ms/req",
            "other load %",
        )
    )
    for label, t, d in rows:
        for fx in t.get("fixed", []):
            dd = _at((d or {}).get("fixed"), fx["target_rps"])
            lat, p = fx["latency_ms"], fx.get("proc") or {}
            lines.append(
                _row(
                    label,
                    fx["target_rps"],
                    f1(fx["rps"], 0),
                    f1(lat["p50"], 2),
                    f1(lat["p90"], 2),
                    f1(lat["p99"], 2),
                    f1((fx.get("latency_sched_ms") or {}).get("p99"), 2),
                    f1(_sub(lat["p50"], dd["latency_ms"]["p50"]) if dd else None, 2),
                    f1(_sub(lat["p99"], dd["latency_ms"]["p99"]) if dd else None, 2),
                    fx["errors"],
                    f1(p.get("peak_rss_mb")),
                    f1(p.get("cpu_pct"), 0),
                    f1(p.get("cpu_ms_per_req"), 3),
                    f1(p.get("foreign_cpu_pct"), 0),
                )
            )

    if any(t.get("stream_saturation") for _, t, _ in rows):
        lines.append(
            "\n### Streaming (SSE): wrk saturation, then fixed rate; "
            "first event = request sent to first body byte\n"
        )
        lines.append(
            _head(
                "target",
                "sat RPS",
                "sat p50 / p99",
                "offered RPS",
                "achieved",
                "first event p50 / p99",
                "total p50 / p99",
                "added first event p50 / p99",
                "added total p50 / p99",
                "errors",
            )
        )
        for label, t, d in rows:
            ss = t.get("stream_saturation")
            if not ss:
                continue
            for fx in t.get("stream_fixed", []) or [None]:
                cells = ["-"] * 6
                if fx:
                    dd = _at((d or {}).get("stream_fixed"), fx["target_rps"])
                    fe, tot = fx["first_event_ms"], fx["latency_ms"]
                    add_fe = add_tot = None
                    if dd:
                        add_fe = {k: _sub(fe[k], dd["first_event_ms"][k]) for k in ("p50", "p99")}
                        add_tot = {k: _sub(tot[k], dd["latency_ms"][k]) for k in ("p50", "p99")}
                    cells = [fx["target_rps"], f1(fx["rps"], 0), _pair(fe), _pair(tot)]
                    cells += [_pair(add_fe), _pair(add_tot)]
                errors = ss["errors"] + (fx["errors"] if fx else 0)
                lines.append(_row(label, f1(ss["rps"], 0), _pair(ss["latency_ms"]), *cells, errors))

    lines.append("\n### Memory (sum over the target's processes)\n")
    lines.append(_head("target", "processes", "idle RSS MB", "peak RSS MB", "peak PSS MB", "after"))
    for label, t, _ in rows:
        procs = [p for p in _procs(t)[1] if p.get("peak_rss_mb") is not None]
        if procs:
            lines.append(
                _row(
                    label,
                    max(p["procs"] for p in procs),
                    f1(t.get("idle_rss_mb")),
                    f1(max(p["peak_rss_mb"] for p in procs)),
                    f1(max(p["peak_pss_mb"] for p in procs)),
                    f1(t.get("after_rss_mb")),
                )
            )
    return "\n".join(lines) + "\n"


def headline(results):
    """One compact row per gateway run: the figures to compare gateways by."""
    rates = sorted({fx["target_rps"] for r in results for fx in r["gateway"].get("fixed", [])})
    srates = sorted(
        {fx["target_rps"] for r in results for fx in r["gateway"].get("stream_fixed", [])}
    )
    head = ["gateway", "sat RPS (runs)", "% of direct", "CPU ms/req"]
    head += [f"@{x} RPS: achieved, p50/p99 ms (added p50)" for x in rates]
    head += [f"stream @{x}: first event p50/p99 ms (added p50)" for x in srates]
    head += ["errors (all phases)", "peak RSS MB", "other load % (max)"]
    lines = [_head(*head)]
    for r in results:
        g, d = r["gateway"], r.get("direct") or {}
        sat = g.get("saturation", [])
        rps = [s["rps"] for s in sat]
        drps = _med([s["rps"] for s in d.get("saturation", [])])
        name = _tag(r)
        cells = [
            name,
            " / ".join(f1(x, 0) for x in rps) or "-",
            _pct(_med(rps), drps),
            f1(_med([(s.get("proc") or {}).get("cpu_ms_per_req") for s in sat]), 2),
        ]
        for x in rates:
            fx, dx = _at(g.get("fixed"), x), _at(d.get("fixed"), x)
            if not fx:
                cells.append("-")
                continue
            lat = fx["latency_ms"]
            add = f" ({f1(_sub(lat['p50'], dx['latency_ms']['p50']), 2)})" if dx else ""
            cells.append(f"{f1(fx['rps'], 0)}{_over(fx)}, {_pair(lat).replace(' ', '')}{add}")
        for x in srates:
            fx, dx = _at(g.get("stream_fixed"), x), _at(d.get("stream_fixed"), x)
            if not fx:
                cells.append("-")
                continue
            fe = fx["first_event_ms"]
            add = f" ({f1(_sub(fe['p50'], dx['first_event_ms']['p50']), 2)})" if dx else ""
            cells.append(f"{_pair(fe).replace(' ', '')}{add}{_over(fx)}")
        phases, procs = _procs(g)
        cells.append(str(sum(p.get("errors", 0) for p in phases)))
        cells.append(f1(max((p.get("peak_rss_mb") or 0) for p in procs) or None))
        cells.append(f1(max((p.get("foreign_cpu_pct") or 0) for p in procs), 0))
        lines.append(_row(*cells))
    return "\n".join(lines) + "\n"


def cmd_table(a):
    files = []
    for pat in a.files:
        files += sorted(glob.glob(pat)) or [pat]
    results = []
    for name in files:
        with open(name) as f:
            results.append(json.load(f))
    if a.headline:
        print(headline(results))
        return
    print("### Headline\n\n" + headline(results))
    if a.summary:
        for r in results:
            print(summary(r))
    print(render(results))


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="benchmark direct (mock) and a gateway")
    add = r.add_argument
    add("--target", required=True, help="gateway base URL, e.g. http://127.0.0.1:18090")
    add("--name", default="gateway", help="label used in results and file names")
    add("--version", default="", help="gateway version string to record")
    add("--notes", default="", help="free text recorded in the result (server, flags)")
    add(
        "--pid",
        default="",
        help="gateway pid(s), comma separated; default: whoever listens on the target port "
        "(+ descendants); 'none' to skip RSS/CPU",
    )
    add("--direct", default="http://127.0.0.1:18080", help="mock upstream base URL")
    add("--direct-pid", default="", help="like --pid for the mock upstream")
    add("--skip-direct", action="store_true", help="do not measure the direct baseline")
    add("--path", default="/v1/chat/completions")
    add("--stream-path", default="/v1/chat/completions", help="gateway path for stream requests")
    add("--direct-stream-path", default="/stream/v1/chat/completions")
    add("--model", default="gpt-4o-mini")
    add("--stream-model", default="gpt-4o-mini-stream", help="routed to the mock's /stream/v1")
    add("--api-key", default=os.environ.get("BENCH_API_KEY", "sk-bench-1234"))
    add("--duration", type=int, default=10, help="seconds per measured phase")
    add("--warmup", type=int, default=3)
    add("--concurrency", type=int, default=50, help="wrk connections for saturation runs")
    add("--repeat", type=int, default=2, help="saturation runs per target (noise estimate)")
    add("--rates", default="50,200,500", help="fixed rates (RPS), comma separated")
    add("--stream-rates", default="20", help="fixed rates (RPS) for streaming runs")
    add("--wrk-threads", type=int, default=1)
    add("--pause", type=float, default=2.0, help="idle seconds between phases")
    add("--skip-stream", action="store_true")
    add(
        "--quiet-threshold",
        type=float,
        default=0.10,
        help="before each phase, wait until the machine is below this busy fraction",
    )
    add("--wait-quiet", type=float, default=180, help="max seconds to wait for quiet per target")
    add("--wait-quiet-phase", type=float, default=60, help="max seconds to wait per phase")
    add("--out-dir", default=os.path.join(HERE, "results"))
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("table", help="markdown tables from result JSON files")
    t.add_argument("files", nargs="+")
    t.add_argument("--headline", action="store_true", help="only the one-row-per-run table")
    t.add_argument("--summary", action="store_true", help="also each run's side-by-side table")
    t.set_defaults(func=cmd_table)
    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
