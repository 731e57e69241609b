"""Native pass-through: ``/passthrough/{service}/{path…}`` forwards a provider's own API untouched,
with the gateway's auth, the service's credentials (a header key, SigV4), limits and audit rows,
streamed both ways."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from tests.conftest import KEY, OTHER_KEY, logged_row, openai_service
from tests.fakes.bedrock_server import ACCESS_KEY, REGION, SECRET_KEY, FakeBedrock
from tests.fakes.gateway import RunningGateway
from tests.fakes.native_server import NATIVE_KEY, FakeNative

ADMIN_KEY = "adm-passthrough-key-01"
THIRD_KEY = "sk-test-team-c-0003"


@pytest.fixture(scope="module")
def native() -> Iterator[FakeNative]:
    server = FakeNative().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    server = FakeBedrock().start()
    yield server
    server.stop()


def config(native: FakeNative, bedrock: FakeBedrock, store: Path | None = None) -> dict[str, Any]:
    gateway: dict[str, Any] = {"admin_key": ADMIN_KEY}
    if store is not None:
        gateway["store"] = f"sqlite:///{store}"
    return {
        "gateway": gateway,
        "services": [
            {
                "name": "gem",
                "provider": "gemini",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": native.port,
                "credentials": {"header_name": "x-goog-api-key", "header_value": NATIVE_KEY},
                # Else the gateway reads each body whole to refuse gs:// URIs in it.
                "allow_gs_uris": True,
            },
            {
                "name": "br",
                "provider": "bedrock",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": bedrock.port,
                "credentials": {
                    "aws_access_key_id": ACCESS_KEY,
                    "aws_secret_access_key": SECRET_KEY,
                    "aws_region": REGION,
                },
            },
            openai_service("elsewhere", native.port),
        ],
        "rules": [
            {"name": "gemini", "match": {"models": ["gemini-x"]}, "targets": [{"service": "gem"}]},
            {"name": "bedrock", "match": {"models": ["br-x"]}, "targets": [{"service": "br"}]},
            {"name": "other", "match": {"models": ["o-x"]}, "targets": [{"service": "elsewhere"}]},
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "rules": ["gemini", "bedrock"]},
            # No rule of its own reaches gem: it is listed for pass-through only.
            {"name": "team-b", "keys": [OTHER_KEY], "rules": ["other"], "passthrough": ["gem"]},
            {"name": "team-c", "keys": [THIRD_KEY], "rules": ["other"]},
        ],
    }


@pytest.fixture(scope="module")
def gateway(
    native: FakeNative, bedrock: FakeBedrock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    store = tmp_path_factory.mktemp("passthrough") / "sluicegate.db"
    running = RunningGateway(config(native, bedrock, store), keyless=False).start()
    yield running
    running.stop()


def test_native_request_goes_untouched_with_the_service_key(
    gateway: RunningGateway, native: FakeNative
) -> None:
    body = b'{"contents": [{"parts": [{"text": "hello there"}]}],   "x": 1}'
    answer = httpx.post(
        gateway.url + "/passthrough/gem/models/gemini-x:generateContent?alt=json&b=%2F2",
        content=body,
        headers={
            "x-goog-api-key": KEY,  # what Google's SDKs send: the gateway's key, here
            "content-type": "application/json",
            "x-custom": "kept",
            "proxy-authorization": "Basic c2VjcmV0",
            "x-request-id": "pt-native-1",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"][0]["content"]["parts"][0]["text"] == "re: hello there"
    assert answer.headers["x-request-id"] == "pt-native-1"
    assert answer.headers["x-sluicegate-service"] == "gem"
    seen = native.seen[-1]
    # The service's base URL (gemini's /v1beta) + the path, the query as the client sent it.
    assert seen["raw_path"] == "/v1beta/models/gemini-x:generateContent?alt=json&b=%2F2"
    assert seen["body"] == body  # byte for byte
    headers = seen["headers"]
    assert headers["x-goog-api-key"] == NATIVE_KEY
    assert [v for k, v in seen["header_list"] if k == "x-goog-api-key"] == [NATIVE_KEY]
    assert headers["x-custom"] == "kept"
    assert "proxy-authorization" not in headers
    assert KEY not in str(seen["header_list"])


def test_any_method_status_and_answer_headers_are_relayed(
    gateway: RunningGateway, native: FakeNative
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    made = httpx.post(gateway.url + "/passthrough/gem/vector_stores", headers=auth, json={})
    assert made.status_code == 201
    assert made.headers["x-native-answer"] == "yes"
    assert made.headers["set-cookie"] == "native=1; Path=/"
    assert native.seen[-1]["headers"].get("authorization") is None
    gone = httpx.delete(gateway.url + "/passthrough/gem/vector_stores/vs_1", headers=auth)
    assert gone.status_code == 200
    assert gone.json() == {"method": "DELETE", "path": "/v1beta/vector_stores/vs_1", "query": {}}
    listed = httpx.get(gateway.url + "/passthrough/gem/vector_stores?limit=2", headers=auth)
    assert listed.json()["query"] == {"limit": "2"}


def test_a_stream_reaches_the_client_as_it_comes(
    gateway: RunningGateway, native: FakeNative
) -> None:
    native.gate.clear()
    native.finished.clear()
    url = gateway.url + "/passthrough/gem/models/gemini-x:streamGenerateContent?alt=sse"
    body = {"contents": [{"parts": [{"text": "go"}]}]}
    with httpx.stream("POST", url, json=body, headers={"x-api-key": KEY}, timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = answer.iter_lines()
        first = next(line for line in lines if line)
        assert "part 0" in first
        assert not native.finished.is_set()  # the upstream has not finished: nothing buffered
        native.gate.set()
        rest = [line for line in lines if line]
    assert [
        orjson.loads(line[6:])["candidates"][0]["content"]["parts"][0]["text"] for line in rest
    ] == [
        "part 1",
        "part 2",
    ]


def test_an_upload_is_streamed_to_the_provider(gateway: RunningGateway, native: FakeNative) -> None:
    native.first_part.clear()
    reached = threading.Event()

    def parts() -> Iterator[bytes]:
        yield b"a" * 65536
        # The provider has the first part while the client still holds the rest.
        if native.first_part.wait(5):
            reached.set()
        yield b"b" * 65536

    answer = httpx.post(
        gateway.url + "/passthrough/gem/upload",
        content=parts(),
        headers={"authorization": f"Bearer {KEY}"},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"bytes": 131072}
    assert reached.is_set()


def test_sigv4_is_signed_over_the_exact_request_and_streams_relay(
    gateway: RunningGateway, bedrock: FakeBedrock
) -> None:
    before = bedrock.signatures_checked
    auth = {"authorization": f"Bearer {KEY}"}
    embedded = httpx.post(
        gateway.url + "/passthrough/br/model/amazon.titan-embed-text-v2:0/invoke",
        json={"inputText": "one two three"},
        headers=auth,
    )
    assert embedded.status_code == 200, embedded.text
    assert len(embedded.json()["embedding"]) == 4
    assert embedded.headers["x-amzn-bedrock-input-token-count"] == "3"
    converse = {"messages": [{"role": "user", "content": [{"text": "Say hi"}]}]}
    with httpx.stream(
        "POST",
        gateway.url + "/passthrough/br/model/anthropic.claude-x/converse-stream",
        json=converse,
        headers=auth,
    ) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"] == "application/vnd.amazon.eventstream"
        frames = EventStreamBuffer()
        for chunk in answer.iter_raw():
            frames.add_data(chunk)
        events = [m.headers[":event-type"] for m in frames]
    assert events[0] == "messageStart" and events[-1] == "metadata"
    assert bedrock.signatures_checked == before + 2  # both verified by botocore in the fake
    assert "authorization" in bedrock.last["headers"]
    assert KEY not in str(bedrock.last["headers"])


def test_who_may_pass_through(gateway: RunningGateway, native: FakeNative) -> None:
    url = gateway.url + "/passthrough/gem/vector_stores"
    listed = httpx.get(url, headers={"authorization": f"Bearer {OTHER_KEY}"})
    assert listed.status_code == 200, listed.text  # consumers[].passthrough names gem
    refused = httpx.get(url, headers={"authorization": f"Bearer {THIRD_KEY}"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "service_not_allowed"
    other = httpx.get(
        gateway.url + "/passthrough/br/x", headers={"authorization": f"Bearer {OTHER_KEY}"}
    )
    assert other.status_code == 403
    missing = httpx.get(gateway.url + "/passthrough/gem/x")
    assert missing.status_code == 401
    unknown = httpx.get(
        gateway.url + "/passthrough/nope/x", headers={"authorization": f"Bearer {KEY}"}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "service_not_found"


def test_a_path_cannot_climb_out_of_the_service_base(
    gateway: RunningGateway, native: FakeNative
) -> None:
    count = len(native.seen)
    for path in (
        "/passthrough/gem/../../admin",
        "/passthrough/gem/a/%2e%2e/%2E%2E/x",
        "/passthrough/gem/a/..%5c..%5cx",
    ):
        # Sent as written: an HTTP client would resolve the dot segments itself.
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
                "connection: close\r\n\r\n".encode()
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400"), (path, reply)
        assert b'"invalid_path"' in reply
    assert len(native.seen) == count


def test_each_call_is_an_audit_row(gateway: RunningGateway, native: FakeNative) -> None:
    answer = httpx.put(
        gateway.url + "/passthrough/gem/vector_stores/vs_9",
        headers={"authorization": f"Bearer {KEY}", "x-request-id": "pt-audit-1"},
        json={},
    )
    assert answer.status_code == 200
    refused = httpx.get(
        gateway.url + "/passthrough/gem/vector_stores",
        headers={"authorization": f"Bearer {THIRD_KEY}", "x-request-id": "pt-audit-2"},
    )
    assert refused.status_code == 403
    with httpx.Client(
        base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    ) as admin:
        row = logged_row(admin, "pt-audit-1", 10)
        assert row["endpoint"] == "passthrough"
        assert (row["consumer"], row["service"], row["provider"]) == ("team-a", "gem", "gemini")
        assert row["status"] == 200 and row["latency_ms"] > 0 and row["attempts"] == 1
        denied = logged_row(admin, "pt-audit-2", 10)
        assert (denied["status"], denied["error_type"]) == (403, "permission_error")


def test_request_limits_apply(native: FakeNative, bedrock: FakeBedrock) -> None:
    document = config(native, bedrock)
    document["consumers"][0]["limits"] = {"requests": 2, "window": "1m"}
    running = RunningGateway(document, keyless=False).start()
    try:
        url = running.url + "/passthrough/gem/vector_stores"
        auth = {"authorization": f"Bearer {KEY}"}
        assert [httpx.get(url, headers=auth).status_code for _ in range(2)] == [200, 200]
        third = httpx.get(url, headers=auth)
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(third.headers["retry-after"]) >= 1
    finally:
        running.stop()


def test_an_unreachable_service_is_a_502(native: FakeNative, bedrock: FakeBedrock) -> None:
    document = config(native, bedrock)
    document["services"][0]["port"] = 1  # nothing listens there
    running = RunningGateway(document, keyless=False).start()
    try:
        answer = httpx.get(
            running.url + "/passthrough/gem/x", headers={"authorization": f"Bearer {KEY}"}
        )
        assert answer.status_code == 502
        assert answer.json()["error"]["type"] == "upstream_error"
        assert "gem" in answer.json()["error"]["message"]
    finally:
        running.stop()
