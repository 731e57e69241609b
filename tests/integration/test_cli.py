"""The ``sluicegate`` command as a user runs it: a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakes.gateway import free_port

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
BAD = """
services:
  - {name: openai, provider: openai, host: api.openai.com}
rules:
  - name: chat
    targets:
      - {service: openai, weight: 0}
      - {service: claud}
consumers:
  - {name: a, keys: ["sk-aaaaaaaaaa"], rules: [chat, nope]}
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def wait_ready(url: str, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
        time.sleep(0.1)


def test_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("sluicegate ")


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in (
        "serve",
        "config validate",
        "config apply",
        "config export",
        "secrets rotate",
        "secrets generate-key",
        "logs tail",
        "usage",
        "keys create",
        "keys list",
        "keys revoke",
        "keys rotate",
        "version",
    ):
        assert f"  sluicegate {command} " in result.stdout, command


def test_validate_ok() -> None:
    result = run("config", "validate", str(QUICKSTART))
    assert result.returncode == 0, result.stderr
    assert "ok (1 services" in result.stdout


def test_validate_lists_every_error_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = run("config", "validate", str(bad))
    assert result.returncode == 1
    assert "3 errors" in result.stderr
    assert "rules[0].targets[0].weight: must be greater than 0\n" in result.stderr
    assert "rules[0].targets[1].service: unknown service 'claud'" in result.stderr
    assert "consumers[0].rules[1]: unknown rule 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def clean_env() -> dict[str, str]:
    """The environment of a newcomer's shell: none of the examples' variables set."""
    keep = ("PATH", "HOME", "PYTHONPATH", "LANG", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep}


def test_every_example_validates_out_of_the_box() -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        result = subprocess.run(
            [sys.executable, "-m", "sluicegate", "config", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_an_unset_variable_is_named_first(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "services: [{name: m, provider: mock}]\n"
        "rules: [{name: chat, targets: [{service: m}]}]\n"
        'consumers: [{name: a, keys: ["${SG_TEST_UNSET_TEAM_KEY}"]}]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 1
    assert (
        "consumers[0].keys[0]: environment variable SG_TEST_UNSET_TEAM_KEY is not set"
        in result.stderr
    ), result.stderr


def test_validate_reports_yaml_syntax_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: [\n  {name: x\n")
    result = run("config", "validate", str(broken))
    assert result.returncode == 1
    assert "invalid YAML" in result.stderr
    result = run("config", "validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "cannot read the file" in result.stderr


def test_serve_refuses_a_bad_config_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = run("serve", "--config", str(bad))
    assert result.returncode != 0
    assert "unknown service 'claud'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_quickstart_answers_and_port_override_wins() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sluicegate",
            "serve",
            "--config",
            str(QUICKSTART),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SLUICEGATE_DEMO_KEY": "sk-demo-cli-test-1"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            headers={"Authorization": "Bearer sk-demo-cli-test-1"},
            json={
                "model": "demo-model",
                "stream": True,
                "messages": [{"role": "user", "content": "hi there"}],
            },
        ) as response:
            assert response.status_code == 200
            body = response.read()
        assert b"data: [DONE]" in body
        assert b'"content":" there"' in body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "Admin API and dashboard are off" in err
    assert f"http://127.0.0.1:{port}" in err


def test_serve_with_two_workers() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sluicegate",
            "serve",
            "--config",
            str(QUICKSTART),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SLUICEGATE_DEMO_KEY": "sk-demo-cli-test-2"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        for _ in range(4):
            response = httpx.post(
                url + "/v1/chat/completions",
                headers={"Authorization": "Bearer sk-demo-cli-test-2"},
                json={
                    "model": "demo-model",
                    "messages": [{"role": "user", "content": "two workers"}],
                },
            )
            assert response.json()["choices"][0]["message"]["content"] == "mock: two workers"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "(2 workers)" in err
