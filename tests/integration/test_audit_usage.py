"""Retention, bodies and ``/admin/usage`` of the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sluicegate.stores.base import AUDIT_ROW_COLUMNS, AuditQuery, Store, UsageQuery
from sluicegate.stores.open import open_store
from sluicegate.stores.sqlite import SqliteStore
from sluicegate.telemetry.audit import AuditWriter, audit_row
from sluicegate.telemetry.bodies import Bodies
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.metrics import Metrics
from sluicegate.telemetry.usage import TokenCounts
from tests.conftest import KEY, OTHER_KEY, logged_row
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url
from tests.integration.test_audit import ADMIN_KEY, _sql, all_logs, counts, gateway_config

DAY = 86400.0


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


def row_at(ts: float, i: int, **fields: Any) -> tuple[Any, ...]:
    ex = Exchange(f"req-{i:05d}", fields.pop("gateway", "default"), "chat", "openai")
    ex.consumer = fields.pop("consumer", f"team-{i % 2}")
    ex.rule, ex.model = fields.pop("rule", "chat"), fields.pop("model", "gpt-4o-mini")
    ex.service = ex.provider = "openai"
    ex.status, ex.attempts = fields.pop("status", 200), 1
    ex.error_type = fields.pop("error_type", None)
    ex.usage = fields.pop("usage", TokenCounts(input=10, output=4, cached=2))
    ex.cost = fields.pop("cost", 0.5)
    ex.ended = ex.started + 0.01
    assert not fields
    row = list(audit_row(ex))
    row[2] = ts  # ts: the arrival, in unix seconds
    return tuple(row)


def test_retention_deletes_old_rows_in_bounded_batches(url: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        now = time.time()
        old = [row_at(now - 40 * DAY - i, i) for i in range(2500)]
        recent = [row_at(now - 10 * DAY + i, 5000 + i) for i in range(300)]
        other = [row_at(now - 50 * DAY, 9000 + i, gateway="other") for i in range(7)]
        await store.write_audit(old + recent + other)
        assert await counts(store) == (2807, 2807)

        # One batch is bounded, the oldest go first, and nothing recent is touched.
        before = datetime.fromtimestamp(now - 30 * DAY, UTC)
        assert await store.purge_audit(before, 1000) == 1000
        left = await _sql(store, "SELECT min(request_id), max(request_id) FROM sluicegate_audit")
        assert tuple(left[0]) == ("req-00000", "req-05299")  # the others (50 days) went first
        gone = await _sql(
            store,
            "SELECT count(*) FROM sluicegate_audit "
            "WHERE request_id >= 'req-01507' AND request_id < 'req-02500'",
        )
        assert gone[0][0] == 0
        assert await counts(store) == (1807, 1807)

        writer = AuditWriter(
            store,
            Metrics(lambda: ()),
            "default",
            tmp_path / "spill.jsonl",
            retention=30 * DAY,
            purge_batch=400,
        )
        assert await writer.purge(now) == 1507  # the rest, 400 at a time
        assert await counts(store) == (300, 300)
        assert await writer.purge(now) == 0
        assert await writer.purge(now + 21 * DAY) == 300
        await store.close()

    asyncio.run(main())


def test_retention_from_two_instances_at_once(url: str, tmp_path: Path) -> None:
    """Two writers sharing a store purge together: each row goes once, neither fails."""

    async def main() -> None:
        stores = [open_store(url), open_store(url)]
        for store in stores:
            await store.open()
        now = time.time()
        await stores[0].write_audit([row_at(now - 40 * DAY - i, i) for i in range(3000)])
        await stores[0].write_audit([row_at(now, 7000 + i) for i in range(10)])
        writers = [
            AuditWriter(
                store,
                Metrics(lambda: ()),
                "default",
                tmp_path / f"spill-{n}.jsonl",
                retention=30 * DAY,
                purge_batch=250,
            )
            for n, store in enumerate(stores)
        ]
        deleted = await asyncio.gather(*(writer.purge(now) for writer in writers))
        assert sum(deleted) == 3000
        assert await counts(stores[0]) == (10, 10)
        for store in stores:
            await store.close()

    asyncio.run(main())


def test_the_retention_job_runs_in_the_background(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(str(tmp_path / "audit.db"))
        await store.open()
        now = time.time()
        await store.write_audit([row_at(now - 2 * DAY, i) for i in range(50)])
        await store.write_audit([row_at(now, 100 + i) for i in range(5)])
        writer = AuditWriter(
            store,
            Metrics(lambda: ()),
            "default",
            tmp_path / "spill.jsonl",
            retention=DAY,
            retention_interval=0.05,
            flush_interval=0.02,
        )
        await writer.start()
        deadline = time.monotonic() + 5
        while (await counts(store))[0] > 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await writer.close()
        assert await counts(store) == (5, 5)
        await store.close()

    asyncio.run(main())


def test_usage_sums_per_group_in_the_database(url: str) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        day1 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC).timestamp()
        day2 = day1 + 3600  # 00:30 the next day (UTC)
        rows = [
            row_at(day1, 1, consumer="a", model="m1", cost=0.25),
            row_at(day1 + 1, 2, consumer="a", model="m2", cost=0.5),
            row_at(day2, 3, consumer="b", model="m1", cost=1.0),
            row_at(day2 + 1, 4, consumer="b", model="m1", status=502, usage=None, cost=None),
            row_at(day2 + 2, 5, consumer="b", model="m1", error_type="upstream_error"),
            row_at(day2 + 3, 6, consumer="c", model="m1", gateway="other"),
        ]
        await store.write_audit(rows)
        here = {"gateway": "default"}

        by_consumer = await store.audit_usage(UsageQuery("consumer", here))
        assert by_consumer == [
            {
                "group": "b",
                "requests": 3,
                "errors": 2,
                "input_tokens": 20,
                "output_tokens": 8,
                "cached_tokens": 4,
                "cost_usd": pytest.approx(1.5),
            },
            {
                "group": "a",
                "requests": 2,
                "errors": 0,
                "input_tokens": 20,
                "output_tokens": 8,
                "cached_tokens": 4,
                "cost_usd": pytest.approx(0.75),
            },
        ]
        by_day = await store.audit_usage(UsageQuery("day", here))
        assert [(r["group"], r["requests"]) for r in by_day] == [
            ("2026-03-01", 2),
            ("2026-03-02", 3),
        ]
        by_model = await store.audit_usage(UsageQuery("model", {**here, "consumer": "a"}))
        assert [(r["group"], r["cost_usd"]) for r in by_model] == [("m2", 0.5), ("m1", 0.25)]
        since = datetime.fromtimestamp(day2, UTC)
        late = await store.audit_usage(UsageQuery("rule", here, since=since))
        assert [(r["group"], r["requests"]) for r in late] == [("chat", 3)]
        early = await store.audit_usage(UsageQuery("rule", here, until=since))
        assert [(r["group"], r["requests"]) for r in early] == [("chat", 2)]
        assert await store.audit_usage(UsageQuery("model", {"gateway": "nope"})) == []
        await store.close()

    asyncio.run(main())


def test_bodies_are_stored_capped_and_read_only_for_one_row(url: str) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        ex = Exchange("with-bodies", "default", "chat", "openai")
        ex.status, ex.attempts = 200, 1
        ex.bodies = Bodies(('{"m": "' + "é" * 100 + '"}').encode(), 64)
        ex.bodies.response = b'{"answer": "fine\\u0000"}\x00'
        plain = Exchange("without", "default", "chat", "openai")
        plain.status = 200
        await store.write_audit([audit_row(ex, 64), audit_row(plain, 64)])

        listed = await store.audit(AuditQuery({"request_id": "with-bodies"}))
        assert "request_body" not in listed[0]
        row = (await store.audit(AuditQuery({"request_id": "with-bodies"}, bodies=True)))[0]
        assert row["request_truncated"] is True and row["response_truncated"] is False
        assert len(row["request_body"].encode()) <= 64
        assert row["request_body"] == '{"m": "' + "é" * 28  # 7 + 56 bytes: not half an é
        assert row["response_body"] == '{"answer": "fine\\u0000"}\ufffd'
        row = (await store.audit(AuditQuery({"request_id": "without"}, bodies=True)))[0]
        assert row["request_body"] is None and row["request_truncated"] is None
        await store.close()

    asyncio.run(main())


# The audit log's columns when it first shipped: what the oldest spill files hold.
FIRST_COLUMNS = (
    "id",
    "request_id",
    "ts",
    "gateway",
    "consumer",
    "key_prefix",
    "rule",
    "service",
    "provider",
    "model",
    "status",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "cache",
    "attempts",
    "error_type",
)


def test_a_spill_file_of_the_previous_version_replays(tmp_path: Path) -> None:
    """Rows spilled before the body columns existed are written with them empty."""

    async def main() -> None:
        store = SqliteStore(str(tmp_path / "audit.db"))
        await store.open()
        row = dict(zip(AUDIT_ROW_COLUMNS, row_at(time.time(), 1), strict=True))
        old = [row[name] for name in FIRST_COLUMNS]
        (tmp_path / "spill.jsonl").write_bytes(orjson.dumps(old) + b"\n")
        writer = AuditWriter(store, Metrics(lambda: ()), "default", tmp_path / "spill.jsonl")
        await writer.start()
        await writer.close()
        assert await counts(store) == (1, 1)
        (written,) = await store.audit(AuditQuery({"request_id": "req-00001"}))
        assert written["attempts"] == 1 and written["error_type"] is None
        assert (written["input_tokens"], written["cost_usd"]) == (10, 0.5)
        assert written["guardrail"] is None and written["usage_source"] is None
        await store.close()

    asyncio.run(main())


# -- through a running gateway ----------------------------------------------------


def _admin(gateway: RunningGateway) -> httpx.Client:
    return httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )


def _wait_rows(admin: httpx.Client, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(rows := all_logs(admin)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows


def test_log_bodies_through_the_gateway(url: str, tmp_path: Path) -> None:
    config = gateway_config(url, tmp_path, log_bodies=True, max_body_bytes=2000)
    gateway = RunningGateway(config).start()
    try:
        auth = {"Authorization": f"Bearer {KEY}"}
        whole = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "mock-chat", "messages": [{"role": "user", "content": "hello there"}]},
            headers=auth,
        )
        streamed = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={
                "model": "mock-chat",
                "stream": True,
                "messages": [{"role": "user", "content": "stream these words"}],
            },
            headers=auth,
        )
        anthropic = httpx.post(
            gateway.url + "/v1/messages",
            json={
                "model": "mock-chat",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "in the other dialect"}],
            },
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        )
        long = "word " * 1000
        cut = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "mock-chat", "messages": [{"role": "user", "content": long}]},
            headers=auth,
        )
        failed = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "doomed", "messages": [{"role": "user", "content": "no"}]},
            headers=auth,
        )
        admin = _admin(gateway)
        rows = _wait_rows(admin, 5)
        assert len(rows) == 5
        assert all("request_body" not in row for row in rows)  # never in a page of rows

        def one(response: httpx.Response) -> dict[str, Any]:
            return logged_row(admin, response.headers["x-request-id"])

        row = one(whole)
        assert orjson.loads(row["request_body"])["messages"][0]["content"] == "hello there"
        assert orjson.loads(row["response_body"]) == whole.json()
        assert row["request_truncated"] is False and row["response_truncated"] is False

        answer = orjson.loads(one(streamed)["response_body"])
        assert answer == {
            "stream": True,
            "content": "mock: stream these words",
            "finish_reason": "stop",
        }
        answer = orjson.loads(one(anthropic)["response_body"])
        assert answer["content"] == "mock: in the other dialect"
        assert answer["finish_reason"] == "end_turn"

        row = one(cut)
        assert row["request_truncated"] is True and row["response_truncated"] is True
        assert len(row["request_body"].encode()) == 2000
        assert cut.status_code == 200

        row = one(failed)
        assert row["status"] == 502
        assert orjson.loads(row["response_body"]) == failed.json()
    finally:
        gateway.stop()


def test_bodies_are_off_by_default(tmp_path: Path) -> None:
    gateway = RunningGateway(gateway_config(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)).start()
    try:
        response = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "mock-chat", "messages": [{"role": "user", "content": "secret"}]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        admin = _admin(gateway)
        _wait_rows(admin, 1)
        row = logged_row(admin, response.headers["x-request-id"])
        assert row["status"] == 200 and "request_body" not in row
    finally:
        gateway.stop()

    async def check(store: Store) -> None:
        await store.open()
        found = await _sql(store, "SELECT request_body, response_body FROM sluicegate_audit")
        assert [tuple(r) for r in found] == [(None, None)]
        await store.close()

    asyncio.run(check(SqliteStore(str(tmp_path / "a.db"))))


def test_usage_api(url: str, tmp_path: Path) -> None:
    gateway = RunningGateway(gateway_config(url, tmp_path)).start()
    try:
        for i in range(5):
            httpx.post(
                gateway.url + "/v1/chat/completions",
                json={"model": "mock-chat", "messages": [{"role": "user", "content": f"a {i}"}]},
                headers={"Authorization": f"Bearer {KEY}"},
            )
        for model in ("mock-chat", "gpt-4o-mini", "doomed"):
            httpx.post(
                gateway.url + "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "from b"}]},
                headers={"Authorization": f"Bearer {OTHER_KEY}"},
            )
        admin = _admin(gateway)
        rows = _wait_rows(admin, 8)
        assert len(rows) == 8
        answer = admin.get("/admin/usage")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["group_by"] == "consumer"
        groups = {g["group"]: g for g in body["data"]}
        assert set(groups) == {"team-a", "team-b"}
        a, b = groups["team-a"], groups["team-b"]
        assert a["requests"] == 5 and a["errors"] == 0 and b["requests"] == 3 and b["errors"] == 1
        mine = [r for r in rows if r["consumer"] == "team-a"]
        assert a["input_tokens"] == sum(r["input_tokens"] for r in mine)
        assert a["output_tokens"] == sum(r["output_tokens"] for r in mine)
        assert a["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in mine))

        by_model = admin.get("/admin/usage", params={"group_by": "model", "consumer": "team-b"})
        assert {g["group"]: g["requests"] for g in by_model.json()["data"]} == {
            "mock-chat": 1,
            "gpt-4o-mini": 1,
            "doomed": 1,
        }
        today = datetime.now(UTC).date().isoformat()
        by_day = admin.get("/admin/usage", params={"group_by": "day"}).json()["data"]
        assert [(g["group"], g["requests"]) for g in by_day] == [(today, 8)]
        by_rule = admin.get("/admin/usage", params={"group_by": "rule", "model": "mock-chat"})
        assert [(g["group"], g["requests"]) for g in by_rule.json()["data"]] == [("chat", 6)]
        later = admin.get("/admin/usage", params={"since": str(time.time() + 60)})
        assert later.json()["data"] == []

        assert admin.get("/admin/usage", params={"group_by": "colour"}).status_code == 400
        assert admin.get("/admin/usage", params={"since": "soon"}).status_code == 400
        assert admin.get("/admin/usage", params={"status": "9999"}).status_code == 400
        assert httpx.get(gateway.url + "/admin/usage").status_code == 401
    finally:
        gateway.stop()


def test_usage_without_an_audit_log(tmp_path: Path) -> None:
    config = gateway_config("", tmp_path)
    del config["gateway"]["store"]
    gateway = RunningGateway(config).start()
    try:
        answer = _admin(gateway).get("/admin/usage")
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "audit_log_off"
    finally:
        gateway.stop()


def test_a_rule_turns_bodies_on_or_off_for_itself(tmp_path: Path) -> None:
    config = gateway_config(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)  # log_bodies: off
    config["rules"][0]["policies"] = {"log_bodies": True}  # "chat" keeps its bodies
    config["rules"][1]["policies"] = {"log_bodies": False}
    gateway = RunningGateway(config).start()
    try:
        auth = {"Authorization": f"Bearer {KEY}"}
        ids = {}
        for model in ("mock-chat", "doomed"):
            answer = httpx.post(
                gateway.url + "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "kept?"}]},
                headers=auth,
            )
            ids[model] = answer.headers["x-request-id"]
        admin = _admin(gateway)
        _wait_rows(admin, 2)
        kept = logged_row(admin, ids["mock-chat"])
        assert "kept?" in kept["request_body"] and "mock: kept?" in kept["response_body"]
        assert "request_body" not in logged_row(admin, ids["doomed"])
    finally:
        gateway.stop()
