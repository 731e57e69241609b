"""The Admin API on SQLite and PostgreSQL: CRUD, errors, secrets, tags, pages, hot reload."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from cryptography.fernet import Fernet
from referencing import Registry, Resource

from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url

Start = Callable[[dict[str, Any]], RunningGateway]
ADMIN_KEY = "adm-test-key-0001"
FILE_SECRET = "Bearer FILE-SECRET-0001"
API_SECRET = "Bearer API-SECRET-0002"
AWS_SECRET = "AWS-SECRET-0003"
CONSUMER_KEY = "sk-api-consumer-0004"
SECRETS = (FILE_SECRET, API_SECRET, AWS_SECRET, CONSUMER_KEY, KEY, "FILE-SECRET", "API-SECRET")


def file_config(store: str) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "upstreams": [
            {
                "name": "file-pool",
                "targets": [{"url": "http://127.0.0.1:9"}],
                "credentials": {"header_name": "Authorization", "header_value": FILE_SECRET},
            }
        ],
        "services": [{"name": "file-mock", "provider": "mock"}],
        "rules": [
            {
                "name": "file-rule",
                "match": {"models": ["file-model"]},
                "targets": [{"service": "file-mock"}],
            }
        ],
        "consumers": [{"name": "file-team", "keys": [KEY]}],
    }


class Admin:
    """An Admin API client that checks every answer: no secret, and the spec's shape."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        self.client = httpx.Client(
            base_url=gateway.url,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            event_hooks={"response": [self._check]},
            timeout=20,
        )
        self.spec: dict[str, Any] | None = None
        self.seen = 0

    def _check(self, response: httpx.Response) -> None:
        body = response.read().decode()
        self.seen += 1
        for secret in SECRETS:
            assert secret not in body, f"{response.request.url}: a secret in the answer"
        for value in response.headers.values():
            assert not any(secret in value for secret in SECRETS)

    def validate(self, kind: str, entity: dict[str, Any]) -> None:
        if self.spec is None:
            self.spec = self.client.get("/admin/openapi.json").json()
        schemas = self.spec["components"]["schemas"]
        registry: Registry[Any] = Registry().with_resource(
            "urn:spec",
            Resource.from_contents(
                {**self.spec, "$schema": jsonschema.Draft202012Validator.META_SCHEMA["$id"]}
            ),
        )
        name = {
            "upstreams": "Upstream",
            "services": "Service",
            "rules": "Rule",
            "groups": "Group",
            "consumers": "Consumer",
        }[kind]
        schema = {"$ref": f"urn:spec#/components/schemas/{name}"}
        assert name in schemas
        jsonschema.Draft202012Validator(schema, registry=registry).validate(entity)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, "/admin" + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, json=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def created(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(f"/{kind}", body)
        assert response.status_code == 201, response.text
        assert response.headers["etag"]
        entity: dict[str, Any] = response.json()
        self.validate(kind, entity)
        return entity


def chat(gateway: RunningGateway, model: str, key: str = KEY) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi there"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def master_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", key)
    return key


@pytest.fixture
def admin(url: str, master_key: str, start_gateway: Start) -> Admin:
    # ``url`` first: its schema must outlive the gateway, which flushes its audit rows on stop.
    return Admin(start_gateway(file_config(url)))


def test_crud_for_every_entity(admin: Admin) -> None:
    upstream = admin.created(
        "upstreams",
        {
            "name": "pool",
            "algorithm": "least-connections",
            "targets": [{"url": "http://127.0.0.1:9", "weight": 2}],
            "credentials": {
                "aws_access_key_id": "AKIDEXAMPLE",
                "aws_secret_access_key": AWS_SECRET,
                "aws_region": "eu-west-1",
            },
            "tags": ["infra"],
        },
    )
    assert upstream["source"] == "store" and upstream["created_at"].endswith("Z")
    assert upstream["credentials"]["secrets_set"] == ["aws_access_key_id", "aws_secret_access_key"]
    assert upstream["credentials"]["aws_region"] == "eu-west-1"
    service = admin.created(
        "services",
        {
            "name": "svc",
            "type": "upstream",
            "provider": "openai-compatible",
            "upstream_id": upstream["id"],
        },
    )
    assert service["upstream_id"] == upstream["id"]
    by_name = admin.created(
        "services",
        {
            "name": "svc-by-name",
            "type": "upstream",
            "provider": "openai-compatible",
            "upstream_id": "pool",
        },
    )
    assert by_name["upstream_id"] == "pool"  # the name is accepted where the id goes
    mock = admin.created("services", {"name": "mock", "provider": "mock", "timeout": "30s"})
    assert mock["timeout"] == 30.0
    rule = admin.created(
        "rules",
        {
            "name": "chat",
            "match": {"models": ["chat"]},
            "targets": [{"service": "mock", "weight": 9}],
            "fallbacks": [{"service": "svc"}, {"service": "svc-by-name"}],
        },
    )
    consumer = admin.created(
        "consumers", {"name": "team-b", "keys": [CONSUMER_KEY], "rules": ["chat"]}
    )
    assert consumer["key_count"] == 1 and "keys" not in consumer

    for kind, entity in [
        ("upstreams", upstream),
        ("services", service),
        ("rules", rule),
        ("consumers", consumer),
    ]:
        for ref in (entity["id"], entity["name"]):
            got = admin.get(f"/{kind}/{ref}")
            assert got.status_code == 200 and got.json() == entity
            assert got.headers["etag"]
            admin.validate(kind, got.json())
        listed = admin.get(f"/{kind}").json()
        assert entity["id"] in [e["id"] for e in listed["data"]] and listed["next"] is None
        # What a GET returns can be PUT back as is: secrets and keys are kept.
        put = admin.put(f"/{kind}/{entity['id']}", entity)
        assert put.status_code == 200, put.text
        again = put.json()
        assert again == {**entity, "updated_at": again["updated_at"]}
        assert again["updated_at"] > entity["updated_at"]

    patched = admin.patch("/rules/chat", {"description": "the chat rule", "tags": ["prod"]})
    assert patched.status_code == 200 and patched.json()["description"] == "the chat rule"
    assert patched.json()["targets"] == rule["targets"]
    assert chat(admin.gateway, "chat", CONSUMER_KEY).status_code == 200  # stored keys still work

    assert [e["source"] for e in admin.get("/services").json()["data"]] == [
        "file",
        "store",
        "store",
        "store",
    ]
    for kind, ref in [
        ("consumers", "team-b"),
        ("rules", "chat"),
        ("services", "svc-by-name"),
        ("services", "svc"),
        ("services", "mock"),
        ("upstreams", "pool"),
    ]:
        assert admin.delete(f"/{kind}/{ref}").status_code == 204, ref
        missing = admin.get(f"/{kind}/{ref}")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
    assert admin.gateway.runtime.table.describe()["rules"] == ["file-rule"]


def test_error_paths(admin: Admin) -> None:
    admin.created("services", {"name": "mock", "provider": "mock"})
    rule = admin.created(
        "rules", {"name": "chat", "match": {"models": ["chat"]}, "targets": [{"service": "mock"}]}
    )

    in_use = admin.delete("/services/mock")
    assert in_use.status_code == 409 and "rules/chat" in in_use.json()["error"]["message"]
    assert admin.delete("/upstreams/file-pool").status_code == 409
    read_only = admin.patch("/services/file-mock", {"retries": 3})
    assert read_only.status_code == 409 and "<config>" in read_only.json()["error"]["message"]
    assert read_only.json()["error"]["code"] == "read_only"
    taken = admin.post("/services", {"name": "file-mock", "provider": "mock"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
    assert admin.post("/services", {"name": "mock", "provider": "mock"}).status_code == 409
    renamed = admin.patch("/services/mock", {"name": "mock2"})
    assert renamed.status_code == 409 and "rules/chat" in renamed.json()["error"]["message"]

    bad = admin.post(
        "/rules",
        {"name": "r2", "match": {"models": ["r2"]}, "targets": [{"service": "nope", "weight": 0}]},
    )
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "validation_failed"
    assert {"path": "targets[0].weight", "message": "must be greater than 0"} in error["issues"]
    assert {"path": "targets[0].service", "message": "unknown service 'nope'"} in error["issues"]
    missing = admin.post("/services", {"provider": "mock"})
    assert missing.status_code == 422 and missing.json()["error"]["param"] == "name"
    unknown = admin.patch("/services/mock", {"colour": "blue"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["issues"] == [{"path": "colour", "message": "unknown field"}]
    assert admin.post("/services", [1]).status_code == 422
    bad_json = admin.request("POST", "/services", content=b"{nope")
    assert bad_json.status_code == 400
    assert admin.get("/services/nope").status_code == 404
    assert admin.get("/widgets").status_code == 404
    assert admin.request("POST", "/services/mock", json={}).status_code == 405

    etag = admin.get("/rules/chat").headers["etag"]
    stale = '"v0-00000000"'
    for method, body in [("PUT", rule), ("PATCH", {"description": "x"}), ("DELETE", None)]:
        refused = admin.request(method, "/rules/chat", json=body, headers={"if-match": stale})
        assert refused.status_code == 412, method
        assert refused.json()["error"]["code"] == "etag_mismatch"
    ok = admin.patch("/rules/chat", {"description": "x"}, headers={"if-match": etag})
    assert ok.status_code == 200 and ok.headers["etag"] != etag
    assert admin.patch("/rules/chat", {}, headers={"if-match": etag}).status_code == 412
    assert admin.delete("/rules/chat", headers={"if-match": ok.headers["etag"]}).status_code == 204
    # Nothing invalid reached the running table.
    assert admin.gateway.runtime.table.describe()["rules"] == ["file-rule"]

    assert httpx.get(admin.gateway.url + "/admin/services").status_code == 401
    wrong = httpx.get(admin.gateway.url + "/admin/services", headers={"x-api-key": "wrong-key"})
    assert wrong.status_code == 401
    by_header = httpx.get(admin.gateway.url + "/admin/services", headers={"x-api-key": ADMIN_KEY})
    assert by_header.status_code == 200


def test_no_admin_key_means_no_admin_api(start_gateway: Start) -> None:
    gateway = start_gateway(
        {
            "rules": [{"name": "r", "targets": [{"service": "m"}]}],
            "services": [{"name": "m", "provider": "mock"}],
        }
    )
    for path in ("/admin/services", "/admin/health", "/admin/openapi.json"):
        response = httpx.get(gateway.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert response.status_code == 404


def test_without_a_store_the_admin_api_is_read_only(start_gateway: Start) -> None:
    config = file_config("")
    del config["gateway"]["store"]
    admin = Admin(start_gateway(config))
    assert [s["name"] for s in admin.get("/services").json()["data"]] == ["file-mock"]
    refused = admin.post("/services", {"name": "m", "provider": "mock"})
    assert refused.status_code == 409 and "gateway.store" in refused.json()["error"]["message"]
    assert admin.get("/health").status_code == 200


def test_secrets_are_write_only(admin: Admin) -> None:
    creds = {"header_name": "Authorization", "header_value": API_SECRET}
    svc = admin.created("services", {"name": "ext", "provider": "openai", "credentials": creds})
    assert svc["credentials"] == {
        **{
            k: None
            for k in (
                "param_name",
                "aws_region",
                "azure_client_id",
                "azure_tenant_id",
                "azure_authority_host",
            )
        },
        "header_name": "Authorization",
        "secrets_set": ["header_value"],
    }
    file_pool = admin.get("/upstreams/file-pool").json()
    assert file_pool["credentials"]["secrets_set"] == ["header_value"]

    # A PUT without credentials, or with credentials but no secret, keeps the secret.
    body = {k: v for k, v in svc.items() if k != "credentials"}
    assert admin.put("/services/ext", body).json()["credentials"]["secrets_set"] == ["header_value"]
    kept = admin.put("/services/ext", {**body, "credentials": {"header_name": "Authorization"}})
    assert kept.json()["credentials"]["secrets_set"] == ["header_value"]
    signer = admin.gateway.runtime.table.services["ext"].signer
    # The running table signs with the decrypted secret.
    assert getattr(signer, "header", None) == ("Authorization", API_SECRET)
    # null removes it (and then the pair is incomplete).
    removed = admin.patch("/services/ext", {"credentials": {"header_value": None}})
    assert removed.status_code == 422
    assert removed.json()["error"]["issues"][0]["path"] == "credentials"
    cleared = admin.patch("/services/ext", {"credentials": None})
    assert cleared.status_code == 200 and cleared.json()["credentials"] is None
    assert admin.patch("/services/ext", {"credentials": {"header_value": 5}}).status_code == 422

    # Secrets at rest are encrypted: the store never holds the plaintext.
    admin.patch("/services/ext", {"credentials": creds})
    stored = next(r for r in _records(admin) if r.name == "ext")
    assert API_SECRET not in str(stored.doc)

    assert admin.seen > 5


def test_a_secret_without_a_master_key_is_refused(
    start_gateway: Start, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICEGATE_MASTER_KEY", raising=False)
    admin = Admin(start_gateway(file_config(url)))
    creds = {"header_name": "Authorization", "header_value": API_SECRET}
    refused = admin.post(
        "/upstreams",
        {"name": "p2", "targets": [{"url": "http://127.0.0.1:9"}], "credentials": creds},
    )
    assert refused.status_code == 400
    assert "SLUICEGATE_MASTER_KEY" in refused.json()["error"]["message"]
    assert refused.json()["error"]["param"] == "credentials.header_value"
    # Writes that carry no secret work without one.
    assert admin.post("/services", {"name": "plain", "provider": "mock"}).status_code == 201
    no_secret = {"name": "p3", "targets": [{"url": "http://127.0.0.1:9"}]}
    assert (
        admin.post("/upstreams", {**no_secret, "credentials": {"aws_region": "x"}}).status_code
        == 201
    )


def _records(admin: Admin) -> list[Any]:
    import asyncio

    async def read() -> list[Any]:
        from sluicegate.stores.open import open_store

        other = open_store(admin.gateway.runtime.file.config.gateway.store or "")
        await other.open()
        try:
            return await other.entities("default")
        finally:
            await other.close()

    return asyncio.run(read())


def test_tags_and_pagination(admin: Admin) -> None:
    for i in range(7):
        tags = ["a"] + (["b"] if i % 2 == 0 else []) + ([f"only-{i}"])
        admin.created("services", {"name": f"svc-{i}", "provider": "mock", "tags": tags})
    both = admin.get("/services", params={"tags": "a,b"}).json()
    assert [s["name"] for s in both["data"]] == ["svc-0", "svc-2", "svc-4", "svc-6"]
    assert [s["name"] for s in admin.get("/services?tags=only-3").json()["data"]] == ["svc-3"]
    assert admin.get("/services?tags=nope").json() == {"data": [], "next": None}

    names: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"after": cursor} if cursor else {})}
        page = admin.get("/services", params=params).json()
        names += [s["name"] for s in page["data"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert names == sorted(["file-mock", *(f"svc-{i}" for i in range(7))])
    assert pages == 3
    tagged = admin.get("/services", params={"tags": "a", "limit": "2"}).json()
    assert len(tagged["data"]) == 2 and tagged["next"]
    for bad in ({"limit": "0"}, {"limit": "x"}, {"limit": "1001"}, {"after": "%%%"}):
        assert admin.get("/services", params=bad).status_code == 400, bad


def test_a_change_routes_on_the_next_request_and_survives_a_restart(
    admin: Admin, start_gateway: Start, url: str
) -> None:
    gateway = admin.gateway
    assert chat(gateway, "fresh").status_code == 404
    admin.created("services", {"name": "fresh-mock", "provider": "mock"})
    admin.created(
        "rules",
        {"name": "fresh", "match": {"models": ["fresh"]}, "targets": [{"service": "fresh-mock"}]},
    )
    answer = chat(gateway, "fresh")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "mock: hi there"
    assert answer.headers["x-sluicegate-service"] == "fresh-mock"

    assert chat(gateway, "fresh", CONSUMER_KEY).status_code == 401
    admin.created("consumers", {"name": "team-b", "keys": [CONSUMER_KEY], "rules": ["fresh"]})
    assert chat(gateway, "fresh", CONSUMER_KEY).status_code == 200
    assert chat(gateway, "file-model", CONSUMER_KEY).status_code == 403
    models = httpx.get(
        gateway.url + "/v1/models", headers={"Authorization": f"Bearer {CONSUMER_KEY}"}
    )
    assert [m["id"] for m in models.json()["data"]] == ["fresh"]

    # Another process on the same store loads these entities at start.
    second = start_gateway(file_config(url))
    assert chat(second, "fresh", CONSUMER_KEY).status_code == 200

    assert admin.delete("/consumers/team-b").status_code == 204
    assert admin.delete("/rules/fresh").status_code == 204
    gone = chat(gateway, "fresh")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert chat(gateway, "fresh", CONSUMER_KEY).status_code == 401


def test_a_hundred_changes_under_steady_traffic(admin: Admin) -> None:
    gateway = admin.gateway
    admin.created("services", {"name": "blue", "provider": "mock"})
    admin.created("services", {"name": "green", "provider": "mock"})
    admin.created(
        "rules",
        {
            "name": "live",
            "match": {"models": ["live"]},
            "targets": [{"service": "blue", "weight": 1}],
        },
    )
    stop = threading.Event()
    failures: list[str] = []
    served: list[str] = []

    def traffic() -> None:
        with httpx.Client(
            base_url=gateway.url, headers={"Authorization": f"Bearer {KEY}"}
        ) as client:
            while not stop.is_set():
                body = {"model": "live", "messages": [{"role": "user", "content": "ping"}]}
                response = client.post("/v1/chat/completions", json=body, timeout=20)
                service = response.headers.get("x-sluicegate-service", "")
                if response.status_code != 200 or service not in ("blue", "green"):
                    failures.append(f"{response.status_code} {service} {response.text[:200]}")
                served.append(service)

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        for i in range(100):
            if i % 4 == 0:
                targets = [
                    {"service": "blue", "weight": 1 + i},
                    {"service": "green", "weight": 100 - i},
                ]
                response = admin.patch("/rules/live", {"targets": targets})
            elif i % 4 == 1:
                response = admin.post(
                    "/rules",
                    {
                        "name": f"extra-{i}",
                        "match": {"models": [f"x-{i}"]},
                        "targets": [{"service": "green"}],
                    },
                )
            elif i % 4 == 2:
                response = admin.delete(f"/rules/extra-{i - 1}")
            else:
                only = "green" if i % 8 == 3 else "blue"
                response = admin.patch("/rules/live", {"targets": [{"service": only}]})
            assert response.status_code in (200, 201, 204), response.text
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    assert not failures, failures[:5]
    assert len(served) > 100 and {"blue", "green"} <= set(served)
    assert gateway.runtime.table.describe()["rules"] == ["file-rule", "live"]


def test_crud_for_groups(admin: Admin) -> None:
    group = admin.created(
        "groups",
        {"name": "research", "rules": ["file-rule"], "limits": {"requests": 5}, "tags": ["t"]},
    )
    assert group["source"] == "store" and group["rules"] == ["file-rule"]
    assert admin.get("/groups/research").json()["id"] == group["id"]
    assert [g["name"] for g in admin.get("/groups?tags=t").json()["data"]] == ["research"]
    patched = admin.patch("/groups/research", {"budget": {"usd": 5}})
    assert patched.status_code == 200 and patched.json()["budget"]["usd"] == 5
    admin.validate("groups", patched.json())
    bad = admin.post("/groups", {"name": "g2", "rules": ["no-such-rule"]})
    assert bad.status_code == 422 and bad.json()["error"]["issues"][0]["path"] == "rules[0]"
    member = admin.created("consumers", {"name": "ann", "groups": ["research"]})
    assert member["groups"] == ["research"]
    busy = admin.delete("/groups/research")
    assert busy.status_code == 409 and "consumers/ann" in busy.json()["error"]["message"]
    unknown = admin.post("/consumers", {"name": "bob", "groups": ["nope"]})
    assert unknown.status_code == 422
    assert admin.delete("/consumers/ann").status_code == 204
    assert admin.delete("/groups/research").status_code == 204
    assert admin.get("/groups/research").status_code == 404
