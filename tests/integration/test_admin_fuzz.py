"""schemathesis against a live gateway's Admin API: no 5xx, no answer outside the spec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-fuzz-key-0001"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


@pytest.fixture
def gateway(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningGateway:
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", Fernet.generate_key().decode())
    store = f"sqlite:///{tmp_path / 'fuzz.db'}"
    return start_gateway(
        {
            "gateway": {"admin_key": ADMIN_KEY, "store": store},
            "services": [{"name": "file-mock", "provider": "mock"}],
        }
    )


@pytest.mark.fuzz
def test_schemathesis_finds_nothing(gateway: RunningGateway, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    if not st.exists() and shutil.which("st") is None:
        if os.environ.get("CI"):
            raise AssertionError("schemathesis is a dev dependency: pip install -e '.[dev]'")
        pytest.skip("schemathesis is not installed")
    # Bounded: a few hundred requests, about ten seconds; the seed makes a failure repeatable.
    done = subprocess.run(
        [
            str(st if st.exists() else "st"),
            "run",
            gateway.url + "/admin/openapi.json",
            "--header",
            f"Authorization: Bearer {ADMIN_KEY}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,fuzzing,stateful",
            "--max-examples",
            "20",
            "--seed",
            "20240601",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,  # about two minutes on a quiet machine: the spec grew with the API
        cwd=tmp_path,  # schemathesis keeps a folder of found examples where it runs
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_what_schemathesis_found_once(gateway: RunningGateway) -> None:
    admin = httpx.Client(
        base_url=gateway.url + "/admin", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    # A cursor that is not ASCII is a bad cursor, not a crash.
    assert admin.get("/services", params={"after": "Zé"}).status_code == 400
    # An upstream_id that is not a string is a validation error.
    odd = {"name": "odd", "type": "upstream", "provider": "openai", "upstream_id": {}}
    assert admin.post("/services", json=odd).status_code == 422
    # Keys that are not a list are a validation error, not a crash.
    odd_keys = {"name": "f", "keys": 1.5, "limits": [{"window": 60}]}
    assert admin.post("/consumers", json=odd_keys).status_code == 422
    # Durations are taken as written in the config file, and shown in seconds.
    made = admin.post("/services", json={"name": "slow", "provider": "mock", "timeout": "1m30s"})
    assert made.status_code == 201 and made.json()["timeout"] == 90.0
    spec = admin.get("/openapi.json").json()
    timeout = spec["components"]["schemas"]["ServiceInput"]["properties"]["timeout"]
    assert timeout["anyOf"][1]["type"] == "string"
    admin.close()
