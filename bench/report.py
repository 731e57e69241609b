#!/usr/bin/env python3
"""Render a `make bench` result (bench/matrix.py) into docs/performance.md.

  .venv/bin/python bench/report.py bench/results/matrix-<time>.json [--stdout]

Replaces what lies between the `<!-- matrix:begin -->` and `<!-- matrix:end -->`
lines of docs/performance.md with the run's tables, and draws
docs/images/performance-added-latency.png (added latency against request rate,
one line per gateway and scenario) with matplotlib (the `bench` extra). With
--stdout the tables are printed instead and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DOC = os.path.join(REPO, "docs", "performance.md")
PLOT = os.path.join(REPO, "docs", "images", "performance-added-latency.png")
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
GATEWAYS = ("sluicegate", "sluicegate-realistic", "litellm", "litellm-realistic")


def f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def head(*cells: str) -> str:
    return row(*cells) + "\n" + row(*("---" for _ in cells))


def at(fixed: list[dict[str, Any]], rate: int) -> dict[str, Any] | None:
    return next((r for r in fixed if r["target_rps"] == rate), None)


def added(g: dict[str, Any], d: dict[str, Any] | None, key: str, q: str) -> float | None:
    if d is None or g[key].get(q) is None or d[key].get(q) is None:
        return None
    return float(g[key][q]) - float(d[key][q])


def sat(t: dict[str, Any]) -> tuple[float, float | None]:
    """Median saturation throughput and CPU ms per request of one scenario/target."""
    runs = sorted(t["saturation"], key=lambda s: s["rps"])
    mid = runs[len(runs) // 2]
    return mid["rps"], (mid.get("proc") or {}).get("cpu_ms_per_req")


def targets(r: dict[str, Any]) -> list[str]:
    """The issue's targets, each beside this run's figure (sluicegate, one worker)."""
    sc = r["scenarios"]
    rows: list[tuple[str, str, bool | None]] = []

    def fixed_added(name: str, gw: str, rate: int, key: str = "latency_ms") -> tuple[float, ...]:
        t, d = sc[name]["targets"].get(gw), sc[name]["targets"].get("direct")
        fx = at(t["fixed"], rate) if t else None
        dx = at(d["fixed"], rate) if d else None
        if fx is None or dx is None:
            return ()
        return tuple(added(fx, dx, key, q) or 0.0 for q in ("p50", "p99"))

    if "realistic" in sc:
        got = fixed_added("realistic", "sluicegate-realistic", 500)
        rows.append(
            (
                "realistic path at 500 requests/s: added p50 ≤ 1 ms, p99 ≤ 5 ms",
                f"p50 {f(got[0])} ms, p99 {f(got[1])} ms" if got else "not run",
                bool(got) and got[0] <= 1 and got[1] <= 5,
            )
        )
    small = sc.get("small", {}).get("targets", {})
    if "sluicegate" in small:
        rps, cpu = sat(small["sluicegate"])
        text = f"{f(rps, 0)} requests/s, {f(cpu, 3)} ms CPU per request"
        ok = rps >= 1500
        if "litellm" in small:
            peer, peer_cpu = sat(small["litellm"])
            text += f"; LiteLLM {f(peer, 0)} requests/s, {f(peer_cpu, 1)} ms: {rps / peer:.0f}×"
            ok = ok and rps >= 20 * peer
        rows.append(("small chat saturation: ≥ 20× LiteLLM and ≥ 1,500 requests/s", text, ok))
    stream = sc.get("stream", {}).get("targets", {})
    if "sluicegate" in stream:
        worst = [
            fixed_added("stream", "sluicegate", fx["target_rps"], "ttfe_ms")
            for fx in stream["sluicegate"]["fixed"]
        ]
        worst_p50 = max((w[0] for w in worst if w), default=None)
        rows.append(
            (
                "stream: added time to first byte ≤ 2 ms at p50",
                f"at most {f(worst_p50)} ms over the rates run",
                worst_p50 is not None and worst_p50 <= 2,
            )
        )
    g = r["gateways"].get("sluicegate")
    if g:
        steady = max(
            (s["proc"].get("peak_rss_mb") or 0)
            for s in small.get("sluicegate", {}).get("saturation", [])
            + small.get("sluicegate", {}).get("fixed", [])
        )
        rows.append(
            (
                "memory: ≤ 100 MB RSS per worker at steady load",
                f"{f(steady, 0)} MB under the small-chat load; "
                f"{f(g['peak_rss_mb'], 0)} MB at most (after the 200 KB prompts)",
                steady <= 100,
            )
        )
        rows.append(
            (
                "cold start to the first served request ≤ 1.5 s",
                f"{f(g['cold_start_s'])} s",
                g["cold_start_s"] is not None and g["cold_start_s"] <= 1.5,
            )
        )
    out = [head("target", "this run", "met")]
    for what, got_text, ok in rows:
        out.append(row(what, got_text, "yes" if ok else "**no**"))
    return out


def tables(r: dict[str, Any]) -> str:
    gws = [g for g in GATEWAYS if g in r["gateways"]]
    lines = [
        "**Targets** of the issue that asked for this benchmark, on this run:",
        "",
        *targets(r),
        "",
        f"Run of {r['started_utc'][:16].replace('T', ' ')} UTC, commit `{r['commit']}`, "
        f"{r['params']['workers']} worker(s) per gateway, {r['params']['duration']} s per phase, "
        f"wrk with {r['params']['concurrency']} connections for saturation "
        f"(`bench/results/{r['_file']}`).",
        "",
        "**Gateways.** Cold start is the time from spawning the process to the first "
        "answered chat request; RSS is the sum over the gateway's processes.",
        "",
        head("gateway", "version", "processes", "cold start s", "idle RSS MB", "peak RSS MB"),
    ]
    for g in gws:
        info = r["gateways"][g]
        lines.append(
            row(
                g,
                info["version"],
                info["processes"],
                f(info["cold_start_s"]),
                f(info["idle_rss_mb"], 0),
                f(info["peak_rss_mb"], 0),
            )
        )

    lines += [
        "",
        "**Saturation** (closed loop): requests per second, and the gateway's CPU time per "
        "request. The last column is sluicegate's throughput over LiteLLM's.",
        "",
        head("scenario", "direct", *gws, "sluicegate / LiteLLM"),
    ]
    for sc in r["scenarios"].values():
        ts = sc["targets"]
        cells = [sc["title"], f(sat(ts["direct"])[0], 0) if "direct" in ts else "-"]
        for g in gws:
            if g in ts:
                rps, cpu = sat(ts[g])
                cells.append(f"{f(rps, 0)} ({f(cpu, 2)} ms CPU)")
            else:
                cells.append("-")
        sg = ts.get("sluicegate") or ts.get("sluicegate-realistic")
        peer = ts.get("litellm") or ts.get("litellm-realistic")
        ratio = "-"
        if sg and peer:
            ratio = f"{sat(sg)[0] / sat(peer)[0]:.0f}×"
        lines.append(row(*cells, ratio))

    lines += [
        "",
        "**Added latency at fixed rates** (open loop): the gateway's percentile minus the "
        "mock's at the same rate, ms, p50 / p90 / p99. For the stream, the time to the first "
        "byte of the body (the first event) and to its end. A rate above "
        f"{r['sustain_fraction']:.0%} of a gateway's saturation throughput is not run: its "
        "latency would be queueing. A gateway that sustains none of the rates is run once at "
        "half its saturation throughput, and compared with the mock at the lowest rate.",
        "",
        head("scenario", "rate", *gws),
    ]
    for name, sc in r["scenarios"].items():
        ts = sc["targets"]
        d = ts.get("direct")
        for rate in r["params"]["rates"]:
            keys = [("latency_ms", "")]
            if name == "stream":
                keys = [("ttfe_ms", "first byte "), ("latency_ms", "total ")]
            for key, what in keys:
                cells = []
                for g in gws:
                    t = ts.get(g)
                    if t is None:
                        cells.append("-")
                        continue
                    fx = at(t["fixed"], rate)
                    if fx is None:
                        cells.append("not sustained" if rate in t["skipped_rates"] else "-")
                        continue
                    dx = at(d["fixed"], rate) if d else None
                    qs = [added(fx, dx, key, q) for q in ("p50", "p90", "p99")]
                    err = f", {fx['errors']} errors" if fx["errors"] else ""
                    cells.append(" / ".join(f(q) for q in qs) + err)
                if any(c != "-" for c in cells):
                    lines.append(row(f"{sc['title']} {what}".strip(), rate, *cells))
        for g in gws:
            t = ts.get(g)
            if t is None or "half_load_rate" not in t or not t["fixed"]:
                continue
            fx = t["fixed"][0]
            dx = min(d["fixed"], key=lambda x: x["target_rps"]) if d and d["fixed"] else None
            keys = [("latency_ms", "")]
            if name == "stream":
                keys = [("ttfe_ms", "first byte "), ("latency_ms", "total ")]
            for key, what in keys:
                qs = [added(fx, dx, key, q) for q in ("p50", "p90", "p99")]
                cells = ["-"] * len(gws)
                cells[gws.index(g)] = " / ".join(f(q) for q in qs)
                title = f"{sc['title']} {what}".strip() + f", half of {g}'s saturation"
                lines.append(row(title, t["half_load_rate"], *cells))
    absent = {(g, why) for sc in r["scenarios"].values() for g, why in sc["absent"].items()}
    if absent:
        lines.append("")
        for g, why in sorted(absent):
            lines.append(f"{g} in the realistic scenario: {why}.")
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    colours = {
        "sluicegate": "tab:blue",
        "sluicegate-realistic": "tab:green",
        "litellm": "tab:red",
        "litellm-realistic": "tab:orange",
    }
    notes = 0  # "saturates at" labels so far: each goes above the one before
    for name in ("small", "realistic"):
        sc = r["scenarios"].get(name)
        if not sc or "direct" not in sc["targets"]:
            continue
        d = sc["targets"]["direct"]
        for g, t in sc["targets"].items():
            if g == "direct":
                continue
            pts = []
            for fx in t["fixed"]:
                dx = at(d["fixed"], fx["target_rps"])
                if dx is None and "half_load_rate" in t and d["fixed"]:
                    # run at half its saturation: compared with the mock's lowest rate, as
                    # in the table
                    dx = min(d["fixed"], key=lambda x: x["target_rps"])
                if dx:
                    pts.append(
                        (
                            fx["target_rps"],
                            added(fx, dx, "latency_ms", "p50"),
                            added(fx, dx, "latency_ms", "p99"),
                        )
                    )
            if not pts:
                continue
            xs = [p[0] for p in pts]
            c = colours.get(g, "tab:gray")
            ax.plot(xs, [max(p[1] or 0, 0.01) for p in pts], "o-", color=c, label=f"{g} p50")
            ax.plot(xs, [max(p[2] or 0, 0.01) for p in pts], "s--", color=c, label=f"{g} p99")
            if t["skipped_rates"]:  # say why its line stops, in the empty lower left
                ax.text(
                    0.01,
                    0.03 + 0.06 * notes,
                    f"{g} saturates at {sat(t)[0]:.0f} req/s",
                    transform=ax.transAxes,
                    color=c,
                    fontsize=8,
                )
                notes += 1
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate, requests/s (open loop)")
    ax.set_ylabel("added latency over the mock, ms")
    workers = r["params"]["workers"]
    ax.set_title(f"Added latency, {workers} worker(s) each: small chat and realistic path")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # clear of the lines
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("result")
    ap.add_argument("--stdout", action="store_true")
    a = ap.parse_args()
    with open(a.result) as fh:
        r = json.load(fh)
    r["_file"] = os.path.basename(a.result)
    text = tables(r)
    if a.stdout:
        print(text)
        return
    with open(DOC) as fh:
        doc = fh.read()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} section")
    image = os.path.relpath(PLOT, os.path.dirname(DOC))
    block = f"{BEGIN}\n{text}\n![added latency against request rate]({image})\n{END}"
    with open(DOC, "w") as fh:
        fh.write(pattern.sub(lambda _: block, doc))
    plot(r, PLOT)
    print(f"rendered {os.path.relpath(DOC, REPO)} and {os.path.relpath(PLOT, REPO)}")


if __name__ == "__main__":
    main()
