"""``strategy: cheapest`` through a running gateway: the cheapest able target by the model
catalog, skipping targets whose window, vision, tools or JSON schema cannot serve the
request, moving when a price changes through ``/admin/models``, and explaining each
choice in ``x-sluicegate-route`` and the audit row."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.conftest import eventually, logged_row, openai_service
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

ADMIN_KEY = "adm-routing-key-0001"
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


def config(port: int, store: str) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "models": {
            "tiny-model": {
                "context_window": 100_000,
                "input": 0.01,
                "output": 0.02,
                "capabilities": [],
            },
            "small-model": {
                "context_window": 2_000,
                "input": 0.1,
                "output": 0.2,
                "capabilities": ["tools"],
            },
            "big-model": {
                "context_window": 200_000,
                "input": 3.0,
                "output": 15.0,
                "capabilities": ["tools", "vision", "json_schema"],
            },
        },
        "services": [
            openai_service("a", port, healthchecks={}),
            openai_service("b", port, healthchecks={}),
            openai_service("c", port, healthchecks={}),
        ],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["chat"]},
                "strategy": "cheapest",
                "targets": [
                    {"service": "c", "model": "big-model"},
                    {"service": "b", "model": "small-model"},
                    {"service": "a", "model": "tiny-model"},
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    folder: Path = tmp_path_factory.mktemp("cheapest")
    running = RunningGateway(config(fake_openai.port, f"sqlite:///{folder}/sg.db")).start()
    yield running
    running.stop()


def ask(gateway: RunningGateway, **body: Any) -> httpx.Response:
    payload = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}], **body}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=payload, timeout=10)
    assert response.status_code == 200, response.text
    return response


def sent_model(fake: FakeOpenAI) -> str:
    model: str = fake.last["body"]["model"]
    return model


def test_the_cheapest_able_target_answers_and_says_why(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    response = ask(gateway)
    assert response.headers["x-sluicegate-service"] == "a"
    assert sent_model(fake_openai) == "tiny-model"
    route = response.headers["x-sluicegate-route"]
    assert route.startswith("default: cheapest of 3 able targets: a/tiny-model ($"), route


def test_a_tool_request_skips_the_model_without_tools(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    response = ask(gateway, tools=[TOOL])
    assert response.headers["x-sluicegate-service"] == "b"
    assert sent_model(fake_openai) == "small-model"
    route = response.headers["x-sluicegate-route"]
    assert "cheapest of 2 able targets: b/small-model" in route
    assert "skipped a/tiny-model: tools, none in model" in route


def test_an_image_request_skips_models_without_vision(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    content = [{"type": "text", "text": "what is this?"}, IMAGE]
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused")
    raw = client.chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
    )
    assert raw.headers["x-sluicegate-service"] == "c"
    assert sent_model(fake_openai) == "big-model"
    route = raw.headers["x-sluicegate-route"]
    assert "skipped b/small-model: images, no vision" in route
    assert "skipped a/tiny-model: images, no vision" in route


def test_a_prompt_longer_than_a_window_skips_that_model(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    long_text = "word " * 4000  # about 5k tokens: more than small-model's 2k window
    response = ask(gateway, messages=[{"role": "user", "content": long_text}], tools=[TOOL])
    assert response.headers["x-sluicegate-service"] == "c"
    route = response.headers["x-sluicegate-route"]
    assert "skipped b/small-model: context 5k > 2k" in route, route


def test_a_json_schema_request_goes_to_the_model_that_can(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    schema = {"name": "x", "schema": {"type": "object", "properties": {}}}
    response = ask(gateway, response_format={"type": "json_schema", "json_schema": schema})
    assert response.headers["x-sluicegate-service"] == "c"


def test_no_able_target_is_a_400_that_names_each_reason(gateway: RunningGateway) -> None:
    long_text = "word " * 200_000  # more than every window
    payload = {"model": "chat", "messages": [{"role": "user", "content": long_text}]}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=payload, timeout=10)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "no_able_target"
    assert "skipped c/big-model: context" in error["message"]
    route = response.headers["x-sluicegate-route"]
    assert route.startswith("default: no able target; skipped c/big-model: context"), route


def test_the_audit_row_keeps_the_explanation(gateway: RunningGateway) -> None:
    response = ask(gateway, tools=[TOOL])
    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    row = logged_row(admin, response.headers["x-request-id"], seconds=5)
    assert row["route"] == response.headers["x-sluicegate-route"]


def test_a_price_changed_through_the_admin_api_moves_the_choice(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert ask(gateway).headers["x-sluicegate-service"] == "a"
    # The file's entries are the file's: read-only here.
    refused = admin.put("/admin/models/tiny-model", json={"input": 50})
    assert refused.status_code == 409, refused.text
    # A built-in model gets a store entry over it; the catalog shows where each comes from.
    listed = {m["name"]: m for m in admin.get("/admin/models").json()["data"]}
    assert listed["tiny-model"]["source"] == "file"
    assert listed["gpt-4o-mini"]["source"] == "builtin"
    assert listed["gpt-4o-mini"]["context_window"] == 128_000
    try:
        changed = admin.put(
            "/admin/models/gpt-4o-mini",
            json={"input": 0.001, "output": 0.001, "description": "negotiated"},
        )
        assert changed.status_code == 201, changed.text
        assert changed.json()["source"] == "store"
        assert changed.json()["description"] == "negotiated"
        assert changed.json()["capabilities"] == ["json_schema", "tools", "vision"]
        bad = admin.put("/admin/models/gpt-4o-mini", json={"capabilities": ["telepathy"]})
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["issues"][0]["path"] == "capabilities[0]", bad.text
        assert changed.json()["context_window"] == 128_000  # kept from the built-in entry
        # gpt-4o-mini is no target of the rule: nothing moves.
        assert ask(gateway).headers["x-sluicegate-service"] == "a"
    finally:
        assert admin.delete("/admin/models/gpt-4o-mini").status_code == 204
    assert admin.get("/admin/models/gpt-4o-mini").json()["source"] == "builtin"


def test_a_store_price_moves_cheapest(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    # Catalog entries only in the store (none in the file) can be changed at run time.
    store = f"sqlite:///{tmp_path}/sg.db"
    doc = config(fake_openai.port, store)
    doc["models"] = {"big-model": doc["models"]["big-model"]}
    doc["rules"][0]["targets"] = [
        {"service": "a", "model": "gpt-4o-mini"},
        {"service": "b", "model": "gemini-2.0-flash"},
    ]
    running = RunningGateway(doc).start()
    try:
        admin = httpx.Client(base_url=running.url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        # Built-in prices: gemini-2.0-flash ($0.10/$0.40) is cheaper than gpt-4o-mini.
        assert ask(running).headers["x-sluicegate-service"] == "b"
        moved = admin.put("/admin/models/gemini-2.0-flash", json={"input": 5, "output": 20})
        assert moved.status_code == 201, moved.text
        eventually(lambda: _served_by(running, "a"))
        # config export writes the store's catalog entries as the file's models: section.
        exported = subprocess.run(
            [sys.executable, "-m", "sluicegate", "config", "export", "--store", store],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert exported.returncode == 0, exported.stderr
        models = yaml.safe_load(exported.stdout)["models"]
        assert models == {"gemini-2.0-flash": {"input": 5.0, "output": 20.0}}
        back = admin.delete("/admin/models/gemini-2.0-flash")
        assert back.status_code == 204
        eventually(lambda: _served_by(running, "b"))
    finally:
        running.stop()


def _served_by(gateway: RunningGateway, service: str) -> None:
    assert ask(gateway).headers["x-sluicegate-service"] == service


def test_the_anthropic_dialect_is_routed_alike(gateway: RunningGateway) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=gateway.url, api_key="unused")
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    raw = client.messages.with_raw_response.create(
        model="chat",
        max_tokens=50,
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}],
    )
    assert raw.headers["x-sluicegate-service"] == "c"
    assert "skipped a/tiny-model: images, no vision" in raw.headers["x-sluicegate-route"]
    plain = client.messages.with_raw_response.create(
        model="chat", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
    )
    assert plain.headers["x-sluicegate-service"] == "a"


def test_a_price_written_on_one_instance_moves_cheapest_on_another(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/shared.db"
    doc = config(fake_openai.port, store)
    doc["models"] = {}
    doc["rules"][0]["targets"] = [
        {"service": "a", "model": "gpt-4o-mini"},
        {"service": "b", "model": "gemini-2.0-flash"},
    ]
    one, two = RunningGateway(doc).start(), RunningGateway(doc).start()
    try:
        assert ask(two).headers["x-sluicegate-service"] == "b"
        admin = httpx.Client(base_url=one.url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        moved = admin.put("/admin/models/gemini-2.0-flash", json={"input": 5, "output": 20})
        assert moved.status_code == 201, moved.text
        eventually(lambda: _served_by(two, "a"))  # the other instance follows the store
    finally:
        one.stop()
        two.stop()
