"""Playwright driving Debian's Chromium against the app on a free port; screenshots on failure.

No browser is ever downloaded: Chromium comes from the machine (``CASPIX_CHROMIUM``, by default
``/usr/bin/chromium``) and is started with its background networking off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CASPIX_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _refuse(route: Any, seen: list[str]) -> None:
    seen.append(route.request.url)
    route.abort()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module.

    Playwright's sync API keeps an event loop in this thread while it runs, which Django takes
    for an async context; the ORM calls the tests and the database teardown make around it are
    still synchronous, so the check is lifted for the module's lifetime only.
    """
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (no browser is downloaded)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def allowed_origins() -> list[str]:
    """Origins besides the live server's that a test lets the page reach (a provider it runs on
    loopback): empty unless the test adds one."""
    return []


@pytest.fixture
def page(browser: Any, live_server: Any, allowed_origins: list[str], request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url)
    external: list[str] = []

    def elsewhere(route: Any) -> None:
        if any(route.request.url.startswith(origin + "/") for origin in allowed_origins):
            route.continue_()
        else:
            _refuse(route, external)

    context.route(re.compile(r"^(?!" + re.escape(live_server.url) + ").*"), elsewhere)
    page = context.new_page()
    yield page
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
    assert external == [], f"the page requested external URLs: {external}"
