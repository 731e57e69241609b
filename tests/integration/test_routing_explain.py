"""``sluicegate route explain`` prints the decision a real request gets: offline on the
config file, and against the running gateway (``--url``, its live latency and health)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import openai_service
from tests.fakes.gateway import RunningGateway, without_keys
from tests.fakes.openai_server import FakeOpenAI

ADMIN_KEY = "adm-explain-key-0001"
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def config(port: int) -> dict[str, Any]:
    names = ["cheap", "strong", "coder-1", "coder-2"]
    return {
        "gateway": {"admin_key": ADMIN_KEY},
        "models": {"house-model": {"context_window": 50, "input": 0.01, "output": 0.01}},
        "services": [openai_service(n, port, healthchecks={}) for n in names],
        "rules": [
            {
                "name": "auto",
                "match": {"models": ["auto"]},
                "strategy": "cheapest",
                "targets": [
                    {"service": "strong", "model": "gpt-4o"},
                    {"service": "cheap", "model": "gpt-4o-mini"},
                    {"service": "cheap", "model": "house-model"},
                ],
                "fallbacks": [{"service": "strong", "model": "gpt-4.1"}],
                "routes": [
                    {
                        "name": "pinned",
                        "when": {"headers": {"x-pin": "strong"}},
                        "targets": [{"service": "strong", "model": "gpt-4o"}],
                    }
                ],
                "semantic": {
                    "threshold": 0.4,
                    "routes": [
                        {
                            "name": "code",
                            "examples": ["fix this python error", "write a SQL query"],
                            "strategy": "fastest",
                            "targets": [
                                {"service": "coder-1", "model": "gpt-4.1"},
                                {"service": "coder-2", "model": "gpt-4.1-mini"},
                            ],
                        }
                    ],
                },
            }
        ],
    }


@pytest.fixture(scope="module")
def setup(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, Path]]:
    folder = tmp_path_factory.mktemp("explain")
    doc = without_keys(config(fake_openai.port))
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    running = RunningGateway(path=path).start()
    yield running, folder
    running.stop()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", "route", "explain", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def printed(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines())
    return {k.strip(): v.strip() for k, v in lines.items()}


CASES = [
    ({"messages": [{"role": "user", "content": "hello"}]}, {}),
    ({"messages": [{"role": "user", "content": "word " * 300}]}, {}),  # past house-model
    ({"messages": [{"role": "user", "content": "hello"}], "tools": [TOOL]}, {"x-pin": "strong"}),
    ({"messages": [{"role": "user", "content": "my python script throws KeyError"}]}, {}),
    ({"messages": [{"role": "user", "content": "What is the capital of Peru?"}]}, {}),
]


@pytest.mark.parametrize(("body", "headers"), CASES)
def test_explain_prints_the_decision_a_real_request_gets(
    setup: tuple[RunningGateway, Path], body: dict[str, Any], headers: dict[str, str]
) -> None:
    gateway, folder = setup
    request = folder / "request.json"
    request.write_text(json.dumps(body))
    flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}:{value}")]
    # Against the running gateway first (deciding leaves no trace), then the real request.
    remote = printed(
        cli(
            "--url", gateway.url, "--admin-key", ADMIN_KEY, "-m", "auto", "-f", str(request), *flags
        )
    )
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "auto", **body},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    real = response.headers["x-sluicegate-route"]
    assert remote["route"] == real
    assert remote["rule"] == "auto"
    assert remote["plan"].split(" -> ")[0].split("/")[0] == response.headers["x-sluicegate-service"]
    if "code" not in real:  # fastest reads live latency: the file alone cannot know it
        offline = printed(
            cli("--config", str(folder / "gateway.yaml"), "-m", "auto", "-f", str(request), *flags)
        )
        assert offline["route"] == real


def test_explain_names_the_rule_and_the_whole_plan(setup: tuple[RunningGateway, Path]) -> None:
    _, folder = setup
    request = folder / "plain.json"
    request.write_text(
        json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x"}]})
    )
    shown = printed(cli("--config", str(folder / "gateway.yaml"), "-f", str(request)))
    assert shown["plan"] == (
        "cheap/house-model -> cheap/gpt-4o-mini -> strong/gpt-4o -> strong/gpt-4.1"
    )


def test_explain_of_an_unknown_model_fails_clearly(setup: tuple[RunningGateway, Path]) -> None:
    _, folder = setup
    request = folder / "nope.json"
    request.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}))
    done = cli("--config", str(folder / "gateway.yaml"), "-m", "nope", "-f", str(request))
    assert done.returncode == 1
    assert "No rule serves the model 'nope'" in done.stderr


def test_explain_in_one_of_the_files_gateways(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    doc = {
        "auth": "none",
        "services": [openai_service("a", fake_openai.port)],
        "rules": [
            {"name": "main-chat", "match": {"models": ["chat"]}, "targets": [{"service": "a"}]}
        ],
        "gateways": [
            {
                "name": "team-x",
                "auth": "none",
                "services": [openai_service("x1", fake_openai.port), openai_service("x2", 1)],
                "rules": [
                    {
                        "name": "x-chat",
                        "match": {"models": ["chat"]},
                        "strategy": "ordered",
                        "targets": [{"service": "x2"}, {"service": "x1"}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    request = tmp_path / "r.json"
    request.write_text(
        json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}]})
    )
    shown = printed(cli("--config", str(path), "--gateway", "team-x", "-f", str(request)))
    assert (shown["rule"], shown["plan"]) == ("x-chat", "x2 -> x1")
    assert printed(cli("--config", str(path), "-f", str(request)))["rule"] == "main-chat"
    done = cli("--config", str(path), "--gateway", "nope", "-f", str(request))
    assert done.returncode == 1 and "no gateway named 'nope'" in done.stderr
