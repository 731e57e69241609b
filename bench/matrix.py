#!/usr/bin/env python3
"""`make bench`: the scenario matrix, sluicegate beside the LiteLLM proxy, in one run.

  .venv/bin/python bench/matrix.py [--workers 1] [--duration 6] [--rates 50,200,500,1000]

For every scenario of bench/scenarios.py (small chat; key auth + Redis rate
limit + audit log; a 50-chunk stream; a 200 KB prompt; an exact-cache hit) and
every target — the nginx mock alone ("direct"), sluicegate, LiteLLM (from
`make bench-peers`) — on the same machine with the same worker count:

  sanity       one request, its answer checked
  warmup       wrk, not recorded
  saturation   wrk closed loop, --concurrency connections: requests/s, CPU per request
  fixed rate   loadgen.py open loop at each --rates value the target sustains
               (a rate above 80 % of its saturation throughput is skipped and recorded
               as such; a gateway that sustains none runs once at half its saturation
               throughput): p50/p90/p99, and for streams the first byte of the body

Each gateway's cold start (spawn to first answered request) and its RSS (idle,
and the peak of its whole process tree over every phase) are recorded too.
Results: bench/results/matrix-<UTC time>.json; then bench/report.py renders
docs/performance.md's tables and plot from it (--no-report to skip).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import gateways
from load import check_chat, check_response, check_stream, loadgen, tool_versions, wrk
from procs import Sampler, log, process_tree, settle, wait_quiet
from scenarios import SCENARIOS, Scenario

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MOCK = "http://127.0.0.1:18080"
SUSTAIN = 0.8  # a fixed rate is run only below this fraction of the saturation throughput


def mock_up() -> bool:
    try:
        with urllib.request.urlopen(MOCK + "/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


class Target:
    """Where a scenario's load goes: the mock or a gateway, with its process tree."""

    def __init__(self, name: str, base: str, pids: set[int], also: set[int]):
        self.name, self.base, self.pids, self.also = name, base, pids, also
        self.peak_rss_mb = 0.0


def measure(
    sc: Scenario, target: Target, path: str, a: argparse.Namespace, tmp: str
) -> dict[str, Any]:
    """One scenario against one target: sanity, warmup, saturation, fixed rates."""
    label = f"{sc.name}/{target.name}"
    url = target.base + path
    body = sc.body(target.name)
    if target.name == "direct":
        body["model"] = "gpt-4o-mini"  # what the gateways send the mock
    body_file = os.path.join(tmp, f"{sc.name}-{target.name}.json")
    with open(body_file, "w") as f:
        json.dump(body, f)
    res: dict[str, Any] = {"url_path": path, "body_bytes": os.path.getsize(body_file)}

    def sampler() -> Sampler:
        return Sampler(target.pids, also=target.also - target.pids)

    def pause() -> None:
        settle(target.pids, label)
        time.sleep(a.pause)
        wait_quiet(a.quiet_threshold, a.wait_quiet_phase, label)

    def note_rss(proc: dict[str, Any]) -> None:
        target.peak_rss_mb = max(target.peak_rss_mb, proc.get("peak_rss_mb") or 0.0)

    check = check_stream if sc.stream else check_response if sc.api == "responses" else check_chat
    res["sanity"] = check(url, body, a.api_key)
    if sc.name == "cached":  # the second answer is the hit
        res["sanity"] = check(url, body, a.api_key)
    wait_quiet(a.quiet_threshold, a.wait_quiet_phase, label)
    wrk(url, body_file, a.api_key, a.concurrency, a.warmup, 1)
    pause()

    res["saturation"] = []
    for i in range(a.repeat):
        with sampler() as s:
            r = wrk(url, body_file, a.api_key, a.concurrency, a.duration, 1)
        r["proc"] = s.result(r["requests"])
        note_rss(r["proc"])
        res["saturation"].append(r)
        log(
            f"[{label}] saturation #{i + 1}: {r['rps']} rps, "
            f"{(r['proc'] or {}).get('cpu_ms_per_req')} CPU ms/req, errors {r['errors']}"
        )
        pause()
    sat = max(s["rps"] for s in res["saturation"])

    res["fixed"] = []
    rates = [r for r in a.rates if r <= SUSTAIN * sat]
    res["skipped_rates"] = [r for r in a.rates if r not in rates]
    if res["skipped_rates"]:
        log(f"[{label}] rates {res['skipped_rates']} skipped: above {SUSTAIN:.0%} of {sat:.0f}")
    if not rates and target.name != "direct":
        # Nothing listed is sustainable: one run at half the saturation throughput, so
        # that the target still has latency figures (compared with the mock's lowest rate).
        rates = [max(1, int(sat / 2))]
        res["half_load_rate"] = rates[0]
    for rate in rates:
        with sampler() as s:
            r = loadgen(url, body_file, a.api_key, rate, a.duration)
        r["proc"] = s.result(r["requests"])
        note_rss(r["proc"])
        res["fixed"].append(r)
        lat = r["latency_ms"]
        log(
            f"[{label}] rate {rate}: achieved {r['rps']}, p50 {lat['p50']} p99 {lat['p99']} ms, "
            f"first byte p50 {r['ttfe_ms']['p50']} ms, errors {r['errors']}"
        )
        pause()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workers", type=int, default=1, help="worker processes of each gateway")
    ap.add_argument("--duration", type=int, default=6, help="seconds per measured phase")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=50, help="wrk connections")
    ap.add_argument("--repeat", type=int, default=1, help="saturation runs per scenario/target")
    ap.add_argument("--rates", default="50,200,500,1000", help="fixed rates, requests/s")
    ap.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS))
    ap.add_argument("--skip-litellm", action="store_true", help="sluicegate and direct only")
    ap.add_argument("--pause", type=float, default=1.0, help="idle seconds between phases")
    ap.add_argument("--quiet-threshold", type=float, default=0.10)
    ap.add_argument("--wait-quiet-phase", type=float, default=20)
    ap.add_argument("--api-key", default=os.environ.get("BENCH_API_KEY", "sk-bench-1234"))
    ap.add_argument("--python", default=os.path.join(REPO, ".venv", "bin", "python"))
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-report", action="store_true", help="do not render docs/performance.md")
    ap.add_argument("--notes", default="")
    a = ap.parse_args()
    a.rates = [int(x) for x in a.rates.split(",") if x]
    wanted = set(a.scenarios.split(","))
    scenarios = [s for s in SCENARIOS if s.name in wanted]

    started = dt.datetime.now(dt.UTC)
    os.makedirs(gateways.RUN_DIR, exist_ok=True)
    audit_db = os.path.join(gateways.RUN_DIR, f"audit-{os.getpid()}.db")
    sg_env = {"BENCH_AUDIT_DB": audit_db, "BENCH_API_KEY": a.api_key}
    gws: dict[str, gateways.Gateway] = {}
    for sc in scenarios:
        for g in sc.gateways:
            if g in gws:
                continue
            if g.startswith("litellm"):
                if a.skip_litellm or not gateways.litellm_available():
                    continue
                audit = {"LITELLM_AUDIT_FILE": audit_db + ".litellm.jsonl"}
                gws[g] = gateways.litellm(a.workers, g, audit)
            else:
                config = (
                    "bench/sluicegate-realistic.yaml"
                    if g.endswith("realistic")
                    else "bench/sluicegate.yaml"
                )
                gws[g] = gateways.sluicegate(g, config, a.workers, a.python, sg_env)
    if "litellm" not in gws and not a.skip_litellm:
        log("WARNING: no LiteLLM in bench/.peers/litellm (make bench-peers); measuring without it")

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "sluicegate"],
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    out: dict[str, Any] = {
        "kind": "matrix",
        "started_utc": started.isoformat(timespec="seconds"),
        "commit": commit + ("+dirty" if dirty else ""),
        "notes": a.notes,
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "tools": tool_versions(),
        "params": {
            k: getattr(a, k)
            for k in ("workers", "duration", "warmup", "concurrency", "repeat", "rates")
        },
        "sustain_fraction": SUSTAIN,
        "gateways": {},
        "scenarios": {},
    }
    started_mock = False
    if not mock_up():
        subprocess.run([os.path.join(HERE, "mock-upstream", "start.sh")], check=True)
        started_mock = True
    with open(os.path.join(HERE, ".run", "mock-upstream", "nginx.pid")) as f:
        mock_pid = int(f.read())
    mock_pids = set(process_tree([mock_pid]))
    try:
        with tempfile.TemporaryDirectory(prefix="sluicegate-matrix-") as tmp:
            direct = Target("direct", MOCK, mock_pids, set())
            direct_results: dict[str, dict[str, Any]] = {}
            for sc in scenarios:
                out["scenarios"][sc.name] = {"title": sc.title, "absent": sc.absent, "targets": {}}
                if sc.direct:
                    direct_results[sc.name] = measure(sc, direct, sc.direct_path, a, tmp)
                out["scenarios"][sc.name]["direct_from"] = sc.name if sc.direct else "small"
            for name, gw in gws.items():
                gw.start("gpt-4o-mini", a.api_key)
                if a.workers > 1:
                    time.sleep(5)  # the other workers are still importing
                pids = gw.pids()
                target = Target(name, gw.base, pids, mock_pids)
                _, rss, _ = Sampler(pids).snapshot()
                info: dict[str, Any] = {
                    "product": gw.product,
                    "version": gw.version,
                    "workers": a.workers,
                    "cold_start_s": gw.cold_start_s,
                    "idle_rss_mb": round(rss / 1024, 1),
                    "processes": len(pids),
                }
                out["gateways"][name] = info
                try:
                    for sc in scenarios:
                        if name in sc.gateways:
                            r = measure(sc, target, sc.path, a, tmp)
                            out["scenarios"][sc.name]["targets"][name] = r
                finally:
                    _, rss, _ = Sampler(pids).snapshot()
                    info["after_rss_mb"] = round(rss / 1024, 1)
                    info["peak_rss_mb"] = target.peak_rss_mb
                    gw.stop()
            for sc in scenarios:
                src = out["scenarios"][sc.name]["direct_from"]
                if src in direct_results:
                    out["scenarios"][sc.name]["targets"]["direct"] = direct_results[src]
    finally:
        for gw in gws.values():
            gw.stop()
        if started_mock:
            subprocess.run([os.path.join(HERE, "mock-upstream", "stop.sh")], check=False)
        for suffix in ("", "-wal", "-shm", ".litellm.jsonl"):  # the realistic gateways' audit
            if os.path.exists(audit_db + suffix):
                os.remove(audit_db + suffix)
    out["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, f"matrix-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    log(f"wrote {os.path.relpath(path, REPO)}")
    if not a.no_report:
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), path], check=True)


if __name__ == "__main__":
    main()
