"""No secret leaves the gateway: a full request cycle with every logger at DEBUG.

Upstream credentials (from the YAML file, literal and ``${VAR}``, and stored
through the Admin API), client keys, the admin key, the master key and the
wrong keys clients tried are searched for, with their obvious encodings, in
every log record, every response body and header (data plane, Admin API
including every GET path of its OpenAPI spec, ``/metrics``) and in the raw
store. The fake upstream refuses without its credentials and repeats nothing of
a request, so anything found is the gateway's leak.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sluicegate.stores.secrets import MASTER_KEY_ENV, PREVIOUS_KEYS_ENV, generate_key
from tests.conftest import openai_service
from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.guarded_server import GuardedOpenAI
from tests.security.leaks import Capture, Leaks
from tests.security.raw_store import dump


def _secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(12)}"


FILE_SECRET = "Bearer " + _secret("sk-file")
ENV_SECRET = "Bearer " + _secret("sk-env")
PARAM_SECRET = _secret("param")
API_SECRET = "Bearer " + _secret("sk-api")
POOL_SECRET = "Bearer " + _secret("sk-pool")
KEY_A = _secret("sk-team-a")
KEY_B = _secret("sk-team-b")
KEY_C = _secret("sk-team-c")
ADMIN_KEY = _secret("adm")
WRONG_KEY = _secret("sk-typo")
WRONG_ADMIN_KEY = _secret("adm-typo")
MASTER_KEY = generate_key()
OLD_MASTER_KEY = generate_key()
ENV_VAR = "SG_LEAK_TEST_UPSTREAM_SECRET"
# Path parameters of the Admin API's GET paths, and the field of the parent list's items
# that fills each; a path whose list is empty is not visited, and the test says so.
PARAMS = {"id_or_name": "id", "gateway": "name", "name": "name"}  # name: a catalog model
MUST_VISIT = {
    f"{prefix}/{kind}/{{{param}}}"
    for prefix in ("/admin", "/admin/gateways/{gateway}")
    for kind, param in [
        ("upstreams", "id_or_name"),
        ("services", "id_or_name"),
        ("rules", "id_or_name"),
        ("consumers", "id_or_name"),
        ("logs", "id"),
    ]
}


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    yield handler
    handler.restore()


@pytest.fixture
def upstream() -> Iterator[GuardedOpenAI]:
    server = GuardedOpenAI(FILE_SECRET, ENV_SECRET, PARAM_SECRET, API_SECRET, POOL_SECRET)
    server.start()
    yield server
    server.stop()


def service(name: str, port: int, credentials: dict[str, str]) -> dict[str, Any]:
    return openai_service(name, port, retries=0, credentials=credentials)


def rule(name: str, models: list[str], target: str, model: str | None = None) -> dict[str, Any]:
    step = {"service": target, **({"model": model} if model else {})}
    return {"name": name, "match": {"models": models}, "targets": [step], "fallback_on": []}


def write_config(tmp_path: Path, upstream: GuardedOpenAI) -> Path:
    header = "Authorization"
    config = {
        "gateway": {
            "admin_key": ADMIN_KEY,
            "store": f"sqlite:///{tmp_path / 'store.db'}",
            "access_log": True,
        },
        "audit": {"spill_path": str(tmp_path / "spill.jsonl"), "flush_interval": 0.05},
        "services": [
            service(
                "file-header", upstream.port, {"header_name": header, "header_value": FILE_SECRET}
            ),
            service(
                "file-env",
                upstream.port,
                {"header_name": header, "header_value": f"${{{ENV_VAR}}}"},
            ),
            service(
                "file-param", upstream.port, {"param_name": "api-key", "param_value": PARAM_SECRET}
            ),
            service(
                "file-down", free_port(), {"param_name": "api-key", "param_value": PARAM_SECRET}
            ),
        ],
        "rules": [
            rule("chat", ["chat"], "file-header", "gpt-4o-mini"),
            rule("embed", ["embed"], "file-header", "text-embedding-3-small"),
            rule("failing", ["fail-*"], "file-header"),
            rule("env", ["env-model"], "file-env"),
            rule("param", ["param-model"], "file-param"),
            rule("down", ["down-model"], "file-down"),
        ],
        "consumers": [{"name": "team-a", "keys": [KEY_A]}, {"name": "team-b", "keys": [KEY_B]}],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_no_secret_in_logs_metrics_answers_or_the_store(
    tmp_path: Path,
    upstream: GuardedOpenAI,
    capture: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaks = Leaks()
    # One line per secret source. A secret made during the run (a minted virtual key)
    # is watched right after the answer that shows it once: answers are scanned as
    # they come, logs and the store at the end.
    leaks.watch("upstream secret in the file", FILE_SECRET)
    leaks.watch("upstream secret from the environment", ENV_SECRET)
    leaks.watch("upstream query secret", PARAM_SECRET)
    leaks.watch("upstream secret stored through the Admin API", API_SECRET)
    leaks.watch("upstream pool secret stored through the Admin API", POOL_SECRET)
    leaks.watch("client key of team-a", KEY_A)
    leaks.watch("client key of team-b", KEY_B)
    leaks.watch("client key stored through the Admin API", KEY_C)
    leaks.watch("a client's wrong key", WRONG_KEY)
    leaks.watch("admin key", ADMIN_KEY)
    leaks.watch("a wrong admin key", WRONG_ADMIN_KEY)
    leaks.watch("master key", MASTER_KEY)
    leaks.watch("previous master key", OLD_MASTER_KEY)
    # The search works: a planted secret, plain or encoded, is found.
    assert leaks.hits(f"x{KEY_A}x") and leaks.hits(f"{FILE_SECRET.split()[1].encode().hex()}")

    monkeypatch.setenv(ENV_VAR, ENV_SECRET)
    monkeypatch.setenv(MASTER_KEY_ENV, MASTER_KEY)
    monkeypatch.setenv(PREVIOUS_KEYS_ENV, OLD_MASTER_KEY)
    path = write_config(tmp_path, upstream)
    gateway = RunningGateway(path=path, poll_interval=0.2)
    capture.debug_everywhere()  # after uvicorn configured its loggers

    def check(response: httpx.Response) -> None:
        response.read()
        where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
        leaks.scan(f"{where} body", response.text)
        leaks.scan(f"{where} headers", repr(response.headers.multi_items()))

    client = httpx.Client(base_url=gateway.url, timeout=20, event_hooks={"response": [check]})
    admin = httpx.Client(
        base_url=gateway.url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=20,
        event_hooks={"response": [check]},
    )
    gateway.start()
    try:
        run_traffic(client, admin, upstream, leaks)
        walk_admin_api(admin, client)
        metrics = client.get("/metrics").text
        assert 'consumer="team-a"' in metrics  # labelled series exist, so the scan saw them
    finally:
        gateway.stop()
        client.close()
        admin.close()

    leaks.scan("the store, raw", dump(f"sqlite:///{tmp_path / 'store.db'}"))
    for i, text in enumerate(capture.texts):
        leaks.scan(f"log record {i} ({capture.records[i].name})", text)
    assert leaks.found == [], "\n".join(leaks.found)

    # The search covered what it claims.
    assert any(r.levelno == logging.DEBUG for r in capture.records)
    access = [r for r in capture.records if r.name == "sluicegate.access"]
    assert len(access) >= 12, "the access log is on: one line per data-plane request"
    assert leaks.scanned > 100


def run_traffic(
    client: httpx.Client, admin: httpx.Client, upstream: GuardedOpenAI, leaks: Leaks
) -> None:
    pool = {
        "name": "api-pool",
        "targets": [{"url": upstream.url}],
        "credentials": {"header_name": "Authorization", "header_value": POOL_SECRET},
    }
    stored = {"header_name": "Authorization", "header_value": API_SECRET}
    writes: list[tuple[str, dict[str, Any]]] = [
        ("upstreams", pool),
        ("services", service("api-svc", upstream.port, stored)),
        (
            "services",
            {
                "name": "api-pool-svc",
                "type": "upstream",
                "provider": "openai-compatible",
                "upstream": "api-pool",
                "retries": 0,
            },
        ),
        ("rules", rule("api", ["api-model"], "api-svc")),
        ("rules", rule("api-pool", ["api-pool-model"], "api-pool-svc")),
        ("consumers", {"name": "team-c", "keys": [KEY_C]}),
    ]
    for kind, body in writes:
        created = admin.post(f"/admin/{kind}", json=body)
        assert created.status_code == 201, created.text
    minted = admin.post("/admin/consumers/team-c/keys", json={"name": "leak-test"})
    assert minted.status_code == 201, minted.text
    leaks.watch("a minted key (shown once, in the answer above)", minted.json()["key"])
    # A PATCH that writes the secret again, as a rotation of the upstream key would.
    patched = admin.patch("/admin/services/api-svc", json={"credentials": stored})
    assert patched.status_code == 200, patched.text

    def chat(model: str, key: str = KEY_A, stream: bool = False) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        headers = {"Authorization": f"Bearer {key}"}
        if not stream:
            return client.post("/v1/chat/completions", json=body, headers=headers)
        body["stream"] = True
        with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer:
            answer.read()
        assert "data: [DONE]" in answer.text
        return answer

    for model in ("chat", "env-model", "param-model", "api-model", "api-pool-model"):
        assert chat(model).status_code == 200, model
        assert chat(model, KEY_B, stream=True).status_code == 200, model
    embedded = client.post(
        "/v1/embeddings",
        json={"model": "embed", "input": "hello"},
        headers={"Authorization": f"Bearer {KEY_B}"},
    )
    assert embedded.status_code == 200
    for model in ("fail-401", "fail-500", "down-model"):
        assert chat(model).status_code >= 400, model
    assert chat("api-model", KEY_C, stream=True).status_code == 200
    assert chat("api-model", minted.json()["key"]).status_code == 200
    assert chat("chat", WRONG_KEY).status_code == 401
    messages = client.post(
        "/v1/messages",
        json={"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": WRONG_KEY, "anthropic-version": "2023-06-01"},
    )
    assert messages.status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY_A}"}).is_success
    # Every credential reached the upstream, so each was there to leak.
    assert set(upstream.accepted) == {
        FILE_SECRET,
        ENV_SECRET,
        PARAM_SECRET,
        API_SECRET,
        POOL_SECRET,
    }


def walk_admin_api(admin: httpx.Client, client: httpx.Client) -> None:
    """GET every path of the Admin API's spec, each entity of each list included."""
    wrong = {"Authorization": f"Bearer {WRONG_ADMIN_KEY}"}
    assert client.get("/admin/upstreams", headers=wrong).status_code == 401
    assert client.get("/admin/docs", headers=wrong).status_code == 401
    deadline = time.monotonic() + 10
    while len(admin.get("/admin/logs", params={"limit": 1000}).json()["data"]) < 12:
        assert time.monotonic() < deadline, "the audit log was not written"
        time.sleep(0.05)
    assert admin.get("/admin/docs").status_code == 200
    spec = admin.get("/admin/openapi.json").json()
    visited = {path for path, ops in spec["paths"].items() if "get" in ops and expand(admin, path)}
    # A kind this test writes none of has its (empty) list scanned only; one that can
    # hold a secret belongs in ``run_traffic``.
    assert MUST_VISIT - visited == set()


def expand(admin: httpx.Client, path: str) -> list[str]:
    """GET every concrete form of a spec path; the paths visited."""
    found = re.search(r"\{(\w+)\}", path)
    if found is None:
        answer = admin.get(path)
        assert answer.status_code == 200, f"{path}: {answer.text}"
        return [path]
    parent = path[: found.start() - 1]
    visited = []
    for parent_path in expand(admin, parent) if "{" in parent else [parent]:
        items = admin.get(parent_path, params={"limit": 1000}).json().get("data") or []
        for item in items:
            value = str(item[PARAMS.get(found.group(1), "id")])
            concrete = parent_path + "/" + value + path[found.end() :]
            visited += expand(admin, concrete) if "{" in concrete else _get(admin, concrete)
    return visited


def _get(admin: httpx.Client, path: str) -> list[str]:
    answer = admin.get(path)
    assert answer.status_code == 200, f"{path}: {answer.text}"
    return [path]
