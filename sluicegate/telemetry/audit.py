"""The audit log: a row per finished request, written to the store in batches off the request path.

``AuditWriter.submit`` turns an ``Exchange`` into a row and puts it on a bounded
queue without waiting; a background task takes up to ``batch_size`` rows (or
what came within ``flush_interval``) and inserts them in one statement. When
the queue is full, or a write fails, rows are appended to a local spill file
(JSON lines) instead; the writer replays the file once the store answers again
and then truncates it. Every row carries an id of its own and the store skips
ids it has, so a batch replayed after an unclear failure (the commit went
through, the answer did not) lands once. ``close`` writes what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import orjson

from sluicegate.stores.base import AUDIT_COLUMNS, AuditRow
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.metrics import Metrics

log = logging.getLogger("sluicegate.audit")


class AuditSink(Protocol):
    async def write_audit(self, rows: Sequence[AuditRow]) -> None: ...


def audit_row(ex: Exchange) -> AuditRow:
    """The row of a finished request, in ``AUDIT_COLUMNS`` order; ``ts`` is its arrival."""
    now = time.perf_counter()
    ended = ex.ended or now
    usage = ex.usage
    return (
        uuid.uuid4().hex,
        ex.request_id,
        time.time() - (now - ex.started),
        ex.gateway,
        ex.consumer,
        None,  # key_prefix: not known to the request path yet
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
        ex.cost,
        ex.cache,
        ex.attempts,
        ex.error_type,
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
    ) -> None:
        self.sink = sink
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
        self._stopping = False
        self._inflight: Sequence[AuditRow] = ()  # the batch being written
        self._pending = False  # the spill file holds rows to replay
        self._next_replay = 0.0
        self._failing = False

    # -- the request path: never waits ---------------------------------------

    def submit(self, ex: Exchange) -> None:
        self.put(audit_row(ex))

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

    async def close(self) -> None:
        """Stop the background task and write what is queued (spill it if the store fails)."""
        if self._task is None:
            return  # never started: the store was never opened either
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
            await self._wait(self.flush_interval)
            if not self._rows:
                return []
        deadline = time.monotonic() + self.flush_interval
        while len(self._rows) < self.batch_size and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._ready.clear()
            await self._wait(remaining)
        return self._take(self.batch_size)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), seconds)

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
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
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
                if isinstance(row, list) and len(row) == len(AUDIT_COLUMNS):
                    rows.append(tuple(row))
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
