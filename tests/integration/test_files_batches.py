"""Files and batches through the gateway with the official SDKs: OpenAI's and Azure's
``/v1/files`` and ``/v1/batches``, Anthropic's ``/v1/messages/batches``. Ids are the gateway's
own, signed, and bind the consumer; a batch's usage and cost are recorded when its results
are read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import KEY, OTHER_KEY, eventually, logged_row, settled
from tests.fakes.batch_server import (
    ANTHROPIC_KEY,
    AZURE_KEY,
    AZURE_VERSION,
    COMPLETION,
    OPENAI_KEY,
    PROMPT,
    FakeBatches,
)
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import store_url

ADMIN_KEY = "adm-files-batches-key1"
AZURE_CLIENT_KEY = "sk-test-team-z-0009"
LIMITED_KEY = "sk-test-team-t-0007"
FEW_FILES_KEY = "sk-test-team-f-0011"
LINES = [
    {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
    }
    for i in range(2)
]
JSONL = b"".join(orjson.dumps(line) + b"\n" for line in LINES)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBatches]:
    server = FakeBatches().start()
    yield server
    server.stop()


def config(fake: FakeBatches, store: str | None) -> dict[str, Any]:
    local = {"protocol": "http", "host": "127.0.0.1", "port": fake.port}
    gateway: dict[str, Any] = {"admin_key": ADMIN_KEY}
    if store is not None:
        gateway["store"] = store
    return {
        "gateway": gateway,
        "services": [
            {
                "name": "oa",
                "provider": "openai",
                **local,
                "credentials": {
                    "header_name": "Authorization",
                    "header_value": f"Bearer {OPENAI_KEY}",
                },
            },
            {
                "name": "az",
                "provider": "azure",
                **local,
                "api_version": AZURE_VERSION,
                "credentials": {"header_name": "api-key", "header_value": AZURE_KEY},
            },
            {
                "name": "ant",
                "provider": "anthropic",
                **local,
                "credentials": {"header_name": "x-api-key", "header_value": ANTHROPIC_KEY},
            },
            {"name": "demo", "provider": "mock"},
        ],
        "rules": [
            {
                "name": "files",
                "match": {"paths": ["/v1/files", "/v1/batches"]},
                "targets": [{"service": "oa"}],
            },
            {
                "name": "azure-files",
                "match": {"paths": ["/v1/files", "/v1/batches"]},
                "targets": [{"service": "az"}],
            },
            {
                "name": "claude",
                "match": {"models": ["claude-x"]},
                "targets": [{"service": "ant", "model": "claude-haiku-real"}],
            },
            {"name": "chat", "match": {"models": ["demo"]}, "targets": [{"service": "demo"}]},
            {
                "name": "few-files",
                "match": {"paths": ["/v1/files"]},
                "targets": [{"service": "oa"}],
                "policies": {"rate_limit": {"requests": 1, "window": "1m", "per": "consumer"}},
            },
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "rules": ["files", "claude", "chat"]},
            {"name": "team-b", "keys": [OTHER_KEY], "rules": ["files", "claude"]},
            {"name": "team-z", "keys": [AZURE_CLIENT_KEY], "rules": ["azure-files"]},
            {"name": "team-f", "keys": [FEW_FILES_KEY], "rules": ["few-files"]},
            {
                "name": "team-t",
                "keys": [LIMITED_KEY],
                "rules": ["files", "chat"],
                "limits": {"tokens": 2500, "window": "1m"},
            },
        ],
        "pricing": {"gpt-4o-mini": {"input": 1.0, "output": 2.0}},
    }


@pytest.fixture(scope="module")
def gateway(
    fake: FakeBatches, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    store = f"sqlite:///{tmp_path_factory.mktemp('files') / 'sluicegate.db'}"
    running = RunningGateway(config(fake, store), keyless=False).start()
    yield running
    running.stop()


def client(gateway: RunningGateway, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture
def admin(gateway: RunningGateway) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as http:
        yield http


def batch_rows(admin: httpx.Client, consumer: str) -> list[dict[str, Any]]:
    """The audit rows of ``consumer`` with a batch's usage (every call to the batches API
    is a row with endpoint batches; the read of its results has the usage)."""
    found = admin.get("/admin/logs", params={"endpoint": "batches", "consumer": consumer})
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()["data"]
    return [row for row in rows if row["input_tokens"] is not None]


def test_files_create_batches_create_retrieve_and_content(
    gateway: RunningGateway, fake: FakeBatches, admin: httpx.Client
) -> None:
    sdk = client(gateway)
    made = sdk.files.create(file=("in.jsonl", JSONL), purpose="batch")
    assert made.filename == "in.jsonl" and made.bytes == len(JSONL) and made.purpose == "batch"
    upstream_file = next(i for i, data in fake.contents.items() if data == JSONL)
    assert made.id.startswith("file-") and made.id != upstream_file
    assert fake.seen[-1]["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sdk.files.retrieve(made.id).id == made.id
    assert sdk.files.content(made.id).content == JSONL

    batch = sdk.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert fake.seen[-1]["body"]["input_file_id"] == upstream_file  # the provider's own id
    assert batch.input_file_id == made.id and batch.id.startswith("batch_")
    assert batch.id not in fake.batches
    done = sdk.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id is not None
    assert done.output_file_id not in fake.files

    assert batch_rows(admin, "team-a") == []  # nothing is recorded until results are read
    output = sdk.files.content(done.output_file_id).content
    answers = [orjson.loads(line) for line in output.splitlines()]
    assert [a["custom_id"] for a in answers] == ["r0", "r1"]

    def recorded() -> dict[str, Any]:
        rows = batch_rows(admin, "team-a")
        assert len(rows) == 1, rows
        return rows[0]

    row = eventually(recorded)
    assert (row["service"], row["provider"], row["model"]) == ("oa", "openai", "gpt-4o-mini")
    assert (row["input_tokens"], row["output_tokens"]) == (2 * PROMPT, 2 * COMPLETION)
    # Batch prices are half the table's (USD per million tokens: 1.0 in, 2.0 out).
    expected = (2 * PROMPT * 1.0 + 2 * COMPLETION * 2.0) / 1e6 / 2
    assert row["cost_usd"] == pytest.approx(expected)
    # Read again: counted once.
    again = sdk.files.content(done.output_file_id, extra_headers={"x-request-id": "read-again"})
    assert again.content == output
    second = logged_row(admin, "read-again", 10)
    assert (second["endpoint"], second["input_tokens"]) == ("files", None)
    assert len(batch_rows(admin, "team-a")) == 1


def test_lists_cancel_and_delete(gateway: RunningGateway, fake: FakeBatches) -> None:
    sdk = client(gateway)
    mine = sdk.files.create(file=("mine.jsonl", JSONL), purpose="batch")
    theirs = client(gateway, OTHER_KEY).files.create(file=("theirs.jsonl", JSONL), purpose="batch")
    listed = [f.id for f in sdk.files.list()]
    assert mine.id in listed and theirs.id not in listed
    assert [f.id for f in sdk.files.list(purpose="batch", limit=1).data] == [mine.id]
    batch = sdk.batches.create(
        input_file_id=mine.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = sdk.batches.cancel(batch.id)
    assert cancelled.id == batch.id and cancelled.status == "cancelling"
    assert batch.id in [b.id for b in sdk.batches.list()]
    assert batch.id not in [b.id for b in client(gateway, OTHER_KEY).batches.list()]
    deleted = sdk.files.delete(mine.id)
    assert deleted.deleted and deleted.id == mine.id
    assert mine.id not in [f.id for f in sdk.files.list()]


def test_a_consumer_cannot_reach_another_consumers_objects(
    gateway: RunningGateway, fake: FakeBatches
) -> None:
    owner = client(gateway)
    made = owner.files.create(file=("private.jsonl", JSONL), purpose="batch")
    batch = owner.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    other = client(gateway, OTHER_KEY)
    calls = len(fake.seen)
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(made.id)
    with pytest.raises(openai.NotFoundError):
        other.files.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):  # another's file as the input of a batch
        other.batches.create(
            input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert len(fake.seen) == calls  # none of it reached the provider


def _tampered(value: str) -> list[str]:
    """``value`` with one character changed (in the payload, in the signature), longer,
    shorter, or a plain id of the same kind."""
    flipped = [
        value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :]
        for i in (12, len(value) // 2, len(value) - 2)
    ]
    kind = value[: value.index("sg1")]
    return [*flipped, kind + "upstream123", value + "x", value[:-3]]


def test_a_tampered_id_is_refused(gateway: RunningGateway, fake: FakeBatches) -> None:
    sdk = client(gateway)
    made = sdk.files.create(file=("t.jsonl", JSONL), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    upstream_file = fake.seen[-1]["body"]["input_file_id"]
    calls = len(fake.seen)
    for bad in [*_tampered(made.id), upstream_file]:
        with pytest.raises(openai.NotFoundError) as info:
            sdk.files.retrieve(bad)
        assert info.value.code == "file_not_found"
    for bad in [*_tampered(batch.id), next(iter(fake.batches))]:
        with pytest.raises(openai.NotFoundError) as info:
            sdk.batches.retrieve(bad)
        assert info.value.code == "batch_not_found"
    assert len(fake.seen) == calls


def test_batch_usage_counts_against_token_limits(gateway: RunningGateway) -> None:
    sdk = client(gateway, LIMITED_KEY)
    ask = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    assert sdk.chat.completions.create(**ask).choices  # type: ignore[call-overload]
    made = sdk.files.create(file=("limited.jsonl", JSONL), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = sdk.batches.retrieve(batch.id)
    assert done.output_file_id is not None
    # Reading results is never refused, and its 3000 tokens count against the 2500 a minute.
    settled(gateway.url, lambda: sdk.files.content(done.output_file_id).content)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(**ask)  # type: ignore[call-overload]


def test_azure_files_and_batches(gateway: RunningGateway, fake: FakeBatches) -> None:
    sdk = client(gateway, AZURE_CLIENT_KEY)
    made = sdk.files.create(file=("az.jsonl", JSONL), purpose="batch")
    seen = fake.seen[-1]
    assert seen["path"] == "/openai/files" and seen["query"] == {"api-version": AZURE_VERSION}
    assert seen["headers"]["api-key"] == AZURE_KEY
    batch = sdk.batches.create(
        input_file_id=made.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert fake.seen[-1]["path"] == "/openai/batches"
    done = sdk.batches.retrieve(batch.id)
    assert done.output_file_id is not None
    assert len(sdk.files.content(done.output_file_id).content.splitlines()) == 2
    # An Azure file's id names the Azure service: the OpenAI consumer cannot use it.
    with pytest.raises(openai.NotFoundError):
        client(gateway).files.retrieve(made.id)


def test_anthropic_message_batches(
    gateway: RunningGateway, fake: FakeBatches, admin: httpx.Client
) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key=OTHER_KEY, max_retries=0)
    requests = [
        {
            "custom_id": f"m{i}",
            "params": {
                "model": "claude-x",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"hello {i}"}],
            },
        }
        for i in range(3)
    ]
    batch = sdk.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    sent = fake.seen[-1]
    # Routed by model like chat: the rule's target model, the service's key.
    assert [r["params"]["model"] for r in sent["body"]["requests"]] == ["claude-haiku-real"] * 3
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert batch.id.startswith("msgbatch_") and batch.id not in fake.message_batches
    done = sdk.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended"
    assert done.results_url is not None and done.results_url.startswith(gateway.url)
    results = list(sdk.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == ["m0", "m1", "m2"]
    assert all(r.result.type == "succeeded" for r in results)

    def recorded() -> dict[str, Any]:
        rows = batch_rows(admin, "team-b")
        assert len(rows) == 1, rows
        return rows[0]

    row = eventually(recorded)
    assert (row["service"], row["provider"]) == ("ant", "anthropic")
    assert (row["input_tokens"], row["output_tokens"]) == (3 * PROMPT, 3 * COMPLETION)
    assert batch.id in [b.id for b in sdk.messages.batches.list()]
    other = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    assert batch.id not in [b.id for b in other.messages.batches.list()]
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.retrieve(batch.id)
    second = sdk.messages.batches.create(requests=requests[:1])  # type: ignore[arg-type]
    assert sdk.messages.batches.cancel(second.id).processing_status == "canceling"
    assert sdk.messages.batches.delete(batch.id).id == batch.id


def test_a_batch_for_a_model_the_consumer_may_not_use_is_refused(gateway: RunningGateway) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key=AZURE_CLIENT_KEY, max_retries=0)
    request = {
        "custom_id": "x",
        "params": {
            "model": "claude-x",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        },
    }
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk.messages.batches.create(requests=[request])  # type: ignore[list-item]


@pytest.mark.parametrize("backend", ["postgres", None])
def test_ownership_in_postgres_and_without_a_store(
    backend: str | None, fake: FakeBatches, tmp_path: Path
) -> None:
    def run(store: str | None) -> None:
        running = RunningGateway(config(fake, store), keyless=False).start()
        try:
            sdk = client(running)
            made = sdk.files.create(file=("own.jsonl", JSONL), purpose="batch")
            assert [f.id for f in sdk.files.list()] == [made.id]
            assert list(client(running, OTHER_KEY).files.list()) == []
            with pytest.raises(openai.NotFoundError):
                client(running, OTHER_KEY).files.retrieve(made.id)
        finally:
            running.stop()

    if backend is None:
        run(None)
        return
    with store_url(backend, tmp_path) as url:
        run(url)


def test_an_upload_is_streamed_to_the_provider(gateway: RunningGateway, fake: FakeBatches) -> None:
    fake.first_part.clear()
    reached = threading.Event()
    boundary = "sg-boundary-1"

    def parts() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"'
            "\r\nContent-Type: application/jsonl\r\n\r\n"
        ).encode()
        yield JSONL * 2000
        # The provider reads the file while the client still holds the rest of it.
        if fake.first_part.wait(5):
            reached.set()
        yield JSONL * 2000
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = httpx.post(
        gateway.url + "/v1/files",
        content=parts(),
        headers={
            "authorization": f"Bearer {KEY}",
            "content-type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["bytes"] == len(JSONL) * 4000
    assert reached.is_set()


def test_a_rule_s_request_limit_counts_file_uploads(gateway: RunningGateway) -> None:
    sdk = client(gateway, FEW_FILES_KEY)
    settled(gateway.url, lambda: sdk.files.create(file=("a.jsonl", JSONL), purpose="batch"))
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.files.create(file=("b.jsonl", JSONL), purpose="batch")
    assert "few-files" in refused.value.message
