"""Every error of the contract, over plain HTTP: status, type, param and code."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import KEY, OTHER_KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

AUTH = {"Authorization": f"Bearer {KEY}"}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def http(gateway: RunningGateway) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def chat(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"messages": MESSAGES, **body})


@pytest.mark.parametrize(
    ("content", "message_part"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b"", "empty")],
)
def test_bad_json_is_400(http: httpx.Client, content: bytes, message_part: str) -> None:
    response = http.post("/v1/chat/completions", content=content)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert message_part in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": 42, "messages": MESSAGES}, "model"),
        ({"model": "chat"}, "messages"),
        ({"model": "chat", "messages": "hi"}, "messages"),
        ({"model": "chat", "messages": []}, "messages"),
        ({"model": "chat", "messages": ["hi"]}, "messages[0]"),
        ({"model": "chat", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "chat", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "chat", "messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ({"model": "chat", "messages": MESSAGES, "stream": "yes"}, "stream"),
        ({"model": "chat", "messages": MESSAGES, "max_tokens": 1.5}, "max_tokens"),
        ({"model": "chat", "messages": MESSAGES, "max_tokens": True}, "max_tokens"),
    ],
)
def test_invalid_fields_are_400_with_param(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_no_key_is_401(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-wrong-key-123"},
        {"x-api-key": "sk-wrong-key-123"},
        {"Authorization": "Basic abc"},
    ],
)
def test_bad_key_is_401(gateway: RunningGateway, headers: dict[str, str]) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        headers=headers,
    )
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"


def test_x_api_key_header_is_accepted(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        headers={"x-api-key": KEY},
    )
    assert response.status_code == 200


def test_rule_not_allowed_is_403(http: httpx.Client, gateway: RunningGateway) -> None:
    response = chat(http, model="team-b-only")
    assert response.status_code == 403
    error = error_of(response)
    assert error["type"] == "permission_error"
    assert error["param"] == "model"
    # The consumer that may use the rule gets through.
    allowed = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "team-b-only", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
    )
    assert allowed.status_code == 200


def test_unknown_model_is_404(http: httpx.Client) -> None:
    response = chat(http, model="gpt-17")
    assert response.status_code == 404
    error = error_of(response)
    assert error["type"] == "not_found_error"
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"


def test_body_over_limit_is_413(http: httpx.Client) -> None:
    big = "x" * (70 * 1024)
    response = chat(http, model="chat", messages=[{"role": "user", "content": big}])
    assert response.status_code == 413
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_too_large"


def test_413_is_answered_without_reading_the_body(gateway: RunningGateway) -> None:
    # Declare 50 MB, send none of it: the answer must come from the headers alone.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {KEY}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n"
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


def test_413_for_a_chunked_body_over_limit(gateway: RunningGateway) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    response = httpx.post(
        gateway.url + "/v1/chat/completions", content=chunks(), headers=AUTH, timeout=10
    )
    assert response.status_code == 413


def test_upstream_connect_failure_is_502(http: httpx.Client) -> None:
    response = chat(http, model="down-model")
    assert response.status_code == 502
    error = error_of(response)
    assert error["type"] == "upstream_error"
    assert "down" in error["message"]
    assert response.headers["x-sluicegate-service"] == "down"


def test_upstream_timeout_is_504(http: httpx.Client) -> None:
    response = chat(http, model="slow")
    assert response.status_code == 504
    assert error_of(response)["type"] == "timeout_error"


@pytest.mark.parametrize("status", [400, 404, 422, 429])
def test_upstream_4xx_keeps_its_status(http: httpx.Client, status: int) -> None:
    response = chat(http, model=f"fail-{status}")
    assert response.status_code == status
    error = error_of(response)
    assert error["message"] == f"fake upstream error {status}"
    expected = {
        400: "invalid_request_error",
        404: "not_found_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }[status]
    assert error["type"] == expected
    if status == 400:
        assert error["param"] == "temperature"
    if status == 429:
        assert response.headers["retry-after"] == "7"
    # A client error is not retried, nor a 429 from a single-target service.
    assert response.headers["x-sluicegate-attempts"] == "1"


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_5xx_is_502_naming_service_and_status(http: httpx.Client, status: int) -> None:
    response = chat(http, model=f"fail-{status}")
    assert response.status_code == 502
    error = error_of(response)
    assert error["type"] == "upstream_error"
    assert "'openai'" in error["message"] and str(status) in error["message"]
    assert response.headers["x-sluicegate-attempts"] == "2"  # retries: 1 by default


def test_a_retry_recovers_from_one_5xx(http: httpx.Client, fake_openai: FakeOpenAI) -> None:
    fake_openai.calls.pop("flaky-503", None)
    response = chat(http, model="flaky-503")
    assert response.status_code == 200
    assert response.headers["x-sluicegate-attempts"] == "2"


def stream_events(response: httpx.Response) -> list[bytes]:
    return [line for line in response.read().split(b"\n\n") if line]


def test_stream_cut_by_upstream_ends_with_error_event(http: httpx.Client) -> None:
    response = chat(http, model="drop-stream", stream=True)
    assert response.status_code == 200
    events = stream_events(response)
    assert events[0].startswith(b"data: {")
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["type"] == "upstream_error"
    assert b"data: [DONE]" not in events
    # Every event before the error is whole JSON (nothing truncated).
    for event in events[:-1]:
        orjson.loads(event.removeprefix(b"data: "))


def test_stream_stalled_upstream_ends_with_timeout_event(http: httpx.Client) -> None:
    response = chat(http, model="stall-stream", stream=True)
    assert response.status_code == 200
    events = stream_events(response)
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["type"] == "timeout_error"
    assert b"data: [DONE]" not in events


def test_stream_that_fails_before_starting_is_a_plain_error(http: httpx.Client) -> None:
    response = chat(http, model="fail-400", stream=True)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")


def test_response_headers(http: httpx.Client) -> None:
    response = chat(http, model="chat")
    made = response.headers["x-request-id"]
    assert len(made) == 32 and uuid.UUID(made).version == 7  # ordered by time
    assert response.headers["x-sluicegate-service"] == "openai"
    assert response.headers["x-sluicegate-attempts"] == "1"
    echoed = http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        headers={"x-request-id": "client-chosen-id-1"},
    )
    assert echoed.headers["x-request-id"] == "client-chosen-id-1"
    failed = chat(http, model="gpt-17")
    assert len(failed.headers["x-request-id"]) == 32


def test_unknown_path_and_method(gateway: RunningGateway) -> None:
    response = httpx.get(gateway.url + "/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found_error"
    response = httpx.get(gateway.url + "/v1/chat/completions")
    assert response.status_code == 405


def test_every_answer_carries_a_request_id(gateway: RunningGateway) -> None:
    for method, path in [
        ("GET", "/v1/nothing-here"),
        ("GET", "/v1/chat/completions"),
        ("DELETE", "/v1/models"),
        ("GET", "/gw/no-such-gateway/v1/models"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/admin/services"),
        ("GET", "/ui"),
    ]:
        response = httpx.request(method, gateway.url + path)
        made = response.headers.get("x-request-id", "")
        assert len(made) == 32 and uuid.UUID(made).version == 7, (method, path)
        echoed = httpx.request(method, gateway.url + path, headers={"x-request-id": "mine-1"})
        assert echoed.headers["x-request-id"] == "mine-1", (method, path)


def test_probes(gateway: RunningGateway) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/readyz").status_code == 200


def test_an_endpoint_the_service_cannot_serve_is_400_naming_it(
    fake_openai: FakeOpenAI, start_gateway: Any
) -> None:
    claude = FakeAnthropic().start()
    try:
        services = [
            {
                "name": "claude",
                "provider": "anthropic",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": claude.port,
            },
            {
                "name": "oai",
                "provider": "openai",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake_openai.port,
            },
        ]
        rules = [
            {
                "name": "only-claude",
                "match": {"models": ["claude-embed"]},
                "targets": [{"service": "claude"}],
            },
            {
                "name": "then-oai",
                "match": {"models": ["fake-embed-*"]},
                "targets": [{"service": "claude"}],
                "fallbacks": [{"service": "oai"}],
            },
        ]
        gateway = start_gateway(
            {"services": services, "rules": rules, "consumers": [{"name": "a", "keys": [KEY]}]}
        )
        http = httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10)
        refused = http.post("/v1/embeddings", json={"model": "claude-embed", "input": "hi"})
        assert refused.status_code == 400
        error = error_of(refused)
        assert error["code"] == "unsupported_endpoint"
        assert "claude" in error["message"] and "/v1/embeddings" in error["message"]
        assert refused.headers["x-sluicegate-attempts"] == "0"  # nothing was sent
        assert claude.requests == []
        # A fallback that can serve it does.
        served = http.post("/v1/embeddings", json={"model": "fake-embed-x", "input": "hi"})
        assert served.status_code == 200, served.text
        assert served.headers["x-sluicegate-service"] == "oai"
        assert served.headers["x-sluicegate-attempts"] == "1"
    finally:
        claude.stop()
