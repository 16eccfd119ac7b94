"""Access changes reach sessions already open, on their very next request."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from accounts import actions
from accounts.approvals import approve, request_change
from accounts.models import Role, User
from caspix.access import STEP_UP_SESSION_KEY
from tests.conftest import client_for, verify_session
from tests.factories import PASSWORD, make_user
from tests.personas import build_world

pytestmark = pytest.mark.django_db


def test_it_applies_a_revoked_role_on_the_next_request(admin: User, analyst: User) -> None:
    client = client_for(analyst)
    assert client.get("/work/").status_code == 200
    actions.change_role(analyst, Role.objects.get(slug="analyst"), "revoke", acting_user=admin)
    assert client.get("/work/").status_code == 403


def test_it_applies_an_approved_privileged_role_on_the_next_request(admin: User, roleless: User) -> None:
    client = client_for(roleless)
    assert client.get("/work/").status_code == 403
    request = request_change(
        "role_change", {"user": roleless.pk, "role": "lead", "change": "grant"}, acting_user=admin, reason="cover"
    )
    assert client.get("/work/").status_code == 403  # asked for, not yet approved
    approve(request.pk, acting_user=make_user("grace", roles=["admin"]), seen_hash=request.payload_hash)
    assert client.get("/work/").status_code == 200


def test_it_closes_a_team_case_to_a_removed_member_at_once() -> None:
    world = build_world()
    bob = world.users["analyst"]
    client = client_for(bob)
    url = f"/work/cases/{world.case_for('analyst', 'team')}/"
    assert client.get(url).status_code == 200
    actions.remove_member(world.teams["cards"], bob, acting_user=world.users["admin"])
    assert client.get(url).status_code == 404
    # The case assigned to bob stays his: assignment does not depend on the team.
    assert client.get(f"/work/cases/{world.case_for('analyst', 'own')}/").status_code == 200


def test_it_ends_the_sessions_of_a_deactivated_user(admin: User, analyst: User) -> None:
    client = Client()
    assert client.post("/login/", {"username": "bob", "password": PASSWORD}).status_code == 302
    verify_session(client, analyst)
    assert client.get("/work/").status_code == 200
    actions.set_active(analyst, False, acting_user=admin, reason="left the bank")
    response = client.get("/work/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    analyst.refresh_from_db()
    actions.set_active(analyst, True, acting_user=admin, reason="came back")
    assert client.get("/work/").status_code == 302  # reactivation does not revive the old session


def test_it_keeps_no_access_decision_on_the_client(analyst: User) -> None:
    assert settings.SESSION_ENGINE != "django.contrib.sessions.backends.signed_cookies"
    client = Client()
    client.post("/login/", {"username": "bob", "password": PASSWORD})
    verify_session(client, analyst)
    assert client.get("/work/").status_code == 200
    # Django's authentication keys, and which factor the session verified and when: no role,
    # permission or team.
    assert set(client.session.keys()) <= {
        "_auth_user_id",
        "_auth_user_backend",
        "_auth_user_hash",
        DEVICE_ID_SESSION_KEY,
        STEP_UP_SESSION_KEY,
    }
    assert set(client.cookies) <= {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
