"""Session policy in Chromium: the idle warning and timeout, and concurrent-session eviction."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/dashboard/")


def test_it_warns_before_the_idle_timeout_and_signs_out_after_it(page: Any, settings: Settings) -> None:
    settings.CASPIX_SESSION_IDLE_SECONDS = {"privileged": 4, "standard": 4}
    settings.CASPIX_SESSION_WARNING_SECONDS = 2
    make_user("dana", roles=["manager"])
    sign_in(page, "dana")
    warning = page.locator("#idle-warning")
    assert warning.is_hidden()
    warning.wait_for(state="visible", timeout=5000)
    page.get_by_role("button", name="Stay signed in").click()
    warning.wait_for(state="hidden", timeout=3000)
    assert page.url.endswith("/dashboard/")  # kept alive
    page.wait_for_url(re.compile(r"/login/\?next=%2Fdashboard%2F$"), timeout=10000)
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in"


def test_it_ends_the_older_session_when_a_newer_one_goes_beyond_the_limit(
    browser: Any, live_server: Any, settings: Settings
) -> None:
    settings.CASPIX_SESSION_LIMIT = {"privileged": 1, "standard": 1}
    make_user("dana", roles=["manager"])
    first = browser.new_context(base_url=live_server.url).new_page()
    second = browser.new_context(base_url=live_server.url).new_page()
    try:
        sign_in(first, "dana")
        sign_in(second, "dana")
        first.reload()
        assert "/login/" in first.url
        second.reload()
        assert second.url.endswith("/dashboard/")
    finally:
        first.context.close()
        second.context.close()
