"""PyJWT and cryptography stay out of a gateway that does not use them (docs/performance.md):
about 9 MB of each worker's memory."""

from __future__ import annotations

import subprocess
import sys

from cryptography.fernet import Fernet

PROBE = """
import sys
from sluicegate.app import create_app
from sluicegate.config.load import parse_config
from sluicegate.routing.compile import compile_config
from sluicegate.stores.secrets import Vault

config = {
    "services": [{"name": "mock", "provider": "mock"}],
    "rules": [{"name": "r", "targets": [{"service": "mock"}]}],
    "consumers": [{"name": "team", "keys": ["sk-test-lazy-0001"]}],
    "auth": %s,
}
compile_config(parse_config(config).config)
Vault.from_env(%r)
print(" ".join(m for m in ("jwt", "cryptography.fernet") if m in sys.modules))
"""


def loaded(auth: str = "{}", master_key: str = "") -> set[str]:
    env = {"SLUICEGATE_MASTER_KEY": master_key} if master_key else {}
    code = PROBE % (auth, env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_a_config_without_jwt_or_a_master_key_loads_neither() -> None:
    assert loaded() == set()


def test_auth_jwt_loads_pyjwt() -> None:
    assert "jwt" in loaded('{"jwt": {"secret": "a-shared-secret-of-32-characters"}}')


def test_a_master_key_loads_fernet() -> None:
    assert loaded(master_key=Fernet.generate_key().decode()) == {"cryptography.fernet"}
