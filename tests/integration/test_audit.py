"""The audit log: every finished request lands once in SQLite and PostgreSQL, through
store failures (spilled and replayed), a full queue and shutdown; ``/admin/logs``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sluicegate.stores.base import AUDIT_ROW_COLUMNS, Store
from sluicegate.stores.open import open_store
from sluicegate.stores.postgres import PostgresStore
from sluicegate.stores.sqlite import SqliteStore
from sluicegate.telemetry.audit import AuditWriter, audit_row
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.metrics import Metrics
from sluicegate.telemetry.pricing import PriceTable
from sluicegate.telemetry.usage import TokenCounts
from tests.conftest import KEY, OTHER_KEY, eventually, logged_row
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url

ADMIN_KEY = "adm-audit-key-0001"
MODEL = "gpt-4o-mini"  # priced by the package's table (mock answers with the asked model)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


def _metrics() -> Metrics:
    return Metrics(lambda: ())


def exchange(i: int) -> Exchange:
    ex = Exchange(f"req-{i:05d}", "default", "chat", "openai")
    ex.consumer = f"team-{i % 3}"
    ex.rule, ex.model, ex.service, ex.provider = "chat", "gpt-4o-mini", "openai", "openai"
    ex.status, ex.attempts = 200, 1
    ex.usage = TokenCounts(input=10 + i % 7, output=5)
    ex.cost = 0.000001 * i
    ex.ended = ex.started + 0.05
    return ex


async def _sql(store: Store, sql: str) -> Any:
    if isinstance(store, SqliteStore):
        return await store._run(lambda conn: conn.execute(sql).fetchall())
    assert isinstance(store, PostgresStore)
    return [tuple(row) for row in await store.pool.fetch(sql)]


async def counts(store: Store) -> tuple[int, int]:
    rows = await _sql(store, "SELECT count(*), count(DISTINCT request_id) FROM sluicegate_audit")
    return int(rows[0][0]), int(rows[0][1])


def writer(store: Store, tmp_path: Path, metrics: Metrics | None = None, **kw: Any) -> AuditWriter:
    kw.setdefault("flush_interval", 0.02)
    kw.setdefault("retry_interval", 0.05)
    return AuditWriter(store, metrics or _metrics(), "default", tmp_path / "spill.jsonl", **kw)


def spilled_lines(tmp_path: Path) -> int:
    path = tmp_path / "spill.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_ten_thousand_rows_land_once(url: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        metrics = _metrics()
        audit = writer(store, tmp_path, metrics)
        await audit.start()
        started = time.perf_counter()
        for i in range(10_000):
            audit.submit(exchange(i))
            if i % 250 == 0:
                await asyncio.sleep(0)
        await audit.close()
        assert time.perf_counter() - started < 10
        assert await counts(store) == (10_000, 10_000)
        assert spilled_lines(tmp_path) == 0
        assert metrics.audit_written.labels("default")._value.get() == 10_000
        row = (await store.audit(_query(request_id="req-00042")))[0]
        assert row["consumer"] == "team-0" and row["status"] == 200
        assert row["input_tokens"] == 10 and row["output_tokens"] == 5
        assert row["cost_usd"] == pytest.approx(0.000042)
        assert row["latency_ms"] == pytest.approx(50, abs=0.01)
        await store.close()

    asyncio.run(main())


def _query(**equal: str | int) -> Any:
    from sluicegate.stores.base import AuditQuery

    return AuditQuery(dict(equal))


def test_store_failure_spills_then_replays(url: str, tmp_path: Path) -> None:
    """The table goes away mid-run (as a dropped schema or a failed disk would): rows go to
    the spill file, and once it is back every row is written once."""

    async def main() -> None:
        store = open_store(url)
        await store.open()
        metrics = _metrics()
        audit = writer(store, tmp_path, metrics)
        await audit.start()
        n = 0

        async def load(count: int) -> None:
            nonlocal n
            for _ in range(count):
                audit.submit(exchange(n))
                n += 1
                if n % 100 == 0:
                    await asyncio.sleep(0.005)

        await load(1000)
        await asyncio.sleep(0.1)
        await _sql(store, "ALTER TABLE sluicegate_audit RENAME TO sluicegate_audit_away")
        await load(2000)
        await asyncio.sleep(0.2)
        assert spilled_lines(tmp_path) > 0
        assert metrics.audit_spilled.labels("default")._value.get() > 0
        await _sql(store, "ALTER TABLE sluicegate_audit_away RENAME TO sluicegate_audit")
        await load(1000)
        deadline = time.monotonic() + 5
        while spilled_lines(tmp_path) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert spilled_lines(tmp_path) == 0
        await audit.close()
        assert await counts(store) == (4000, 4000)
        assert metrics.audit_dropped.labels("default")._value.get() == 0
        await store.close()

    asyncio.run(main())


def test_refused_connections_spill_and_next_start_replays(tmp_path: Path) -> None:
    """A PostgreSQL store whose pool is refused (as by a closed port) never blocks a
    request: rows wait in the spill file, and the next run replays them."""
    from tests.fakes.gateway import free_port

    async def main() -> None:
        down = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
        down._pool = _RefusingPool()
        audit = writer(down, tmp_path)
        await audit.start()
        started = time.perf_counter()
        for i in range(300):
            audit.submit(exchange(i))
        assert time.perf_counter() - started < 0.5  # the request path never waited
        await audit.close()
        assert spilled_lines(tmp_path) == 300

        store = SqliteStore(str(tmp_path / "up.db"))
        await store.open()
        audit = writer(store, tmp_path)
        await audit.start()
        await audit.close()
        assert await counts(store) == (300, 300)
        assert spilled_lines(tmp_path) == 0
        await store.close()

    asyncio.run(main())


class _RefusingPool:
    """What asyncpg's pool does when nothing listens on the port."""

    async def execute(self, *args: Any) -> None:
        raise ConnectionRefusedError(111, "Connect call failed")


def test_full_queue_spills_and_replay_skips_rows_already_written(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(str(tmp_path / "audit.db"))
        await store.open()
        audit = writer(store, tmp_path, queue_size=10)
        for i in range(100):  # not started: the queue fills, the rest is spilled at once
            audit.submit(exchange(i))
        assert audit.depth == 10 and spilled_lines(tmp_path) == 90
        # A batch whose commit went through but whose answer was lost is spilled too:
        written = [audit_row(exchange(1000 + i)) for i in range(5)]
        await store.write_audit(written)
        audit._spill(written)
        with (tmp_path / "spill.jsonl").open("ab") as f:
            f.write(orjson.dumps(list(audit_row(exchange(2000))))[:-7])  # a torn last line
        await audit.start()
        await audit.close()
        assert await counts(store) == (105, 105)
        assert spilled_lines(tmp_path) == 0
        await store.close()

    asyncio.run(main())


def test_rows_say_where_their_usage_came_from_and_older_spilled_rows_replay(
    url: str, tmp_path: Path
) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        audit = writer(store, tmp_path)
        reported, counted, none = exchange(1), exchange(2), exchange(3)
        assert counted.usage is not None
        counted.usage.estimated = True
        none.usage, none.status = None, 502
        # A row spilled before the audit log had usage_source (nor attempts_detail, route).
        later = ("usage_source", "attempts_detail", "route")
        row = audit_row(exchange(4))
        older = [v for c, v in zip(AUDIT_ROW_COLUMNS, row, strict=True) if c not in later]
        (tmp_path / "spill.jsonl").write_bytes(orjson.dumps(older) + b"\n")
        await audit.start()
        for ex in (reported, counted, none):
            audit.submit(ex)
        await audit.close()
        rows = await store.audit(_query())
        found = {row["request_id"]: row for row in rows}
        assert found["req-00001"]["usage_source"] == "provider"
        assert found["req-00002"]["usage_source"] == "counted"
        assert found["req-00003"]["usage_source"] is None
        assert found["req-00004"]["usage_source"] is None
        assert found["req-00004"]["input_tokens"] == exchange(4).usage.input  # type: ignore[union-attr]
        assert found["req-00004"]["error_type"] is None and found["req-00004"]["attempts"] == 1
        await store.close()

    asyncio.run(main())


def test_spilled_rows_are_kept_by_column_name_and_replayed_with_their_attempts(
    url: str, tmp_path: Path
) -> None:
    """A row is spilled as an object keyed by column, so that a version with more columns
    replays it; an array spilled by the version before the attempts column replays too."""
    from sluicegate.stores.base import AUDIT_ROW_COLUMNS, AuditQuery
    from sluicegate.telemetry.attempts import Tried

    async def main() -> None:
        store = open_store(url)
        await store.open()
        audit = writer(store, tmp_path)
        tried = exchange(1)
        tried.tried = [
            Tried("primary", "http://10.0.0.5:8000/v1", "5xx", 500, 0.0123),
            Tried("backup", None, "unavailable"),
        ]
        audit._spill([audit_row(tried)])
        line = (tmp_path / "spill.jsonl").read_bytes().splitlines()[0]
        assert orjson.loads(line)["request_id"] == "req-00001"
        previous = [c for c in AUDIT_ROW_COLUMNS if c not in ("attempts_detail", "route")]
        named = dict(zip(AUDIT_ROW_COLUMNS, audit_row(exchange(2)), strict=True))
        named["endpoint"] = "chat"
        with (tmp_path / "spill.jsonl").open("ab") as f:
            f.write(orjson.dumps([named.get(c) for c in previous]) + b"\n")
        await audit.start()
        await audit.close()
        assert await counts(store) == (2, 2)
        (row,) = await store.audit(AuditQuery({"request_id": "req-00001"}))
        assert orjson.loads(row["attempts_detail"]) == [
            {
                "service": "primary",
                "target": "http://10.0.0.5:8000/v1",
                "status": 500,
                "outcome": "5xx",
                "ms": 12.3,
            },
            {
                "service": "backup",
                "target": None,
                "status": None,
                "outcome": "unavailable",
                "ms": 0.0,
            },
        ]
        (old,) = await store.audit(AuditQuery({"request_id": "req-00002"}))
        assert old["attempts_detail"] is None and old["endpoint"] == "chat"
        await store.close()

    asyncio.run(main())


def test_close_flushes_what_is_queued(url: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        audit = writer(store, tmp_path, flush_interval=30, batch_size=10_000)
        await audit.start()
        for i in range(1234):
            audit.submit(exchange(i))
        await asyncio.sleep(0.05)
        await audit.close()
        assert await counts(store) == (1234, 1234)
        assert spilled_lines(tmp_path) == 0
        await store.close()

    asyncio.run(main())


# -- through a running gateway ----------------------------------------------------


def gateway_config(store: str, tmp_path: Path, **audit: Any) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "audit": {"spill_path": str(tmp_path / "spill.jsonl"), **audit},
        "pricing": {"mock-chat": {"input": 2.0, "output": 8.0}},
        "services": [
            {"name": "mock", "provider": "mock"},
            {"name": "broken", "provider": "mock", "mock_error_status": 503, "retries": 0},
        ],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["gpt-4o-mini", "mock-chat"]},
                "targets": [{"service": "mock"}],
            },
            {
                "name": "doomed",
                "match": {"models": ["doomed"]},
                "targets": [{"service": "broken"}],
                "fallback_on": [],
            },
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY]},
            {"name": "team-b", "keys": [OTHER_KEY]},
        ],
    }


def chat(gateway: RunningGateway, key: str, model: str, text: str, stream: bool = False) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return response.headers["x-request-id"]


def all_logs(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        page = admin.get("/admin/logs", params={**params, **({"after": after} if after else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        rows.extend(body["data"])
        after = body["next"]
        if after is None:
            return rows


def test_requests_through_the_gateway_become_rows(url: str, tmp_path: Path) -> None:
    gateway = RunningGateway(gateway_config(url, tmp_path)).start()
    try:
        admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        before = time.time() - 1
        ids_a = [chat(gateway, KEY, MODEL, f"hello number {i}") for i in range(12)]
        ids_s = [chat(gateway, KEY, MODEL, "a streamed one", stream=True) for _ in range(3)]
        ids_b = [chat(gateway, OTHER_KEY, MODEL, "from b") for _ in range(4)]
        failed = chat(gateway, OTHER_KEY, "doomed", "will fail")
        deadline = time.monotonic() + 5
        while len(all_logs(admin)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = all_logs(admin, limit=7)
        assert len(rows) == 20
        assert {r["request_id"] for r in rows} == {*ids_a, *ids_s, *ids_b, failed}
        assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)

        one = logged_row(admin, ids_a[3])
        assert one["consumer"] == "team-a" and one["rule"] == "chat"
        assert one["service"] == "mock" and one["provider"] == "mock"
        assert one["model"] == MODEL and one["status"] == 200
        assert one["gateway"] == "default" and one["attempts"] == 1
        assert one["key_prefix"] is None and one["error_type"] is None
        assert one["input_tokens"] > 0 and one["output_tokens"] > 0
        usage = TokenCounts(input=one["input_tokens"], output=one["output_tokens"])
        assert one["cost_usd"] == pytest.approx(PriceTable().cost(MODEL, usage))
        assert one["latency_ms"] > 0 and one["id"] != one["request_id"]
        streamed = logged_row(admin, ids_s[0])
        assert streamed["ttft_ms"] is not None and streamed["status"] == 200
        bad = logged_row(admin, failed)
        assert bad["status"] == 502 and bad["rule"] == "doomed" and bad["error_type"]

        assert {r["request_id"] for r in all_logs(admin, consumer="team-b")} == {*ids_b, failed}
        assert [r["request_id"] for r in all_logs(admin, status=502)] == [failed]
        assert len(all_logs(admin, rule="chat", model=MODEL)) == 19
        assert [r["request_id"] for r in all_logs(admin, request_id=ids_b[0])] == [ids_b[0]]
        assert len(all_logs(admin, since=str(before))) == 20
        assert all_logs(admin, until=str(before)) == []
        middle = rows[10]["ts"]
        newer = all_logs(admin, since=middle)
        older = all_logs(admin, until=middle.replace("+00:00", "Z"))
        assert len(newer) + len(older) == 20 and newer[-1]["ts"] == middle

        assert admin.get("/admin/logs/nope").status_code == 404
        assert admin.get(f"/admin/logs/{ids_a[3]}").status_code == 404  # a request id: a filter
        assert admin.get("/admin/logs", params={"since": "yesterday"}).status_code == 400
        assert admin.get("/admin/logs", params={"status": "ok"}).status_code == 400
        assert admin.get("/admin/logs", params={"after": "!!"}).status_code == 400
        assert admin.get("/admin/logs", params={"limit": "0"}).status_code == 400
        assert httpx.get(gateway.url + "/admin/logs").status_code == 401
        metrics = httpx.get(gateway.url + "/metrics").text
        assert "sluicegate_audit_queue_depth" in metrics
    finally:
        gateway.stop()


def test_a_request_id_two_clients_send_is_a_filter_and_each_row_has_its_own_id(
    url: str, tmp_path: Path
) -> None:
    """Clients choose their X-Request-Id: two consumers sending the same one each get their
    own row, addressed by the row's id; the request id finds both."""
    gateway = RunningGateway(gateway_config(url, tmp_path)).start()
    try:
        admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        shared = "shared-request-id-0001"
        for key in (KEY, OTHER_KEY):
            answer = httpx.post(
                gateway.url + "/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "mine"}]},
                headers={"Authorization": f"Bearer {key}", "X-Request-Id": shared},
            )
            assert answer.headers["x-request-id"] == shared
        deadline = time.monotonic() + 5
        while len(all_logs(admin, request_id=shared)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = all_logs(admin, request_id=shared)
        assert sorted(r["consumer"] for r in rows) == ["team-a", "team-b"]
        assert len({r["id"] for r in rows}) == 2
        for row in rows:
            one = admin.get(f"/admin/logs/{row['id']}")
            assert one.status_code == 200
            assert one.json()["consumer"] == row["consumer"] and one.json()["id"] == row["id"]
        gone = admin.get(f"/admin/logs/{shared}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "log_not_found"
        other = admin.get(f"/admin/gateways/nope/logs/{rows[0]['id']}")
        assert other.status_code == 404
    finally:
        gateway.stop()


def test_gateway_shutdown_writes_every_finished_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    config = gateway_config(url, tmp_path, flush_interval="60s", batch_size=10_000)
    gateway = RunningGateway(config).start()
    try:
        ids = [chat(gateway, KEY, "mock-chat", f"hi {i}") for i in range(50)]
    finally:
        gateway.stop()

    async def check() -> None:
        store = open_store(url)
        await store.open()
        rows = await _sql(store, "SELECT request_id FROM sluicegate_audit")
        assert sorted(r[0] for r in rows) == sorted(ids)
        await store.close()

    asyncio.run(check())


def test_file_only_mode_with_audit_path(tmp_path: Path) -> None:
    config = gateway_config("", tmp_path, path=str(tmp_path / "audit.db"))
    del config["gateway"]["store"]
    gateway = RunningGateway(config).start()
    try:
        ids = [chat(gateway, KEY, "mock-chat", "hi") for _ in range(3)]
        admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        deadline = time.monotonic() + 5
        while len(all_logs(admin)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = all_logs(admin)
        assert {r["request_id"] for r in rows} == set(ids)
        for row in rows:  # priced by the config's pricing: override
            expected = (row["input_tokens"] * 2.0 + row["output_tokens"] * 8.0) / 1e6
            assert row["cost_usd"] == pytest.approx(expected)
    finally:
        gateway.stop()


def test_no_store_no_audit_log(tmp_path: Path) -> None:
    config = gateway_config("", tmp_path)
    del config["gateway"]["store"]
    gateway = RunningGateway(config).start()
    try:
        chat(gateway, KEY, "mock-chat", "hi")
        answer = httpx.get(
            gateway.url + "/admin/logs", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "audit_log_off"
    finally:
        gateway.stop()
    assert not (tmp_path / "spill.jsonl").exists()


def test_the_documented_audit_section_loads() -> None:
    import re

    import yaml

    from sluicegate.config.load import parse_config

    docs = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    block = re.findall(r"```yaml\n(audit:\n.*?)```", docs, re.S)[0]
    audit = parse_config(yaml.safe_load(block), env={}).config.audit
    assert audit.flush_interval == pytest.approx(0.2) and audit.batch_size == 500
    assert audit.spill_path == "sluicegate-audit-spill.jsonl"


def test_a_provider_4xx_is_recorded_with_the_type_the_client_got(
    tmp_path: Path, fake_openai: Any
) -> None:
    config = gateway_config(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path)
    config["services"].append(
        {
            "name": "openai",
            "provider": "openai",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": fake_openai.port,
            "retries": 0,
        }
    )
    config["rules"].append(
        {"name": "fails", "match": {"models": ["fail-*"]}, "targets": [{"service": "openai"}]}
    )
    gateway = RunningGateway(config).start()
    try:
        admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        got: dict[str, tuple[int, str]] = {}
        for status in (400, 404, 429):
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                json={"model": f"fail-{status}", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=10,
            )
            assert response.status_code == status
            got[response.headers["x-request-id"]] = (status, response.json()["error"]["type"])

        def recorded() -> dict[str, str]:
            rows = all_logs(admin, rule="fails")
            assert len(rows) == 3
            return {row["request_id"]: row["error_type"] for row in rows}

        rows = eventually(recorded)
        for request_id, (status, client_type) in got.items():
            assert rows[request_id] == client_type, status
        assert sorted(t for _, t in got.values()) == [
            "invalid_request_error",
            "not_found_error",
            "rate_limit_error",
        ]
    finally:
        gateway.stop()
