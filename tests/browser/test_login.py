"""Signing in through the real login page in Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_signs_in_through_the_login_page(page: Any) -> None:
    make_user(username="bob", roles=["analyst"])
    page.goto("/work/")
    assert page.url.endswith("/login/?next=/work/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/work/")
    assert page.get_by_role("heading", level=1).inner_text() == "Work"
    assert page.get_by_role("link", name="Work").get_attribute("aria-current") == "page"
    console_errors: list[str] = []

    def collect(message: Any) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.on("console", collect)
    page.reload()
    assert console_errors == []  # no CSP violation, no failed asset


def test_it_keeps_a_wrong_password_on_the_login_page(page: Any) -> None:
    make_user(username="bob", roles=["analyst"])
    page.goto("/login/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("Your username and password did not match")
    assert page.url.endswith("/login/")


def test_it_signs_out(page: Any) -> None:
    make_user(username="erin", roles=["auditor"])
    page.goto("/login/")
    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/audit/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
