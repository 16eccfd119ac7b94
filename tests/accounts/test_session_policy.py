"""Session policy: registered at complete sign-in, idle and absolute timeouts per tier, the
concurrent-session limit (the newest wins), and ending sessions, one's own or anyone's."""

from __future__ import annotations

import time

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.models import TOTPDevice, User, UserSession
from accounts.sessions import SEEN, STARTED
from tests.conftest import verify_session
from tests.factories import PASSWORD
from tests.recorded import events
from tests.totp import code_at

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def password_only(user: User) -> Client:
    client = Client()
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    return client


def fully_signed_in(user: User, clock: float) -> Client:
    """Password, then the TOTP code when the user has a factor."""
    client = password_only(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        response = client.post("/login/verify/", {"device": device.persistent_id, "code": code_at(device, clock)})
        assert response.status_code == 302
        TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)  # the next sign-in may reuse this step
    return client


def with_factor(user: User) -> User:
    TOTPDevice.objects.create(user=user, name="Phone", confirmed=True)
    return user


def age(client: Client, **seconds_ago: float) -> None:
    session = client.session
    for key, ago in seconds_ago.items():
        session[{"seen": SEEN, "started": STARTED}[key]] = time.time() - ago
    session.save()


def ended_reasons() -> list[str]:
    return [str(event["reason"]) for event in events() if event["name"] == "SESSION_ENDED"]


def test_it_registers_a_sign_in_without_a_factor_at_once(manager: User) -> None:
    password_only(manager)
    session = UserSession.objects.get(user=manager)
    assert (session.tier, session.ended_at) == ("standard", None)


def test_it_closes_the_record_of_a_signed_out_session(manager: User) -> None:
    client = password_only(manager)
    client.post("/logout/")
    session = UserSession.objects.get(user=manager)
    assert session.end_reason == "signed out"
    assert session.ended_at is not None
    assert not [event for event in events() if event["name"] == "SESSION_ENDED"]  # SIGNED_OUT says it


def test_it_registers_a_sign_in_with_a_factor_only_once_verified(admin: User, clock: float) -> None:
    with_factor(admin)
    password_only(admin)
    assert not UserSession.objects.filter(user=admin).exists()
    fully_signed_in(admin, clock)
    assert UserSession.objects.get(user=admin).tier == "privileged"


@pytest.mark.parametrize(("persona", "idle"), [("manager", 30 * 60), ("admin", 15 * 60)])
def test_it_ends_a_session_idle_longer_than_its_tier_allows(
    persona: str, idle: int, request: pytest.FixtureRequest, clock: float
) -> None:
    user = with_factor(request.getfixturevalue(persona))
    client = fully_signed_in(user, clock)
    age(client, seen=idle - 60)
    assert client.get("/account/factors/").status_code == 200  # a minute short: still in
    age(client, seen=idle + 1)
    response = client.get("/account/factors/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=%2Faccount%2Ffactors%2F"
    assert UserSession.objects.get(user=user).end_reason == "idle"
    assert ended_reasons() == ["idle"]
    assert client.get("/account/factors/")["Location"].startswith("/login/")


def test_it_ends_a_session_older_than_the_absolute_lifetime(manager: User) -> None:
    client = password_only(manager)
    age(client, started=12 * 3600 + 1, seen=1)
    assert client.get("/dashboard/").status_code == 302
    assert UserSession.objects.get(user=manager).end_reason == "absolute"


def test_it_lets_the_newest_session_win_beyond_the_limit(manager: User) -> None:
    first, second = password_only(manager), password_only(manager)
    assert first.get("/dashboard/").status_code == 200  # the standard tier holds two
    third = password_only(manager)
    assert first.get("/dashboard/").status_code == 302
    assert second.get("/dashboard/").status_code == 200
    assert third.get("/dashboard/").status_code == 200
    assert ended_reasons() == ["concurrent limit"]


def test_it_holds_a_privileged_user_to_one_session(admin: User, clock: float) -> None:
    with_factor(admin)
    first = fully_signed_in(admin, clock)
    second = fully_signed_in(admin, clock)
    assert first.get("/administration/").status_code == 302
    assert second.get("/administration/").status_code == 200


def test_it_evicts_nobody_for_a_password_without_the_factor(admin: User, clock: float) -> None:
    with_factor(admin)
    mine = fully_signed_in(admin, clock)
    password_only(admin)  # someone who has the password, but not the phone
    assert mine.get("/administration/").status_code == 200


def test_it_follows_the_session_to_its_new_key_after_a_step_up(admin: User, clock: float) -> None:
    with_factor(admin)
    client = fully_signed_in(admin, clock)
    before = UserSession.objects.get(user=admin).session_key
    device = TOTPDevice.objects.get(user=admin)
    client.post("/login/verify/", {"device": device.persistent_id, "code": code_at(device, clock)})
    registered = UserSession.objects.get(user=admin)
    assert registered.session_key != before
    assert registered.session_key == client.session.session_key
    assert Session.objects.filter(session_key=registered.session_key).exists()


def test_it_lets_users_end_their_other_sessions(manager: User) -> None:
    other, mine = password_only(manager), password_only(manager)
    verify_session(mine, manager)  # fresh for the step-up these pages need
    page = mine.get("/account/sessions/").content.decode()
    assert "(this one)" in page
    assert mine.post("/account/sessions/end-others/").status_code == 302
    assert other.get("/dashboard/").status_code == 302
    assert mine.get("/dashboard/").status_code == 200
    assert ended_reasons() == ["ended by its owner"]


def test_it_lets_users_end_one_of_their_sessions(manager: User) -> None:
    other, mine = password_only(manager), password_only(manager)
    verify_session(mine, manager)
    target = UserSession.objects.filter(user=manager).order_by("started_at").first()
    assert target is not None
    mine.post(f"/account/sessions/{target.pk}/end/")
    assert other.get("/dashboard/").status_code == 302


def test_it_lets_an_administrator_end_every_session_of_a_user(manager: User, admin: User) -> None:
    victim = password_only(manager)
    from tests.conftest import client_for

    response = client_for(admin).post(f"/administration/users/{manager.username}/sessions/end/")
    assert response.status_code == 302
    assert victim.get("/dashboard/").status_code == 302
    assert ended_reasons() == ["ended by an administrator"]


def test_it_keeps_a_session_alive_on_request(manager: User) -> None:
    client = password_only(manager)
    age(client, seen=29 * 60)
    assert client.post("/account/keepalive/").status_code == 204
    age_now = time.time() - client.session[SEEN]
    assert age_now < 5


def test_it_tells_the_browser_when_it_will_warn(manager: User) -> None:
    html = password_only(manager).get("/dashboard/").content.decode()
    assert 'data-idle-seconds="1800"' in html
    assert 'data-idle-warning="120"' in html
    assert 'id="idle-warning"' in html
