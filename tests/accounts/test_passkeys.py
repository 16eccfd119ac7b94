"""Passkeys (accounts/passkeys.py): registration, the second factor, step-up and the sign-in
without a password, each against genuine signed responses (tests/authenticator.py), with the
refusals the notes ask for: wrong origin, wrong relying party, user verification missing for a
privileged user, replayed challenge, stale counter, broken signature, another user's credential.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import passkeys
from accounts.models import Passkey, RecoveryDevice, Role, TOTPDevice, User
from accounts.sessions import REGISTERED
from caspix.access import STEP_UP_SESSION_KEY
from tests.authenticator import SoftAuthenticator
from tests.conftest import client_for
from tests.factories import make_user
from tests.recorded import events, names

pytestmark = pytest.mark.django_db

REGISTER_BEGIN = "/account/passkeys/begin/"
REGISTER_COMPLETE = "/account/passkeys/complete/"
AUTH_BEGIN = "/login/passkey/begin/"
AUTH_COMPLETE = "/login/passkey/complete/"


def post(client: Client, url: str, body: object = None) -> Any:
    return client.post(url, json.dumps(body if body is not None else {}), content_type="application/json")


def register(client: Client, key: SoftAuthenticator, *, name: str = "Desk key", **answer: Any) -> Any:
    options = post(client, REGISTER_BEGIN).json()
    return post(client, f"{REGISTER_COMPLETE}?name={name}", key.register(options, **answer))


def authenticate(client: Client, key: SoftAuthenticator, *, next_url: str = "", **answer: Any) -> Any:
    options = post(client, AUTH_BEGIN).json()
    suffix = f"?next={next_url}" if next_url else ""
    return post(client, AUTH_COMPLETE + suffix, key.assertion(options, **answer))


def enrolled(user: User, *, verifying: bool = True) -> SoftAuthenticator:
    """A passkey registered for ``user`` through the endpoints, as their own first factor."""
    key = SoftAuthenticator(user_verifying=verifying)
    response = register(client_for(user, verified=False), key)
    assert response.status_code == 200, response.content
    return key


def passkey_session(user: User, key: SoftAuthenticator) -> Client:
    """Signed in with the password, then the passkey: a fresh factor, and no other created."""
    client = client_for(user, verified=False)
    assert authenticate(client, key).status_code == 200
    return client


# --- registration -------------------------------------------------------------------------------


def test_a_first_passkey_completes_the_sign_in_and_comes_with_recovery_codes() -> None:
    user = make_user("ana", roles=["analyst"])
    client = client_for(user, verified=False)
    assert client.get("/")["Location"].startswith("/login/enrol/")  # nothing but enrolment before
    key = SoftAuthenticator()
    options = post(client, REGISTER_BEGIN).json()
    assert options["rp"] == {"id": "localhost", "name": "Caspix"}
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    response = post(client, f"{REGISTER_COMPLETE}?name=Desk key", key.register(options))
    assert response.status_code == 200
    body = response.json()
    assert len(body["recovery_codes"]) == 10
    passkey = Passkey.objects.get(user=user)
    assert (passkey.name, passkey.confirmed, passkey.discoverable) == ("Desk key", True, True)
    assert names()[-2:] == ["FACTOR_ADDED", "RECOVERY_CODES_ISSUED"]
    assert events()[-2]["after"] == {"factor": "passkey", "device": passkey.persistent_id, "user_verified": True}
    assert client.get("/account/sessions/").status_code == 200  # signed in, and the session registered
    assert client.session[REGISTERED]


def test_a_privileged_user_registers_only_with_user_verification() -> None:
    lead = make_user("lena", roles=["lead"])
    client = client_for(lead, verified=False)
    options = post(client, REGISTER_BEGIN).json()
    assert options["authenticatorSelection"]["userVerification"] == "required"
    response = post(client, REGISTER_COMPLETE, SoftAuthenticator(user_verifying=False).register(options))
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_registration_response"
    assert not Passkey.objects.exists()
    assert events()[-1]["name"] == "SECOND_FACTOR_FAILED"
    assert events()[-1]["reason"] == "enrolment"
    assert events()[-1]["after"] == {"factor": "passkey", "refusal": "invalid_registration_response"}
    assert register(client, SoftAuthenticator()).status_code == 200  # with verification it is taken
    assert events()[-2]["after"]["user_verified"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"origin": "https://caspix.evil.example"}, "invalid_registration_response"),
        ({"origin": "http://localhost:8001"}, "invalid_registration_response"),
        ({"rp_id": "evil.example"}, "invalid_registration_response"),
    ],
)
def test_it_refuses_a_registration_for_another_site(answer: dict[str, str], code: str) -> None:
    client = client_for(make_user("ana", roles=["analyst"]), verified=False)
    response = register(client, SoftAuthenticator(), **answer)
    assert (response.status_code, response.json()["code"]) == (422, code)
    assert not Passkey.objects.exists()


def test_a_registration_is_completed_once() -> None:
    client = client_for(make_user("ana", roles=["analyst"]), verified=False)
    key = SoftAuthenticator()
    answer = key.register(post(client, REGISTER_BEGIN).json())
    assert post(client, REGISTER_COMPLETE, answer).status_code == 200
    again = post(client, REGISTER_COMPLETE, answer)
    assert (again.status_code, again.json()["code"]) == (400, "invalid_state")
    assert Passkey.objects.count() == 1


def test_adding_a_passkey_beside_another_factor_needs_a_fresh_one() -> None:
    user = make_user("ana", roles=["analyst"])
    TOTPDevice.objects.create(user=user, name="App", confirmed=True)
    unverified = post(client_for(user, verified=False), REGISTER_BEGIN)
    assert (unverified.status_code, unverified.json()["code"]) == (403, "user_not_verified")
    client = client_for(user)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time() - 3600
    session.save()
    stale = post(client, REGISTER_BEGIN)
    assert (stale.status_code, stale.json()["code"]) == (403, "step_up_required")
    fresh = client_for(user)
    response = register(fresh, SoftAuthenticator())
    assert response.status_code == 200
    assert response.json()["recovery_codes"] == []  # not the first factor: the codes stay as they are
    assert names()[-1] == "FACTOR_ADDED"


def test_it_caps_the_passkeys_of_one_user() -> None:
    user = make_user("ana", roles=["analyst"])
    for _ in range(passkeys.MAX_PASSKEYS):
        register(client_for(user), SoftAuthenticator())
    refused = post(client_for(user), REGISTER_BEGIN)
    assert (refused.status_code, refused.json()["code"]) == (403, "too_many_passkeys")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'"text"',
        b"{}",
        b'{"id": 1, "rawId": null, "response": "x"}',
        (
            b'{"id": "AA", "rawId": "!!!", "type": "public-key", '
            b'"response": {"clientDataJSON": "%%", "attestationObject": "%%"}}'
        ),
    ],
)
def test_a_malformed_registration_is_a_clear_refusal_never_a_500(body: bytes) -> None:
    client = client_for(make_user("ana", roles=["analyst"]), verified=False)
    post(client, REGISTER_BEGIN)
    response = client.post(REGISTER_COMPLETE, body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]
    assert not Passkey.objects.exists()


GARBAGE = [
    b"not json",
    b"[]",
    b"{}",
    b'{"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}',
    b'{"id": "AA", "rawId": "!!", "type": "public-key", "response": {"clientDataJSON": 5, "signature": []}}',
]


@pytest.mark.parametrize("body", GARBAGE)
@pytest.mark.parametrize("signed_in", [False, True])
def test_a_malformed_assertion_is_a_clear_refusal_never_a_500(body: bytes, signed_in: bool) -> None:
    user = make_user("ana", roles=["analyst"])
    enrolled(user)
    client = client_for(user, verified=False) if signed_in else Client()
    post(client, AUTH_BEGIN)
    response = client.post(AUTH_COMPLETE, body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]
    assert events()[-1]["name"] == ("SECOND_FACTOR_FAILED" if signed_in else "SIGN_IN_FAILED")


# --- the second factor and step-up --------------------------------------------------------------


def test_a_passkey_is_the_second_factor_after_the_password() -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    client = client_for(user, verified=False)
    assert client.get("/work/")["Location"].startswith("/login/verify/")
    options = post(client, AUTH_BEGIN).json()
    assert options["userVerification"] == "discouraged"  # a second factor: the password came first
    assert [c["id"] for c in options["allowCredentials"]] == [key.assertion(options)["id"]]
    response = post(client, f"{AUTH_COMPLETE}?next=/work/", key.assertion(options))
    assert response.status_code == 200
    assert response.json()["redirect_url"] == "/work/"
    assert client.get("/work/").status_code == 200
    assert events()[-1]["name"] == "SECOND_FACTOR_VERIFIED"
    assert events()[-1]["reason"] == "sign-in"
    assert events()[-1]["after"]["factor"] == "passkey"  # type: ignore[index]
    assert client.session[REGISTERED]


def test_the_verify_page_offers_the_passkey_and_no_code_form_without_a_code_factor() -> None:
    user = make_user("ana", roles=["analyst"])
    enrolled(user)
    RecoveryDevice.objects.filter(user=user).delete()
    page = client_for(user, verified=False).get("/login/verify/").content.decode()
    assert "Use your passkey" in page
    assert 'name="code"' not in page


def test_a_privileged_user_verifies_the_passkey_with_user_verification() -> None:
    lead = make_user("lena", roles=["lead"])
    key = enrolled(lead)
    client = client_for(lead, verified=False)
    options = post(client, AUTH_BEGIN).json()
    assert options["userVerification"] == "required"
    response = post(client, AUTH_COMPLETE, key.assertion(options, verified=False))
    assert (response.status_code, response.json()["code"]) == (422, "invalid_authentication_response")
    assert client.get("/work/").status_code == 302
    assert events()[-1]["name"] == "SECOND_FACTOR_FAILED"
    assert authenticate(client, key).status_code == 200


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        ({"origin": "https://caspix.evil.example"}, 422, "invalid_authentication_response"),
        ({"rp_id": "evil.example"}, 422, "invalid_authentication_response"),
        ({"tamper": True}, 422, "invalid_authentication_response"),
        ({"counter": 0}, 422, "invalid_authentication_response"),  # not above the last one: a clone
    ],
)
def test_it_refuses_a_bad_assertion_and_counts_it(answer: dict[str, Any], status: int, code: str) -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    authenticate(client_for(user, verified=False), key)  # the counter is now above zero
    client = client_for(user, verified=False)
    response = authenticate(client, key, **answer)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["detail"] == passkeys.GENERIC
    assert client.get("/work/").status_code == 302
    assert Passkey.objects.get(user=user).throttling_failure_count == 1
    assert events()[-1]["name"] == "SECOND_FACTOR_FAILED"
    assert events()[-1]["after"]["refusal"] == code  # type: ignore[index]
    assert authenticate(client, key).status_code == 200
    assert Passkey.objects.get(user=user).throttling_failure_count == 0  # a success starts the count again


def test_a_challenge_answers_once() -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    client = client_for(user, verified=False)
    answer = key.assertion(post(client, AUTH_BEGIN).json())
    assert post(client, AUTH_COMPLETE, answer).status_code == 200
    replayed = post(client_for(user, verified=False), AUTH_COMPLETE, answer)
    assert (replayed.status_code, replayed.json()["code"]) == (400, "invalid_state")
    other = client_for(user, verified=False)
    post(other, AUTH_BEGIN)  # a new challenge: the old answer does not fit it
    assert post(other, AUTH_COMPLETE, answer).status_code == 422


def test_another_users_passkey_is_refused() -> None:
    ana, ben = make_user("ana", roles=["analyst"]), make_user("ben", roles=["analyst"])
    enrolled(ana)
    bens_key = enrolled(ben)
    client = client_for(ana, verified=False)
    response = post(client, AUTH_COMPLETE, bens_key.assertion(post(client, AUTH_BEGIN).json()))
    assert (response.status_code, response.json()["code"]) == (403, "credential_user_mismatch")
    assert Passkey.objects.get(user=ben).throttling_failure_count == 0  # not ana's to wear down
    assert client.get("/work/").status_code == 302


def test_an_unknown_credential_is_refused() -> None:
    user = make_user("ana", roles=["analyst"])
    enrolled(user)
    client = client_for(user, verified=False)
    stranger = SoftAuthenticator()
    response = post(client, AUTH_COMPLETE, stranger.assertion(post(client, AUTH_BEGIN).json()))
    assert (response.status_code, response.json()["code"]) == (404, "credential_not_found")


def test_a_passkey_is_disabled_after_100_consecutive_failures(settings: Settings) -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    Passkey.objects.filter(user=user).update(throttling_failure_count=settings.CASPIX_FACTOR_MAX_FAILURES - 1)
    client = client_for(user, verified=False)
    assert authenticate(client, key, tamper=True).status_code == 422
    assert names()[-2:] == ["SECOND_FACTOR_FAILED", "FACTOR_DISABLED"]
    refused = authenticate(client, key)  # the right passkey, now disabled
    assert (refused.status_code, refused.json()["code"]) == (403, "credential_disabled")
    assert client.get("/work/").status_code == 302
    assert "disabled after repeated failures" in client_for(user).get("/account/factors/").content.decode()


def test_a_passkey_steps_the_session_up() -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    client = client_for(user)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time() - 3600
    session.save()
    assert authenticate(client, key).status_code == 200
    assert time.time() - client.session[STEP_UP_SESSION_KEY] < 5
    assert events()[-1]["reason"] == "step-up"


def test_a_signed_in_user_without_a_passkey_is_told_so() -> None:
    client = client_for(make_user("ana", roles=["analyst"]))
    response = post(client, AUTH_BEGIN)
    assert (response.status_code, response.json()["code"]) == (403, "no_passkey")


# --- a sign-in without a password ---------------------------------------------------------------


def test_an_analyst_signs_in_with_a_passkey_alone() -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    client = Client()
    options = post(client, AUTH_BEGIN).json()
    assert options["userVerification"] == "required"
    assert options.get("allowCredentials", []) == []  # nothing said about who might be here
    response = post(client, AUTH_COMPLETE, key.assertion(options))
    assert response.status_code == 200
    assert client.get("/work/").status_code == 200
    assert names()[-2:] == ["SIGNED_IN", "SECOND_FACTOR_VERIFIED"]
    assert events()[-2]["reason"] == "passkey"
    assert client.session[REGISTERED]


def test_a_sign_in_without_a_password_needs_user_verification() -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    client = Client()
    response = authenticate(client, key, verified=False)
    assert response.status_code == 422
    assert client.get("/work/").status_code == 302
    assert events()[-1]["name"] == "SIGN_IN_FAILED"
    assert events()[-1]["object"] == {"type": "user", "id": str(user.pk)}
    assert Passkey.objects.get(user=user).throttling_failure_count == 0  # anyone may send that: not counted


@pytest.mark.parametrize("role", ["lead", "admin"])
def test_a_role_that_does_not_allow_it_keeps_the_password(role: str) -> None:
    user = make_user("lena", roles=[role])
    key = enrolled(user)
    client = Client()
    response = authenticate(client, key)
    assert (response.status_code, response.json()["code"]) == (403, "passkey_sign_in_not_allowed")
    assert "use your password" in response.json()["detail"]
    assert "_auth_user_id" not in client.session
    assert events()[-1]["name"] == "SIGN_IN_FAILED"
    passkey = Passkey.objects.get(user=user)
    assert (passkey.last_used_at, passkey.sign_count) == (None, 0)  # a refused use is not a use


def test_one_role_that_does_not_allow_it_is_enough_to_refuse() -> None:
    Role.objects.create(slug="clerks", name="Clerks", passkey_sign_in=False)
    user = make_user("ana", roles=["analyst", "clerks"])
    key = enrolled(user)
    assert authenticate(Client(), key).json()["code"] == "passkey_sign_in_not_allowed"


def test_a_deactivated_user_cannot_sign_in_with_a_passkey() -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    client = Client()
    response = authenticate(client, key)
    assert (response.status_code, response.json()["code"]) == (403, "user_disabled")
    assert "_auth_user_id" not in client.session


def test_the_sign_in_without_a_password_can_be_switched_off(settings: Settings) -> None:
    settings.OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
    response = post(Client(), AUTH_BEGIN)
    assert (response.status_code, response.json()["code"]) == (403, "passwordless_login_disabled")
    assert "Sign in with a passkey" not in Client().get("/login/").content.decode()


def test_the_login_page_offers_the_passkey() -> None:
    page = Client().get("/login/").content.decode()
    assert "Sign in with a passkey" in page
    assert 'data-begin="/login/passkey/begin/"' in page


def test_a_refusal_is_logged_without_naming_anyone(caplog: pytest.LogCaptureFixture) -> None:
    user = make_user("ana", roles=["analyst"])
    key = enrolled(user)
    with caplog.at_level(logging.WARNING, logger="caspix.security"):
        authenticate(Client(), key, verified=False)
    messages = [r.getMessage() for r in caplog.records if r.name == "caspix.security"]
    assert messages == ["passkey ceremony refused: invalid_authentication_response"]
    assert all("ana" not in m and key.assertion({"challenge": "x"})["id"] not in m for m in messages)


# --- removal and the roles' policy --------------------------------------------------------------


def test_removing_the_last_passkey_takes_the_recovery_codes_with_it() -> None:
    user = make_user("mia", roles=["manager"])  # a role that does not require a factor
    client = passkey_session(user, enrolled(user))
    passkey = Passkey.objects.get(user=user)
    response = client.post(f"/account/passkeys/{passkey.pk}/remove/", {"reason": "lost it"})
    assert response.status_code == 302
    assert not Passkey.objects.filter(user=user).exists()
    assert not RecoveryDevice.objects.filter(user=user).exists()
    assert names()[-2:] == ["FACTOR_REMOVED", "FACTOR_REMOVED"]


def test_a_required_factor_is_not_removed_without_another() -> None:
    user = make_user("ana", roles=["analyst"])
    client = passkey_session(user, enrolled(user))
    passkey = Passkey.objects.get(user=user)
    client.post(f"/account/passkeys/{passkey.pk}/remove/", {"reason": "lost it"})
    assert Passkey.objects.filter(user=user).exists()
    TOTPDevice.objects.create(user=user, name="App", confirmed=True)
    client.post(f"/account/passkeys/{passkey.pk}/remove/", {"reason": "lost it"})
    assert not Passkey.objects.filter(user=user).exists()


def test_nobody_removes_another_users_passkey() -> None:
    owner = make_user("ana", roles=["analyst"])
    enrolled(owner)
    passkey = Passkey.objects.get(user=owner)
    client_for(make_user("ben", roles=["analyst"])).post(f"/account/passkeys/{passkey.pk}/remove/", {"reason": "x"})
    assert Passkey.objects.filter(pk=passkey.pk).exists()


def test_the_shipped_templates_decide_the_sign_in_without_a_password() -> None:
    allowed = dict(Role.objects.filter(builtin=True).values_list("slug", "passkey_sign_in"))
    assert allowed == {"admin": False, "lead": False, "analyst": True, "manager": True, "auditor": True}
