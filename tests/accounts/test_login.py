"""Signing in and out through the real login page."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import User


def without_tokens(html: str) -> str:
    """The page minus what differs on every response anyway: CSRF tokens and CSP nonces."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'nonce="[^"]+"', "", html)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)


def test_it_shows_the_login_form(db: None) -> None:
    response = Client().get("/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert 'autocomplete="current-password"' in html


def test_it_signs_in_and_lands_on_the_role_area(manager: User, password: str) -> None:
    client = Client()  # a manager's role requires no second factor, and she has none
    response = client.post("/login/", {"username": manager.username, "password": password}, follow=True)
    assert response.redirect_chain == [("/", 302), ("/dashboard/", 302)]
    assert response.status_code == 200
    manager.refresh_from_db()
    assert manager.last_login is not None


def test_it_sends_a_user_whose_role_requires_a_factor_to_enrol_it(analyst: User, password: str) -> None:
    client = Client()
    response = client.post("/login/", {"username": analyst.username, "password": password}, follow=True)
    assert response.redirect_chain == [("/", 302), ("/login/enrol/?next=%2F", 302)]
    assert "Add an authenticator app" in response.content.decode()


def test_it_rotates_the_session_id_on_sign_in(analyst: User, password: str) -> None:
    client = Client()
    client.get("/login/")
    client.session["probe"] = "x"
    before = client.session.session_key
    client.post("/login/", {"username": analyst.username, "password": password})
    assert client.session.session_key != before


def test_it_follows_a_safe_next_url_only(analyst: User, password: str) -> None:
    client = Client()
    ok = client.post("/login/?next=/work/", {"username": analyst.username, "password": password, "next": "/work/"})
    assert ok["Location"] == "/work/"
    client.logout()
    evil = client.post(
        "/login/", {"username": analyst.username, "password": password, "next": "https://attacker.example/"}
    )
    assert evil["Location"] == "/"


@pytest.mark.parametrize("username", ["bob", "nobody-by-this-name"])
def test_it_gives_one_answer_for_a_wrong_password_and_an_unknown_user(analyst: User, username: str) -> None:
    response = Client().post("/login/", {"username": username, "password": "wrong password 123"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_it_does_not_reveal_whether_an_account_exists(analyst: User) -> None:
    known = Client().post("/login/", {"username": "bob", "password": "wrong password 123"})
    unknown = Client().post("/login/", {"username": "bobby", "password": "wrong password 123"})
    assert without_tokens(known.content.decode()).replace("bob", "X") == without_tokens(
        unknown.content.decode()
    ).replace("bobby", "X")


def test_it_refuses_an_inactive_user_with_the_same_message(analyst: User, password: str) -> None:
    analyst.is_active = False
    analyst.save(update_fields=["is_active"])
    response = Client().post("/login/", {"username": analyst.username, "password": password})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_it_signs_out_on_post_only(analyst: User, password: str) -> None:
    client = Client()
    client.force_login(analyst)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/work/").status_code == 302


def test_it_sends_a_signed_in_user_away_from_the_login_page(analyst: User) -> None:
    client = Client()
    client.force_login(analyst)
    assert client.get("/login/")["Location"] == "/"


def test_it_refuses_and_records_a_forged_post(db: None) -> None:
    from tests.recorded import names

    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "bob", "password": "x"})
    assert response.status_code == 403
    assert names() == ["FORGED_REQUEST_REFUSED"]
