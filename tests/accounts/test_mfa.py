"""Second factors end to end: enrolment, sign-in, replay, tolerance, recovery codes, disabling, the gate."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.hashers import identify_hasher
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils import timezone

import accounts.models
from accounts import mfa
from accounts.models import RecoveryCode, RecoveryDevice, Role, RoleAssignment, TOTPDevice, User
from tests.accounts.test_login import without_tokens
from tests.conftest import client_for
from tests.factories import PASSWORD
from tests.recorded import events, names
from tests.totp import STEP, code_at

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def wrong_code(device: TOTPDevice, at: float) -> str:
    """A code the device refuses at ``at`` whatever the tolerance."""
    near = {code_at(device, at + steps * STEP) for steps in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in near)


def authenticator(user: User, name: str = "Phone") -> TOTPDevice:
    device: TOTPDevice = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
    return device


def reload(device: TOTPDevice) -> TOTPDevice:
    fresh: TOTPDevice = TOTPDevice.objects.get(pk=device.pk)
    return fresh


def sign_in(user: User, next_url: str = "") -> Client:
    """The password step only, through the real page."""
    client = Client()
    data = {"username": user.username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    response = client.post(f"/login/?{urlencode({'next': next_url})}" if next_url else "/login/", data)
    assert response.status_code == 302
    return client


def submit(client: Client, device: TOTPDevice | RecoveryDevice, code: str, next_url: str = "/work/") -> Response:
    return client.post("/login/verify/", {"device": device.persistent_id, "code": code, "next": next_url})


def verify_url(next_url: str) -> str:
    return f"/login/verify/?{urlencode({'next': next_url})}"


def wait_out_throttling(device: TOTPDevice | RecoveryDevice) -> None:
    """As if the user took a few seconds before trying again (the throttle is 1 s, doubling)."""
    type(device).objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=10)
    )


def named(name: str) -> list[dict[str, object]]:
    return [event for event in events() if event["name"] == name]


def page(response: Response) -> str:
    return response.content.decode()


def listed_codes(response: Response) -> list[str]:
    block = re.search(r'<ul class="recovery-codes" id="recovery-codes">(.*?)</ul>', page(response), re.S)
    assert block is not None
    return re.findall(r"<li>([^<]+)</li>", block.group(1))


# --- enrolment at the first sign-in ---------------------------------------------------------------


def test_it_sends_a_first_sign_in_to_enrol_an_authenticator(analyst: User) -> None:
    client = Client()
    response = client.post("/login/", {"username": analyst.username, "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1] == ("/login/enrol/?next=%2F", 302)
    assert response.status_code == 200
    html = page(response)
    device = TOTPDevice.objects.get(user=analyst, confirmed=False)
    secret = device.base32_key()
    assert re.search(r'<div class="qr"[^>]*>\s*<svg', html), "the QR code is an inline SVG"
    assert "<img" not in html.split('class="qr"')[1].split("</div>")[0], "no image fetched from elsewhere"
    shown = re.search(r'<span class="secret" id="totp-secret">([^<]+)</span>', html)
    assert shown is not None
    assert shown.group(1).replace(" ", "") == secret
    assert shown.group(1) == " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def test_it_encodes_the_standard_otpauth_uri_for_the_app(analyst: User) -> None:
    device = TOTPDevice.objects.create(user=analyst, name="Phone", confirmed=False)
    secret = device.base32_key()
    assert device.provisioning_uri() == (
        f"otpauth://totp/Caspix%3Abob?secret={secret}&issuer=Caspix&digits=6&period=30"
    )


def test_it_replaces_an_abandoned_enrolment(analyst: User) -> None:
    client = sign_in(analyst)
    client.get("/login/enrol/")
    first = TOTPDevice.objects.get(user=analyst, confirmed=False)
    client.get("/login/enrol/")
    second = TOTPDevice.objects.get(user=analyst, confirmed=False)
    assert second.pk != first.pk
    assert second.key != first.key


def test_it_refuses_a_wrong_code_at_enrolment(analyst: User, clock: float) -> None:
    client = sign_in(analyst)
    client.get("/login/enrol/")
    device = TOTPDevice.objects.get(user=analyst, confirmed=False)
    response = client.post("/login/enrol/", {"code": wrong_code(device, clock), "next": "/"})
    assert response.status_code == 400
    assert "That code is not right" in page(response)
    assert not reload(device).confirmed
    failed = named("SECOND_FACTOR_FAILED")
    assert len(failed) == 1
    assert failed[0]["reason"] == "enrolment"
    assert failed[0]["actor"] == {"id": analyst.pk, "name": "bob", "role": "analyst"}
    assert failed[0]["after"] == {"factor": "authenticator app", "device": device.persistent_id}
    assert "FACTOR_ADDED" not in names()
    assert not RecoveryDevice.objects.filter(user=analyst).exists()
    assert client.get("/work/")["Location"] == "/login/enrol/?next=%2Fwork%2F"


def test_it_enrols_with_the_right_code_and_shows_ten_recovery_codes_once(analyst: User, clock: float) -> None:
    client = sign_in(analyst)
    client.get("/login/enrol/?next=/work/")
    device = TOTPDevice.objects.get(user=analyst, confirmed=False)
    assert client.post("/login/enrol/", {"code": wrong_code(device, clock)}).status_code == 400
    wait_out_throttling(device)
    before = client.session.session_key
    response = client.post("/login/enrol/", {"code": code_at(device, clock), "next": "/work/"})
    assert response.status_code == 200
    codes = listed_codes(response)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{5}-[A-Z2-9]{5}", code) for code in codes)
    assert 'href="/work/"' in page(response)
    assert reload(device).confirmed
    assert RecoveryCode.objects.filter(device__user=analyst, used_at__isnull=True).count() == 10
    assert names() == [
        "SIGNED_IN",
        "SECOND_FACTOR_FAILED",
        "FACTOR_ADDED",
        "RECOVERY_CODES_ISSUED",
    ]
    added, issued = named("FACTOR_ADDED")[0], named("RECOVERY_CODES_ISSUED")[0]
    assert added["after"] == {"factor": "authenticator app", "device": device.persistent_id}
    assert (issued["object"], issued["after"]) == (
        {"type": "user", "id": str(analyst.pk)},
        {"count": 10, "device": RecoveryDevice.objects.get(user=analyst).persistent_id},
    )
    assert client.session.session_key != before
    assert client.get("/work/").status_code == 200


def test_it_keeps_the_seed_encrypted_and_out_of_any_admin_site(analyst: User, clock: float) -> None:
    """django-otp's own TOTPDevice keeps the key in plain text and its admin can show it."""
    client = sign_in(analyst)
    client.get("/login/enrol/")
    device = TOTPDevice.objects.get(user=analyst, confirmed=False)
    client.post("/login/enrol/", {"code": code_at(device, clock)})
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM accounts_totpdevice WHERE id = %s", [device.pk])
        raw = bytes(cursor.fetchone()[0])
    secret = device.base32_key()
    assert device.key.encode() not in raw
    assert device.bin_key not in raw
    assert secret.encode() not in raw
    assert "django.contrib.admin" not in settings.INSTALLED_APPS
    assert not any(app.startswith("django_otp.plugins") for app in settings.INSTALLED_APPS)
    with pytest.raises(Resolver404):
        resolve("/admin/")


# --- signing in with an enrolled factor -----------------------------------------------------------


def test_it_asks_an_enrolled_user_for_the_factor_and_returns_to_next(analyst: User, clock: float) -> None:
    device = authenticator(analyst)
    client = Client()
    response = client.post("/login/?next=/work/", {"username": "bob", "password": PASSWORD, "next": "/work/"})
    assert response["Location"] == "/work/"
    assert client.get("/work/")["Location"] == verify_url("/work/")
    form = client.get(verify_url("/work/"))
    assert form.status_code == 200
    assert f'value="{device.persistent_id}"' in page(form)
    assert 'name="next" value="/work/"' in page(form)
    before = client.session.session_key
    response = submit(client, device, code_at(device, clock))
    assert response.status_code == 302
    assert response["Location"] == "/work/"
    assert client.session.session_key != before
    assert client.get("/work/").status_code == 200
    verified = named("SECOND_FACTOR_VERIFIED")
    assert len(verified) == 1
    assert verified[0]["reason"] == "sign-in"
    assert verified[0]["actor"] == {"id": analyst.pk, "name": "bob", "role": "analyst"}
    assert verified[0]["after"] == {"factor": "authenticator app", "device": device.persistent_id}


def test_it_refuses_a_code_used_once_already(analyst: User, clock: float) -> None:
    """ASVS 6.5.1: a time step's code is accepted once (django-otp's ``last_t``)."""
    device = authenticator(analyst)
    code = code_at(device, clock)
    assert submit(sign_in(analyst), device, code).status_code == 302
    other = sign_in(analyst)
    response = submit(other, device, code)
    assert response.status_code == 400
    assert "That code is not right, or has been used already." in page(response)
    assert other.get("/work/")["Location"] == verify_url("/work/")
    assert names().count("SECOND_FACTOR_FAILED") == 1


def test_it_refuses_a_code_older_than_the_last_one_accepted(analyst: User, clock: float) -> None:
    device = authenticator(analyst)
    assert submit(sign_in(analyst), device, code_at(device, clock)).status_code == 302
    # The previous step lies within an analyst's tolerance, but before the step already used.
    assert submit(sign_in(analyst), device, code_at(device, clock - STEP)).status_code == 400


def test_it_gives_a_privileged_tier_no_tolerance(lead: User, clock: float) -> None:
    """ASVS 6.5.5: a lead's code lives one 30 s step; the one before is refused."""
    device = authenticator(lead)
    assert device.tolerance == 1  # the device's own setting; the tier policy caps it
    assert reload(device).policy_tolerance() == 0
    response = submit(sign_in(lead), device, code_at(device, clock - STEP))
    assert response.status_code == 400
    wait_out_throttling(device)
    assert submit(sign_in(lead), device, code_at(device, clock)).status_code == 302


def test_it_gives_a_standard_tier_one_step_of_tolerance(analyst: User, clock: float) -> None:
    device = authenticator(analyst)
    assert reload(device).policy_tolerance() == 1
    assert submit(sign_in(analyst), device, code_at(device, clock - STEP)).status_code == 302


def test_it_gives_a_user_promoted_to_a_privileged_tier_no_tolerance(
    analyst: User, clock: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = authenticator(analyst)
    assert submit(sign_in(analyst), device, code_at(device, clock - STEP)).status_code == 302  # typed slowly
    RoleAssignment.objects.filter(user=analyst).delete()
    RoleAssignment.objects.create(user=analyst, role=Role.objects.get(slug="lead"))
    later = clock + STEP  # the next sign-in, a step later
    monkeypatch.setattr(accounts.models, "time", SimpleNamespace(time=lambda: later))
    assert reload(device).policy_tolerance() == 0
    assert submit(sign_in(analyst), device, code_at(device, later - STEP)).status_code == 400
    wait_out_throttling(device)
    assert submit(sign_in(analyst), device, code_at(device, later)).status_code == 302


def test_it_refuses_a_code_two_steps_old_even_to_a_standard_tier(analyst: User, clock: float) -> None:
    device = authenticator(analyst)
    assert submit(sign_in(analyst), device, code_at(device, clock - 2 * STEP)).status_code == 400


def test_it_throttles_after_a_failure(analyst: User, clock: float) -> None:
    """django-otp's throttling stays on: right after a failure even the right code waits."""
    device = authenticator(analyst)
    client = sign_in(analyst)
    assert submit(client, device, wrong_code(device, clock)).status_code == 400
    response = submit(client, device, code_at(device, clock))
    assert response.status_code == 400
    assert "Too many attempts: wait a moment before trying again." in page(response)
    assert reload(device).throttling_failure_count == 1  # a throttled attempt is not counted
    wait_out_throttling(device)
    assert submit(client, device, code_at(device, clock)).status_code == 302
    assert reload(device).throttling_failure_count == 0


def test_it_verifies_only_against_the_chosen_device(analyst: User, clock: float) -> None:
    """django-otp#110: a failure counts against the device chosen, never the user's others."""
    phone, tablet = authenticator(analyst, "Phone"), authenticator(analyst, "Tablet")
    client = sign_in(analyst)
    response = submit(client, phone, code_at(tablet, clock))  # the tablet's code, the phone chosen
    assert response.status_code == 400
    assert reload(phone).throttling_failure_count == 1
    assert reload(tablet).throttling_failure_count == 0
    assert reload(tablet).last_t == -1
    assert submit(client, tablet, code_at(tablet, clock)).status_code == 302


def test_it_refuses_another_users_device(analyst: User, lead: User, clock: float) -> None:
    authenticator(analyst)
    theirs = authenticator(lead)
    client = sign_in(analyst)
    response = submit(client, theirs, code_at(theirs, clock))
    assert response.status_code == 400
    assert reload(theirs).throttling_failure_count == 0
    assert reload(theirs).last_t == -1
    assert "SECOND_FACTOR_VERIFIED" not in names()
    assert client.get("/work/")["Location"] == verify_url("/work/")


def test_it_sends_a_user_with_no_factor_from_verify_to_enrol(analyst: User) -> None:
    assert sign_in(analyst).get("/login/verify/")["Location"] == "/login/enrol/"


# --- recovery codes -------------------------------------------------------------------------------


def enrolled_with_codes(user: User) -> tuple[TOTPDevice, RecoveryDevice, list[str]]:
    device = authenticator(user)
    codes = mfa.issue_recovery_codes(user, acting_user=user)
    return device, RecoveryDevice.objects.get(user=user), codes


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param(lambda code: code, id="as issued"),
        pytest.param(lambda code: code.lower(), id="lower case"),
        pytest.param(lambda code: code.replace("-", ""), id="without the dash"),
        pytest.param(lambda code: code.replace("-", "").lower(), id="lower case without the dash"),
        pytest.param(lambda code: f" {code.replace('-', ' ')} ", id="spaces"),
    ],
)
def test_it_accepts_a_recovery_code_once_and_only_once(analyst: User, typed: Callable[[str], str]) -> None:
    _, recovery, codes = enrolled_with_codes(analyst)
    client = sign_in(analyst)
    response = submit(client, recovery, typed(codes[0]))
    assert response.status_code == 302
    assert client.get("/work/").status_code == 200
    verified = named("SECOND_FACTOR_VERIFIED")
    assert verified[-1]["after"] == {"factor": "recovery code", "device": recovery.persistent_id}
    assert RecoveryCode.objects.filter(device=recovery, used_at__isnull=False).count() == 1
    again = sign_in(analyst)
    assert submit(again, recovery, codes[0]).status_code == 400
    assert again.get("/work/")["Location"] == verify_url("/work/")
    wait_out_throttling(recovery)
    assert submit(again, recovery, codes[1]).status_code == 302


def test_it_keeps_recovery_codes_only_as_password_hashes(analyst: User) -> None:
    _, recovery, codes = enrolled_with_codes(analyst)
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(c)::text FROM accounts_recoverycode c WHERE device_id = %s", [recovery.pk])
        rows = [row[0] for row in cursor.fetchall()]
    assert len(rows) == 10
    stored = "\n".join(rows).upper()
    for code in codes:
        bare = code.replace("-", "")
        assert code not in stored
        assert bare not in stored
        # Not a plain hash either: the secret part is hashed as a password is (ASVS 6.5.2).
        assert hashlib.sha256(bare.encode()).hexdigest().upper() not in stored
        assert hashlib.sha256(code.encode()).hexdigest().upper() not in stored
    digests = RecoveryCode.objects.filter(device=recovery).values_list("digest", flat=True)
    assert all(identify_hasher(digest).algorithm in ("argon2", "md5") for digest in digests)  # md5: tests only


def test_it_refuses_a_recovery_code_of_another_user(analyst: User, lead: User) -> None:
    enrolled_with_codes(analyst)
    _, their_recovery, their_codes = enrolled_with_codes(lead)
    mine = RecoveryDevice.objects.get(user=analyst)
    client = sign_in(analyst)
    assert submit(client, mine, their_codes[0]).status_code == 400
    assert submit(client, their_recovery, their_codes[0]).status_code == 400
    assert RecoveryCode.objects.filter(device=their_recovery, used_at__isnull=False).count() == 0


def test_it_replaces_the_recovery_codes_when_new_ones_are_issued(analyst: User) -> None:
    _, old_device, old_codes = enrolled_with_codes(analyst)
    response = client_for(analyst).post("/account/recovery-codes/")
    assert response.status_code == 200
    new_codes = listed_codes(response)
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    assert names()[-1] == "RECOVERY_CODES_ISSUED"
    assert not RecoveryDevice.objects.filter(pk=old_device.pk).exists()
    new_device = RecoveryDevice.objects.get(user=analyst)
    assert RecoveryCode.objects.filter(device__user=analyst).count() == 10
    client = sign_in(analyst)
    assert submit(client, new_device, old_codes[0]).status_code == 400
    wait_out_throttling(new_device)
    assert submit(client, new_device, new_codes[0]).status_code == 302


def test_it_issues_recovery_codes_to_their_owner_only(analyst: User, admin: User) -> None:
    with pytest.raises(ValidationError, match="owner only"):
        mfa.issue_recovery_codes(analyst, acting_user=admin)
    assert not RecoveryDevice.objects.filter(user=analyst).exists()


# --- disabled after too many failures -------------------------------------------------------------


def test_it_disables_a_factor_after_a_hundred_consecutive_failures(analyst: User, clock: float) -> None:
    """NIST SP 800-63B: at most 100 consecutive failures, then the factor is disabled, said once."""
    device = authenticator(analyst)
    assert settings.CASPIX_FACTOR_MAX_FAILURES == 100
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=99)
    client = sign_in(analyst)
    assert submit(client, device, wrong_code(device, clock)).status_code == 400
    assert reload(device).throttling_failure_count == 100
    disabled = named("FACTOR_DISABLED")
    assert len(disabled) == 1
    assert disabled[0]["reason"] == "100 consecutive failures"
    assert disabled[0]["object"] == {"type": "user", "id": str(analyst.pk)}
    assert disabled[0]["after"] == {"factor": "authenticator app", "device": device.persistent_id}
    wait_out_throttling(device)
    assert submit(client, device, wrong_code(device, clock)).status_code == 400
    wait_out_throttling(device)
    response = submit(client, device, code_at(device, clock))
    assert response.status_code == 400
    assert "This factor is disabled after too many failures" in page(response)
    assert names().count("FACTOR_DISABLED") == 1
    assert "SECOND_FACTOR_VERIFIED" not in names()
    assert client.get("/work/")["Location"] == verify_url("/work/")


def test_it_leaves_other_factors_usable_when_one_is_disabled(analyst: User, clock: float) -> None:
    device, recovery, codes = enrolled_with_codes(analyst)
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=100)
    client = sign_in(analyst)
    assert submit(client, recovery, codes[0]).status_code == 302


# --- the gate before the second factor ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/work/", "/work/?q=1", "/administration/", "/audit/", "/account/factors/"])
def test_it_lets_an_unverified_session_reach_only_verification(analyst: User, path: str) -> None:
    authenticator(analyst)
    client = client_for(analyst, verified=False)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == verify_url(path)


def test_it_tells_htmx_where_to_verify(analyst: User) -> None:
    authenticator(analyst)
    response = client_for(analyst, verified=False).get("/work/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == verify_url("/work/")


def test_it_keeps_verify_login_and_logout_open_to_an_unverified_session(analyst: User) -> None:
    authenticator(analyst)
    client = client_for(analyst, verified=False)
    assert client.get("/login/verify/").status_code == 200
    assert client.get("/login/")["Location"] == "/"  # signed in already: sent on, to the gate
    assert client.get("/login/enrol/")["Location"] == "/login/verify/?next=/login/enrol/"
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/work/")["Location"] == "/login/?next=/work/"


def test_it_lets_an_unverified_session_change_nothing(admin: User) -> None:
    authenticator(admin)
    client = client_for(admin, verified=False)
    response = client.post(
        "/administration/roles/new/",
        {"slug": "x", "name": "X", "description": "", "permissions": ["work_cases"], "reason": "r"},
    )
    assert response["Location"] == verify_url("/administration/roles/new/")
    assert names() == []


def test_it_sends_a_session_whose_roles_require_a_factor_to_enrol(analyst: User) -> None:
    response = client_for(analyst, verified=False).get("/work/")
    assert response["Location"] == "/login/enrol/?next=%2Fwork%2F"


def test_it_lets_a_manager_without_a_factor_in_on_the_password(manager: User) -> None:
    assert not Role.objects.get(slug="manager").mfa_required
    client = Client()
    response = client.post("/login/", {"username": manager.username, "password": PASSWORD}, follow=True)
    assert response.redirect_chain == [("/", 302), ("/dashboard/", 302)]
    assert response.status_code == 200


def test_it_asks_a_manager_who_enrolled_a_factor_for_it(manager: User, clock: float) -> None:
    device = authenticator(manager)
    client = sign_in(manager)
    assert client.get("/dashboard/")["Location"] == verify_url("/dashboard/")
    assert submit(client, device, code_at(device, clock), "/dashboard/")["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


# --- the password step and its ledger -------------------------------------------------------------


def test_it_records_a_password_sign_in(analyst: User) -> None:
    sign_in(analyst)
    assert names() == ["SIGNED_IN"]
    signed_in = events()[0]
    assert signed_in["actor"] == {"id": analyst.pk, "name": "bob", "role": "analyst"}
    assert signed_in["object"] == {"type": "user", "id": str(analyst.pk)}
    assert signed_in["reason"] == "password"


def test_it_records_a_failed_sign_in_naming_only_an_existing_account(analyst: User) -> None:
    known = Client().post("/login/", {"username": "bob", "password": "wrong password 123"})
    unknown = Client().post("/login/", {"username": "nobody-by-this-name", "password": "wrong password 123"})
    assert names() == ["SIGN_IN_FAILED", "SIGN_IN_FAILED"]
    named_account, no_account = events()
    assert named_account["actor"] == {"id": analyst.pk, "name": "bob", "role": "analyst"}
    assert named_account["object"] == {"type": "user", "id": str(analyst.pk)}
    assert no_account["actor"] == {"id": None, "name": "unknown account", "role": ""}
    assert no_account["object"] == {"type": "", "id": ""}
    assert "nobody-by-this-name" not in json.dumps(no_account)  # what was typed may be a password
    assert known.status_code == unknown.status_code == 200
    assert without_tokens(page(known)).replace('value="bob"', "X") == without_tokens(page(unknown)).replace(
        'value="nobody-by-this-name"', "X"
    )


def test_it_records_signing_out(analyst: User) -> None:
    client = client_for(analyst)
    assert client.post("/logout/")["Location"] == "/login/"
    assert names() == ["SIGNED_OUT"]
    assert events()[0]["actor"] == {"id": analyst.pk, "name": "bob", "role": "analyst"}


@pytest.mark.parametrize(
    "next_url",
    ["https://attacker.example/", "//attacker.example/", "/\\attacker.example/", "javascript:alert(1)", "work/"],
)
def test_it_goes_home_after_verifying_when_next_points_elsewhere(analyst: User, clock: float, next_url: str) -> None:
    device = authenticator(analyst)
    response = submit(sign_in(analyst), device, code_at(device, clock), next_url)
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_it_does_not_echo_an_off_site_next_into_the_verify_form(analyst: User) -> None:
    authenticator(analyst)
    html = page(sign_in(analyst).get(verify_url("https://attacker.example/")))
    assert "attacker.example" not in html
    assert 'name="next" value="/"' in html


# --- one's own factors ----------------------------------------------------------------------------


def test_it_refuses_to_remove_the_last_authenticator_a_role_requires(analyst: User) -> None:
    device = authenticator(analyst)
    client = client_for(analyst)
    response = client.post(f"/account/factors/{device.pk}/remove/", {"reason": "new phone"}, follow=True)
    assert response.redirect_chain == [("/account/factors/", 302)]
    assert "Your roles require a second factor: add another before removing this one." in page(response)
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert "FACTOR_REMOVED" not in names()


def test_it_removes_a_spare_authenticator_and_records_it(analyst: User) -> None:
    authenticator(analyst, "Phone")
    spare = authenticator(analyst, "Old phone")
    client = client_for(analyst)  # verified with the first one
    response = client.post(f"/account/factors/{spare.pk}/remove/", {"reason": "lost it"}, follow=True)
    assert response.redirect_chain == [("/account/factors/", 302)]
    assert "The authenticator app was removed." in page(response)
    assert "end your other sessions" in page(response)  # ASVS 7.4.3
    assert not TOTPDevice.objects.filter(pk=spare.pk).exists()
    assert names() == ["FACTOR_REMOVED"]
    removed = events()[0]
    assert removed["reason"] == "lost it"
    assert removed["object"] == {"type": "user", "id": str(analyst.pk)}
    assert removed["after"] == {"factor": "authenticator app", "device": spare.persistent_id}


def test_it_does_not_trap_a_user_whose_only_factor_is_spent_recovery_codes(manager: User) -> None:
    device, _, _ = enrolled_with_codes(manager)
    client_for(manager).post(f"/account/factors/{device.pk}/remove/", {"reason": "no longer wanted"})
    assert not TOTPDevice.objects.filter(user=manager).exists()
    RecoveryCode.objects.filter(device__user=manager).update(used_at=timezone.now())  # all ten spent
    client = sign_in(manager)
    url, seen = "/dashboard/", []
    response = client.get(url)
    while response.status_code == 302 and url not in seen:
        seen.append(url)
        url = response["Location"]
        response = client.get(url)
    assert response.status_code == 200, f"redirected round {seen}"


def test_it_lets_a_manager_remove_the_only_authenticator(manager: User) -> None:
    device = authenticator(manager)
    client_for(manager).post(f"/account/factors/{device.pk}/remove/", {"reason": "no longer wanted"})
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert names() == ["FACTOR_REMOVED"]


def test_it_removes_nothing_without_a_reason(analyst: User) -> None:
    authenticator(analyst)
    spare = authenticator(analyst, "Old phone")
    response = client_for(analyst).post(f"/account/factors/{spare.pk}/remove/", {"reason": ""}, follow=True)
    assert "State the reason for removing the factor." in page(response)
    assert TOTPDevice.objects.filter(pk=spare.pk).exists()
    assert names() == []


def test_it_removes_nobody_elses_authenticator(analyst: User, lead: User) -> None:
    authenticator(analyst)
    authenticator(lead)
    theirs = authenticator(lead, "Spare")
    response = client_for(analyst).post(f"/account/factors/{theirs.pk}/remove/", {"reason": "x"}, follow=True)
    assert "There is no such factor of yours." in page(response)
    assert TOTPDevice.objects.filter(pk=theirs.pk).exists()
    assert names() == []


def test_it_lists_ones_own_factors(analyst: User) -> None:
    enrolled_with_codes(analyst)
    html = page(client_for(analyst).get("/account/factors/"))
    assert "Your roles require a second factor at every sign-in." in html
    assert "Phone, added" in html
    assert "10 unused." in html
