#!/usr/bin/env python3
"""The cost of the audit log on the request path: sluicegate with it on and off.

  .venv/bin/python bench/audit.py [--rates 100,300,600] [--duration 10] [--rounds 2]
                                  [--store postgresql://…]   (default: a SQLite file)

Two sluicegate processes (one worker each) serve the built-in `mock` provider,
which answers in-process, so no upstream (nginx, wrk) is needed and the only
difference between the two is the audit log:

  off   audit.enabled: false, no store
  on    gateway.store (a fresh SQLite file, or --store), the batched writer at its
        defaults; with --bodies, audit.log_bodies too

Both get the same open-loop load (loadgen.py, next to this file) at each rate, in
alternating order round by round so that drift on the machine weighs on both alike.
Per run: p50/p99 latency, and the gateway's CPU time per request read from /proc
(the writer's work happens after the answer, so CPU shows it where latency may
not). At the end the `on` gateway's /metrics must count every request as a row
written (none spilled or dropped). Writes bench/results/audit-<UTC time>.json and
prints a markdown table. Both gateways are stopped by process id at the end.
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from gateways import serve
from procs import log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LOADGEN = os.path.join(HERE, "loadgen.py")
KEY = "sk-bench-audit-1234"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def config(audit_on, store, bodies):
    lines = [
        "gateway:",
        "  name: bench-audit",
    ]
    if audit_on:
        lines.append(f"  store: {json.dumps(store)}")
    lines += [
        "audit:",
        f"  enabled: {'true' if audit_on else 'false'}",
        f"  log_bodies: {'true' if bodies else 'false'}",
        "services:",
        "  - {name: mock, provider: mock}",
        "rules:",
        "  - {name: chat, match: {models: [gpt-4o-mini]}, targets: [{service: mock}]}",
        "consumers:",
        f"  - {{name: bench, keys: [{KEY}]}}",
    ]
    return "\n".join(lines) + "\n"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def load(url, body_file, rate, duration, python):
    cmd = [python, LOADGEN, "--url", url + "/v1/chat/completions", "--body", body_file]
    cmd += ["-H", f"Authorization: Bearer {KEY}", "--rate", str(rate)]
    cmd += ["--duration", str(duration)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode:
        sys.exit(f"loadgen failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def metric(url, name):
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    found = re.findall(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", default="100,300,600", help="requests per second, comma-separated")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--store", help="the audit store (default: a SQLite file in a temp dir)")
    ap.add_argument("--bodies", action="store_true", help="audit.log_bodies: true as well")
    ap.add_argument("--python", default=os.path.join(REPO, ".venv", "bin", "python"))
    a = ap.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    workdir = tempfile.mkdtemp(prefix="sluicegate-bench-audit-")
    store = a.store or f"sqlite:///{os.path.join(workdir, 'audit.db')}"
    body_file = os.path.join(workdir, "body.json")
    with open(body_file, "w") as f:
        json.dump(
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Say hello to the benchmark, please."}],
            },
            f,
        )
    procs = {}
    runs = []
    try:
        for name, on in (("off", False), ("on", True)):
            procs[name] = serve(name, config(on, store, a.bodies), workdir, a.python)
        for name in procs:  # warm up both
            load(procs[name][1], body_file, 100, 3, a.python)
        sent_on = 300  # the warm-up
        for rnd in range(a.rounds):
            order = ["off", "on"] if rnd % 2 == 0 else ["on", "off"]
            for rate in rates:
                for name in order:
                    proc, url = procs[name]
                    cpu0 = cpu_seconds(proc.pid)
                    out = load(url, body_file, rate, a.duration, a.python)
                    cpu = cpu_seconds(proc.pid) - cpu0
                    if name == "on":
                        sent_on += out["completed"]
                    lat = out["latency_ms"]
                    runs.append(
                        {
                            "audit": name,
                            "round": rnd,
                            "rate": rate,
                            "rps": out["rps"],
                            "ok": out["ok"],
                            "errors": out["errors"],
                            "p50_ms": lat.get("p50"),
                            "p99_ms": lat.get("p99"),
                            "cpu_us_per_request": round(cpu / max(out["completed"], 1) * 1e6, 1),
                        }
                    )
                    log(
                        f"{name:3} {rate:6.0f} rps: p50 {lat.get('p50')} ms, p99 {lat.get('p99')}"
                        f" ms, {runs[-1]['cpu_us_per_request']} µs CPU/request, "
                        f"{out['errors']} errors"
                    )
        on_url = procs["on"][1]
        time.sleep(1)  # the writer's last batch
        written = metric(on_url, "sluicegate_audit_written_rows_total")
        spilled = metric(on_url, "sluicegate_audit_spilled_rows_total")
        dropped = metric(on_url, "sluicegate_audit_dropped_rows_total")
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = []
    for rate in rates:
        row = {"rate": rate}
        for name in ("off", "on"):
            mine = [r for r in runs if r["rate"] == rate and r["audit"] == name]
            row[name] = {
                key: round(statistics.median(r[key] for r in mine), 3)
                for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
            }
        summary.append(row)
    result = {
        "name": "audit",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "store": "sqlite" if a.store is None else "postgresql",
        "bodies": a.bodies,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "duration_s": a.duration,
        "rounds": a.rounds,
        "rows": {
            "requests_on": sent_on,
            "written": written,
            "spilled": spilled,
            "dropped": dropped,
        },
        "runs": runs,
        "summary": summary,
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(
        HERE, "results", f"audit-{result['when'].replace(':', '').replace('-', '')}.json"
    )
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print("| rate | p50 off | p50 on | p99 off | p99 on | CPU/request off | CPU/request on |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in summary:
        off, on = row["off"], row["on"]
        print(
            f"| {row['rate']:.0f} | {off['p50_ms']} ms | {on['p50_ms']} ms | {off['p99_ms']} ms "
            f"| {on['p99_ms']} ms | {off['cpu_us_per_request']} µs "
            f"| {on['cpu_us_per_request']} µs |"
        )
    print(f"\nrows: {result['rows']}\nresults: {os.path.relpath(path, REPO)}")
    if written < sent_on or dropped:
        sys.exit("the audit log did not write a row for every request")


if __name__ == "__main__":
    main()
