#!/usr/bin/env python3
"""Open-loop, fixed-rate HTTP/1.1 load generator (Python stdlib only).

Why not hey -q?  hey starts all its workers at once, each with its own ticker,
so "-c 100 -q 10" sends bursts of 100 simultaneous requests every 100 ms
rather than one request every 1 ms; each worker also waits for its previous
response (closed loop).  Against a single-threaded gateway that measures burst
queueing, not latency at a steady rate.  This tool instead sends request i at
t0 + i/rate (uniform, or Poisson with --arrival poisson) whatever the state of
earlier requests, over a keep-alive connection pool that grows on demand up to
--max-conns.

Per request it records, all on CLOCK_MONOTONIC:
  sched  when the request should have been sent
  send   when it was written to a connection     (late = send - sched)
  first  first response byte (status line)
  body   first body byte (first SSE event for a streaming response)
  end    last byte of the response (Content-Length or chunked terminator)
and reports percentiles of
  latency_ms        end - send     (service time, comparable to wrk/hey)
  latency_sched_ms  end - sched    (includes client-side waiting when the server falls behind)
  ttfb_ms           first - send
  ttfe_ms           body - send    (time to first body byte / first SSE event)
Errors: non-2xx statuses, connection errors, timeouts; `unsent` counts requests
never sent before the deadline.  Bounded: rate*duration requests at most, and
in-flight requests are abandoned at duration + timeout.

usage: loadgen.py --url http://127.0.0.1:14000/v1/chat/completions --body body.json \
                  -H 'Authorization: Bearer sk-x' --rate 500 --duration 10 > result.json
"""

import argparse
import asyncio
import collections
import json
import math
import random
import socket
import sys
import time
import urllib.parse

now = time.perf_counter  # CLOCK_MONOTONIC on Linux, ns resolution


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time.  Callback
    driven (no per-request coroutine or future) to keep the client's CPU cost
    low on a small machine."""

    def __init__(self, gen):
        self.gen = gen
        self.transport = None
        self.busy = False
        self.reusable = True

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, sched):
        self.busy = True
        self.sched = sched
        self.buf = bytearray()
        self.t_first = self.t_body = None
        self.status = None
        self.hdr_done = False
        self.clen = None
        self.chunked = False
        self.pos = 0  # parse position in the body (chunked)
        self.send = now()
        self.transport.write(self.gen.next_request())

    def data_received(self, data):
        t = now()
        if not self.busy:
            return  # unsolicited data
        if self.t_first is None:
            self.t_first = t
        self.buf += data
        if not self.hdr_done:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.hdr_done = True
            head = bytes(self.buf[:i]).decode("latin-1").split("\r\n")
            try:
                self.status = int(head[0].split(" ", 2)[1])
            except (IndexError, ValueError):
                self._fail(f"bad status line {head[0][:60]!r}")
                return
            for h in head[1:]:
                k, _, v = h.partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    self.clen = int(v)
                elif k == "transfer-encoding" and "chunked" in v.lower():
                    self.chunked = True
                elif k == "connection" and v.strip().lower() == "close":
                    self.reusable = False
            del self.buf[: i + 4]
            if self.clen is None and not self.chunked:
                self.reusable = False  # body delimited by close
        if self.buf and self.t_body is None:
            self.t_body = t
        if self.chunked:
            self._parse_chunked(t)
        elif self.clen is not None and len(self.buf) >= self.clen:
            self._done(t)

    def _parse_chunked(self, t):
        b = self.buf
        while True:
            j = b.find(b"\r\n", self.pos)
            if j < 0:
                return
            try:
                size = int(bytes(b[self.pos : j]).split(b";")[0], 16)
            except ValueError:
                self._fail("bad chunk size")
                return
            if size == 0:
                if b.find(b"\r\n\r\n", j) >= 0:  # end of the (usually empty) trailer
                    self._done(t)
                return
            if len(b) < j + 2 + size + 2:
                return
            self.pos = j + 2 + size + 2
            if self.pos > 1 << 16:  # keep the buffer small on long streams
                del b[: self.pos]
                self.pos = 0

    def _done(self, t):
        self.busy = False
        self.gen.record(
            self, (self.sched, self.send, self.t_first, self.t_body or t, t, self.status)
        )

    def _fail(self, msg):
        self.reusable = False
        if self.busy:
            self.busy = False
            self.gen.error(self, msg)
        if self.transport:
            self.transport.close()

    def connection_lost(self, exc):
        self.reusable = False
        if self.busy and self.gen.closing:
            self.busy = False  # closed by us at the end: already counted as abandoned
        if self.busy:
            if self.status is not None and self.clen is None and not self.chunked:
                self._done(now())
            else:
                self._fail(
                    f"connection lost: {exc.__class__.__name__ if exc else 'closed by peer'}"
                )
        self.gen.lost(self)


class Gen:
    """Connection pool + bookkeeping.  Requests that find no idle connection
    when the pool is at --max-conns wait in a FIFO (their latency_sched grows)."""

    def __init__(self, loop, host, port, req, max_conns, timeout):
        self.loop, self.host, self.port, self.req = loop, host, port, req
        self.max, self.timeout = max_conns, timeout
        self.idle = []
        self.conns = set()
        self.connecting = 0
        self.peak = 0
        self.pending = collections.deque()
        self.recs = []
        self.errors = {}
        self.inflight = 0
        self.closing = False
        self.id_at = -1  # where the body's JSON-RPC id is (--jsonrpc-ids)
        self.seq = 0

    def _err(self, key):
        self.errors[key] = self.errors.get(key, 0) + 1

    def next_request(self):
        """The request; with --jsonrpc-ids, its body's 100000000 made unique per request (a
        JSON-RPC server pairs answers by id, so calls in flight at once must differ)."""
        if self.id_at < 0:
            return self.req
        self.seq += 1
        unique = str(100000000 + self.seq % 900000000).encode()
        return self.req[: self.id_at] + unique + self.req[self.id_at + 9 :]

    def submit(self, sched):
        self.inflight += 1
        while self.idle:
            c = self.idle.pop()
            if c.reusable and not c.transport.is_closing():
                c.request(sched)
                return
        self.pending.append(sched)
        if len(self.conns) + self.connecting < self.max:
            self.connecting += 1
            self.loop.create_task(self._connect())

    async def _connect(self):
        try:
            _, c = await self.loop.create_connection(lambda: Conn(self), self.host, self.port)
        except OSError as e:
            self.connecting -= 1
            if self.pending:
                self.pending.popleft()
                self.inflight -= 1
                self._err(f"connect: {e.__class__.__name__}")
            return
        self.connecting -= 1
        self.conns.add(c)
        self.peak = max(self.peak, len(self.conns))
        self._release(c)

    def _release(self, c):
        if not (c.reusable and not c.transport.is_closing()):
            if c.transport:
                c.transport.close()
            self.conns.discard(c)
            if self.pending and len(self.conns) + self.connecting < self.max:
                self.connecting += 1
                self.loop.create_task(self._connect())
            return
        if self.pending:
            c.request(self.pending.popleft())
        else:
            self.idle.append(c)

    def record(self, c, rec):
        self.inflight -= 1
        self.recs.append(rec)
        self._release(c)

    def error(self, c, msg):
        self.inflight -= 1
        self._err(msg[:80])

    def lost(self, c):
        self.conns.discard(c)
        if c in self.idle:
            self.idle.remove(c)
        if self.pending and len(self.conns) + self.connecting < self.max:
            self.connecting += 1
            self.loop.create_task(self._connect())

    def sweep(self):
        """Fail requests that have been in flight longer than the timeout."""
        t = now()
        for c in list(self.conns):
            if c.busy and t - c.send > self.timeout:
                c._fail("timeout")

    def close(self):
        self.closing = True
        for c in list(self.conns):
            if c.transport:
                c.transport.close()


def pct(v, q):
    if not v:
        return None
    return v[max(0, min(len(v) - 1, math.ceil(q / 100 * len(v)) - 1))]


def dist(v):
    v = sorted(v)
    if not v:
        return {"n": 0}
    r = {"n": len(v), "mean": sum(v) / len(v), "min": v[0], "max": v[-1]}
    for q in (50, 90, 99, 99.9):
        r[f"p{q:g}"] = pct(v, q)
    return {k: (round(x, 4) if isinstance(x, float) else x) for k, x in r.items()}


async def main_async(a):
    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname, u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    body = b""
    if a.body:
        with open(a.body, "rb") as f:
            body = f.read()
    headers = [f"Host: {u.netloc}", "User-Agent: sluicegate-bench-loadgen", "Accept: */*"]
    if body:
        headers += [f"Content-Type: {a.content_type}", f"Content-Length: {len(body)}"]
    headers += a.header
    req = (f"{a.method} {path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + body

    loop = asyncio.get_running_loop()
    gen = Gen(loop, host, port, req, a.max_conns, a.timeout)
    if a.jsonrpc_ids:
        gen.id_at = req.find(b"100000000", len(req) - len(body))
        if gen.id_at < 0:
            sys.exit("--jsonrpc-ids: the body holds no id 100000000 to vary")
    n_total = int(a.rate * a.duration)
    interval = 1.0 / a.rate
    rng = random.Random(a.seed)

    # pre-open a few connections so the first requests do not pay for connect
    for _ in range(min(a.max_conns, max(2, int(a.rate * 0.005) + 2))):
        _, c = await loop.create_connection(lambda: Conn(gen), host, port)
        gen.conns.add(c)
        gen.idle.append(c)
    gen.peak = len(gen.conns)

    t0 = now() + 0.01
    deadline = t0 + a.duration
    next_sweep = t0 + 0.25
    sched = t0
    sent = 0
    for i in range(n_total):
        if a.arrival == "poisson":
            sched += rng.expovariate(a.rate) if i else 0.0
        else:
            sched = t0 + i * interval
        if sched >= deadline:
            break
        d = sched - now()
        if d > 0:
            await asyncio.sleep(d)
        gen.submit(sched)
        sent += 1
        if sched >= next_sweep:
            gen.sweep()
            next_sweep = sched + 0.25
    t_sched_end = now()
    drain_until = t_sched_end + a.timeout + 1
    while gen.inflight > 0 and now() < drain_until:
        await asyncio.sleep(0.01)
        gen.sweep()
    abandoned = gen.inflight
    t_end_all = now()
    gen.close()
    recs, errors = list(gen.recs), dict(gen.errors)

    ok = [r for r in recs if 200 <= r[5] < 300]
    statuses = {}
    for r in recs:
        statuses[r[5]] = statuses.get(r[5], 0) + 1
    ms = 1000.0
    last_end = max((r[4] for r in recs), default=t0)
    out = {
        "tool": "loadgen",
        "url": a.url,
        "arrival": a.arrival,
        "target_rps": a.rate,
        "duration_s": a.duration,
        "scheduled": n_total,
        "sent": sent,
        "completed": len(recs),
        "ok": len(ok),
        "errors": (len(recs) - len(ok)) + sum(errors.values()) + abandoned,
        "status": statuses,
        "error_detail": errors,
        "abandoned": abandoned,
        "unsent": n_total - sent,
        # achieved throughput: completions over the send window (+ drain), not over an idle tail
        "rps": round(len(recs) / max(a.duration, last_end - t0), 1),
        "send_window_s": round(t_sched_end - t0, 3),
        "wall_s": round(t_end_all - t0, 3),
        "conns_peak": gen.peak,
        "latency_ms": dist([(r[4] - r[1]) * ms for r in ok]),
        "latency_sched_ms": dist([(r[4] - r[0]) * ms for r in ok]),
        "ttfb_ms": dist([(r[2] - r[1]) * ms for r in ok]),
        "ttfe_ms": dist([(r[3] - r[1]) * ms for r in ok]),
        "late_ms": dist([(r[1] - r[0]) * ms for r in recs]),
    }
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", help="file with the request body")
    ap.add_argument("--method", default="POST")
    ap.add_argument("--content-type", default="application/json")
    ap.add_argument("-H", "--header", action="append", default=[])
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    ap.add_argument("--max-conns", type=int, default=512)
    ap.add_argument("--arrival", choices=("uniform", "poisson"), default="uniform")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--jsonrpc-ids", action="store_true", help="vary the body's id 100000000 per request"
    )
    a = ap.parse_args()
    host = urllib.parse.urlparse(a.url).hostname or ""
    addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    if not all(x.startswith("127.") or x == "::1" for x in addrs):
        sys.exit(f"refusing non-loopback target {host} {addrs}")
    if a.rate * a.duration > 5_000_000:
        sys.exit("rate*duration over 5M requests: refusing (bounded by design)")
    print(json.dumps(asyncio.run(main_async(a))))


if __name__ == "__main__":
    main()
