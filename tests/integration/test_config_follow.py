"""The running gateway follows its config: file edits, and writes of other instances."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url

ADMIN_KEY = "adm-follow-key-0001"


def chat(gateway: RunningGateway, model: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def wait_for(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check`` holds; fails after ``seconds``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "not within the time allowed"
        time.sleep(0.02)
    return time.monotonic() - start


def rules(*models: str) -> dict[str, Any]:
    return {
        "auth": "none",  # written to a file the gateway reads: no consumers, no keys
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [
            {"name": m, "match": {"models": [m]}, "targets": [{"service": "mock"}]} for m in models
        ],
    }


@pytest.fixture
def running() -> Iterator[list[RunningGateway]]:
    gateways: list[RunningGateway] = []
    yield gateways
    for gateway in gateways:
        gateway.stop()


def test_an_edit_of_the_file_is_picked_up_and_a_bad_one_is_refused(
    tmp_path: Path, running: list[RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sluicegate")
    path = tmp_path / "sluicegate.yaml"
    path.write_text(yaml.safe_dump(rules("one")))
    gateway = RunningGateway(path=path, poll_interval=0.1).start()
    running.append(gateway)
    assert chat(gateway, "one").status_code == 200
    assert chat(gateway, "two").status_code == 404

    path.write_text(yaml.safe_dump(rules("one", "two")))
    wait_for(lambda: chat(gateway, "two").status_code == 200, 5)

    bad = rules("one", "two", "three")
    bad["rules"][2]["targets"] = [{"service": "nope", "weight": 0}]
    path.write_text(yaml.safe_dump(bad))
    wait_for(lambda: "edit refused" in caplog.text, 5)
    refused = [r.getMessage() for r in caplog.records if "edit refused" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0]
    assert "rules[2].targets[0].service: unknown service 'nope'" in refused[0]
    assert "rules[2].targets[0].weight: must be greater than 0" in refused[0]
    assert chat(gateway, "two").status_code == 200  # the running table stayed
    assert chat(gateway, "three").status_code == 404

    path.write_text("rules: [\n")  # broken YAML is refused the same way
    wait_for(lambda: "invalid YAML" in caplog.text, 5)
    path.write_text(yaml.safe_dump(rules("three")))
    wait_for(lambda: chat(gateway, "three").status_code == 200, 5)
    assert chat(gateway, "one").status_code == 404


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_write_on_one_instance_routes_on_another_within_a_second(
    backend: str, tmp_path: Path, running: list[RunningGateway]
) -> None:
    with store_url(backend, tmp_path) as url:
        config = {"gateway": {"admin_key": ADMIN_KEY, "store": url}}
        first = RunningGateway(config).start()
        running.append(first)
        # PostgreSQL wakes the other instance with NOTIFY, so its poll may be slow;
        # SQLite has only the poll.
        poll = 30.0 if backend == "postgres" else 0.5
        second = RunningGateway(config, poll_interval=poll).start()
        running.append(second)
        admin = httpx.Client(
            base_url=first.url + "/admin", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert admin.post("/services", json={"name": "m", "provider": "mock"}).status_code == 201
        rule = {"name": "r", "match": {"models": ["fresh"]}, "targets": [{"service": "m"}]}
        assert admin.post("/rules", json=rule).status_code == 201
        assert chat(first, "fresh").status_code == 200
        assert wait_for(lambda: chat(second, "fresh").status_code == 200, 1.0) < 1.0

        assert admin.delete("/rules/r").status_code == 204
        assert wait_for(lambda: chat(second, "fresh").status_code == 404, 1.0) < 1.0
        admin.close()
        for gateway in (first, second):
            gateway.stop()
        running.clear()


def test_serve_access_log_flag_outlives_a_reload(tmp_path: Path) -> None:
    import asyncio

    from sluicegate.config.load import load_config
    from sluicegate.runtime import Runtime

    path = tmp_path / "gw.yaml"
    path.write_text("services: [{name: m, provider: mock}]\nrules: []\n")
    runtime = Runtime(load_config(path), config_path=path, access_log=True)
    assert runtime.table.access_log
    path.write_text("gateway: {access_log: false}\nservices: [{name: m, provider: mock}]\n")
    assert asyncio.run(runtime.reload_file())
    assert runtime.table.access_log  # --access-log wins over the edited file
