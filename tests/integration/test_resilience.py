"""Faults at the upstream, absorbed by balancing, health checks, retries and fallbacks."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import KEY, openai_service
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.faulty_server import FaultyUpstream
from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.openai_server import FakeOpenAI

Start = Callable[[dict[str, Any]], RunningGateway]
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def upstreams() -> Iterator[Callable[[int], list[FaultyUpstream]]]:
    started: list[FaultyUpstream] = []

    def make(count: int) -> list[FaultyUpstream]:
        servers = [FaultyUpstream(chr(ord("a") + i)).start() for i in range(count)]
        started.extend(servers)
        return servers

    yield make
    for server in started:
        if server._thread is not None:
            server.stop()


def pool_config(servers: list[FaultyUpstream], **upstream: Any) -> dict[str, Any]:
    service = upstream.pop("service", {})
    return {
        "upstreams": [{"name": "pool", "targets": [{"url": s.url} for s in servers], **upstream}],
        "services": [
            {
                "name": "svc",
                "type": "upstream",
                "provider": "openai-compatible",
                "upstream": "pool",
                "retries": 2,
                "retry_backoff": "1ms",
                **service,
            }
        ],
        "rules": [{"name": "r", "targets": [{"service": "svc"}]}],
        "consumers": [{"name": "team", "keys": [KEY]}],
    }


def ask(
    gateway: RunningGateway, stream: bool = False, model: str = "m", **extra: Any
) -> httpx.Response:
    body = {
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=20)


def test_a_failing_target_is_ejected_then_readmitted_after_a_half_open_trial(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b, c = upstreams(3)
    a.mode = "500"
    gateway = start_gateway(
        pool_config([a, b, c], healthchecks={"passive": {"failures": 3, "cooldown": "3s"}})
    )
    statuses = [ask(gateway).status_code for _ in range(15)]
    assert statuses == [200] * 15  # every failure was absorbed by a retry
    assert len(a.requests) == 3  # ejected after its third consecutive 500
    assert b.served + c.served == 15
    target = gateway.runtime.table.pools[0].targets[0]
    assert target.health.state() == "ejected"
    a.mode = "ok"
    deadline = time.monotonic() + 5
    while target.health.state() != "half-open":
        assert time.monotonic() < deadline, "the cooldown did not end"
        time.sleep(0.05)
    served_before = a.served
    for _ in range(9):
        assert ask(gateway).status_code == 200
    assert a.served > served_before  # the trial passed and traffic came back
    assert target.health.state() == "healthy"


def test_a_failed_half_open_trial_ejects_again(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b = upstreams(2)
    a.mode = "503"
    gateway = start_gateway(
        pool_config([a, b], healthchecks={"passive": {"failures": 1, "cooldown": "2s"}})
    )
    assert ask(gateway).status_code == 200
    target = gateway.runtime.table.pools[0].targets[0]
    assert target.health.state() == "ejected"
    while target.health.state() != "half-open":
        time.sleep(0.02)
    for _ in range(4):
        assert ask(gateway).status_code == 200
    assert len(a.requests) == 2  # the first failure, and one trial only
    assert target.health.state() == "ejected"


def test_active_checks_mark_a_stopped_target_down_and_a_restarted_one_up(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b = upstreams(2)
    gateway = start_gateway(
        pool_config(
            [a, b],
            healthchecks={
                "active": {
                    "path": "/health",
                    "interval": "100ms",
                    "timeout": "200ms",
                    "unhealthy_failures": 2,
                    "healthy_successes": 2,
                }
            },
        )
    )
    target = gateway.runtime.table.pools[0].targets[0]
    a.stop()
    deadline = time.monotonic() + 0.1 * 2 + 1.0  # interval x unhealthy_failures, plus slack
    while target.health.state() != "down":
        assert time.monotonic() < deadline, "the stopped target was not marked down in time"
        time.sleep(0.02)
    assert all(
        ask(gateway).json()["choices"][0]["message"]["content"] == "answer from b" for _ in range(4)
    )
    a.start()
    deadline = time.monotonic() + 3
    while target.health.state() != "healthy":
        assert time.monotonic() < deadline, "the restarted target did not come back"
        time.sleep(0.02)
    answers = {ask(gateway).json()["choices"][0]["message"]["content"] for _ in range(6)}
    assert answers == {"answer from a", "answer from b"}


def test_no_healthy_target_is_503_saying_why(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b = upstreams(2)
    a.mode = b.mode = "502"
    gateway = start_gateway(
        pool_config(
            [a, b],
            healthchecks={"passive": {"failures": 1, "cooldown": "30s"}},
            service={"retries": 1},
        )
    )
    assert ask(gateway).status_code == 502  # both fail, both are ejected
    response = ask(gateway)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_healthy_upstream"
    assert "2 ejected" in error["message"]
    assert response.headers["x-sluicegate-attempts"] == "0"


def test_fallback_chain_openai_then_anthropic_then_vllm(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    (vllm,) = upstreams(1)
    broken_openai = FaultyUpstream("openai").start()
    broken_openai.mode = "500"
    anthropic = FakeAnthropic().start()
    try:
        gateway = start_gateway(
            {
                "services": [
                    {
                        "name": "openai",
                        "provider": "openai",
                        "protocol": "http",
                        "host": "127.0.0.1",
                        "port": broken_openai.port,
                        "retries": 1,
                        "retry_backoff": "1ms",
                    },
                    {
                        "name": "anthropic",
                        "provider": "anthropic",
                        "protocol": "http",
                        "host": "127.0.0.1",
                        "port": anthropic.port,
                        "retries": 0,
                        "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
                    },
                    {
                        "name": "vllm",
                        "provider": "vllm",
                        "protocol": "http",
                        "host": "127.0.0.1",
                        "port": vllm.port,
                        "retries": 0,
                    },
                ],
                "rules": [
                    {
                        "name": "r",
                        "match": {"models": ["chat"]},
                        "targets": [{"service": "openai", "model": "gpt-4o-mini"}],
                        "fallbacks": [
                            {"service": "anthropic", "model": "claude-fail-529"},
                            {"service": "vllm", "model": "llama"},
                        ],
                    }
                ],
                "consumers": [{"name": "team", "keys": [KEY]}],
            }
        )
        response = ask(gateway, model="chat")
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "answer from a"
        assert response.headers["x-sluicegate-service"] == "vllm"
        assert response.headers["x-sluicegate-attempts"] == "4"  # 2 on openai, 1 anthropic, 1 vllm
        assert len(broken_openai.requests) == 2
        assert vllm.last["body"]["model"] == "llama"
        streamed = ask(gateway, stream=True, model="chat")
        assert b"answer" in streamed.content and streamed.headers["x-sluicegate-service"] == "vllm"
    finally:
        broken_openai.stop()
        anthropic.stop()


def test_context_length_fallback_only_for_that_error(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    (big,) = upstreams(1)
    anthropic = FakeAnthropic().start()
    try:
        claude = {
            "provider": "anthropic",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": anthropic.port,
            "retries": 0,
            "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
        }
        gateway = start_gateway(
            {
                "services": [
                    {"name": "small", **claude},
                    {
                        "name": "big",
                        "provider": "vllm",
                        "protocol": "http",
                        "host": "127.0.0.1",
                        "port": big.port,
                    },
                ],
                "rules": [
                    {
                        "name": "long",
                        "match": {"models": ["long"]},
                        "targets": [{"service": "small", "model": "claude-prompt-too-long"}],
                        "fallbacks": [{"service": "big", "model": "big-context"}],
                        "fallback_on": ["context_length"],
                    },
                    {
                        "name": "bad",
                        "match": {"models": ["bad"]},
                        "targets": [{"service": "small", "model": "claude-fail-400"}],
                        "fallbacks": [{"service": "big", "model": "big-context"}],
                        "fallback_on": ["context_length"],
                    },
                ],
                "consumers": [{"name": "team", "keys": [KEY]}],
            }
        )
        response = ask(gateway, model="long")
        assert response.status_code == 200
        assert big.last["body"]["model"] == "big-context"
        response = ask(gateway, model="bad")
        assert response.status_code == 400  # another 400 does not fall back
        assert len(big.requests) == 1
    finally:
        anthropic.stop()


def test_first_token_timeout_moves_a_stream_to_the_next_target(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    slow, fast = upstreams(2)
    slow.mode, slow.delay = "slow-stream", 2.0
    gateway = start_gateway(
        {
            "services": [
                {
                    "name": "slow",
                    "provider": "vllm",
                    "protocol": "http",
                    "host": "127.0.0.1",
                    "port": slow.port,
                    "retries": 0,
                    "first_byte_timeout": "300ms",
                },
                {
                    "name": "fast",
                    "provider": "vllm",
                    "protocol": "http",
                    "host": "127.0.0.1",
                    "port": fast.port,
                },
            ],
            "rules": [
                {"name": "r", "targets": [{"service": "slow"}], "fallbacks": [{"service": "fast"}]}
            ],
            "consumers": [{"name": "team", "keys": [KEY]}],
        }
    )
    started = time.monotonic()
    response = ask(gateway, stream=True)
    assert time.monotonic() - started < 1.5
    assert response.headers["x-sluicegate-service"] == "fast"
    assert response.headers["x-sluicegate-attempts"] == "2"
    assert b"answer" in response.content and response.content.endswith(b"data: [DONE]\n\n")


def test_a_reset_after_bytes_were_sent_is_not_retried(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b = upstreams(2)
    a.mode = b.mode = "reset-stream"
    gateway = start_gateway(pool_config([a, b]))
    response = ask(gateway, stream=True)
    assert response.status_code == 200
    assert response.headers["x-sluicegate-attempts"] == "1"
    events = [e for e in response.content.split(b"\n\n") if e]
    assert orjson.loads(events[-1].removeprefix(b"data: "))["error"]["type"] == "upstream_error"
    assert len(a.requests) + len(b.requests) == 1


def test_retry_after_is_honoured_or_left_to_fallbacks(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b = upstreams(2)
    a.mode, a.retry_after = "429", "0.2"
    b.mode, b.retry_after = "429", "0.2"
    gateway = start_gateway(pool_config([a, b], service={"retries": 1, "retry_backoff_max": "1s"}))
    started = time.monotonic()
    response = ask(gateway)
    assert response.status_code == 429
    assert response.headers["x-sluicegate-attempts"] == "2"
    assert time.monotonic() - started >= 0.2  # waited as asked before the retry
    a.retry_after = b.retry_after = "30"
    started = time.monotonic()
    response = ask(gateway)
    assert response.headers["x-sluicegate-attempts"] == "1"  # 30 s is longer than we wait
    assert response.headers["retry-after"] == "30"
    assert time.monotonic() - started < 1


def test_a_single_target_service_waits_out_a_short_retry_after(
    start_gateway: Start, fake_openai: FakeOpenAI
) -> None:
    service = openai_service("openai", fake_openai.port, retry_backoff_max="2s")
    gateway = start_gateway(
        {
            "services": [service],
            "rules": [{"name": "r", "targets": [{"service": "openai"}]}],
            "consumers": [{"name": "team", "keys": [KEY]}],
        }
    )
    model = f"busy-1-{time.monotonic_ns()}"  # 429 with Retry-After: 1, then an answer
    started = time.monotonic()
    response = ask(gateway, model=model)
    assert response.status_code == 200, response.text
    assert response.headers["x-sluicegate-attempts"] == "2"
    assert time.monotonic() - started >= 1.0  # waited as the provider asked
    assert fake_openai.calls[model] == 2
    # Out of quota is final: waiting does not bring money back.
    quota = f"quota-{time.monotonic_ns()}"
    refused = ask(gateway, model=quota)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert refused.headers["x-sluicegate-attempts"] == "1"
    assert fake_openai.calls[quota] == 1


def open_connections(gateway: RunningGateway) -> int:
    http = gateway.runtime._http
    assert http is not None
    connector = http._session.connector
    assert connector is not None
    held = sum(len(c) for c in connector._conns.values())  # type: ignore[attr-defined]
    return held + len(connector._acquired)  # type: ignore[attr-defined]


def test_no_connection_leaks_against_hanging_and_resetting_targets(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    hanging, resetting, healthy = upstreams(3)
    hanging.mode, resetting.mode = "hang", "reset"
    gateway = start_gateway(
        {
            "upstreams": [
                {
                    "name": "pool",
                    "algorithm": "random",
                    "targets": [{"url": s.url} for s in (hanging, resetting, healthy)],
                }
            ],
            "services": [
                {
                    "name": "svc",
                    "type": "upstream",
                    "provider": "vllm",
                    "upstream": "pool",
                    "retries": 0,
                    "timeout": "50ms",
                }
            ],
            "rules": [{"name": "r", "targets": [{"service": "svc"}]}],
            "consumers": [{"name": "team", "keys": [KEY]}],
        }
    )
    ask(gateway)
    baseline = open_connections(gateway)

    def one(_: int) -> int:
        return ask(gateway).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(1000)))
    assert set(statuses) <= {200, 502, 504}
    assert {502, 504, 200} <= set(statuses)
    deadline = time.monotonic() + 5
    while open_connections(gateway) > max(baseline, 1) + 16:
        assert time.monotonic() < deadline, f"{open_connections(gateway)} connections still open"
        time.sleep(0.1)
    assert open_connections(gateway) <= 16 + max(baseline, 1)


def test_closed_port_is_a_connect_failure_that_retries_elsewhere(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    (alive,) = upstreams(1)
    dead_url = f"http://127.0.0.1:{free_port()}"
    gateway = start_gateway(
        {
            "upstreams": [{"name": "pool", "targets": [{"url": dead_url}, {"url": alive.url}]}],
            "services": [
                {
                    "name": "svc",
                    "type": "upstream",
                    "provider": "vllm",
                    "upstream": "pool",
                    "retries": 1,
                    "retry_backoff": "1ms",
                }
            ],
            "rules": [{"name": "r", "targets": [{"service": "svc"}]}],
            "consumers": [{"name": "team", "keys": [KEY]}],
        }
    )
    assert all(ask(gateway).status_code == 200 for _ in range(6))


def test_admin_health_shows_each_target(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b = upstreams(2)
    a.mode = "500"
    config = pool_config([a, b], healthchecks={"passive": {"failures": 1, "cooldown": "30s"}})
    gateway = start_gateway({**config, "gateway": {"admin_key": "admin-secret-123"}})
    assert ask(gateway).status_code == 200
    assert httpx.get(gateway.url + "/admin/health").status_code == 401
    wrong = httpx.get(gateway.url + "/admin/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    report = httpx.get(
        gateway.url + "/admin/health", headers={"Authorization": "Bearer admin-secret-123"}
    )
    assert report.status_code == 200
    states = {row["target"]: row["state"] for row in report.json()["data"]}
    assert states == {a.url: "ejected", b.url: "healthy"}


def test_admin_is_absent_without_an_admin_key(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    gateway = start_gateway(pool_config(upstreams(1)))
    response = httpx.get(gateway.url + "/admin/health", headers={"Authorization": "Bearer x"})
    assert response.status_code == 404


def test_the_failover_example_absorbs_the_outage(start_gateway: Start) -> None:
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).parents[2] / "examples" / "failover.yaml").read_text())
    config["consumers"][0]["keys"] = [KEY]
    gateway = start_gateway(config)
    attempts = []
    for stream in (False, True, False, True):
        response = ask(gateway, stream=stream, model="chat")
        assert response.status_code == 200
        assert response.headers["x-sluicegate-service"] == "backup"
        attempts.append(response.headers["x-sluicegate-attempts"])
    # Two tries on the primary, then the backup; the fifth failure in a row ejects the
    # primary (its retry is skipped), and then the backup answers at the first attempt.
    assert attempts == ["3", "3", "2", "1"]


def test_target_health_is_a_metric(
    start_gateway: Start, upstreams: Callable[[int], list[FaultyUpstream]]
) -> None:
    a, b = upstreams(2)
    a.mode = "500"
    gateway = start_gateway(
        pool_config([a, b], healthchecks={"passive": {"failures": 1, "cooldown": "30s"}})
    )
    assert ask(gateway).status_code == 200
    text = httpx.get(gateway.url + "/metrics").text
    labels = 'gateway="default",service="svc"'
    assert f'sluicegate_upstream_healthy{{{labels},state="ejected",target="{a.url}"}} 0.0' in text
    assert f'sluicegate_upstream_healthy{{{labels},state="healthy",target="{b.url}"}} 1.0' in text
