"""Every URL states who may reach it (STYLE.md principle 5: fail closed, visibly)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import User
from caspix.access import access_rule
from tests.conftest import client_for


def all_patterns(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from all_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_it_finds_the_routes() -> None:
    routes = dict(all_patterns())
    assert {"login/", "healthz", "metrics", "work/", "audit/", "dashboard/"} <= set(routes)


@pytest.mark.parametrize(("route", "view"), list(all_patterns()), ids=lambda v: v if isinstance(v, str) else "")
def test_it_declares_access_on_every_route(route: str, view: Any) -> None:
    assert access_rule(view) is not None, f"/{route} declares no access rule"


def test_it_sends_anonymous_users_to_sign_in(db: None) -> None:
    response = Client().get("/work/?q=1")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/work/%3Fq%3D1"


def test_it_refuses_a_signed_in_user_without_the_permission(manager: User) -> None:
    assert client_for(manager).get("/work/").status_code == 403
