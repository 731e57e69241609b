"""Reading `bench.py run` results: what the gateway added, and markdown tables.

overhead() is stored in each result: the gateway's saturation throughput as a
ratio of the direct (mock alone) run's, and its added latency at each rate both
ran. summary(), render() and headline() are the markdown of `bench.py run` and
`bench.py table`: one run side by side, every phase of one or more runs, and one
row per run. Each pairs a gateway phase with the direct phase at the same offered
rate, the only comparison in which the difference is the gateway's cost.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from typing import Any


def _med(vals: Iterable[float | None]) -> float | None:
    present = [v for v in vals if v is not None]
    return statistics.median(present) if present else None


def _sub(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else round(x - y, 3)


def _at(phases: list[dict[str, Any]] | None, rate: int) -> dict[str, Any] | None:
    return next((r for r in phases or [] if r["target_rps"] == rate), None)


def overhead(d: dict[str, Any], g: dict[str, Any]) -> dict[str, Any]:
    o: dict[str, Any] = {"saturation_rps_ratio": None, "fixed": [], "stream_fixed": []}
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


def f1(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _pair(lat: dict[str, Any] | None, nd: int = 2) -> str:
    return "-" if not lat else f"{f1(lat.get('p50'), nd)} / {f1(lat.get('p99'), nd)}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _head(*cells: object) -> str:
    return _row(*cells) + "\n" + "|" + "---|" * len(cells)


def _pct(x: float | None, y: float | None) -> str:
    return f"{100 * x / y:.2g}%" if x and y else "-"


def _over(r: dict[str, Any]) -> str:
    return " (overloaded)" if r["rps"] < 0.97 * r["target_rps"] else ""


def _procs(t: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    phases = t.get("saturation", []) + t.get("fixed", []) + t.get("stream_fixed", [])
    if t.get("stream_saturation"):
        phases.append(t["stream_saturation"])
    return phases, [p.get("proc") or {} for p in phases]


def summary(r: dict[str, Any]) -> str:
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


def a_conc(t: dict[str, Any]) -> object:
    sat = t.get("saturation") or [{}]
    return sat[0].get("concurrency", "?")


def _tag(r: dict[str, Any]) -> str:
    """name, version, commit (from --notes "commit=..."), start time."""
    parts = [r["name"], r.get("version") or ""]
    commit = re.search(r"\bcommit=(\S+)", r.get("notes") or "")
    parts.append(commit.group(1) if commit else "")
    parts.append(f"@{r['started_utc'][11:16]}Z")
    return " ".join(p for p in parts if p)


def _labelled(
    results: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(label, target, the direct run it is paired with or None): each result's direct
    baseline first, then its gateway."""
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for r in results:
        at = f"@{r['started_utc'][11:16]}Z"
        tag = _tag(r)
        if "direct" in r:
            rows.append((f"direct (paired with {r['name']} {at})", r["direct"], None))
        rows.append((tag, r["gateway"], r.get("direct")))
    return rows


def render(results: list[dict[str, Any]]) -> str:
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


def headline(results: list[dict[str, Any]]) -> str:
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
