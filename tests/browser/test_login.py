"""Signing in through the real login page in Chromium."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from django_otp.oath import TOTP

from accounts.models import TOTPDevice
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def code_for(key: bytes) -> str:
    """The authenticator's code now, with at least 3 s of its 30 s step left: a privileged role's
    device accepts no code of a step already past (no tolerance), so a code read at the end of a
    step could expire between typing and verifying."""
    left = 30 - time.time() % 30
    if left < 3:
        time.sleep(left + 0.1)
    totp = TOTP(key)
    totp.time = time.time()
    return f"{totp.token():06d}"


def sign_in(page: Any, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_it_signs_in_with_an_authenticator_code(page: Any) -> None:
    bob = make_user(username="bob", roles=["analyst"])
    device = TOTPDevice.objects.create(user=bob, name="Phone", confirmed=True)
    page.goto("/work/")
    assert page.url.endswith("/login/?next=/work/")
    sign_in(page, "bob")
    page.wait_for_url("**/login/verify/**")
    page.get_by_role("textbox", name="Code").fill(code_for(device.bin_key))
    page.get_by_role("button", name="Verify").click()
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


def test_it_enrols_an_authenticator_at_the_first_sign_in(page: Any) -> None:
    make_user(username="bob", roles=["analyst"])
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto("/login/")
    sign_in(page, "bob")
    page.wait_for_url("**/login/enrol/**")
    assert page.locator(".qr svg").count() == 1
    assert console_errors == []  # the inline QR code breaks no CSP rule
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_role("textbox", name="Code").fill(code_for(key))
    page.get_by_role("button", name="Confirm the app").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Your recovery codes"
    assert page.locator("#recovery-codes li").count() == 10
    page.get_by_role("link", name="I have kept them: continue").click()
    page.wait_for_url("**/work/")


def test_it_keeps_a_wrong_password_on_the_login_page(page: Any) -> None:
    make_user(username="bob", roles=["analyst"])
    page.goto("/login/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert page.get_by_role("alert").inner_text().startswith("Your username and password did not match")
    assert page.url.endswith("/login/")


def test_it_signs_out(page: Any) -> None:
    make_user(username="erin", roles=["auditor"])
    page.goto("/login/")
    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/audit/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
