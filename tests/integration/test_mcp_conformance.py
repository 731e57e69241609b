"""The official MCP conformance suite against ``/mcp/{server}`` in front of the reference
"everything" server, and against that server directly: the gateway must fail exactly
the scenarios the server fails on its own (tests/mcp_conformance/expected-failures.yml),
and besides them only those it fails on purpose, each with its reason
(tests/mcp_conformance/gateway-differences.yml)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fakes.gateway import RunningGateway, free_port

SUITE = Path(__file__).resolve().parents[1] / "mcp_conformance"
CONFORMANCE = SUITE / "node_modules" / ".bin" / "conformance"
EVERYTHING = SUITE / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist"
_TOTAL = re.compile(r"^Total: (\d+) passed, (\d+) failed", re.M)
_SCENARIO = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed", re.M)

pytestmark = pytest.mark.skipif(
    not CONFORMANCE.exists() and not os.environ.get("CI"),
    reason="scripts/ensure-mcp-conformance.sh installs the MCP conformance suite (npm)",
)


@pytest.fixture(scope="module")
def everything() -> Iterator[str]:
    port = free_port()
    node = shutil.which("node") or "node"
    proc = subprocess.Popen(
        [node, str(EVERYTHING / "index.js"), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the everything server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.kill()
    proc.wait(10)


def differences() -> list[str]:
    return list(yaml.safe_load((SUITE / "gateway-differences.yml").read_text())["server"])


def run_suite(
    url: str, out: Path, expected: Path = SUITE / "expected-failures.yml"
) -> tuple[int, str]:
    done = subprocess.run(
        [
            str(CONFORMANCE),
            "server",
            "--url",
            url,
            "--expected-failures",
            str(expected),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=SUITE,
    )
    return done.returncode, done.stdout + done.stderr


def summary(text: str) -> tuple[tuple[int, int], dict[str, bool]]:
    total = _TOTAL.search(text)
    assert total is not None, text[-2000:]
    scenarios = {m[2]: m[1] == "✓" for m in _SCENARIO.finditer(text)}
    return (int(total[1]), int(total[2])), scenarios


def test_the_gateway_fails_only_what_the_reference_server_fails(
    everything: str, tmp_path: Path
) -> None:
    baseline = yaml.safe_load((SUITE / "expected-failures.yml").read_text())["server"]
    expected = tmp_path / "gateway-expected.yml"
    expected.write_text(yaml.safe_dump({"server": [*baseline, *differences()]}))
    gateway = RunningGateway({"mcp_servers": [{"name": "everything", "url": everything}]})
    gateway.start()
    try:
        url = f"{gateway.url}/mcp/everything"
        through_code, through = run_suite(url, tmp_path / "gateway", expected)
    finally:
        gateway.stop()
    direct_code, direct = run_suite(everything, tmp_path / "direct")
    (passed, failed), scenarios = summary(through)
    (direct_passed, direct_failed), direct_scenarios = summary(direct)
    print(
        f"MCP conformance: gateway {passed} passed, {failed} failed; "
        f"everything server directly {direct_passed} passed, {direct_failed} failed"
    )
    assert direct_code == 0, direct[-3000:]  # the baseline is the reference server's
    assert through_code == 0, through[-3000:]  # no failure the baseline does not list
    apart = differences()
    assert all(not scenarios[n] and direct_scenarios[n] for n in apart)
    assert {n: ok for n, ok in scenarios.items() if n not in apart} == {
        n: ok for n, ok in direct_scenarios.items() if n not in apart
    }
    assert failed == direct_failed + len(apart)
    assert len(scenarios) >= 30
