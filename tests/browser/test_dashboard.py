"""The dashboard in real headless Chromium against a real gateway on loopback: log in,
watch the overview fill, mint a key and use it from the openai SDK, revoke it, find
the request in the logs, stream from the playground. Each page is photographed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.browser.conftest import Console, screenshot
from tests.conftest import finished, wait_finished
from tests.fakes.gateway import RunningGateway, free_port

ADMIN_KEY = "adm-dashboard-key-0001"
TEAM_KEY = "sk-dashboard-team-a-0001"
MODEL = "demo-model"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    folder = tmp_path_factory.mktemp("dashboard")
    config = {
        "gateway": {"admin_key": ADMIN_KEY, "store": f"sqlite:///{folder / 'store.db'}"},
        "audit": {"spill_path": str(folder / "spill.jsonl"), "flush_interval": "50ms"},
        "pricing": {MODEL: {"input": 2.0, "output": 8.0}},
        "upstreams": [
            {
                "name": "local-pool",
                "algorithm": "least-connections",
                "targets": [
                    {"url": f"http://127.0.0.1:{free_port()}", "weight": 3},
                    {"url": f"http://127.0.0.1:{free_port()}"},
                ],
                "tags": ["self-hosted"],
            }
        ],
        "services": [
            {"name": "demo", "provider": "mock", "tags": ["demo"]},
            {"name": "flaky", "provider": "mock", "mock_error_status": 503, "retries": 0},
            {
                "name": "local",
                "type": "upstream",
                "provider": "openai-compatible",
                "upstream": "local-pool",
                "tags": ["self-hosted"],
            },
        ],
        "rules": [
            {
                "name": "chat",
                "match": {"models": [MODEL]},
                "targets": [{"service": "demo", "weight": 9}, {"service": "demo", "weight": 1}],
                "fallbacks": [{"service": "local", "model": "llama-3.1-8b"}],
                "policies": {"rate_limit": {"requests": 1000, "window": "1m"}},
            },
            {
                "name": "flaky-chat",
                "match": {"models": ["flaky-model"]},
                "targets": [{"service": "flaky"}],
                "fallbacks": [{"service": "demo"}],
            },
        ],
        "consumers": [
            {"name": "team-a", "keys": [TEAM_KEY], "budget": {"usd": 5, "window": "30d"}}
        ],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def client(gateway: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{gateway.url}/v1", max_retries=0)


def log_in(page: Any, gateway: RunningGateway) -> None:
    page.goto(f"{gateway.url}/ui/")
    page.fill("#login-key", ADMIN_KEY)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()


def wait_for_audit(gateway: RunningGateway, request_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{gateway.url}/admin/logs",
            params={"request_id": request_id},
            headers={"x-api-key": ADMIN_KEY},
        )
        if answer.status_code == 200 and answer.json()["data"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} never reached the audit log")


def test_login_sets_a_strict_http_only_session(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    console, page = console_and_page
    page.goto(f"{gateway.url}/ui")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    screenshot(page, "login")
    # A wrong key: refused (the browser logs the 401 of that request, as it must).
    console.allowed.append("status of 401")
    page.fill("#login-key", "not-the-admin-key")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("wrong")
    assert page.context.cookies() == []

    log_in(page, gateway)
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui" and ADMIN_KEY not in cookie["value"]
    # The page's script cannot read the cookie.
    assert "sluicegate_ui" not in page.evaluate("document.cookie")
    # Log out ends the session; the same cookie no longer opens anything.
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    stale = httpx.get(
        f"{gateway.url}/ui/admin/consumers", cookies={cookie["name"]: cookie["value"]}
    )
    assert stale.status_code == 401


def test_overview_fills_after_requests(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    _, page = console_and_page
    log_in(page, gateway)
    summary = httpx.get(f"{gateway.url}/ui/api/summary", cookies=dict(_cookies(page))).json()
    before = summary["totals"]["requests"]
    sdk = client(gateway, TEAM_KEY)
    for i in range(5):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"hi {i}"}])
    page.goto(f"{gateway.url}/ui/#/overview")
    expected = str(int(before) + 5)
    expect(page.locator("[data-stat=requests]")).to_have_text(expected, timeout=10_000)
    expect(page.locator("[data-stat=cost]")).not_to_have_text("$0.00")
    expect(page.locator("[data-stat=p50]")).to_contain_text("ms")
    expect(page.locator("figure.chart")).to_have_count(5)
    expect(page.get_by_role("cell", name="team-a")).to_be_visible()
    expect(page.get_by_role("cell", name=MODEL)).to_be_visible()
    screenshot(page, "overview")
    # The day view answers too.
    page.get_by_role("button", name="Last day").click()
    expect(page.get_by_role("button", name="Last day")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-stat=requests]")).to_have_text(expected)


def test_overview_says_when_authentication_is_off(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    _, page = console_and_page
    log_in(page, gateway)
    page.goto(f"{gateway.url}/ui/#/overview")
    expect(page.locator("[data-stat=requests]")).to_be_visible()
    expect(page.locator("[data-stat=authentication]")).to_have_count(0)  # team-a needs its key
    page.context.clear_cookies()
    config = {
        "gateway": {"admin_key": ADMIN_KEY},
        "auth": "none",
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [{"name": "chat", "match": {"models": [MODEL]}, "targets": [{"service": "demo"}]}],
    }
    open_gateway = RunningGateway(config, keyless=False).start()
    try:
        log_in(page, open_gateway)
        page.goto(f"{open_gateway.url}/ui/#/overview")
        banner = page.locator("[data-stat=authentication]")
        expect(banner).to_contain_text("Authentication off")
        expect(banner).to_have_attribute("role", "status")
    finally:
        open_gateway.stop()


def _cookies(page: Any) -> list[tuple[str, str]]:
    return [(c["name"], c["value"]) for c in page.context.cookies()]


def test_services_upstreams_and_rules(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    _, page = console_and_page
    # A request that the failing service cannot answer and its fallback does.
    before = finished(gateway.url)
    answer = client(gateway, TEAM_KEY).chat.completions.with_raw_response.create(
        model="flaky-model", messages=[{"role": "user", "content": "still there?"}]
    )
    assert answer.headers["x-sluicegate-service"] == "demo"
    wait_finished(gateway.url, before + 1)
    log_in(page, gateway)
    page.click("nav >> text=Services")
    expect(page.locator("tr[data-service=demo]")).to_be_visible()
    flaky = page.locator("tr[data-service=flaky]")
    expect(flaky).to_contain_text("100 %")  # its one attempt failed
    expect(flaky).to_contain_text("healthy")  # one failure: not yet ejected
    expect(page.locator("tr[data-service=local]")).to_contain_text("2 of 2 targets up")
    expect(page.locator("tr[data-service=local]")).to_contain_text("upstream local-pool")
    targets = page.locator("#main table").nth(1)
    expect(targets.locator("tbody tr")).to_have_count(2)
    expect(targets).to_contain_text("healthy")
    screenshot(page, "services")
    page.fill("#tag-filter", "self-hosted")
    page.press("#tag-filter", "Enter")
    expect(page.locator("tr[data-service=demo]")).to_have_count(0)
    expect(page.locator("tr[data-service=local]")).to_be_visible()

    page.click("nav >> text=Rules")
    rule = page.locator("tr[data-rule=chat]")
    expect(rule).to_contain_text(MODEL)
    expect(rule).to_contain_text("90 %")  # the 9:1 split
    expect(rule).to_contain_text("1. local → llama-3.1-8b")
    expect(rule).to_contain_text("rate limit: 1000 requests / 1m per consumer")
    screenshot(page, "rules")


def test_rules_are_listed_in_the_order_requests_try_them(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    _, page = console_and_page
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = []
    # By name, "aa-last" would come first and "zz-first" last; by priority, the other way.
    for name, priority in (("zz-first", 10), ("aa-last", 500)):
        body = {
            "name": name,
            "priority": priority,
            "match": {"models": [f"{name}-model"]},
            "targets": [{"service": "demo"}],
        }
        created = httpx.post(f"{gateway.url}/admin/rules", json=body, headers=auth)
        assert created.status_code == 201, created.text
        made.append(name)
    try:
        log_in(page, gateway)
        page.click("nav >> text=Rules")
        rows = page.locator("tr[data-rule]")
        expect(rows).to_have_count(4)
        assert [rows.nth(i).get_attribute("data-rule") for i in range(4)] == [
            "zz-first",
            "chat",
            "flaky-chat",  # the file's, as listed, at the default priority
            "aa-last",
        ]
        expect(rows.nth(0).locator("td").nth(0)).to_have_text("1")
        expect(rows.nth(0).locator("td").nth(1)).to_have_text("10")
        expect(rows.nth(1).locator("td").nth(1)).to_have_text("100")
        expect(rows.nth(2).locator("td").nth(1)).to_have_text("100")
        expect(rows.nth(3).locator("td").nth(1)).to_have_text("500")
    finally:
        for name in made:
            httpx.delete(f"{gateway.url}/admin/rules/{name}", headers=auth)


def test_mint_use_revoke_and_find_in_logs(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    _, page = console_and_page
    log_in(page, gateway)
    page.click("nav >> text=Consumers")
    page.fill("#new-consumer", "team-ui")
    page.click("text=Create consumer")
    expect(page.locator("#consumer-detail h2").first).to_have_text("Consumer team-ui")
    page.fill("#key-name", "from-the-ui")
    page.select_option("#key-expires", "7d")
    page.click("text=Mint key")
    shown = page.locator("[data-new-key]")
    expect(shown).to_have_text(re.compile(r"^sg-[A-Za-z0-9_-]{43}$"))
    key = shown.inner_text()
    prefix = key[:11]
    row = page.locator(f"tr[data-key={prefix}]")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("from-the-ui")
    screenshot(page, "consumers")

    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "minted in a browser"}]
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "mock: minted in a browser"
    assert answer.usage is not None
    request_id = raw.headers["x-request-id"]

    revoke = row.get_by_role("button", name="Revoke")
    revoke.click()
    row.get_by_role("button", name="Confirm revoke").click()
    expect(page.locator(f"tr[data-key={prefix}]")).to_contain_text("revoked")
    with pytest.raises(openai.AuthenticationError) as refused:
        client(gateway, key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "after revoking"}]
        )
    assert refused.value.status_code == 401

    wait_for_audit(gateway, request_id)
    page.click("nav >> text=Logs")
    page.fill("#log-request-id", request_id)
    page.click("form[role=search] button[type=submit]")
    found = page.locator(f"tr[data-request-id='{request_id}']")
    expect(found).to_have_count(1)
    expect(page.locator("#main tbody tr")).to_have_count(1)
    expect(found).to_contain_text("team-ui")
    expect(found).to_contain_text("200")
    screenshot(page, "logs")
    found.get_by_role("button", name=request_id).click()
    detail = page.locator("#log-detail")
    expect(detail).to_be_visible()
    expect(detail.locator("[data-field=consumer]")).to_have_text("team-ui")
    expect(detail.locator("[data-field=key_prefix]")).to_have_text(prefix)
    expect(detail.locator("[data-field=attempts]")).to_have_text("1")
    expect(detail.locator("tr[data-attempt=demo]")).to_contain_text("2xx")
    expect(detail.locator("[data-field=output_tokens]")).to_have_text(
        str(answer.usage.completion_tokens)
    )
    screenshot(page, "log-detail")


def test_playground_streams_with_the_minted_key(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    _, page = console_and_page
    log_in(page, gateway)
    page.click("nav >> text=Consumers")
    page.locator("tr[data-consumer=team-a]").get_by_role("button", name="team-a").click()
    page.click("text=Mint key")
    expect(page.locator("[data-new-key]")).to_be_visible()
    page.click("nav >> text=Playground")
    expect(page.locator("#play-rule")).to_have_value("chat")
    expect(page.locator("#play-model")).to_have_value(MODEL)
    assert page.input_value("#play-key").startswith("sg-")  # the key just minted
    page.fill("#play-message", "stream me five words")
    page.click("text=Send")
    expect(page.locator("#play-output")).to_have_text("mock: stream me five words")
    expect(page.locator("#play-status")).to_contain_text(re.compile(r"HTTP 200, \d+ chunks"))
    chunks = int(re.findall(r"(\d+) chunks", page.inner_text("#play-status"))[0])
    assert chunks >= 5  # word by word, not one block
    headers = page.locator("#play-headers")
    expect(headers).to_contain_text("x-request-id")
    expect(headers).to_contain_text("text/event-stream")
    screenshot(page, "playground")


def test_phone_width_and_keyboard(gateway: RunningGateway, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    console = Console(page)
    try:
        page.goto(f"{gateway.url}/ui/")
        # Keyboard only: the login field has the focus, Enter sends it.
        expect(page.locator("#login-key")).to_be_focused()
        page.keyboard.type(ADMIN_KEY)
        page.keyboard.press("Enter")
        expect(page.locator("#nav")).to_be_visible()
        # From the top of a fresh load, Tab reaches the skip link first.
        page.reload()
        expect(page.locator("#nav")).to_be_visible()
        page.keyboard.press("Tab")
        expect(page.locator("a.skip")).to_be_focused()
        expect(page.locator("[data-stat=requests]")).to_be_visible()
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 390, f"the page is {wide}px wide on a 390px screen"
        page.evaluate("document.activeElement.blur()")
        screenshot(page, "overview-phone")
        page.locator("nav a[href='#/logs']").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#page h1")).to_have_text("Logs")
    finally:
        context.close()
    assert console.unexpected() == []


def test_artifacts_are_pngs() -> None:
    folder = Path(__file__).parent / "artifacts"
    if not folder.is_dir():
        pytest.skip("no browser test ran")
    for png in folder.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_the_docs_show_each_page() -> None:
    """docs/dashboard.md shows a screenshot of every page, and each picture exists."""
    root = Path(__file__).parents[2]
    text = (root / "docs" / "dashboard.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\((images/[^)]+)\)", text)
    pages = ["login", "overview", "services", "rules", "consumers", "mcp", "logs", "playground"]
    for page in pages:
        assert f"images/dashboard-{page}.png" in shown, page
    for picture in shown:
        assert (root / "docs" / picture).read_bytes()[:4] == b"\x89PNG", picture


def test_client_text_is_shown_as_text_never_run(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    """A client chooses the request id that its audit row keeps: markup in it must show as
    text on the Logs page and in the log's detail, never become elements or run."""
    _, page = console_and_page
    request_id = f"xss-{time.monotonic_ns()}-<img src=x onerror=window.__xss=1><b>bold</b>"
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {TEAM_KEY}", "x-request-id": request_id},
    )
    assert answer.status_code == 200
    wait_for_audit(gateway, request_id)
    log_in(page, gateway)
    page.click("nav >> text=Logs")
    page.fill("#log-request-id", request_id)
    page.click("form[role=search] button[type=submit]")
    found = page.locator(f"tr[data-request-id='{request_id}']")
    expect(found).to_contain_text("<img src=x onerror=window.__xss=1><b>bold</b>")
    found.get_by_role("button", name=request_id).click()
    expect(page.locator("#log-detail")).to_contain_text("<b>bold</b>")
    assert page.locator("#main img, #main b").count() == 0
    assert page.evaluate("window.__xss") is None
