"""What a benchmark's target and the machine are doing, read from /proc.

The pids behind a listening port and their process trees; each process's CPU
time and memory (RSS, PSS); the machine's busy and steal share from /proc/stat.
Sampler brackets one load phase with these readings, so that every figure a
phase records says what the target spent on it and how much other load ran
beside it. wait_quiet and settle hold a phase back until the machine, then the
target, is idle again: on a small box other jobs and a target still draining an
overload distort every number. log is here because those waits report through
it, and every bench script shares the same timestamped stderr line.

Standard library only, plus `ps` (and `ss` when on PATH); used by bench.py, matrix.py,
limits.py, gateways.py, audit.py and guardrails.py.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterable
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def loadavg() -> list[str]:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg writes them."""
    return (_read("/proc/loadavg") or "").split()[:3]


def cmdline(pid: int) -> str:
    """A process's command line, arguments joined by spaces ("" once it has exited)."""
    return " ".join((_read(f"/proc/{pid}/cmdline") or "").split("\0")).strip()


def listening_pids(port: int) -> set[int]:
    """pids holding a LISTEN socket on `port` (ss, falling back to /proc)."""
    pids: set[int] = set()
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True
        ).stdout
        pids |= {int(p) for p in re.findall(r"pid=(\d+)", out)}
    if pids:
        return pids
    inodes: set[str] = set()
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


def process_tree(roots: Iterable[int]) -> list[int]:
    """roots plus all their live descendants."""
    children: dict[int, list[int]] = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        s = _read(st)
        if not s:
            continue
        rest = s[s.rfind(")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(st.split("/")[2]))
    seen: set[int] = set()
    todo = [r for r in roots if os.path.exists(f"/proc/{r}")]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(children.get(p, []))
    return sorted(seen)


def proc_cpu_s(pid: int) -> float:
    s = _read(f"/proc/{pid}/stat")
    if not s:
        return 0.0
    rest = s[s.rfind(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_mem_kb(pid: int) -> tuple[int, int]:
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


def cpu_times() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies summed over all CPUs, from /proc/stat."""
    f = [int(x) for x in (_read("/proc/stat") or "").splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    steal = f[7] if len(f) > 7 else 0
    total = sum(f[:8])
    return total - idle, total, steal


def machine_busy(seconds: float = 1.0) -> float:
    b0, t0, _ = cpu_times()
    time.sleep(seconds)
    b1, t1, _ = cpu_times()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(threshold: float, max_wait: float, label: str) -> float:
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

    def __init__(
        self, roots: Collection[int], interval: float = 0.1, also: Collection[int] = ()
    ) -> None:
        self.roots, self.interval = roots, interval
        self.also = also  # other known load (the mock upstream) to exclude from "foreign" CPU
        self._stop = threading.Event()
        self.peak_rss_kb = self.peak_pss_kb = 0
        self.nprocs = 0

    def snapshot(self) -> tuple[list[int], int, int]:
        pids = process_tree(self.roots)
        rss = pss = 0
        for p in pids:
            r, s = proc_mem_kb(p)
            rss, pss = rss + r, pss + s
        return pids, rss, pss

    def cpu(self) -> float:
        return sum(proc_cpu_s(p) for p in process_tree(self.roots))

    def _run(self) -> None:
        while not self._stop.is_set():
            pids, rss, pss = self.snapshot()
            self.nprocs = max(self.nprocs, len(pids))
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self._stop.wait(self.interval)

    def _own_cpu(self) -> float:
        t = os.times()  # this driver + its finished children (wrk, loadgen)
        return (
            t.user
            + t.system
            + t.children_user
            + t.children_system
            + sum(proc_cpu_s(p) for p in process_tree(self.also))
        )

    def __enter__(self) -> Sampler:
        self.cpu0, self.t0 = self.cpu(), time.monotonic()
        self.sys0 = cpu_times()
        self.own0 = self._own_cpu()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
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

    def result(self, requests: int | None = None) -> dict[str, Any]:
        if not self.roots:
            return {
                "machine_busy_pct": round(self.sys_busy_pct, 1),
                "machine_steal_pct": round(self.sys_steal_pct, 1),
                "foreign_cpu_pct": round(self.foreign_pct, 1),
            }
        r: dict[str, Any] = {
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


def settle(
    pids: Collection[int], label: str, max_wait: float = 30.0, threshold: float = 0.05
) -> None:
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
