"""``pii: redact`` screens every string a provider will see, in every field and whatever the
spelling: fake upstreams record what they got, and none of it may hold an address
(docs/guardrails.md, "What is screened")."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY, openai_service
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI


def wide(text: str) -> str:
    """``text`` in full-width forms (U+FF01 to U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# One address per way of writing it that a pattern over the raw text would miss.
ADDRESSES = {
    "plain": "jane.doe@example.com",
    "zero-width": "jane.doe@exa\u200bmple.com",
    "soft-hyphen": "mary\u00ad.major@example.org",
    "full-width": wide("john.roe@example.com"),
    "umlauts": "jürgen.müller@example.de",
    "accent": "josé@example.com",
    "idn-domain": "user@bücher.de",
    "combining-mark": "rene\u0301e@example.fr",
}
A = ADDRESSES


def _folded(text: str) -> str:
    """What a reader sees: NFKC, without format characters (zero-width, soft hyphen)."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def leaked(raw: bytes) -> list[str]:
    """The names of the addresses found in a JSON body, however they are written."""
    text = "\n".join(_folded(s) for s in _strings(json.loads(raw)))
    return [name for name, address in ADDRESSES.items() if _folded(address) in text]


def openai_body(model: str, stream: bool) -> dict[str, Any]:
    return {
        "model": model,
        "stream": stream,
        "user": A["plain"],
        "metadata": {"owner": A["accent"]},
        "messages": [
            {"role": "system", "content": f"Support desk of {A['idn-domain']}."},
            {
                "role": "user",
                "name": A["umlauts"],
                "content": [
                    {"type": "text", "text": f"write to {A['zero-width']} now"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"https://img.example/a.png?o={A['plain']}"},
                    },
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": f"Looks up {A['full-width']}",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "email": {
                                "type": "string",
                                "description": f"like {A['combining-mark']}",
                                "default": A["soft-hyphen"],
                            }
                        },
                    },
                },
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "reply",
                "schema": {"type": "object", "description": f"for {A['umlauts']}"},
            },
        },
        "x_vendor_extension": {"deep": [[f"cc {A['accent']}"]]},
    }


def anthropic_body(model: str, stream: bool) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 50,
        "stream": stream,
        "system": [{"type": "text", "text": f"Support desk of {A['idn-domain']}."}],
        "metadata": {"user_id": A["plain"]},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"write to {A['zero-width']} now"},
                    {
                        "type": "image",
                        "source": {
                            "type": "url",
                            "url": f"https://img.example/a.png?o={A['accent']}",
                        },
                    },
                ],
            }
        ],
        "tools": [
            {
                "name": "lookup",
                "description": f"Looks up {A['full-width']}",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "email": {
                            "type": "string",
                            "description": f"like {A['combining-mark']}",
                            "default": A["soft-hyphen"],
                        }
                    },
                },
            }
        ],
        "x_vendor_extension": {"deep": [f"cc {A['umlauts']}"]},
    }


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    audit = tmp_path_factory.mktemp("pii-audit")
    redact = {"guardrails": {"pii": "redact"}}
    config = {
        "audit": {
            "path": str(audit / "audit.db"),
            "spill_path": str(audit / "spill.jsonl"),
            "log_bodies": True,
            "flush_interval": "20ms",
        },
        "services": [
            openai_service("oai", fake_openai.port, retries=0),
            {
                "name": "claude",
                "provider": "anthropic",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake_anthropic.port,
                "retries": 0,
                "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
            },
        ],
        "rules": [
            {
                "name": "to-openai",
                "match": {"models": ["pii-openai"]},
                "targets": [{"service": "oai", "model": "gpt-4o-mini"}],
                "policies": redact,
            },
            {
                "name": "as-sent",
                "match": {"models": ["fake-pii-as-sent"]},
                "targets": [{"service": "oai"}],
                "policies": redact,
            },
            {
                "name": "to-anthropic",
                "match": {"models": ["pii-claude"]},
                "targets": [{"service": "claude", "model": "claude-haiku-4-5"}],
                "policies": redact,
            },
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


CASES = [
    ("openai", "pii-openai"),  # OpenAI client, OpenAI provider: its own bytes unless rewritten
    ("openai", "pii-claude"),  # translated to Anthropic's shape
    ("anthropic", "pii-claude"),
    ("anthropic", "pii-openai"),
]


def _send(gateway: RunningGateway, dialect: str, model: str, stream: bool, rid: str) -> None:
    make, path = (
        (openai_body, "/v1/chat/completions")
        if dialect == "openai"
        else (anthropic_body, "/v1/messages")
    )
    headers = {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "x-request-id": rid,
    }
    # ensure_ascii: the non-ASCII letters arrive as \\u escapes, as many clients send them.
    raw = json.dumps(make(model, stream)).encode()
    with httpx.stream(
        "POST", gateway.url + path, content=raw, headers=headers, timeout=10
    ) as response:
        response.read()
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("dialect", "model"), CASES)
def test_no_address_reaches_the_provider(
    gateway: RunningGateway,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    dialect: str,
    model: str,
    stream: bool,
) -> None:
    upstream = fake_openai if model == "pii-openai" else fake_anthropic
    before = len(upstream.requests)
    rid = f"pii-{dialect}-{model}-{stream}-{time.monotonic_ns()}"
    _send(gateway, dialect, model, stream, rid)
    assert len(upstream.requests) == before + 1
    raw = upstream.last["raw"]
    assert leaked(raw) == []
    sent = json.loads(raw)
    # The placeholder takes the place of the whole address, invisible characters included.
    text = json.dumps(sent, ensure_ascii=False)
    assert re.search(r"write to \[EMAIL_\d+\] now", text), text
    assert re.search(r"Support desk of \[EMAIL_\d+\]\.", text), text
    assert re.search(r"Looks up \[EMAIL_\d+\]", text), text
    row = _audit_row(gateway, rid)
    assert leaked(row["request_body"].encode()) == []


def _audit_row(gateway: RunningGateway, rid: str) -> dict[str, Any]:
    audit = gateway.runtime.loaded.config.audit
    assert audit.path is not None
    deadline = time.monotonic() + 10
    while True:
        with contextlib.closing(sqlite3.connect(Path(audit.path))) as conn:
            conn.row_factory = sqlite3.Row
            found = conn.execute(
                "SELECT * FROM sluicegate_audit WHERE request_id = ?", (rid,)
            ).fetchone()
        if found is not None:
            return dict(found)
        assert time.monotonic() < deadline, "no audit row"
        time.sleep(0.05)


def test_nothing_found_keeps_the_clients_bytes(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    raw = (
        b'{"model":"fake-pii-as-sent",  "user":"u-1","metadata":{"k":"v"},'
        b'"messages":[{"role":"user","content":"plain words, caf\\u00e9"}]}'
    )
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    response = httpx.post(gateway.url + "/v1/chat/completions", content=raw, headers=headers)
    assert response.status_code == 200
    assert fake_openai.last["raw"] == raw


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"fake-pii-as-sent","user":"jane.doe@example.com","user":"u-1",'
        b'"messages":[{"role":"user","content":"plain words"}]}',
        # Quotes written as \u0022 elsewhere do not hide the repeated key.
        b'{"model":"fake-pii-as-sent","user":"jane.doe@example.com","user":"u-1",'
        b'"messages":[{"role":"user","content":"say \\u0022a\\u0022 and \\u0022b\\u0022"}]}',
    ],
    ids=["plain", "escaped-quotes"],
)
def test_a_repeated_key_does_not_carry_an_address_past_screening(
    gateway: RunningGateway, fake_openai: FakeOpenAI, raw: bytes
) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    response = httpx.post(gateway.url + "/v1/chat/completions", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    sent = fake_openai.last["raw"]
    assert b"jane.doe" not in sent  # in the bytes, not only in what a parser keeps
    assert json.loads(sent)["user"] == "u-1"  # the value the provider reads, as before
