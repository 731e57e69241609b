"""The audit log: a row per finished request, written to the store in batches off the request path.

``AuditWriter.submit`` turns an ``Exchange`` into a row and puts it on a bounded
queue without waiting; a background task takes up to ``batch_size`` rows (or
what came within ``flush_interval``) and inserts them in one statement. When
the queue is full, or a write fails, rows are appended to a local spill file
(JSON lines) instead; the writer replays the file once the store answers again
and then truncates it. Every row carries an id of its own and the store skips
ids it has, so a batch replayed after an unclear failure (the commit went
through, the answer did not) lands once. ``close`` writes what is queued.

With ``retention`` set, a second task deletes the store's rows older than
that, in bounded batches (``Store.purge_audit``), every ``retention_interval``.
With ``log_bodies``, a row also holds the request's and the answer's bodies
(``telemetry.bodies``), scrubbed first by the request's guardrails (``scrub_bodies``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson

from sluicegate.stores.base import AUDIT_BODY_COLUMNS, AUDIT_ROW_COLUMNS, AuditRow
from sluicegate.telemetry.attempts import detail
from sluicegate.telemetry.bodies import Bodies, clip
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.ids import ordered_id
from sluicegate.telemetry.metrics import Metrics
from sluicegate.waiting import set_within

log = logging.getLogger("sluicegate.audit")


DEFAULT_MAX_BODY_BYTES = 64 * 1024
_NO_BODIES = (None, None, None, None)
_NO_GUARD = (None, None)
# A row is spilled as an object keyed by column, so that any later version replays it
# with the columns it lacked empty. Earlier versions spilled arrays: the columns of each
# such row, by its length (20, 24, 26, 27, 28). The first layout is spelled out: a column
# added later never changes what an old row is.
_FIRST = (
    *("id", "request_id", "ts", "gateway", "consumer", "key_prefix", "rule", "service"),
    *("provider", "model", "status", "latency_ms", "ttft_ms", "input_tokens"),
    *("output_tokens", "cached_tokens", "cost_usd", "cache", "attempts", "error_type"),
)
_EARLIER = {
    len(columns): columns
    for columns in (
        _FIRST,
        _FIRST + AUDIT_BODY_COLUMNS,
        (*_FIRST, "guardrail", "tags", *AUDIT_BODY_COLUMNS),
        (*_FIRST, "guardrail", "tags", "endpoint", *AUDIT_BODY_COLUMNS),
        (
            *_FIRST[:16],  # up to cached_tokens
            "usage_source",
            *_FIRST[16:],
            *("guardrail", "tags", "endpoint", *AUDIT_BODY_COLUMNS),
        ),
    )
}


def _upgraded(row: object) -> AuditRow | None:
    """A spilled row in the current column order, or None when it is no row at all."""
    if isinstance(row, dict):
        if not isinstance(row.get("id"), str):
            return None
        return tuple(row.get(column) for column in AUDIT_ROW_COLUMNS)
    if not isinstance(row, list):
        return None
    columns = _EARLIER.get(len(row))
    if columns is None:
        return None
    named = dict(zip(columns, row, strict=True))
    return tuple(named.get(column) for column in AUDIT_ROW_COLUMNS)


class AuditSink(Protocol):
    async def write_audit(self, rows: Sequence[AuditRow]) -> None: ...

    async def purge_audit(self, before: datetime, limit: int) -> int: ...


def scrub_bodies(
    ex: Exchange, request: bytes, response: bytes | None
) -> tuple[bytes, bytes | None]:
    """Logged bodies keep placeholders, never the values, of the PII types the request's
    rule looks for (its guardrails' screen). It runs after the client has its answer, before
    the size cap, and its output is the only copy that reaches the store or the spill file."""
    screen = ex.screen
    if screen is None:
        return request, response
    return screen.scrub(request), None if response is None else screen.scrub(response)


def _bodies(
    ex: Exchange, bodies: Bodies, max_body_bytes: int
) -> tuple[str | None, str | None, bool | None, bool | None]:
    request, response = scrub_bodies(ex, bodies.request, bodies.answer())
    request_text, request_cut = clip(request, max_body_bytes)
    response_text, response_cut = clip(response, max_body_bytes)
    if bodies.transcript is not None and bodies.transcript.cut:
        response_cut = True
    return request_text, response_text, request_cut, response_cut


def _guard_columns(ex: Exchange) -> tuple[str | None, str | None]:
    assert ex.screen is not None
    verdicts, tags = ex.screen.verdicts(), ex.screen.tags
    return (
        None if verdicts is None else orjson.dumps(verdicts).decode(),
        None if tags is None else orjson.dumps(tags).decode(),
    )


def audit_row(ex: Exchange, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> AuditRow:
    """The row of a finished request, in ``AUDIT_ROW_COLUMNS`` order; ``ts`` is its arrival."""
    now = time.perf_counter()
    ended = ex.ended or now
    usage = ex.usage
    return (
        ordered_id(),
        ex.request_id,
        time.time() - (now - ex.started),
        ex.gateway,
        ex.consumer,
        ex.key_prefix,
        ex.rule,
        ex.service,
        ex.provider,
        ex.model,
        ex.status,
        round((ended - ex.started) * 1000, 3),
        None if ex.first_token is None else round(ex.first_token * 1000, 3),
        usage.input if usage else None,
        usage.output if usage else None,
        usage.cached if usage else None,
        usage.source if usage else None,
        ex.cost,
        ex.cache,
        ex.attempts,
        ex.error_type,
        *(_NO_GUARD if ex.screen is None else _guard_columns(ex)),
        ex.endpoint,
        detail(ex.tried),
        ex.route,
        *(_NO_BODIES if ex.bodies is None else _bodies(ex, ex.bodies, max_body_bytes)),
    )


class AuditWriter:
    def __init__(
        self,
        sink: AuditSink,
        metrics: Metrics,
        gateway: str,
        spill_path: str | Path,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        retry_interval: float = 1.0,
        close_timeout: float = 10.0,
        log_bodies: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        retention: float | None = None,
        retention_interval: float = 600.0,
        purge_batch: int = 1000,
    ) -> None:
        self.sink = sink
        # Read by the request path: keep bodies on the Exchange only when they are logged.
        self.log_bodies = log_bodies
        self.max_body_bytes = max_body_bytes
        self.retention = retention  # seconds a row is kept; None: for ever
        self.retention_interval = retention_interval
        self.purge_batch = purge_batch
        self.spill_path = Path(spill_path)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.close_timeout = close_timeout
        self.queue_size = queue_size
        # A deque and an event rather than an asyncio.Queue: taking rows never awaits, so
        # stopping the task can never lose a row it was holding.
        self._rows: deque[AuditRow] = deque()
        self._ready = asyncio.Event()  # set by the first row, a full batch, or close
        metrics.audit_queue.labels(gateway).set_function(self._rows.__len__)
        self._written = metrics.audit_written.labels(gateway)
        self._spilled = metrics.audit_spilled.labels(gateway)
        self._dropped = metrics.audit_dropped.labels(gateway)
        self._task: asyncio.Task[None] | None = None
        self._retainer: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()  # wakes the retention task to stop
        self._stopping = False
        self._inflight: Sequence[AuditRow] = ()  # the batch being written
        self._pending = False  # the spill file holds rows to replay
        self._next_replay = 0.0
        self._failing = False

    # -- the request path: never waits ---------------------------------------

    def submit(self, ex: Exchange) -> None:
        self.put(audit_row(ex, self.max_body_bytes))

    def put(self, row: AuditRow) -> None:
        rows = self._rows
        if len(rows) >= self.queue_size:
            self._spill([row])
            return
        rows.append(row)
        if len(rows) == 1 or len(rows) == self.batch_size:
            self._ready.set()

    # -- life ----------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self._pending = self._spill_size() > 0
        if self._pending:
            self._seal()
            log.info("audit log: %s holds rows of an earlier run; replaying", self.spill_path)
        self._task = asyncio.create_task(self._run(), name="audit writer")
        if self.retention is not None:
            self._stop.clear()
            self._retainer = asyncio.create_task(self._retain(), name="audit retention")

    async def close(self) -> None:
        """Stop the background task and write what is queued (spill it if the store fails)."""
        if self._task is None:
            return  # never started: the store was never opened either
        await self._stop_retention()
        task, self._task = self._task, None
        self._stopping = True
        self._ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.close_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await asyncio.wait_for(self.flush(), self.close_timeout)
        except TimeoutError:
            log.warning("audit log: the store did not answer in time; rows kept in the spill file")
        # Whatever was not written is on disk for the next start.
        self._spill([*self._inflight, *self._take(len(self._rows))])
        self._inflight = ()

    async def flush(self) -> None:
        """Write everything queued now, then replay the spill file if the store answers."""
        while self._rows:
            await self._write(self._take(self.batch_size))
        if self._pending and not self._failing:
            await self._replay()

    @property
    def depth(self) -> int:
        return len(self._rows)

    # -- the background task -------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                batch = await self._collect()
                if batch:
                    await self._write(batch)
                if self._pending and time.monotonic() >= self._next_replay:
                    await self._replay()
            except Exception:  # a bug or the spill file gone: keep the writer alive
                log.exception("audit log: the writer failed; retrying")
                await asyncio.sleep(self.retry_interval)

    async def _collect(self) -> list[AuditRow]:
        """Up to ``batch_size`` rows, waiting at most ``flush_interval`` for them to come."""
        if not self._rows:
            self._ready.clear()
            await set_within(self._ready, self.flush_interval)
            if not self._rows:
                return []
        deadline = time.monotonic() + self.flush_interval
        while len(self._rows) < self.batch_size and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._ready.clear()
            await set_within(self._ready, remaining)
        return self._take(self.batch_size)

    def _take(self, limit: int) -> list[AuditRow]:
        rows = self._rows
        return [rows.popleft() for _ in range(min(limit, len(rows)))]

    async def _write(self, batch: Sequence[AuditRow]) -> None:
        self._inflight = batch
        try:
            await self.sink.write_audit(batch)
        except Exception as exc:  # the store is down, gone or refusing: keep the rows locally
            self._failed(exc)
            self._spill(batch)
        else:
            self._written.inc(len(batch))
            self._recovered()
        self._inflight = ()

    def _failed(self, exc: Exception) -> None:
        self._next_replay = time.monotonic() + self.retry_interval
        if not self._failing:
            self._failing = True
            log.warning(
                "audit log: writing to the store failed (%s); rows go to %s until it answers",
                type(exc).__name__,
                self.spill_path,
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            self._next_replay = 0.0
            log.info("audit log: the store answers again")

    # -- retention -----------------------------------------------------------

    async def purge(self, now: float | None = None) -> int:
        """Delete the rows older than ``retention`` (of every gateway in the store),
        ``purge_batch`` at a time, each batch its own short transaction; the number deleted."""
        if self.retention is None:
            return 0
        before = datetime.fromtimestamp((now or time.time()) - self.retention, UTC)
        total = 0
        while not self._stop.is_set():
            count = await self.sink.purge_audit(before, self.purge_batch)
            total += count
            if count < self.purge_batch:
                break
            await asyncio.sleep(0.05)  # the store serves others between batches
        if total:
            log.info("audit log: %d rows older than %s deleted", total, before.isoformat())
        return total

    async def _retain(self) -> None:
        # Instances started together spread their first run (and, by the jitter, the next).
        pause = random.uniform(0, min(self.retention_interval, 30.0))
        while not await set_within(self._stop, pause):
            try:
                await self.purge()
            except Exception as exc:  # the store is down: the next round tries again
                log.warning("audit log: deleting old rows failed (%s)", type(exc).__name__)
            pause = self.retention_interval * random.uniform(0.9, 1.1)

    async def _stop_retention(self) -> None:
        task, self._retainer = self._retainer, None
        if task is None:
            return
        self._stop.set()  # a batch under way finishes: a store call is never cut in half
        try:
            await asyncio.wait_for(asyncio.shield(task), self.close_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the spill file ------------------------------------------------------

    def _spill_size(self) -> int:
        try:
            return self.spill_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _seal(self) -> None:
        """End a line cut short by a crash, so that rows appended next stay readable."""
        with self.spill_path.open("rb+") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")

    def _spill(self, rows: Sequence[AuditRow]) -> None:
        if not rows:
            return
        data = b"".join(
            orjson.dumps(dict(zip(AUDIT_ROW_COLUMNS, row, strict=True))) + b"\n" for row in rows
        )
        try:
            with self.spill_path.open("ab") as f:
                f.write(data)
        except OSError as exc:
            self._dropped.inc(len(rows))
            log.error(
                "audit log: %d rows lost, the spill file %s cannot be written (%s)",
                len(rows),
                self.spill_path,
                exc.strerror or type(exc).__name__,
            )
            return
        self._spilled.inc(len(rows))
        self._pending = True

    def _read(self, offset: int, end: int) -> tuple[list[AuditRow], int]:
        rows: list[AuditRow] = []
        with self.spill_path.open("rb") as f:
            f.seek(offset)
            while offset < end and len(rows) < self.batch_size:
                line = f.readline()
                if not line:
                    break
                offset += len(line)
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    row = None
                upgraded = _upgraded(row)
                if upgraded is not None:
                    rows.append(upgraded)
                elif line.strip():
                    self._dropped.inc()
                    log.error("audit log: an unreadable line in %s is skipped", self.spill_path)
        return rows, offset

    async def _replay(self) -> None:
        """Write the spill file's rows; on success, cut them from the file (rows spilled
        meanwhile stay). On failure the next try starts over: the store skips ids it has."""
        end = self._spill_size()
        offset = 0
        while offset < end:
            rows, offset = self._read(offset, end)
            if not rows:
                continue
            try:
                await self.sink.write_audit(rows)
            except Exception as exc:
                self._failed(exc)
                return
            self._written.inc(len(rows))
            self._recovered()
        self._cut(end)

    def _cut(self, end: int) -> None:
        # No await in here: nothing can be spilled between reading the rest and truncating.
        try:
            with self.spill_path.open("rb+") as f:
                f.seek(end)
                rest = f.read()
                f.seek(0)
                f.write(rest)
                f.truncate()
        except FileNotFoundError:
            rest = b""
        self._pending = bool(rest)
        if end:
            log.info("audit log: replayed %s", self.spill_path)
