"""Kept responses across gateway instances sharing PostgreSQL, their expiry, and their audit
rows (endpoint ``responses``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.stores import postgres_schema
from tests.integration.test_responses import responses_config

ADMIN = "admin-key-for-the-responses-tests-0001"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeAnthropic, FakeOpenAI]]:
    anthropic, compat = FakeAnthropic().start(), FakeOpenAI().start()
    yield anthropic, compat
    anthropic.stop()
    compat.stop()


def config(fakes: tuple[FakeAnthropic, FakeOpenAI], store: str, **gateway: Any) -> dict[str, Any]:
    out = responses_config(fakes[0].port, fakes[1].port, store)
    out["gateway"] = {**out["gateway"], "admin_key": ADMIN, **gateway}
    return out


def sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def test_a_follow_up_on_another_instance_sharing_postgres(
    fakes: tuple[FakeAnthropic, FakeOpenAI],
) -> None:
    with postgres_schema() as url:
        first = RunningGateway(config(fakes, url), keyless=False).start()
        second = RunningGateway(config(fakes, url), keyless=False).start()
        try:
            answer_id = None
            with sdk(first).responses.create(model="claude-haiku", input="one", stream=True) as s:
                for event in s:
                    if event.type == "response.completed":
                        answer_id = event.response.id
                        # Sent before the first instance's stream has even ended.
                        follow = sdk(second).responses.create(
                            model="compat-model", input="two", previous_response_id=answer_id
                        )
                        break
            assert answer_id is not None
            assert follow.output_text == "Hello from the fake: two"
            sent = fakes[1].requests[-1]["body"]["messages"]
            assert [m["content"] for m in sent] == ["one", "Hello from the fake: one", "two"]
            assert sdk(second).responses.retrieve(answer_id).output_text == (
                "Hello from the fake: one"
            )
            sdk(first).responses.delete(follow.id)
            with pytest.raises(openai.NotFoundError):
                sdk(second).responses.retrieve(follow.id)
            rows = _audit_rows(second, 3)
            assert {r["endpoint"] for r in rows} == {"responses"}
            assert all(r["input_tokens"] and r["output_tokens"] for r in rows)
        finally:
            first.stop()
            second.stop()


def _audit_rows(gateway: RunningGateway, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        answer = httpx.get(
            f"{gateway.url}/admin/logs", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        rows: list[dict[str, Any]] = answer.json()["data"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_kept_responses_expire(fakes: tuple[FakeAnthropic, FakeOpenAI], tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'sluicegate.db'}"
    gateway = RunningGateway(config(fakes, store, responses_ttl="2s"), keyless=False).start()
    try:
        answer = sdk(gateway).responses.create(model="claude-haiku", input="soon gone")
        assert sdk(gateway).responses.retrieve(answer.id).id == answer.id
        time.sleep(2.2)
        with pytest.raises(openai.NotFoundError):
            sdk(gateway).responses.retrieve(answer.id)
        with pytest.raises(openai.BadRequestError) as caught:
            sdk(gateway).responses.create(
                model="claude-haiku", input="x", previous_response_id=answer.id
            )
        assert caught.value.code == "previous_response_not_found"
    finally:
        gateway.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_response_deleted_on_one_instance_is_gone_on_the_other_at_once(
    fakes: tuple[FakeAnthropic, FakeOpenAI], tmp_path: Path, backend: str
) -> None:
    with contextlib.ExitStack() as stack:
        store = f"sqlite:///{tmp_path / 'sluicegate.db'}"
        if backend == "postgres":
            store = stack.enter_context(postgres_schema())
        first = RunningGateway(config(fakes, store), keyless=False).start()
        stack.callback(first.stop)
        second = RunningGateway(config(fakes, store), keyless=False).start()
        stack.callback(second.stop)
        answer = sdk(first).responses.create(model="claude-haiku", input="one")
        # The first instance holds its own copy now; a follow-up there is answered.
        sdk(first).responses.create(
            model="claude-haiku", input="two", previous_response_id=answer.id
        )
        sdk(second).responses.delete(answer.id)
        with pytest.raises(openai.BadRequestError) as caught:
            sdk(first).responses.create(
                model="claude-haiku", input="three", previous_response_id=answer.id
            )
        assert caught.value.code == "previous_response_not_found"
        assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
