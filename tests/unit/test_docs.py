"""Every config example in the README and docs/ is a config that loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sluicegate.config.load import parse_config
from sluicegate.routing.compile import compile_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
CONFIG_KEYS = {
    "gateway",
    "services",
    "rules",
    "upstreams",
    "consumers",
    "pricing",
    "telemetry",
    "audit",
    "auth",
    "gateways",
    "groups",
    "mcp_servers",
}


def examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for i, block in enumerate(BLOCK.findall(path.read_text())):
            found.append((f"{path.name}#{i}", block))
    return found


@pytest.mark.parametrize(("where", "block"), examples())
def test_example_config_loads(where: str, block: str) -> None:
    data = yaml.safe_load(block)
    assert isinstance(data, dict) and set(data) <= CONFIG_KEYS, where
    if "rules" not in data and "mcp_servers" not in data:
        return  # a fragment shown for one section only
    loaded = parse_config(data, env={})
    compile_config(loaded.config, loaded.warnings)


def test_examples_load() -> None:
    from sluicegate.config.load import load_config

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        load_config(path, env={"TEAM_A_KEY": "sk-team-a-example"})
