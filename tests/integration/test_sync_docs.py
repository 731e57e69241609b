"""The ``sh`` blocks of docs/admin-api.md (apply and export) run, in order, in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def test_the_apply_and_export_examples_run(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "admin-api.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "POOL_KEY": "pool-secret-0001",
        "TEAM_A_KEY": "sk-team-a-0123456789",
        "SLUICEGATE_MASTER_KEY": Fernet.generate_key().decode(),
    }
    outputs = []
    for block in blocks:
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    shown = re.search(r"prints\n\n```text\n(.*?)```", text, re.S)
    assert shown is not None
    printed = outputs[0].splitlines()
    for line in shown.group(1).splitlines():
        assert line == "..." or line in printed, line
    assert printed[-1] == "no changes"
    assert outputs[1].splitlines() == ["no changes"]
    exported = (tmp_path / "exported.yaml").read_text()
    assert "Bearer ${POOL_KEY}" in exported and "${TEAM_A_KEY}" in exported
    assert "pool-secret-0001" not in exported and "sk-team-a-0123456789" not in exported
