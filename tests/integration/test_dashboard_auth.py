"""``/ui`` without a browser: who may log in, what the session cookie opens, and what a
cross-site page or a missing CSRF token cannot do. (tests/browser drives the pages.)"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from tests.conftest import wait_finished
from tests.fakes.gateway import RunningGateway

Start = Callable[[dict[str, Any]], RunningGateway]
ADMIN_KEY = "adm-dashboard-auth-0001"
SECRET = "hs256-shared-secret-for-the-ui-tests-01"


def _config(tmp: Any, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"store": f"sqlite:///{tmp / 'store.db'}", **gateway},
        "audit": {"spill_path": str(tmp / "spill.jsonl")},
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [
            {"name": "chat", "match": {"models": ["chat"]}, "targets": [{"service": "demo"}]}
        ],
        "consumers": [{"name": "team-a", "keys": ["sk-dashboard-auth-01"]}],
    }


def _login(gateway: RunningGateway, key: str) -> tuple[httpx.Client, str]:
    session = httpx.Client(base_url=gateway.url)
    answer = session.post("/ui/api/login", json={"key": key})
    assert answer.status_code == 200, answer.text
    return session, answer.json()["csrf"]


def test_the_page_is_local_and_locked_down(start_gateway: Start, tmp_path: Any) -> None:
    gateway = start_gateway(_config(tmp_path, admin_key=ADMIN_KEY))
    page = httpx.get(gateway.url + "/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # Nothing from another origin; every file the page names is served.
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    for path in re.findall(r"(?:src|href)=\"(/ui/static/[^\"]+)\"", page.text):
        assert httpx.get(gateway.url + path).status_code == 200, path
    script = httpx.get(gateway.url + "/ui/static/js/main.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "http://" not in script.text and "https://" not in script.text
    for sneaky in ("/ui/static/../dashboard.py", "/ui/static/%2e%2e/session.py", "/ui/static/x"):
        assert httpx.get(gateway.url + sneaky).status_code == 404, sneaky
    assert httpx.get(gateway.url + "/ui", follow_redirects=False).headers["location"] == "/ui/"


def test_login_session_csrf_and_logout(start_gateway: Start, tmp_path: Any) -> None:
    gateway = start_gateway(_config(tmp_path, admin_key=ADMIN_KEY))
    url = gateway.url
    assert httpx.get(url + "/ui/api/session").json() == {"logged_in": False}
    assert httpx.get(url + "/ui/admin/consumers").status_code == 401
    assert httpx.get(url + "/ui/api/summary").status_code == 401
    wrong = httpx.post(url + "/ui/api/login", json={"key": ADMIN_KEY + "x"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert httpx.post(url + "/ui/api/login", content=b"{").status_code == 400
    # Another site cannot log a browser in.
    evil = {"origin": "https://evil.example"}
    cross_login = httpx.post(url + "/ui/api/login", json={"key": ADMIN_KEY}, headers=evil)
    assert cross_login.status_code == 403

    session, csrf = _login(gateway, ADMIN_KEY)
    cookie = session.cookies["sluicegate_ui"]
    assert ADMIN_KEY not in cookie
    raw = httpx.post(url + "/ui/api/login", json={"key": ADMIN_KEY}).headers["set-cookie"]
    assert "HttpOnly" in raw and "SameSite=strict" in raw and "Path=/ui" in raw
    assert "Secure" not in raw  # plain http here; behind https (X-Forwarded-Proto) it is set
    proxied = httpx.post(
        url + "/ui/api/login", json={"key": ADMIN_KEY}, headers={"x-forwarded-proto": "https"}
    )
    assert "Secure" in proxied.headers["set-cookie"]

    # Reads need the session only; the Admin API's answers come through unchanged.
    listed = session.get("/ui/admin/consumers")
    assert listed.status_code == 200 and listed.json()["data"][0]["name"] == "team-a"
    assert listed.headers["cache-control"] == "no-store"
    one = session.get("/ui/admin/consumers/team-a")
    direct = httpx.get(url + "/admin/consumers/team-a", headers={"x-api-key": ADMIN_KEY})
    assert one.headers["etag"] == direct.headers["etag"]
    assert session.get("/ui/admin/nope/x").json()["error"]["code"] == "unknown_path"
    # Writes need the CSRF token too, and a same-origin Origin when one is sent.
    body = {"name": "made-in-ui"}
    no_token = session.post("/ui/admin/consumers", json=body)
    assert no_token.status_code == 403 and no_token.json()["error"]["code"] == "csrf_failed"
    bad = session.post("/ui/admin/consumers", json=body, headers={"x-csrf-token": csrf + "x"})
    assert bad.status_code == 403
    cross = session.post("/ui/admin/consumers", json=body, headers={"x-csrf-token": csrf, **evil})
    assert cross.status_code == 403
    made = session.post("/ui/admin/consumers", json=body, headers={"x-csrf-token": csrf})
    assert made.status_code == 201 and made.json()["name"] == "made-in-ui"
    key = session.post(
        "/ui/admin/consumers/made-in-ui/keys", json={}, headers={"x-csrf-token": csrf}
    ).json()["key"]
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    assert httpx.post(url + "/v1/chat/completions", json=chat, headers=headers).status_code == 200
    wait_finished(url, 1)  # the overview's figures count it just after its answer

    # The cookie is no key for /admin itself.
    jar = {"sluicegate_ui": cookie}
    assert httpx.get(url + "/admin/consumers", cookies=jar).status_code == 401

    summary = session.get("/ui/api/summary?window=1d").json()
    assert summary["totals"]["requests"] >= 1 and summary["window"] == "1d"
    assert session.get("/ui/api/summary?window=1w").status_code == 400
    assert session.get("/ui/api/summary?gateway=nope").status_code == 404

    assert session.post("/ui/api/logout").status_code == 403  # a write: CSRF first
    assert session.post("/ui/api/logout", headers={"x-csrf-token": csrf}).status_code == 204
    assert httpx.get(url + "/ui/admin/consumers", cookies=jar).status_code == 401


def test_an_admin_token_logs_in_until_it_expires(start_gateway: Start, tmp_path: Any) -> None:
    config = _config(tmp_path)
    config["auth"] = {
        "jwt": {
            "secret": SECRET,
            "admin_claim": {"name": "role", "value": "admin"},
            "default_consumer": "team-a",
        }
    }
    gateway = start_gateway(config)
    now = int(time.time())
    admin = jwt.encode({"sub": "ops", "role": "admin", "exp": now + 600}, SECRET, "HS256")
    plain = jwt.encode({"sub": "ops", "exp": now + 600}, SECRET, "HS256")
    forged = jwt.encode({"sub": "ops", "role": "admin", "exp": now + 600}, "x" * 40, "HS256")
    login = gateway.url + "/ui/api/login"
    refused = httpx.post(login, json={"key": plain})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_claim_missing"
    assert httpx.post(login, json={"key": forged}).status_code == 401
    answer = httpx.post(login, json={"key": admin})
    assert answer.status_code == 200
    # The session ends with the token, not 8 hours later.
    assert answer.json()["expires_at"] <= now + 600
    max_age = int(re.findall(r"Max-Age=(\d+)", answer.headers["set-cookie"])[0])
    assert 500 < max_age <= 600
    cookies = {"sluicegate_ui": answer.cookies["sluicegate_ui"]}
    assert httpx.get(gateway.url + "/ui/admin/rules", cookies=cookies).status_code == 200


def test_no_admin_api_no_dashboard(start_gateway: Start, tmp_path: Any) -> None:
    gateway = start_gateway(_config(tmp_path))
    assert httpx.get(gateway.url + "/ui/").status_code == 404
    assert httpx.post(gateway.url + "/ui/api/login", json={"key": "x"}).status_code == 404
