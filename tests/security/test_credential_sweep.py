"""No upstream credential shows, whatever way the upstream fails.

Every credential form a service can hold (a header, a query parameter, AWS SigV4's
key id, secret and session token, Entra ID's client secret and the token it gets,
a Google service account's private key and the token it gets, Azure's api-key
header), one distinct secret each, meets every way an upstream can fail: the
connection refused, no first byte in time, a malformed HTTP response, an answer
cut off, a stream broken mid-way, a provider 4xx, 5xx, 401 and 403 (the provider
quoting the URL and the credential it got), and, for the forms that fetch a
token, the token endpoint refusing, answering garbage or unreachable.

The secrets, and the signatures and grants made of them, are searched for (with
their obvious encodings) in what a client gets (bodies, headers, stream events),
every log record at DEBUG, the audit rows (raw in the store, and through
``GET /admin/logs`` and ``/admin/logs/{id}``), every span exported and ``/metrics``.
The fake upstream (``tests/fakes/failing_provider.py``) echoes what it got on
purpose: anything found is the gateway's leak.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sluicegate.telemetry.tracing import Tracing
from tests.conftest import eventually, wait_finished
from tests.fakes.failing_provider import FailingProvider
from tests.fakes.gateway import RunningGateway, free_port
from tests.security.leaks import Capture, Leaks
from tests.security.raw_store import dump


def _hex(label: str) -> str:
    return f"{label}-{secrets.token_hex(12)}"


CLIENT_KEY = _hex("sk-sweep-client")
ADMIN_KEY = _hex("adm-sweep")
AZURE_TOKEN = _hex("azure-ad-token")
GOOGLE_TOKEN = "ya29." + _hex("sweep-google-token")
PRIVATE_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)


@dataclass
class Form:
    """One credential form: its provider, its secrets (label -> value) and its credentials."""

    provider: str
    model: str
    secrets: dict[str, str]
    credentials: Callable[[str, str], dict[str, str]]  # (fake's url, token kind) -> credentials
    on_the_wire: str  # the secret the provider receives (proves it was there to leak)
    tokens: bool = False  # fetches a token first
    extra: dict[str, Any] = field(default_factory=dict)


def _form_header() -> Form:
    value = "Bearer " + _hex("sk-sweep-header")
    return Form(
        "openai",
        "gpt-4o-mini",
        {"header credential": value},
        lambda url, kind: {"header_name": "Authorization", "header_value": value},
        value,
    )


def _form_param() -> Form:
    value = _hex("AIzaSweepParamKey")
    return Form(
        "gemini",
        "gemini-2.0-flash",
        {"query parameter credential": value},
        lambda url, kind: {"param_name": "key", "param_value": value},
        value,
    )


def _form_aws() -> Form:
    key_id = "AKIA" + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    session = "IQoJb3JpZ2lu" + secrets.token_urlsafe(60)
    return Form(
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        {"AWS access key id": key_id, "AWS secret key": secret, "AWS session token": session},
        lambda url, kind: {
            "aws_access_key_id": key_id,
            "aws_secret_access_key": secret,
            "aws_session_token": session,
            "aws_region": "us-east-1",
        },
        session,
    )


def _form_azure_ad() -> Form:
    secret = _hex("azure-ad-client-secret")
    return Form(
        "azure",
        "gpt-4o",
        {"Entra ID client secret": secret, "Entra ID token": AZURE_TOKEN},
        lambda url, kind: {
            "azure_tenant_id": "sweep-tenant",
            "azure_client_id": "sweep-client",
            "azure_client_secret": secret,
            "azure_authority_host": f"{url}/t/{kind}",
        },
        "Bearer " + AZURE_TOKEN,
        tokens=True,
    )


def _form_gcp() -> Form:
    body_lines = PRIVATE_KEY.strip().splitlines()[1:-1]

    def credentials(url: str, kind: str) -> dict[str, str]:
        key = {
            "type": "service_account",
            "project_id": "sweep-project",
            "private_key_id": "sweep-key-id",
            "private_key": PRIVATE_KEY,
            "client_email": "sweep@sweep-project.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": f"{url}/t/{kind}/token",
        }
        return {"gcp_service_account_json": orjson.dumps(key).decode()}

    return Form(
        "vertex",
        "gemini-2.0-flash",
        {
            "service account private key": PRIVATE_KEY,
            "service account private key, first line": body_lines[0],
            "service account private key, a middle line": body_lines[len(body_lines) // 2],
            "Google access token": GOOGLE_TOKEN,
        },
        credentials,
        "Bearer " + GOOGLE_TOKEN,
        tokens=True,
        extra={"project": "sweep-project", "location": "europe-west4"},
    )


def _form_azure_key() -> Form:
    value = _hex("azure-api-key")
    return Form(
        "azure",
        "gpt-4o",
        {"Azure api-key": value},
        lambda url, kind: {"header_name": "api-key", "header_value": value},
        value,
    )


FORMS = {
    "header": _form_header,
    "param": _form_param,
    "aws-sigv4": _form_aws,
    "azure-entra-id": _form_azure_ad,
    "gcp-service-account": _form_gcp,
    "azure-api-key": _form_azure_key,
}

# Failure -> the status and a phrase of the answer: (to a whole answer, to a stream).
Expected = tuple[tuple[int, str], tuple[int, str]]
PROVIDER_FAILURES: dict[str, Expected] = {
    "refused": ((502, "the connection was refused"),) * 2,
    "hang": ((504, "did not answer in time"),) * 2,
    "malformed": ((502, "malformed HTTP response"),) * 2,
    "drop": ((502, "answer was cut off"),) * 2,
    "stream-break": ((502, "answer was cut off"), (200, "broke off its stream")),
    "400": ((400, "[redacted]"),) * 2,  # the provider quoted the credential it got
    "404": ((404, "not found"),) * 2,
    "500": ((502, "status 500"),) * 2,
    "401": ((502, "refused the gateway's credentials"),) * 2,
    "403": ((502, "refused the gateway's credentials"),) * 2,
}
TOKEN_FAILURES: dict[str, Expected] = {
    "token-refuse": ((502, "refused"),) * 2,
    "token-malformed": ((502, "token"),) * 2,
    "token-garbage": ((502, "malformed HTTP response"),) * 2,
    "token-unreachable": ((502, "the connection was refused"),) * 2,
}


@pytest.fixture(scope="module")
def provider() -> Iterator[FailingProvider]:
    server = FailingProvider(AZURE_TOKEN, GOOGLE_TOKEN).start()
    yield server
    server.stop()


def _service(form: Form, failure: str, url: str, port: int) -> dict[str, Any]:
    """The service that meets ``failure``: its path (or its token endpoint) says which."""
    token_kind = "ok"
    path = f"/k/{failure}"
    if failure == "refused":
        port = free_port()
    elif failure.startswith("token-"):
        token_kind = failure.removeprefix("token-")
        path = "/k/500"  # never reached
        if token_kind == "unreachable":
            url = f"http://127.0.0.1:{free_port()}"
    return {
        "name": f"svc-{failure}",
        "provider": form.provider,
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        "path": path,
        "retries": 0,
        "first_byte_timeout": "300ms",
        "credentials": form.credentials(url, token_kind),
        **form.extra,
    }


def _config(form: Form, failures: list[str], provider: FailingProvider, folder: Path) -> Any:
    return {
        "gateway": {
            "admin_key": ADMIN_KEY,
            "store": f"sqlite:///{folder / 'store.db'}",
            "access_log": True,
        },
        "audit": {
            "spill_path": str(folder / "spill.jsonl"),
            "flush_interval": 0.05,
            "log_bodies": True,
        },
        "services": [_service(form, f, provider.url, provider.port) for f in failures],
        "rules": [
            {
                "name": f"rule-{f}",
                "match": {"models": [f"sweep-{f}"]},
                "targets": [{"service": f"svc-{f}", "model": form.model}],
                "fallback_on": [],
            }
            for f in failures
        ],
        "consumers": [{"name": "sweeper", "keys": [CLIENT_KEY]}],
    }


@pytest.mark.parametrize("name", list(FORMS))
def test_no_credential_in_any_output(name: str, provider: FailingProvider, tmp_path: Path) -> None:
    form = FORMS[name]()
    failures = dict(PROVIDER_FAILURES)
    if form.tokens:
        failures.update(TOKEN_FAILURES)
    gateway = RunningGateway(_config(form, list(failures), provider, tmp_path))
    exporter = InMemorySpanExporter()
    app: Any = gateway.server.config.app
    app.proxy.tracing = Tracing(SimpleSpanProcessor(exporter))
    capture = Capture()
    texts: list[tuple[str, str]] = []  # (where, text), scanned once every secret is known
    try:
        gateway.start()
        capture.debug_everywhere()
        with httpx.Client(base_url=gateway.url, timeout=20) as client:
            for failure, expected in failures.items():
                for stream, (status, phrase) in zip((False, True), expected, strict=True):
                    answer = _chat(client, f"sweep-{failure}", stream)
                    where = f"{failure} ({'stream' if stream else 'whole'})"
                    texts.append((f"{where} body", answer.text))
                    texts.append((f"{where} headers", repr(answer.headers.multi_items())))
                    assert answer.status_code == status, f"{where}: {answer.text}"
                    # The error names the service and what went wrong (a provider's own
                    # 4xx is its message, as the provider worded it).
                    assert f"svc-{failure}" in answer.text or status in (400, 404)
                    assert phrase in answer.text, f"{where}: {answer.text}"
            count = 2 * len(failures)
            wait_finished(gateway.url, count)
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

            def audited() -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = client.get(
                    "/admin/logs", params={"limit": 1000}, headers=admin
                ).json()["data"]
                assert len(rows) >= count, "the audit log is still being written"
                return rows

            rows = eventually(audited)
            texts.append(("GET /admin/logs", orjson.dumps(rows).decode()))
            for row in rows:
                one = client.get(f"/admin/logs/{row['id']}", headers=admin)
                assert one.status_code == 200
                texts.append((f"GET /admin/logs/{row['id']}", one.text))
            texts.append(("/metrics", client.get("/metrics").text))
    finally:
        capture.restore()
        gateway.stop()
    texts.append(("the store, raw", dump(f"sqlite:///{tmp_path / 'store.db'}")))
    spans = exporter.get_finished_spans()
    assert len(spans) >= 2 * len(failures)
    texts += [(f"span {span.name}", span.to_json()) for span in spans]
    fake = provider._thread.ident if provider._thread is not None else None
    records = [r for r in capture.records if r.thread != fake]  # the fake's own logs aside
    assert any(r.levelno == logging.DEBUG for r in records)
    texts += [
        (f"log record ({r.name})", text)
        for r, text in zip(capture.records, capture.texts, strict=True)
        if r.thread != fake
    ]

    # The credential reached the upstream, so it was there to leak. What the secrets
    # became on the wire (SigV4 signatures, signed grants) is watched too.
    assert form.on_the_wire in provider.credentials
    leaks = Leaks()
    for label, value in form.secrets.items():
        leaks.watch(label, value)
    for i, value in enumerate(sorted(provider.credentials | provider.grants)):
        leaks.watch(f"credential or grant #{i} the upstream received", value)
    for where, text in texts:
        leaks.scan(where, text)
    assert leaks.found == [], "\n".join(leaks.found)


def _chat(client: httpx.Client, model: str, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer:
        answer.read()
    return answer
