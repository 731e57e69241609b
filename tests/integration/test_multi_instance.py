"""Three ``sluicegate serve`` processes behind a round-robin client, sharing one PostgreSQL
store and one Redis, run with the files of ``deploy/``: what one instance is told, all do.

The three processes start once for the module (the tests use names of their own);
the test that stops an instance runs last and starts it again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import time
from collections.abc import Callable, Iterator

import asyncpg
import pytest
from cryptography.fernet import Fernet

from tests.fakes.cluster import Answer, Cluster, Spreader
from tests.fakes.stores import postgres_schema

ADMIN_KEY = "adm-multi-" + secrets.token_hex(8)
DEMO_KEY = "sk-demo-" + secrets.token_hex(8)
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
    env = {
        "SLUICEGATE_MASTER_KEY": Fernet.generate_key().decode(),
        "SLUICEGATE_KEY_SECRET": secrets.token_hex(32),
        "SLUICEGATE_DEMO_KEY": DEMO_KEY,
    }
    # A gateway name of its own: the Redis keys of this run are its own too.
    running = Cluster(folder, store, REDIS, "mi-" + secrets.token_hex(4), ADMIN_KEY, env)
    try:
        assert "+ rule chat" in running.apply()
        yield running.start()
    finally:
        running.close()


@pytest.fixture
def spread(cluster: Cluster) -> Iterator[Spreader]:
    spreader = cluster.spreader()
    yield spreader
    spreader.close()


def until(check: Callable[[], bool], seconds: float, step: float = 0.02) -> float:
    """Seconds until ``check()`` held; fails after ``seconds``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not within {seconds}s"
        time.sleep(step)
    return time.monotonic() - start


def on_each(spread: Spreader, ask: Callable[[int], Answer]) -> list[int | None]:
    return [ask(i).status for i in spread.each()]


async def _audit_ids(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT request_id FROM sluicegate_audit")]
    finally:
        await conn.close()


def audit_ids(store: str) -> list[str]:
    return asyncio.run(_audit_ids(store))


def test_the_applied_routing_serves_on_every_instance(spread: Spreader) -> None:
    answers = [spread.chat(DEMO_KEY, "chat", f"hello {i}") for i in range(6)]
    assert [a.instance for a in answers] == [0, 1, 2, 0, 1, 2]
    assert [a.status for a in answers] == [200] * 6
    assert answers[0].response is not None
    assert answers[0].response.json()["choices"][0]["message"]["content"].startswith("mock:")


def test_a_config_change_through_one_routes_on_all_within_a_second(
    cluster: Cluster, spread: Spreader
) -> None:
    model = "m-" + secrets.token_hex(4)

    def ask(i: int) -> Answer:
        return spread.chat(DEMO_KEY, model, "hi", index=i)

    assert on_each(spread, ask) == [404, 404, 404]
    rule = {"name": "r-" + model, "match": {"models": [model]}, "targets": [{"service": "demo"}]}
    with cluster.admin(0) as admin:
        assert admin.post("/admin/rules", json=rule).status_code == 201
    written = time.monotonic()
    seen: dict[int, float] = {}

    def everywhere() -> bool:
        for i in spread.each():
            if i not in seen and ask(i).status == 200:
                seen[i] = time.monotonic() - written
        return len(seen) == 3

    until(everywhere, 5)
    assert max(seen.values()) < 1.0, seen


def test_a_key_revoked_on_one_is_refused_by_all(cluster: Cluster, spread: Spreader) -> None:
    with cluster.admin(1) as admin:
        minted = admin.post("/admin/consumers/demo/keys", json={"name": "ci-bot"})
        assert minted.status_code == 201, minted.text
    key, prefix = minted.json()["key"], minted.json()["prefix"]

    def ask(i: int) -> Answer:
        return spread.chat(key, "chat", "hi", index=i)

    until(lambda: on_each(spread, ask) == [200, 200, 200], 5)
    with cluster.admin(2) as admin:
        assert admin.delete(f"/admin/keys/{prefix}").status_code == 204
    revoked = time.monotonic()
    until(lambda: on_each(spread, ask) == [401, 401, 401], 5)
    assert time.monotonic() - revoked < 1.5  # within a second, plus the three requests
    answer = ask(0)
    assert answer.response is not None
    assert answer.response.json()["error"]["code"] == "key_revoked"
    assert on_each(spread, lambda i: spread.chat(DEMO_KEY, "chat", "hi", index=i)) == [200] * 3


def test_a_limit_of_100_per_minute_holds_exactly_across_all_three(
    cluster: Cluster, spread: Spreader
) -> None:
    name = "lim-" + secrets.token_hex(4)
    key = "sk-" + name + "-" + secrets.token_hex(8)
    consumer = {"name": name, "keys": [key], "limits": {"requests": 100, "window": "1m"}}
    with cluster.admin(0) as admin:
        assert admin.post("/admin/consumers", json=consumer).status_code == 201

    def known(i: int) -> Answer:  # /v1/models authenticates without counting
        return spread.get("/v1/models", key, i)

    until(lambda: on_each(spread, known) == [200, 200, 200], 5)
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda i: spread.chat(key, "chat", f"n{i}"), range(300)))
    statuses = [a.status for a in answers]
    assert statuses.count(200) == 100, statuses
    assert statuses.count(429) == 200
    for i in spread.each():  # every instance both served and refused: one shared count
        mine = [a.status for a in answers if a.instance == i]
        assert 200 in mine and 429 in mine


def test_every_request_lands_in_the_audit_log_once(store: str, spread: Spreader) -> None:
    answers = [spread.chat(DEMO_KEY, "chat", f"audited {i}", stream=i % 3 == 0) for i in range(30)]
    assert {a.status for a in answers} == {200}
    ids = [a.request_id or "" for a in answers]
    assert "" not in ids and len(set(ids)) == 30

    def landed() -> bool:
        return set(ids) <= set(audit_ids(store))

    until(landed, 5, 0.1)
    rows = audit_ids(store)
    assert sorted(r for r in rows if r in set(ids)) == sorted(ids)  # whichever instance served it
    assert len(rows) == len(set(rows))  # and no request of any test twice


def test_an_exact_cache_entry_stored_by_one_is_a_hit_on_another(
    cluster: Cluster, store: str, spread: Spreader
) -> None:
    model = "cached-" + secrets.token_hex(4)
    rule = {
        "name": model,
        "match": {"models": [model]},
        "targets": [{"service": "demo"}],
        "policies": {"cache": {"mode": "exact", "ttl": "5m"}},
    }
    with cluster.admin(1) as admin:
        assert admin.post("/admin/rules", json=rule).status_code == 201

    def ask(i: int) -> Answer:
        return spread.chat(DEMO_KEY, model, "the same question", index=i)

    until(lambda: on_each(spread, ask) == [200, 200, 200], 5)  # the rule is everywhere
    question = "a question of its own " + secrets.token_hex(4)

    ids: list[str] = []

    def cache(i: int) -> tuple[str | None, str]:
        answer = spread.chat(DEMO_KEY, model, question, index=i)
        assert answer.response is not None and answer.status == 200
        ids.append(answer.request_id or "")
        content = answer.response.json()["choices"][0]["message"]["content"]
        return answer.response.headers.get("x-sluicegate-cache"), content

    first, stored = cache(0)
    assert first == "miss"
    # The entry goes to Redis just after the answer is sent, and the request's audit row
    # only once it is there. Each other instance is asked once: a miss there would store
    # an entry of its own, and a later hit prove nothing.
    until(lambda: ids[0] in audit_ids(store), 10, 0.05)
    assert [cache(1), cache(2)] == [("hit", stored), ("hit", stored)]


def test_stopping_one_mid_load_loses_no_completed_row(
    cluster: Cluster, store: str, spread: Spreader
) -> None:
    answers: list[Answer] = []
    stop_at = time.monotonic() + 1.5

    def load(worker: int) -> None:
        end = stop_at + 2.5
        n = 0
        while time.monotonic() < end:
            n += 1
            answer = spread.chat(DEMO_KEY, "chat", f"w{worker} {n}", stream=n % 2 == 0)
            answers.append(answer)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        workers = [pool.submit(load, w) for w in range(6)]
        time.sleep(max(stop_at - time.monotonic(), 0))
        assert cluster.instances[2].stop() == 0  # a graceful stop is a clean exit
        stopped = len(answers)
        # While it is down the routing changes: it must find the change when it is back.
        model = "after-" + secrets.token_hex(4)
        rule = {"name": model, "match": {"models": [model]}, "targets": [{"service": "demo"}]}
        with cluster.admin(0) as admin:
            assert admin.post("/admin/rules", json=rule).status_code == 201
        for worker in workers:
            worker.result()
    assert len(answers) > stopped > 30
    others = [a for a in answers if a.instance != 2]
    assert {a.status for a in others} == {200}, [a for a in others if a.status != 200][:5]
    failed = [a for a in answers if a.status != 200]
    assert failed, "no request reached the stopped instance"
    assert {a.instance for a in failed} == {2}
    completed = [a.request_id or "" for a in answers if a.status == 200]
    assert len(completed) > 60
    until(lambda: set(completed) <= set(audit_ids(store)), 5, 0.1)
    rows = audit_ids(store)
    assert len(rows) == len(set(rows))  # no row twice

    cluster.restart(2)
    fresh = cluster.spreader()
    try:
        assert on_each(fresh, lambda i: fresh.chat(DEMO_KEY, model, "back", index=i)) == [200] * 3
    finally:
        fresh.close()
