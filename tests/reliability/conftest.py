"""Shared by the fault tests: one upstream credential and one client key that every test
uses, and a scan of everything the suite saw (log records, answers, a server's output)
for either of them, with their obvious encodings (tests/security/leaks.py)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import logged_row, openai_service
from tests.security.leaks import Leaks

UPSTREAM_SECRET = "Bearer sk-upstream-" + secrets.token_hex(12)
CLIENT_KEY = "sk-reliability-" + secrets.token_hex(12)
ADMIN_KEY = "adm-reliability-" + secrets.token_hex(12)
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


class _Records(logging.Handler):
    def __init__(self, leaks: Leaks) -> None:
        super().__init__(logging.DEBUG)
        self.leaks = leaks
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.leaks.scan(f"log {record.name}", self.format(record) + repr(vars(record)))


@pytest.fixture(scope="package")
def leaks() -> Iterator[Leaks]:
    """Scans every log record while this suite runs; tests add answers and process output."""
    found = Leaks()
    found.watch("upstream credential", UPSTREAM_SECRET)
    found.watch("client key", CLIENT_KEY)
    found.watch("admin key", ADMIN_KEY)
    handler = _Records(found)
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield found
    root.removeHandler(handler)
    root.setLevel(saved)
    assert not found.found, found.found
    assert found.scanned > 0


@pytest.fixture(autouse=True)
def _scanned(leaks: Leaks) -> Iterator[None]:
    yield
    assert not leaks.found, leaks.found


def seen(leaks: Leaks, response: httpx.Response) -> httpx.Response:
    """Scan an answer (status line, headers and body) the client saw."""
    head = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    leaks.scan(f"answer {response.request.url.path}", head + "\n" + response.text)
    return response


def upstream_service(name: str, port: int, **extra: Any) -> dict[str, Any]:
    credentials = {"header_name": "Authorization", "header_value": UPSTREAM_SECRET}
    return openai_service(name, port, **{"retries": 0, "credentials": credentials, **extra})


def audited(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with an audit log in a SQLite store under ``tmp_path``, read by /admin/logs."""
    gateway = config.setdefault("gateway", {})
    gateway.update(admin_key=ADMIN_KEY, store=f"sqlite:///{tmp_path / 'store.db'}")
    config["audit"] = {"spill_path": str(tmp_path / "spill.jsonl"), "flush_interval": 0.05}
    return config


def audit_row(url: str, request_id: str, seconds: float = 5) -> dict[str, Any]:
    """The audit row of ``request_id``, once it was written."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        return logged_row(admin, request_id, seconds)
