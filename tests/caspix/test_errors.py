"""Error pages say what happened and leak nothing (no path, reason, traceback or setting)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

SECRET_MESSAGE = "card 4111111111111111 in SECRET exception"


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(SECRET_MESSAGE)


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied(SECRET_MESSAGE)


urlpatterns = [path("boom", boom), path("forbidden", forbidden), path("", include("caspix.urls"))]

pytestmark = pytest.mark.urls(__name__)


def test_it_shows_a_plain_404(db: None) -> None:
    response = Client().get("/no-such-page-4111111111111111")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Not found" in body
    assert "4111" not in body


def test_it_shows_a_plain_500(db: None) -> None:
    client = Client(raise_request_exception=False)
    response = client.get("/boom")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert SECRET_MESSAGE not in body
    assert "Traceback" not in body


def test_it_shows_a_plain_403(db: None) -> None:
    response = Client().get("/forbidden")
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()
    assert SECRET_MESSAGE not in response.content.decode()


def test_it_hides_the_reason_of_a_csrf_failure(db: None) -> None:
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    body = response.content.decode()
    assert "Not allowed" in body
    assert "verification failed" not in body
    assert "cookie" not in body.lower()


@override_settings(ALLOWED_HOSTS=["caspix.bank.example"])
def test_it_shows_a_plain_400_for_a_foreign_host(db: None) -> None:
    response = Client(HTTP_HOST="attacker.example").get("/login/")
    assert response.status_code == 400
    assert "Bad request" in response.content.decode()
    assert "attacker.example" not in response.content.decode()
