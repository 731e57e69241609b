#!/usr/bin/env python3
"""The cost of a Redis-backed rate-limit check on the request path.

  bench/run.sh --scenario limits [options below]      (or: .venv/bin/python bench/limits.py)

Two sluicegate processes run side by side in front of the nginx mock upstream
(bench/mock-upstream/), one worker each:

  plain    bench/sluicegate.yaml          key auth, no limits
  limited  bench/sluicegate-limits.yaml   the same, plus gateway.redis and a per-key limit
                                          on requests and tokens, far above the load

Both get the same open-loop load (loadgen.py) at each rate, one after the other,
in alternating order round by round (plain first, then limited first, ...) so that
drift on the machine weighs on both alike. A request through `limited` costs one
Redis round trip before the upstream call (the Lua script that checks and reserves
every limit) and one after its answer has been sent (the settlement). The added
latency is limited - plain, per percentile, at the same rate.

A second measure times the check alone: the gateway's own RedisCounters.reserve
and .adjust, called back to back from one client (no load), so the round trip can
be read apart from queueing under load.

Needs what bench/run.sh needs (nginx, wrk, curl), plus Redis on --redis (default
redis://127.0.0.1:6379/0) and this repository's virtualenv (it imports sluicegate
for the second measure). Writes bench/results/limits-<UTC time>.json and prints a
markdown table. Everything it starts (the mock, unless one already answers; both
gateways) is stopped by process id at the end.
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import load  # noqa: E402  (bench/load.py: the checked request, loadgen)
import procs  # noqa: E402  (bench/procs.py: /proc sampling, the quiet waits)

CONFIGS = {
    "plain": os.path.join(HERE, "sluicegate.yaml"),
    "limited": os.path.join(HERE, "sluicegate-limits.yaml"),
}
MOCK = "http://127.0.0.1:18080"
PERCENTILES = ("p50", "p90", "p99")


def log(msg):
    procs.log(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


# --------------------------------------------------------------------------- processes
class Gateway:
    """One sluicegate process on a free loopback port; stopped by its pid."""

    def __init__(self, label, config, redis_url, run_dir):
        self.label, self.config = label, config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(run_dir, f"limits-{label}-{self.port}.log")
        env = {**os.environ, "BENCH_REDIS_URL": redis_url}
        cmd = [sys.executable, "-m", "sluicegate", "serve", "--config", config]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while not answers(self.url + "/readyz"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"sluicegate ({label}) did not start; see {self.log_path}")
            time.sleep(0.1)
        log(f"{label}: sluicegate on {self.url}, pid {self.proc.pid}, {os.path.basename(config)}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_mock():
    """True when this run started the mock (and so stops it)."""
    if answers(MOCK + "/health"):
        log("using the mock upstream already answering on 127.0.0.1:18080")
        return False
    subprocess.run([os.path.join(HERE, "mock-upstream", "start.sh")], check=True)
    return True


# --------------------------------------------------------------------------- the check alone
def time_check(redis_url, samples):
    """Sequential reserve + adjust through the gateway's own RedisCounters: microseconds."""
    from sluicegate.policies.windows import SLICES, Item, RedisCounters

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    slice_ms = 60_000 // SLICES
    base = f"sg:rl:bench-check-{os.getpid()}:rule:chat:key:k:60"
    items = [Item(base + ":r", 10**9, 1, slice_ms), Item(base + ":t", 10**12, 1128, slice_ms)]

    async def run():
        counters = RedisCounters(redis_url)
        reserve, adjust = [], []
        try:
            for i in range(samples + 200):
                t0 = time.perf_counter()
                verdict = await counters.reserve(items)
                t1 = time.perf_counter()
                await counters.adjust([(items[1], verdict.readings[1].slice, -1052)])
                t2 = time.perf_counter()
                if i >= 200:  # the first calls load the scripts and open the connection
                    reserve.append((t1 - t0) * 1e6)
                    adjust.append((t2 - t1) * 1e6)
        finally:
            await counters.close()
        return reserve, adjust

    reserve, adjust = runner(run())
    return {
        "samples": samples,
        "reserve_us": distribution(reserve),
        "adjust_us": distribution(adjust),
    }


def distribution(values):
    values = sorted(values)

    def at(q):
        return round(values[min(len(values) - 1, int(q * len(values)))], 1)

    return {
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "mean": round(statistics.mean(values), 1),
    }


# --------------------------------------------------------------------------- the load
def measure(gateway, body_file, a, rate, redis_pids):
    pids = {gateway.proc.pid}
    procs.wait_quiet(a.quiet_threshold, a.wait_quiet, gateway.label)
    with procs.Sampler(pids) as s, procs.Sampler(redis_pids) as r:
        result = load.loadgen(
            gateway.url + "/v1/chat/completions", body_file, a.api_key, rate, a.duration
        )
    result["proc"] = s.result(result["requests"])
    if redis_pids:
        result["redis_cpu_ms_per_req"] = round(1000 * r.cpu_s / max(result["requests"], 1), 3)
    lat = result["latency_ms"]
    log(
        f"{gateway.label} @ {rate}/s: p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} ms, "
        f"errors {result['errors']}, cpu {result['proc'].get('cpu_ms_per_req')} ms/req"
    )
    procs.settle(pids, gateway.label)
    time.sleep(a.pause)
    return result


def run(a):
    for url in (a.redis.replace("redis://", "http://", 1), MOCK):
        load.require_loopback(url)
    started = dt.datetime.now(dt.UTC)
    run_dir = os.path.join(HERE, ".run")
    os.makedirs(run_dir, exist_ok=True)
    started_mock = start_mock()
    gateways = []
    out = {
        "name": "limits",
        "started_utc": started.isoformat(timespec="seconds"),
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": procs.loadavg(),
        },
        "params": {k: getattr(a, k) for k in ("rates", "duration", "rounds", "samples")},
        "configs": {k: os.path.relpath(v, REPO) for k, v in CONFIGS.items()},
    }
    try:
        gateways = [Gateway(label, path, a.redis, run_dir) for label, path in CONFIGS.items()]
        redis_port = urllib.parse.urlparse(a.redis).port or 6379
        redis_pids = procs.listening_pids(redis_port)
        msgs = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "In two sentences, what does an LLM gateway do?"},
        ]
        body = {"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 128, "temperature": 0}
        with tempfile.TemporaryDirectory(prefix="sluicegate-limits-") as tmp:
            body_file = os.path.join(tmp, "body.json")
            with open(body_file, "w") as f:
                json.dump(body, f)
            for g in gateways:  # sanity, then a warm-up that is not recorded
                check = load.check_chat(g.url + "/v1/chat/completions", body, a.api_key)
                log(f"{g.label}: sanity ok {check}")
                load.loadgen(g.url + "/v1/chat/completions", body_file, a.api_key, 100, a.warmup)
            limited = gateways[1]
            _, headers, _, _ = load.post(limited.url + "/v1/chat/completions", body, a.api_key)
            if "x-ratelimit-limit-requests" not in {k.lower() for k in headers}:
                sys.exit(
                    "the limited gateway answered without x-ratelimit headers: no limit applied"
                )
            out["check_alone"] = time_check(a.redis, a.samples)
            log(f"the check alone: {out['check_alone']}")
            runs = {g.label: {rate: [] for rate in a.rates} for g in gateways}
            for round_no in range(a.rounds):
                order = gateways if round_no % 2 == 0 else gateways[::-1]
                for rate in a.rates:
                    for g in order:
                        runs[g.label][rate].append(measure(g, body_file, a, rate, redis_pids))
        out["runs"] = {
            label: {str(k): v for k, v in by_rate.items()} for label, by_rate in runs.items()
        }
        out["summary"] = summarize(runs, a.rates)
    finally:
        for g in gateways:
            g.stop()
        if started_mock:
            subprocess.run([os.path.join(HERE, "mock-upstream", "stop.sh")], check=False)
    out["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, f"limits-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    log(f"wrote {os.path.relpath(path, REPO)}")
    print(render(out))


# --------------------------------------------------------------------------- reporting
def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def summarize(runs, rates):
    rows = []
    for rate in rates:
        row = {"rate": rate}
        for label in ("plain", "limited"):
            results = runs[label][rate]
            row[label] = {q: _median([r["latency_ms"][q] for r in results]) for q in PERCENTILES}
            row[label]["errors"] = sum(r["errors"] for r in results)
            row[label]["cpu_ms_per_req"] = _median(
                [r["proc"].get("cpu_ms_per_req") for r in results]
            )
        # CPU used by anything else on the machine, in % of one core: the noise indicator.
        row["other_load_pct"] = _median(
            [r["proc"].get("foreign_cpu_pct") for label in runs for r in runs[label][rate]]
        )
        row["redis_cpu_ms_per_req"] = _median(
            [r.get("redis_cpu_ms_per_req") for r in runs["limited"][rate]]
        )
        row["added_ms"] = {q: round(row["limited"][q] - row["plain"][q], 3) for q in PERCENTILES}
        rows.append(row)
    return rows


def render(out):
    lines = [
        "| rate (req/s) | plain p50 / p90 / p99 (ms) | limited p50 / p90 / p99 (ms) "
        "| added p50 / p99 (ms) | gateway CPU ms/req plain → limited | Redis CPU ms/req "
        "| other load (% of a core) |",
        "|---:|---|---|---|---|---:|---:|",
    ]
    for row in out["summary"]:
        p, lim, add = row["plain"], row["limited"], row["added_ms"]
        lines.append(
            f"| {row['rate']} | {p['p50']} / {p['p90']} / {p['p99']} "
            f"| {lim['p50']} / {lim['p90']} / {lim['p99']} | {add['p50']:+} / {add['p99']:+} "
            f"| {p['cpu_ms_per_req']} → {lim['cpu_ms_per_req']} | {row['redis_cpu_ms_per_req']} "
            f"| {row['other_load_pct']} |"
        )
    check = out["check_alone"]
    lines.append("")
    lines.append(
        f"The check alone ({check['samples']} sequential calls): reserve p50 "
        f"{check['reserve_us']['p50']} µs, p99 {check['reserve_us']['p99']} µs; "
        f"settle p50 {check['adjust_us']['p50']} µs, p99 {check['adjust_us']['p99']} µs."
    )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = ap.add_argument
    add("--rates", default="100,300", help="fixed rates (req/s), comma separated")
    add("--duration", type=int, default=10, help="seconds per measured phase")
    add("--warmup", type=int, default=3)
    add("--rounds", type=int, default=3, help="measurements per gateway and rate")
    add("--samples", type=int, default=5000, help="calls timed for the check alone")
    add("--pause", type=float, default=2.0, help="idle seconds between phases")
    add("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    add("--api-key", default=os.environ.get("BENCH_API_KEY", "sk-bench-1234"))
    add("--quiet-threshold", type=float, default=0.10)
    add("--wait-quiet", type=float, default=60, help="max seconds to wait for quiet per phase")
    add("--out-dir", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    a.rates = [int(x) for x in a.rates.split(",") if x]
    run(a)


if __name__ == "__main__":
    main()
