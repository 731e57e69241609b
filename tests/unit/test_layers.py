"""The running config with a store: the file's own sections survive next to the store's entities."""

from __future__ import annotations

from sluicegate.admin.layers import build
from sluicegate.config.load import parse_config
from sluicegate.stores.secrets import Vault
from sluicegate.telemetry.usage import TokenCounts


def test_pricing_telemetry_and_audit_come_from_the_file() -> None:
    file = parse_config(
        {
            "gateway": {"store": "sqlite:///unused.db"},
            "pricing": {"my-model": {"input": 1_000_000, "output": 0}},
            "telemetry": {"service_name": "edge-gw"},
            "audit": {"batch_size": 7},
            "services": [{"name": "demo", "provider": "mock"}],
            "rules": [{"name": "r", "targets": [{"service": "demo"}]}],
        },
        env={},
    )
    built = build(file, [], Vault(None))
    assert built.table.prices.cost("my-model", TokenCounts(input=3)) == 3.0
    assert built.loaded.config.telemetry.service_name == "edge-gw"
    assert built.loaded.config.audit.batch_size == 7
