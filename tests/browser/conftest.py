"""Headless Chromium for the dashboard's tests: Debian's ``chromium`` driven by Playwright.

Playwright never downloads a browser here: it launches the system's Chromium by path.
Without Chromium or Playwright these tests skip, except in CI (``CI=true``), where
``make test`` has installed both and a missing one is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
DOC_IMAGES = Path(__file__).parents[2] / "docs" / "images"
# The flags the issue asks for: no sandbox (root in CI), no GPU, no calls home.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser tests: see scripts/ensure-chromium.sh)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    return os.environ.get("SLUICEGATE_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )


# Per module, not per session: while Playwright's sync API is open, its event loop runs
# on the main thread, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    path = chromium_path()
    if path is None:
        _unavailable("no chromium on PATH")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, args=FLAGS)
        yield launched
        launched.close()


class Console:
    """What the page said on its console and what it threw: a test asserts it stayed quiet."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _message(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture
def console_and_page(browser: Any) -> Iterator[tuple[Console, Any]]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    console = Console(page)
    yield console, page
    context.close()
    assert console.unexpected() == [], "the dashboard logged errors"


def screenshot(page: Any, name: str) -> Path:
    """A full-page PNG in tests/browser/artifacts/; with SLUICEGATE_DOC_SCREENSHOTS=1 also
    in docs/images/, where docs/dashboard.md shows it."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SLUICEGATE_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"dashboard-{name}.png")
    return path
