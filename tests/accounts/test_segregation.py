"""Segregation of duties (issue [access] item 3): no role, flag or back door combines them."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import Role
from accounts.permissions import Perm
from tests.conftest import client_for
from tests.factories import make_user

pytestmark = pytest.mark.django_db

CASEWORK = {Perm.WORK_CASES, Perm.APPROVE_CASE_CLOSURE, Perm.DRAFT_STR, Perm.APPROVE_STR}


def grants(slug: str) -> set[str]:
    return set(Role.objects.get(slug=slug).grants.values_list("permission", flat=True))


def test_it_keeps_administrators_away_from_casework() -> None:
    assert grants("admin").isdisjoint(CASEWORK)


def test_it_keeps_auditors_and_managers_read_only() -> None:
    for slug in ("auditor", "manager"):
        assert grants(slug).isdisjoint(CASEWORK | {Perm.MANAGE_USERS, Perm.MANAGE_ROLES, Perm.APPROVE_ACCESS_CHANGE})


def test_it_gives_the_superuser_flag_nothing() -> None:
    root = make_user(username="root")
    root.is_superuser = root.is_staff = True
    root.save()
    assert not any(root.has_perm(permission) for permission in Perm)
    for area in ("/work/", "/dashboard/", "/audit/", "/administration/"):
        assert client_for(root).get(area).status_code == 403


def test_it_has_no_django_admin_back_door() -> None:
    assert "django.contrib.admin" not in settings.INSTALLED_APPS
    root = make_user(username="root")
    root.is_superuser = root.is_staff = True
    root.save()
    for client in (Client(), client_for(root)):
        assert client.get("/admin/").status_code == 404
