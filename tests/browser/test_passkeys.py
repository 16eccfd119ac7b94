"""Passkeys in Chromium, against its DevTools WebAuthn virtual authenticator.

The authenticator is Chromium's own (a resident-key CTAP2 device built into the browser, its
presence and verification simulated), so the whole ceremony runs as in production: passkey.js
asks the server for options, ``navigator.credentials`` signs with a real key, the server checks
the answer against the live server's origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from accounts.models import Passkey, User, UserSession
from tests.factories import PASSWORD, make_user
from tests.recorded import sequenced_and_pending

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def passkey_settings(live_server: Any, settings: Settings) -> None:
    """The live server's origin is the one a passkey is accepted from; it is reached as localhost
    (WebAuthn refuses an address as the relying party's id)."""
    assert live_server.url.startswith("http://localhost:"), live_server.url
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    settings.OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = True


@pytest.fixture
def console(page: Any) -> Iterator[list[str]]:
    """What the page logs (errors and warnings), shown with a failing test's output."""
    lines: list[str] = []
    page.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: lines.append(f"pageerror: {error}"))
    yield lines
    print("\n".join(lines))  # noqa: T201 (pytest shows it only for a failure)


def add_authenticator(page: Any, *, verified: bool = True, can_verify: bool = True) -> tuple[Any, str]:
    """Chromium's virtual authenticator on this tab: a platform one holding resident keys, which
    verifies the user (or, ``verified=False``, fails to; ``can_verify=False``, has no means to)
    without a prompt."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": can_verify,
                "isUserVerified": verified,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def credentials(cdp: Any, authenticator: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    return found


def sign_in_with_password(page: Any, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")


def enrol_passkey(page: Any, username: str, home: str, name: str = "Laptop") -> list[str]:
    """Sign in with the password, add a passkey as the first factor; the recovery codes shown."""
    sign_in_with_password(page, username)
    page.wait_for_url("**/login/enrol/**")
    page.get_by_label("Name of the passkey").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    recovery = page.locator("#passkey-recovery")
    recovery.wait_for(state="visible", timeout=10000)
    assert page.get_by_role("button", name="Add a passkey").is_hidden()
    assert page.get_by_role("button", name="Confirm the app").is_hidden()  # the codes alone on the page
    codes = [item.strip() for item in recovery.locator("#recovery-codes li").all_inner_texts()]
    continue_link = page.get_by_role("link", name="I have kept them: continue")
    assert continue_link.evaluate("link => link === document.activeElement")
    continue_link.click()
    page.wait_for_url(f"**{home}")
    return codes


def names_recorded() -> list[str]:
    return [str(event["name"]) for event in sequenced_and_pending()]


def signed_in(page: Any, path: str) -> bool:
    """Whether the browser's session reaches ``path`` (not sent to the login page)."""
    page.goto(path)
    return "/login/" not in page.url


def test_an_analyst_enrols_a_passkey_then_uses_it_as_the_second_factor(page: Any, console: list[str]) -> None:
    bob = make_user(username="bob", roles=["analyst"])
    cdp, authenticator = add_authenticator(page)
    codes = enrol_passkey(page, "bob", "/work/")
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert page.get_by_role("heading", level=1).inner_text() == "Work"
    passkey = Passkey.objects.get(user=bob)
    assert passkey.name == "Laptop"
    assert passkey.confirmed
    assert [c["isResidentCredential"] for c in credentials(cdp, authenticator)] == [True]

    sign_out(page)
    sign_in_with_password(page, "bob")
    page.wait_for_url("**/login/verify/**")
    use = page.get_by_role("button", name="Use your passkey")
    assert use.is_visible()
    use.click()
    page.wait_for_url("**/work/")
    assert page.get_by_role("heading", level=1).inner_text() == "Work"
    assert credentials(cdp, authenticator)[0]["signCount"] >= 1

    recorded = sequenced_and_pending()
    added = [e for e in recorded if e["name"] == "FACTOR_ADDED"]
    assert len(added) == 1
    assert added[0]["after"] == {"factor": "passkey", "device": passkey.persistent_id, "user_verified": True}
    verified = [e for e in recorded if e["name"] == "SECOND_FACTOR_VERIFIED"]
    assert [(e["reason"], e["after"]) for e in verified] == [
        ("sign-in", {"factor": "passkey", "device": passkey.persistent_id})
    ]
    assert [e["reason"] for e in recorded if e["name"] == "SIGNED_IN"] == ["password", "password"]
    # One registered session per completed sign-in (signing out leaves its row open: see the report).
    assert UserSession.objects.filter(user=bob).count() == 2
    assert not [line for line in console if line.startswith(("error", "pageerror"))]


def test_an_analyst_signs_in_with_a_passkey_alone(page: Any, console: list[str]) -> None:
    bob = make_user(username="bob", roles=["analyst"])
    add_authenticator(page)
    enrol_passkey(page, "bob", "/work/")
    sign_out(page)

    page.goto("/login/")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url("**/work/")
    assert page.get_by_role("heading", level=1).inner_text() == "Work"
    assert page.get_by_label("Username").count() == 0

    recorded = sequenced_and_pending()
    assert [e["reason"] for e in recorded if e["name"] == "SIGNED_IN"] == ["password", "passkey"]
    last = recorded[-2:]
    assert [e["name"] for e in last] == ["SIGNED_IN", "SECOND_FACTOR_VERIFIED"]
    assert all(e["object"] == {"type": "user", "id": str(bob.pk)} for e in last)
    assert last[1]["reason"] == "sign-in"
    assert UserSession.objects.filter(user=bob).count() == 2  # the enrolment's, the passkey's
    assert not [line for line in console if line.startswith(("error", "pageerror"))]


def test_a_lead_may_not_sign_in_with_a_passkey_alone(page: Any, console: list[str]) -> None:
    charlie = make_user(username="charlie", roles=["lead"])
    cdp, authenticator = add_authenticator(page)
    enrol_passkey(page, "charlie", "/work/")
    sign_out(page)
    signed_in_before = names_recorded().count("SIGNED_IN")
    sessions_before = UserSession.objects.filter(user=charlie).count()

    page.goto("/login/")
    with page.expect_response("**/login/passkey/complete/**") as answer:
        page.get_by_role("button", name="Sign in with a passkey").click()
    assert answer.value.status == 403
    assert answer.value.json()["code"] == "passkey_sign_in_not_allowed"
    status = page.locator("[data-passkey-status]")
    status.wait_for(state="visible")
    assert status.inner_text() == "Sign-in with a passkey alone is not open to this account: use your password."
    assert page.url.endswith("/login/")
    assert page.get_by_role("button", name="Sign in with a passkey").is_enabled()  # may try again

    assert not signed_in(page, "/work/")
    assert names_recorded().count("SIGNED_IN") == signed_in_before
    assert UserSession.objects.filter(user=charlie).count() == sessions_before
    refused = [e for e in sequenced_and_pending() if e["name"] == "SIGN_IN_FAILED"]
    assert [(e["reason"], e["object"], e["after"]) for e in refused] == [
        (
            "passkey",
            {"type": "user", "id": str(charlie.pk)},
            {"factor": "passkey", "refusal": "passkey_sign_in_not_allowed", "device": charlie_passkey(charlie)},
        )
    ]
    assert len(credentials(cdp, authenticator)) == 1


def charlie_passkey(user: User) -> str:
    return str(Passkey.objects.get(user=user).persistent_id)


def test_a_lead_may_not_enrol_a_passkey_that_does_not_verify_them(page: Any, console: list[str]) -> None:
    """Chromium itself refuses: the server asks for user verification, the authenticator fails it."""
    charlie = make_user(username="charlie", roles=["lead"])
    cdp, authenticator = add_authenticator(page, verified=False)
    completions: list[int] = []
    page.on("response", lambda r: completions.append(r.status) if "/passkeys/complete/" in r.url else None)
    sign_in_with_password(page, "charlie")
    page.wait_for_url("**/login/enrol/**")
    with page.expect_response("**/account/passkeys/begin/") as begun:
        page.get_by_role("button", name="Add a passkey").click()
    assert begun.value.json()["authenticatorSelection"]["userVerification"] == "required"
    status = page.locator("[data-passkey-status]")
    status.wait_for(state="visible", timeout=10000)
    assert status.inner_text() == "The passkey prompt was cancelled or timed out."  # NotAllowedError
    assert completions == []  # nothing reached the server
    assert page.get_by_role("button", name="Add a passkey").is_enabled()
    assert page.locator("#passkey-recovery").is_hidden()
    assert credentials(cdp, authenticator) == []
    assert not Passkey.objects.filter(user=charlie).exists()
    assert "FACTOR_ADDED" not in names_recorded()
    assert not signed_in(page, "/work/")


def test_the_server_refuses_a_lead_s_passkey_that_did_not_verify_them(page: Any, console: list[str]) -> None:
    """A page that asked for no verification (the options rewritten on their way to passkey.js)
    gets a credential without it, which the server refuses: it kept what it asked for."""
    charlie = make_user(username="charlie", roles=["lead"])
    cdp, authenticator = add_authenticator(page, verified=False, can_verify=False)

    def without_verification(route: Any) -> None:
        response = route.fetch()
        options = response.json()
        options["authenticatorSelection"]["userVerification"] = "discouraged"
        route.fulfill(response=response, json=options)

    page.route("**/account/passkeys/begin/", without_verification)
    sign_in_with_password(page, "charlie")
    page.wait_for_url("**/login/enrol/**")
    with page.expect_response("**/account/passkeys/complete/**", timeout=10000) as completed:
        page.get_by_role("button", name="Add a passkey").click()
    answer = completed.value
    print(f"the server answered {answer.status}: {answer.json()}")  # noqa: T201
    assert answer.status == 422
    assert answer.json()["detail"] == "The passkey was not accepted. Try again, or use another factor."
    status = page.locator("[data-passkey-status]")
    status.wait_for(state="visible")
    assert status.inner_text() == "The passkey was not accepted. Try again, or use another factor."
    assert page.locator("#passkey-recovery").is_hidden()
    assert len(credentials(cdp, authenticator)) == 1  # the authenticator made one; the server kept none
    assert not Passkey.objects.filter(user=charlie).exists()
    refused = [e for e in sequenced_and_pending() if e["name"] == "SECOND_FACTOR_FAILED"]
    assert [(e["reason"], e["after"]) for e in refused] == [
        ("enrolment", {"factor": "passkey", "refusal": answer.json()["code"]})
    ]
    assert "FACTOR_ADDED" not in names_recorded()
    assert not signed_in(page, "/work/")
