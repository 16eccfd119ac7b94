"""Account actions: each checks its permission, refuses what breaks the rules, records one event."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import actions
from accounts.models import Membership, Role, Team, User
from tests.factories import PASSWORD, make_user
from tests.recorded import events, names

pytestmark = pytest.mark.django_db


def role(slug: str) -> Role:
    return Role.objects.get(slug=slug)


def slugs(user: User) -> set[str]:
    return set(User.objects.get(pk=user.pk).roles.values_list("slug", flat=True))


# --- create_user ----------------------------------------------------------------------------------


def create(acting_user: User, username: str = "heidi", password: str = PASSWORD) -> User:
    return actions.create_user(
        username=username,
        first_name="Heidi",
        last_name="Klum",
        email=f"{username}@bank.example",
        password=password,
        acting_user=acting_user,
    )


def test_it_creates_a_user_with_no_role_and_records_it(admin: User) -> None:
    user = create(admin)
    stored = User.objects.get(username="heidi")
    assert stored.pk == user.pk
    assert stored.check_password(PASSWORD)
    assert not stored.roles.exists()
    [event] = events()
    assert event["name"] == "USER_CREATED"
    assert event["object"] == {"type": "user", "id": str(user.pk)}
    assert event["after"] == {"username": "heidi"}
    assert event["actor"] == {"id": admin.pk, "name": "alice", "role": "admin"}


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "too short"), ("password1234", "too common"), ("heidi@bank.example", "too similar")],
)
def test_it_refuses_a_weak_password(admin: User, password: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        create(admin, password=password)
    assert not User.objects.filter(username="heidi").exists()
    assert events() == []


def test_it_refuses_a_username_taken_in_another_case(admin: User, analyst: User) -> None:
    with pytest.raises(ValidationError, match="the username 'BOB' is taken"):
        create(admin, username="BOB")
    assert User.objects.filter(username__iexact="bob").count() == 1
    assert events() == []


@pytest.mark.parametrize("persona", ["analyst", "lead", "manager", "auditor", "roleless"])
def test_it_lets_only_a_user_manager_create_users(request: pytest.FixtureRequest, persona: str) -> None:
    acting_user: User = request.getfixturevalue(persona)
    with pytest.raises(PermissionDenied, match=r"accounts\.manage_users"):
        create(acting_user)
    assert not User.objects.filter(username="heidi").exists()


# --- set_active -----------------------------------------------------------------------------------


def test_it_deactivates_and_reactivates_a_user_with_the_reason(admin: User, analyst: User) -> None:
    actions.set_active(analyst, False, acting_user=admin, reason="left the bank")
    assert not User.objects.get(pk=analyst.pk).is_active
    actions.set_active(analyst, True, acting_user=admin, reason="came back")
    assert User.objects.get(pk=analyst.pk).is_active
    deactivated, reactivated = events()
    assert (deactivated["name"], deactivated["reason"]) == ("USER_DEACTIVATED", "left the bank")
    assert (reactivated["name"], reactivated["reason"]) == ("USER_REACTIVATED", "came back")
    assert deactivated["object"] == reactivated["object"] == {"type": "user", "id": str(analyst.pk)}


def test_it_refuses_to_deactivate_oneself(admin: User) -> None:
    with pytest.raises(ValidationError, match="nobody deactivates or reactivates themselves"):
        actions.set_active(admin, False, acting_user=admin, reason="holiday")
    assert User.objects.get(pk=admin.pk).is_active


def test_it_wants_a_reason_to_deactivate(admin: User, analyst: User) -> None:
    with pytest.raises(ValidationError, match="state the reason"):
        actions.set_active(analyst, False, acting_user=admin, reason="  ")
    assert User.objects.get(pk=analyst.pk).is_active
    assert events() == []


def test_it_refuses_a_state_the_user_is_in_already(admin: User, analyst: User) -> None:
    with pytest.raises(ValidationError, match="bob is already active"):
        actions.set_active(analyst, True, acting_user=admin, reason="again")
    actions.set_active(analyst, False, acting_user=admin, reason="left the bank")
    with pytest.raises(ValidationError, match="bob is already inactive"):
        actions.set_active(analyst, False, acting_user=admin, reason="again")
    assert names() == ["USER_DEACTIVATED"]


def test_it_lets_only_a_user_manager_deactivate(lead: User, analyst: User) -> None:
    with pytest.raises(PermissionDenied):
        actions.set_active(analyst, False, acting_user=lead, reason="annoying")
    assert User.objects.get(pk=analyst.pk).is_active


# --- change_role ----------------------------------------------------------------------------------


def test_it_grants_a_role_that_is_not_privileged_at_once(admin: User, roleless: User) -> None:
    actions.change_role(roleless, role("analyst"), "grant", acting_user=admin)
    assert slugs(roleless) == {"analyst"}
    [event] = events()
    assert (event["name"], event["reason"]) == ("ROLE_GRANTED", "direct")
    assert event["object"] == {"type": "user", "id": str(roleless.pk)}
    assert event["after"] == {"role": "analyst", "maker": admin.pk}


def test_it_revokes_a_role_that_is_not_privileged_at_once(admin: User, manager: User) -> None:
    actions.change_role(manager, role("manager"), "revoke", acting_user=admin)
    assert slugs(manager) == set()
    [event] = events()
    assert (event["name"], event["reason"], event["after"]) == (
        "ROLE_REVOKED",
        "direct",
        {"role": "manager", "maker": admin.pk},
    )


@pytest.mark.parametrize("slug", ["admin", "lead"])
def test_it_leaves_a_privileged_role_to_four_eyes(admin: User, roleless: User, slug: str) -> None:
    with pytest.raises(ValidationError, match="a second administrator must approve"):
        actions.change_role(roleless, role(slug), "grant", acting_user=admin)
    assert slugs(roleless) == set()
    assert events() == []


def test_it_refuses_a_change_of_ones_own_roles(admin: User) -> None:
    with pytest.raises(ValidationError, match="nobody changes their own roles"):
        actions.change_role(admin, role("auditor"), "grant", acting_user=admin)
    assert slugs(admin) == {"admin"}


def test_it_refuses_casework_to_an_administrator(admin: User) -> None:
    grace = make_user("grace", roles=["admin"])
    with pytest.raises(ValidationError, match="grace cannot also hold analyst: segregation of duties"):
        actions.change_role(grace, role("analyst"), "grant", acting_user=admin)
    assert slugs(grace) == {"admin"}
    assert events() == []


def test_it_refuses_to_revoke_a_role_not_held(admin: User, roleless: User) -> None:
    with pytest.raises(ValidationError, match="frank does not hold the role manager"):
        actions.change_role(roleless, role("manager"), "revoke", acting_user=admin)


def test_it_refuses_to_grant_a_role_held_already(admin: User, manager: User) -> None:
    with pytest.raises(ValidationError, match="dana already holds the role manager"):
        actions.change_role(manager, role("manager"), "grant", acting_user=admin)


def test_it_refuses_an_unknown_kind_of_change(admin: User, roleless: User) -> None:
    with pytest.raises(ValidationError, match="unknown role change 'promote'"):
        actions.change_role(roleless, role("manager"), "promote", acting_user=admin)


def test_it_lets_only_a_user_manager_change_roles(manager: User, roleless: User) -> None:
    with pytest.raises(PermissionDenied):
        actions.change_role(roleless, role("auditor"), "grant", acting_user=manager)
    assert slugs(roleless) == set()


# --- teams ----------------------------------------------------------------------------------------


def fraud_desk(admin: User) -> Team:
    return actions.create_team(slug="fraud-desk", name="Fraud desk", description="Cards", acting_user=admin)


def test_it_creates_a_team_and_records_it(admin: User) -> None:
    team = fraud_desk(admin)
    assert Team.objects.get(slug="fraud-desk").description == "Cards"
    [event] = events()
    assert event["name"] == "TEAM_CREATED"
    assert event["object"] == {"type": "team", "id": str(team.pk)}
    assert event["after"] == {"slug": "fraud-desk", "name": "Fraud desk"}


@pytest.mark.parametrize(("slug", "name"), [("fraud-desk", "Another desk"), ("another-desk", "FRAUD DESK")])
def test_it_refuses_a_team_that_exists(admin: User, slug: str, name: str) -> None:
    fraud_desk(admin)
    with pytest.raises(ValidationError, match="exists already"):
        actions.create_team(slug=slug, name=name, acting_user=admin)
    assert Team.objects.count() == 1


def test_it_adds_and_removes_members_and_records_each(admin: User, analyst: User, lead: User) -> None:
    team = fraud_desk(admin)
    actions.add_members(team, [analyst, lead], acting_user=admin)
    assert set(team.members.values_list("username", flat=True)) == {"bob", "charlie"}
    actions.remove_member(team, analyst, acting_user=admin)
    assert list(team.members.values_list("username", flat=True)) == ["charlie"]
    assert names() == ["TEAM_CREATED", "TEAM_MEMBER_ADDED", "TEAM_MEMBER_ADDED", "TEAM_MEMBER_REMOVED"]
    added_bob, added_charlie, removed_bob = events()[1:]
    assert added_bob["after"] == removed_bob["after"] == {"user": analyst.pk}
    assert added_charlie["after"] == {"user": lead.pk}
    assert added_bob["object"] == removed_bob["object"] == {"type": "team", "id": str(team.pk)}


def test_it_refuses_a_member_twice_and_adds_nobody_then(admin: User, analyst: User, lead: User) -> None:
    team = fraud_desk(admin)
    actions.add_members(team, [analyst], acting_user=admin)
    with pytest.raises(ValidationError, match="bob is already a member of Fraud desk"):
        actions.add_members(team, [lead, analyst], acting_user=admin)
    assert list(team.members.values_list("username", flat=True)) == ["bob"]
    assert names() == ["TEAM_CREATED", "TEAM_MEMBER_ADDED"]


def test_it_refuses_to_remove_someone_who_is_not_a_member(admin: User, analyst: User) -> None:
    team = fraud_desk(admin)
    with pytest.raises(ValidationError, match="bob is not a member of Fraud desk"):
        actions.remove_member(team, analyst, acting_user=admin)
    assert names() == ["TEAM_CREATED"]


def test_it_refuses_a_change_of_ones_own_membership(admin: User) -> None:
    team = fraud_desk(admin)
    with pytest.raises(ValidationError, match="nobody changes their own team membership"):
        actions.add_members(team, [admin], acting_user=admin)
    Membership.objects.create(team=team, user=admin)
    with pytest.raises(ValidationError, match="nobody changes their own team membership"):
        actions.remove_member(team, admin, acting_user=admin)
    assert list(team.members.all()) == [admin]


@pytest.mark.parametrize("persona", ["analyst", "lead", "manager", "auditor", "roleless"])
def test_it_lets_only_a_team_manager_change_teams(request: pytest.FixtureRequest, admin: User, persona: str) -> None:
    acting_user: User = request.getfixturevalue(persona)
    team = fraud_desk(admin)
    other = make_user("ivan")
    with pytest.raises(PermissionDenied, match=r"accounts\.manage_teams"):
        actions.create_team(slug="other", name="Other", acting_user=acting_user)
    with pytest.raises(PermissionDenied):
        actions.add_members(team, [other], acting_user=acting_user)
    Membership.objects.create(team=team, user=other)
    with pytest.raises(PermissionDenied):
        actions.remove_member(team, other, acting_user=acting_user)
    assert list(Team.objects.values_list("slug", flat=True)) == ["fraud-desk"]
    assert list(team.members.all()) == [other]


# --- note_activity --------------------------------------------------------------------------------


def stored_activity(user: User) -> datetime | None:
    return User.objects.get(pk=user.pk).last_activity


def test_it_notes_activity_at_most_once_a_minute(analyst: User) -> None:
    assert analyst.last_activity is None
    with CaptureQueriesContext(connection) as first:
        actions.note_activity(analyst)
    assert len(first) == 1
    noted = stored_activity(analyst)
    assert noted is not None
    assert analyst.last_activity == noted
    with CaptureQueriesContext(connection) as again:
        actions.note_activity(analyst)
        actions.note_activity(User.objects.get(pk=analyst.pk))
    assert [query["sql"] for query in again if query["sql"].startswith("UPDATE")] == []
    assert stored_activity(analyst) == noted


def test_it_notes_activity_again_once_a_minute_has_passed(analyst: User) -> None:
    earlier = timezone.now() - timedelta(seconds=61)
    User.objects.filter(pk=analyst.pk).update(last_activity=earlier)
    user = User.objects.get(pk=analyst.pk)
    actions.note_activity(user)
    noted = stored_activity(analyst)
    assert noted is not None
    assert noted > earlier
    assert user.last_activity == noted
