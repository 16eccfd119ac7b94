"""restrict() on rows that open as a whole: to a permission's holders, or to nobody."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.approvals import request_change
from accounts.models import ApprovalRequest, Role, Team, User
from audit.models import Event
from cases.models import Queue

pytestmark = pytest.mark.django_db


def test_it_opens_the_rows_to_a_holder_of_the_permission(admin: User, analyst: User) -> None:
    Team.objects.create(slug="cards", name="Cards")
    assert Team.objects.restrict(admin, "manage").count() == 1
    assert Team.objects.restrict(analyst, "manage").count() == 0
    assert Role.objects.restrict(admin, "view").count() == Role.objects.count()


def test_it_gives_nothing_to_the_anonymous_or_the_inactive(admin: User) -> None:
    assert User.objects.restrict(AnonymousUser(), "view").count() == 0
    admin.is_active = False
    assert User.objects.restrict(admin, "view").count() == 0


def test_it_gives_the_superuser_flag_nothing(analyst: User) -> None:
    analyst.is_superuser = True
    assert User.objects.restrict(analyst, "manage").count() == 0
    assert Event.objects.restrict(analyst, "view").count() == 0


def test_it_names_the_actions_it_knows(admin: User) -> None:
    with pytest.raises(ValueError, match="Queue has no action 'delete': aggregate, manage, route, view"):
        Queue.objects.restrict(admin, "delete")


def test_it_shows_approvals_to_their_deciders_and_makers(admin: User, second_admin: User, analyst: User) -> None:
    request = request_change(
        "role_change", {"user": analyst.pk, "role": "lead", "change": "grant"}, acting_user=admin, reason="cover"
    )
    assert list(ApprovalRequest.objects.restrict(second_admin, "decide")) == [request]
    assert list(ApprovalRequest.objects.restrict(admin, "view")) == [request]
    assert list(ApprovalRequest.objects.restrict(analyst, "view")) == []
    with pytest.raises(ValueError, match="no action"):
        ApprovalRequest.objects.restrict(admin, "approve")
