"""Every ``bash`` block of docs/admin-api.md runs, in order, against a real gateway."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.fakes.gateway import RunningGateway

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "adm-docs-key-0001"
# Any answer of 400 or above fails the block, as does any failing command.
PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'


def test_the_curl_examples_run(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.skip("curl and jq run the examples")
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", Fernet.generate_key().decode())
    gateway = start_gateway(
        {"gateway": {"admin_key": ADMIN_KEY, "store": f"sqlite:///{tmp_path / 'docs.db'}"}}
    )
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / "admin-api.md").read_text(), re.S)
    assert len(blocks) >= 5
    env = {**os.environ, "GW": gateway.url, "ADMIN_KEY": ADMIN_KEY}
    for block in blocks:
        done = subprocess.run(
            ["bash", "-c", PRELUDE + block], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
        assert "pool-secret" not in done.stdout and "sk-team-b-0123456789" not in done.stdout
        if "/v1/chat/completions" in block:
            assert "mock: Hello" in done.stdout  # the rule created above routes at once
    assert gateway.runtime.table.describe()["rules"] == []
