"""An upstream target's URL holds no credential: it is shown in ``/metrics``
(``sluicegate_upstream_healthy{target=…}``), in the Admin API's health view and in
spans, so a password or a query there would be shown with it. Such a URL is refused
at load (and by the Admin API) with a message that says where credentials go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.config.load import parse_config
from sluicegate.errors import ConfigError
from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway, free_port

ADMIN_KEY = "adm-target-urls-0001"
SECRET = "pool-password-0001"


def _config(url: str, store: str | None = None) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, **({"store": store} if store else {})},
        "upstreams": [{"name": "pool", "targets": [{"url": url}]}],
        "services": [
            {
                "name": "pooled",
                "type": "upstream",
                "provider": "openai-compatible",
                "upstream": "pool",
            }
        ],
        "rules": [{"name": "r", "targets": [{"service": "pooled", "model": "m"}]}],
        "consumers": [{"name": "c", "keys": [KEY]}],
    }


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{SECRET}@127.0.0.1:{free_port()}",
        f"http://127.0.0.1:{free_port()}?key={SECRET}",
        f"http://127.0.0.1:{free_port()}#{SECRET}",
    ],
)
def test_a_target_url_with_a_credential_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(url), env={})
    assert "credentials" in str(info.value)
    assert SECRET not in str(info.value)


def test_the_admin_api_refuses_one_too_and_metrics_show_targets_as_configured(
    tmp_path: Path,
) -> None:
    port = free_port()
    store = f"sqlite:///{tmp_path / 'store.db'}"
    gateway = RunningGateway(_config(f"http://127.0.0.1:{port}", store)).start()
    try:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        upstream = {"name": "leaky", "targets": [{"url": f"http://u:{SECRET}@127.0.0.1:{port}"}]}
        answer = httpx.post(gateway.url + "/admin/upstreams", json=upstream, headers=admin)
        metrics = httpx.get(gateway.url + "/metrics").text
        assert SECRET not in metrics
        assert answer.status_code == 422, answer.text
        assert SECRET not in answer.text
        assert f'target="http://127.0.0.1:{port}"' in metrics
        assert SECRET not in metrics
    finally:
        gateway.stop()


def test_an_endpoint_services_host_holds_no_credential(tmp_path: Path) -> None:
    """An endpoint service's host is part of its target's URL, which /metrics, the health
    view and each audit row's attempts show: a user and password written into it (which
    the HTTP client would send as basic auth) are refused, as a target URL's are."""
    port = free_port()
    store = f"sqlite:///{tmp_path / 'store.db'}"
    leaky = {
        "name": "leaky",
        "provider": "openai",
        "protocol": "http",
        "host": f"u:{SECRET}@127.0.0.1",
        "port": port,
    }
    config = _config(f"http://127.0.0.1:{port}", store)
    with pytest.raises(ConfigError) as info:
        parse_config({**config, "services": [*config["services"], leaky]}, env={})
    assert "credentials" in str(info.value) and SECRET not in str(info.value)
    gateway = RunningGateway(config).start()
    try:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        answer = httpx.post(gateway.url + "/admin/services", json=leaky, headers=admin)
        assert answer.status_code == 422, answer.text
        assert SECRET not in answer.text
        assert SECRET not in httpx.get(gateway.url + "/metrics").text
        assert SECRET not in httpx.get(gateway.url + "/admin/health", headers=admin).text
    finally:
        gateway.stop()
