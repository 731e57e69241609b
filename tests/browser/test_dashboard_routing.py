"""The Rules page shows smart routing as it runs: a rule's strategy and routes, and for
each target its price, latency, health, load and share of the traffic, in real headless
Chromium against a gateway whose requests went through the rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Console, screenshot
from tests.conftest import finished, wait_finished
from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-dashboard-routing-0001"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    config = {
        "gateway": {"admin_key": ADMIN_KEY},
        "services": [
            {"name": "cheap", "provider": "mock"},
            {"name": "strong", "provider": "mock"},
            {"name": "down", "provider": "mock", "mock_error_status": 503, "retries": 0},
        ],
        "rules": [
            {
                "name": "auto",
                "match": {"models": ["auto"]},
                "strategy": "cheapest",
                "targets": [
                    {"service": "strong", "model": "gpt-4o"},
                    {"service": "cheap", "model": "gpt-4o-mini"},
                ],
                "routes": [
                    {
                        "name": "tools",
                        "when": {"has_tools": True},
                        "targets": [{"service": "down", "model": "gpt-4.1"}],
                    }
                ],
                "fallbacks": [{"service": "strong", "model": "gpt-4o"}],
            }
        ],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def test_the_rules_page_shows_each_targets_live_routing(
    gateway: RunningGateway, console_and_page: tuple[Console, Any]
) -> None:
    _, page = console_and_page
    before = finished(gateway.url)
    for _ in range(4):
        body = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}]}
        assert httpx.post(f"{gateway.url}/v1/chat/completions", json=body).status_code == 200
    wait_finished(gateway.url, before + 4)
    page.goto(f"{gateway.url}/ui/")
    page.fill("#login-key", ADMIN_KEY)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()
    page.click("nav >> text=Rules")
    rule = page.locator("tr[data-rule=auto]")
    expect(rule).to_contain_text("cheapest of:")
    expect(rule).to_contain_text("tools when has_tools: true → gpt-4.1")
    live = page.locator("#live-routing")
    cheap = live.locator("tr[data-target='auto:cheap/gpt-4o-mini']")
    expect(cheap).to_contain_text("100 %")
    expect(cheap).to_contain_text("healthy")
    expect(cheap).to_contain_text("$0.15 / $0.60")
    expect(cheap).to_contain_text(" ms")
    expect(cheap).to_contain_text("$0.0000")  # what its answers cost
    strong = live.locator("tr[data-target='auto:strong/gpt-4o']")
    expect(strong).to_contain_text("0 %")
    expect(strong).to_contain_text("default, fallback")
    expect(live.locator("tr[data-target='auto:down/gpt-4.1']")).to_contain_text("0 in flight")
    screenshot(page, "rules-routing")
