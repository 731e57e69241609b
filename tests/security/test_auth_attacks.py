"""Auth attacks: path tricks, unauthenticated routes, the metrics key, key comparison, CORS,
steering the upstream (SSRF), and the Admin API without its key on every route.

The upstream is a recording fake; an "attacker" fake stands for any host a client would
like the gateway to call. Paths are sent over raw sockets: HTTP clients would normalise
them before they left.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

KEY_A = "sk-attacks-team-a-0001"
KEY_B = "sk-attacks-team-b-0002"
ADMIN_KEY = "adm-attacks-0123456789"
METRICS_KEY = "metrics-attacks-0123456789"
UPSTREAM_SECRET = "Bearer sk-upstream-attacks-0123456789"
CHAT = "/v1/chat/completions"
BODY = b'{"model": "private", "messages": [{"role": "user", "content": "x"}]}'


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def attacker() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def config(upstream: FakeOpenAI, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, **gateway},
        "services": [
            {
                "name": "openai",
                "provider": "openai",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": upstream.port,
                "retries": 0,
                "credentials": {"header_name": "Authorization", "header_value": UPSTREAM_SECRET},
            }
        ],
        "rules": [
            {
                "name": "private",
                "match": {"models": ["private"]},
                "targets": [{"service": "openai", "model": "gpt-4o-mini"}],
            },
            {"name": "open", "match": {"models": ["open"]}, "targets": [{"service": "openai"}]},
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY_A], "rules": ["private", "open"]},
            {"name": "team-b", "keys": [KEY_B], "rules": ["open"]},
        ],
    }


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    running = RunningGateway(config(upstream)).start()
    yield running
    running.stop()


def raw_status(gateway: RunningGateway, method: str, target: str, headers: list[str]) -> int:
    head = [f"{method} {target} HTTP/1.1", "Host: gateway", *headers]
    head.append(f"Content-Length: {len(BODY)}")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + BODY)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer[9:12])


TRICKS = [
    "//v1/chat/completions",
    "/v1//chat/completions",
    "/v1/./chat/completions",
    "/v1/../v1/chat/completions",
    "/./v1/chat/completions",
    "/%2e/v1/chat/completions",
    "/v1/chat%2Fcompletions",
    "/v1/chat%2fcompletions",
    "/v1/%63hat/completions",
    "/v1%2Fchat%2Fcompletions",
    "/v1/chat/completions/",
    "/v1/chat/completions//",
    "/V1/CHAT/COMPLETIONS",
    "/v1/chat/completions;a=b",
    "/v1/chat/completions%00",
    "/v1/chat/completions%20",
    "/v1/chat/completions?model=open",
    "/gw/default/v1/chat/completions",
    "/gw/default//v1/chat/completions",
    "/gw/nope/v1/chat/completions",
    "/gw/default/gw/default/v1/chat/completions",
    "/admin/../v1/chat/completions",
    "/metrics/../v1/chat/completions",
    "/healthz/../v1/chat/completions",
    "http://evil.example/v1/chat/completions",
]


@pytest.mark.parametrize("target", TRICKS)
def test_path_tricks_never_bypass_auth_or_reach_a_rule_not_allowed(
    gateway: RunningGateway, upstream: FakeOpenAI, target: str
) -> None:
    before = len(upstream.requests)
    assert raw_status(gateway, "POST", target, []) in (400, 401, 404)
    assert raw_status(gateway, "POST", target, ["Authorization: Bearer sk-not-a-key-0000"]) in (
        400,
        401,
        404,
    )
    # team-b may not use the "private" rule, whatever the path says.
    assert raw_status(gateway, "POST", target, [f"Authorization: Bearer {KEY_B}"]) in (
        400,
        401,  # a path the Admin API takes asks for the admin key
        403,
        404,
    )
    assert len(upstream.requests) == before  # nothing reached the upstream
    # The control: the same path with a key that may use the rule.
    allowed = raw_status(gateway, "POST", target, [f"Authorization: Bearer {KEY_A}"])
    assert allowed in (200, 400, 401, 404)


def admin_routes(gateway: RunningGateway) -> list[tuple[str, str]]:
    spec = httpx.get(
        gateway.url + "/admin/openapi.json", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ).json()
    routes = []
    for path, item in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        routes += [(method.upper(), concrete) for method in item if method != "parameters"]
    return routes


def test_no_route_answers_without_a_key_but_the_probes_and_metrics(
    gateway: RunningGateway, upstream: FakeOpenAI
) -> None:
    routes = admin_routes(gateway)
    assert len(routes) > 20
    routes += [
        ("GET", "/admin/docs"),
        ("GET", "/admin/docs/swagger-ui.css"),
        ("GET", "/admin/openapi.json"),
        ("GET", "/admin"),
        ("GET", "/admin/"),
        ("POST", "/admin/gateways/x/services"),
        ("GET", "/v1/models"),
        ("GET", "/models"),
        ("POST", "/ui/api/anything"),
        ("PUT", "/ui/api/anything"),
        ("DELETE", "/ui/api/anything"),
        *(
            (method, path)
            for path in (
                "/v1/chat/completions",
                "/v1/completions",
                "/v1/embeddings",
                "/v1/messages",
                "/v1/messages/count_tokens",
                "/chat/completions",
                "/completions",
                "/embeddings",
            )
            for method in ("POST",)
        ),
    ]
    before = len(upstream.requests)
    client = httpx.Client(base_url=gateway.url)
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong-key-0000000"}, {"x-api-key": KEY_B}):
            if headers.get("x-api-key") and not path.startswith(("/admin", "/ui")):
                continue  # a client key is a valid key on the data plane
            answer = client.request(method, path, headers=headers, content=BODY)
            if answer.status_code == 429:  # this address guessed the admin key too often
                assert path.startswith(("/admin", "/ui")), (method, path)
                assert answer.json()["error"]["code"] == "too_many_failed_logins"
                continue
            assert answer.status_code in (401, 404, 405), (method, path, headers, answer.text)
    assert len(upstream.requests) == before
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(gateway.url + path).status_code == 200


def test_metrics_can_be_protected(start_gateway: Any, upstream: FakeOpenAI) -> None:
    gateway = start_gateway(config(upstream, metrics_key=METRICS_KEY))
    assert httpx.get(gateway.url + "/metrics").status_code == 401
    wrong = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {KEY_A}"})
    assert wrong.status_code == 401 and "sluicegate_" not in wrong.text
    scrape = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert scrape.status_code == 200 and "sluicegate_" in scrape.text
    assert httpx.get(gateway.url + "/healthz").status_code == 200


def test_client_keys_are_held_as_digests(gateway: RunningGateway) -> None:
    """A lookup by digest: the time it takes does not depend on how much of a guess is right,
    and the process holds no client key in the clear (the admin key is compared with
    ``hmac.compare_digest``)."""
    table = gateway.runtime.table
    assert table.keys and all(len(digest) == 32 for digest in table.keys)
    assert KEY_A.encode() not in table.keys and KEY_B.encode() not in table.keys
    assert KEY_A not in repr(table.keys)


def test_cors_is_off(gateway: RunningGateway) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = httpx.options(
        gateway.url + CHAT,
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code >= 400
    answer = httpx.post(
        gateway.url + CHAT,
        headers={**origin, "Authorization": f"Bearer {KEY_A}"},
        json={"model": "open", "messages": [{"role": "user", "content": "x"}]},
    )
    assert answer.status_code == 200
    for response in (preflight, answer):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_clients_cannot_steer_the_upstream(
    gateway: RunningGateway, upstream: FakeOpenAI, attacker: FakeOpenAI
) -> None:
    evil = attacker.url
    body = {
        "model": "open",
        "messages": [{"role": "user", "content": "x"}],
        "api_base": evil,
        "base_url": evil,
        "api_key": "sk-stolen",
        "azure_endpoint": evil,
        "url": evil + "/v1/chat/completions",
        "host": "127.0.0.1",
        "port": attacker.port,
        "extra_headers": {"Authorization": "Bearer sk-stolen"},
        "metadata": {"url": evil},
    }
    headers = {
        "Authorization": f"Bearer {KEY_A}",
        "Host": f"127.0.0.1:{attacker.port}",
        "X-Forwarded-Host": f"127.0.0.1:{attacker.port}",
        "X-Forwarded-Proto": "http",
        "Forwarded": f"host=127.0.0.1:{attacker.port}",
        "api-key": "sk-stolen",
        "X-Original-URL": "/admin/services",
    }
    for model in ("open", evil + "/v1", f"../../{evil}"):
        answer = httpx.post(gateway.url + CHAT, json={**body, "model": model}, headers=headers)
        assert answer.status_code in (200, 404), answer.text
    assert attacker.requests == []
    seen = upstream.last
    assert seen["path"] == CHAT
    assert seen["headers"]["authorization"] == UPSTREAM_SECRET  # the gateway's, not the client's
    assert seen["headers"]["host"] == f"127.0.0.1:{upstream.port}"
    assert "sk-stolen" not in str(seen["headers"])
    assert KEY_A not in str(seen["headers"]) and KEY_A not in seen["raw"].decode()
