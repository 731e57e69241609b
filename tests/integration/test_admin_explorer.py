"""``/admin/docs``: Swagger UI served by the gateway, behind the admin key, with no CDN."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-explorer-key-0001"


def test_the_explorer_is_served_locally_behind_the_admin_key(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
) -> None:
    gateway = start_gateway({"gateway": {"admin_key": ADMIN_KEY}})
    url = gateway.url + "/admin/docs"
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic realm=")
    assert httpx.get(url + "/swagger-ui-bundle.js").status_code == 401
    assert httpx.get(url, auth=("admin", "wrong-key")).status_code == 401

    page = httpx.get(url, auth=("anyone", ADMIN_KEY))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    # Everything the page loads comes from the gateway itself.
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    loaded = re.findall(r"(?:src|href)=\"(/admin/docs/[^\"]+)\"", page.text)
    assert len(loaded) == 4
    for path in loaded:
        answer = httpx.get(gateway.url + path, auth=("", ADMIN_KEY))
        assert answer.status_code == 200 and answer.content, path
    script = httpx.get(url + "/explorer.js", auth=("", ADMIN_KEY)).text
    assert '"/admin/openapi.json"' in script and "validatorUrl: null" in script
    # The browser's Basic credentials open the rest of the Admin API too.
    spec = httpx.get(gateway.url + "/admin/openapi.json", auth=("", ADMIN_KEY))
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.1")
    assert httpx.get(url + "/swagger-editor.js", auth=("", ADMIN_KEY)).status_code == 404
    assert httpx.get(url + "/..%2Fpyproject.toml", auth=("", ADMIN_KEY)).status_code == 404


def test_no_admin_key_no_explorer(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
) -> None:
    gateway = start_gateway({})
    assert httpx.get(gateway.url + "/admin/docs").status_code == 404
