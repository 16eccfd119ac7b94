"""Each role lands on its own area; each area answers without / with / wrong role."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import client_for

AREAS = {
    "admin": "/administration/",
    "analyst": "/work/",
    "lead": "/work/",
    "manager": "/dashboard/",
    "auditor": "/audit/",
}


@pytest.mark.parametrize(("persona", "area"), AREAS.items())
def test_it_lands_each_role_on_its_area(request: pytest.FixtureRequest, persona: str, area: str) -> None:
    user: User = request.getfixturevalue(persona)
    client = client_for(user)
    home = client.get("/")
    assert home.status_code == 302
    assert home["Location"] == area
    page = client.get(area)
    assert page.status_code == 200
    assert f'href="{area}" aria-current="page"' in page.content.decode()


@pytest.mark.parametrize("area", sorted(set(AREAS.values())))
def test_it_sends_anonymous_visitors_of_an_area_to_sign_in(db: None, area: str) -> None:
    response = Client().get(area)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize(
    ("persona", "area"),
    [
        ("admin", "/work/"),
        ("admin", "/dashboard/"),
        ("analyst", "/administration/"),
        ("analyst", "/audit/"),
        ("analyst", "/dashboard/"),
        ("manager", "/work/"),
        ("manager", "/audit/"),
        ("auditor", "/work/"),
        ("auditor", "/administration/"),
    ],
)
def test_it_refuses_an_area_the_role_does_not_open(request: pytest.FixtureRequest, persona: str, area: str) -> None:
    assert client_for(request.getfixturevalue(persona)).get(area).status_code == 403


def test_it_shows_only_the_areas_a_role_opens(auditor: User) -> None:
    html = client_for(auditor).get("/audit/").content.decode()
    assert 'href="/audit/"' in html
    assert 'href="/work/"' not in html
    assert 'href="/administration/"' not in html


def test_it_tells_a_user_without_a_role_to_ask_for_one(roleless: User) -> None:
    response = client_for(roleless).get("/")
    assert response.status_code == 403
    assert "Your account has no role yet" in response.content.decode()


def test_it_lists_users_and_roles_for_admins(admin: User, analyst: User, lead: User) -> None:
    client = client_for(admin)
    client.get("/administration/")  # warm the session and permission caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        html = client.get("/administration/").content.decode()
    assert "Fraud analyst" in html
    assert "Team lead" in html
    # session, user, the verified factor, permissions, users, their roles, their teams, and the
    # ledger's integrity status for the banner (admins see it): constant in the number of users
    assert len(queries) == 8
