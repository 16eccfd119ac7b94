"""Queue and case-grant actions: each checks who acts, refuses by name, and records one event."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from guardian.shortcuts import assign_perm

from accounts.models import User
from cases.actions import create_queue, grant_case, move_queue, revoke_case
from cases.models import Action, Case, CaseUserObjectPermission, Queue
from tests.personas import World, build_world
from tests.recorded import events, names

pytestmark = pytest.mark.django_db

NON_CASEWORKERS = ("admin", "manager", "auditor", "roleless")


@pytest.fixture
def world(db: None) -> World:
    return build_world()  # leaves no pending event: its one is integrated


def only_event() -> dict[str, object]:
    recorded = events()
    assert len(recorded) == 1, [event["name"] for event in recorded]
    return recorded[0]


def codenames(case: Case, user: User) -> list[str]:
    return sorted(
        CaseUserObjectPermission.objects.filter(content_object=case, user=user).values_list(
            "permission__codename", flat=True
        )
    )


def reaches(user: User, case: Case, action: Action) -> bool:
    return Case.objects.restrict(user, action).filter(pk=case.pk).exists()


# --- create_queue ---------------------------------------------------------------------------------


def test_it_creates_a_queue_and_records_it(world: World) -> None:
    alice = world.users["admin"]
    queue = create_queue(
        slug="wires", name="Wire fraud", team=world.teams["cards"], description="SWIFT alerts", acting_user=alice
    )
    stored = Queue.objects.get(slug="wires")
    assert stored == queue
    assert (stored.name, stored.team, stored.description) == ("Wire fraud", world.teams["cards"], "SWIFT alerts")
    event = only_event()
    assert event["name"] == "QUEUE_CREATED"
    assert event["type"] == 201
    assert event["object"] == {"type": "queue", "id": str(queue.pk)}
    assert event["actor"] == {"id": alice.pk, "name": "alice", "role": "admin"}
    assert event["before"] is None
    assert event["after"] == {"slug": "wires", "name": "Wire fraud", "team": "cards"}


@pytest.mark.parametrize(
    ("slug", "name", "message"),
    [
        ("cards-2", "card fraud QUEUE", "a queue named 'card fraud QUEUE' or 'cards-2' exists already"),
        ("cards", "Brand new", "a queue named 'Brand new' or 'cards' exists already"),
    ],
)
def test_it_refuses_a_queue_that_exists_naming_it(world: World, slug: str, name: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        create_queue(slug=slug, name=name, team=world.teams["aml"], acting_user=world.users["admin"])
    assert Queue.objects.count() == 2
    assert events() == []


@pytest.mark.parametrize("persona", ["analyst", "lead", "manager", "auditor", "roleless"])
def test_it_lets_only_a_team_manager_create_a_queue(world: World, persona: str) -> None:
    with pytest.raises(PermissionDenied, match=re.escape("accounts.manage_teams")):
        create_queue(slug="wires", name="Wire fraud", team=world.teams["cards"], acting_user=world.users[persona])
    assert not Queue.objects.filter(slug="wires").exists()
    assert events() == []


# --- move_queue -----------------------------------------------------------------------------------


def test_it_moves_a_queue_and_records_before_and_after(world: World) -> None:
    alice = world.users["admin"]
    queue = world.queues["cards"]
    move_queue(queue, world.teams["aml"], acting_user=alice)
    assert Queue.objects.get(pk=queue.pk).team == world.teams["aml"]
    event = only_event()
    assert event["name"] == "QUEUE_CHANGED"
    assert event["type"] == 202
    assert event["object"] == {"type": "queue", "id": str(queue.pk)}
    assert event["actor"] == {"id": alice.pk, "name": "alice", "role": "admin"}
    assert event["before"] == {"team": "cards"}
    assert event["after"] == {"team": "aml"}


def test_it_refuses_to_move_a_queue_to_its_own_team(world: World) -> None:
    with pytest.raises(ValidationError, match="Card fraud queue already belongs to Card fraud"):
        move_queue(world.queues["cards"], world.teams["cards"], acting_user=world.users["admin"])
    assert Queue.objects.get(pk=world.queues["cards"].pk).team == world.teams["cards"]
    assert events() == []


def test_it_reads_the_queues_team_afresh_when_moving(world: World) -> None:
    stale = Queue.objects.get(pk=world.queues["cards"].pk)
    move_queue(world.queues["cards"], world.teams["aml"], acting_user=world.users["admin"])
    with pytest.raises(ValidationError, match="already belongs to Anti-money laundering"):
        move_queue(stale, world.teams["aml"], acting_user=world.users["admin"])
    assert names() == ["QUEUE_CHANGED"]


@pytest.mark.parametrize("persona", ["analyst", "lead", "manager", "auditor", "roleless"])
def test_it_lets_only_a_team_manager_move_a_queue(world: World, persona: str) -> None:
    with pytest.raises(PermissionDenied, match=re.escape("accounts.manage_teams")):
        move_queue(world.queues["cards"], world.teams["aml"], acting_user=world.users[persona])
    assert Queue.objects.get(pk=world.queues["cards"].pk).team == world.teams["cards"]
    assert events() == []


# --- grant_case -----------------------------------------------------------------------------------


@pytest.mark.parametrize("access", ["view", "work"])
def test_it_grants_a_case_and_records_who_and_what(world: World, access: str) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    assert not reaches(oscar, case, Action.VIEW)
    grant_case(case, oscar, access, acting_user=bob, reason="AML specialist needed")
    assert reaches(oscar, case, Action.VIEW)
    event = only_event()
    assert event["name"] == "CASE_ACCESS_GRANTED"
    assert event["type"] == 210
    assert event["object"] == {"type": "case", "id": str(case.pk)}
    assert event["actor"] == {"id": bob.pk, "name": "bob", "role": "analyst"}
    assert event["reason"] == "AML specialist needed"
    assert event["before"] is None
    assert event["after"] == {"user": oscar.pk, "access": access}


def test_it_opens_a_work_grant_for_working(world: World) -> None:
    oscar = world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    grant_case(case, oscar, Action.WORK, acting_user=world.users["analyst"], reason="takes it over")
    assert codenames(case, oscar) == ["work_case"]
    assert reaches(oscar, case, Action.WORK)


@pytest.mark.parametrize("reason", ["", "  \n\t"])
def test_it_wants_a_reason_for_a_grant(world: World, reason: str) -> None:
    oscar = world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    with pytest.raises(ValidationError, match="state the reason for the grant"):
        grant_case(case, oscar, Action.WORK, acting_user=world.users["analyst"], reason=reason)
    assert codenames(case, oscar) == []
    assert events() == []


@pytest.mark.parametrize("granter", ["other_analyst", *NON_CASEWORKERS])
def test_it_lets_only_one_who_works_the_case_grant_it(world: World, granter: str) -> None:
    case = world.cases["analyst"]["team"]  # in cards' queue, out of oscar's reach
    with pytest.raises(PermissionDenied, match="only someone who works the case may open it"):
        grant_case(case, world.users["lead"], Action.VIEW, acting_user=world.users[granter], reason="please")
    assert not CaseUserObjectPermission.objects.exists()
    assert events() == []


def test_it_refuses_a_granter_who_may_only_view_the_case(world: World) -> None:
    oscar, charlie = world.users["other_analyst"], world.users["lead"]
    case = world.cases["analyst"]["team"]
    assign_perm("cases.view_case", oscar, case)
    assert reaches(oscar, case, Action.VIEW)
    with pytest.raises(PermissionDenied):
        grant_case(case, charlie, Action.VIEW, acting_user=oscar, reason="pass it on")
    assert events() == []


@pytest.mark.parametrize("grantee", NON_CASEWORKERS)
def test_it_refuses_a_grantee_who_does_not_work_cases_naming_them(world: World, grantee: str) -> None:
    user = world.users[grantee]
    case = world.cases["analyst"]["team"]
    message = f"{user.username} does not work cases: a case cannot be opened to them"
    with pytest.raises(ValidationError, match=message):
        grant_case(case, user, Action.VIEW, acting_user=world.users["analyst"], reason="a second look")
    assert codenames(case, user) == []
    assert events() == []


def test_it_refuses_an_inactive_grantee(world: World) -> None:
    oscar = world.users["other_analyst"]
    User.objects.filter(pk=oscar.pk).update(is_active=False)
    gone = User.objects.get(pk=oscar.pk)
    with pytest.raises(ValidationError, match="oscar does not work cases"):
        grant_case(world.cases["analyst"]["team"], gone, Action.WORK, acting_user=world.users["analyst"], reason="x")
    assert events() == []


def test_it_refuses_a_grant_held_already(world: World) -> None:
    oscar = world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    grant_case(case, oscar, Action.WORK, acting_user=world.users["analyst"], reason="takes it over")
    with pytest.raises(ValidationError, match=f"oscar already holds work on {case.reference}"):
        grant_case(case, oscar, Action.WORK, acting_user=world.users["lead"], reason="again")
    assert codenames(case, oscar) == ["work_case"]
    assert names() == ["CASE_ACCESS_GRANTED"]


# --- revoke_case ----------------------------------------------------------------------------------


def test_it_revokes_a_grant_and_records_it(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    grant_case(case, oscar, Action.WORK, acting_user=bob, reason="takes it over")
    revoke_case(case, oscar, acting_user=world.users["lead"], reason="back to cards")
    assert codenames(case, oscar) == []
    assert not reaches(oscar, case, Action.VIEW)
    assert names() == ["CASE_ACCESS_GRANTED", "CASE_ACCESS_REVOKED"]
    event = events()[-1]
    assert event["type"] == 211
    assert event["object"] == {"type": "case", "id": str(case.pk)}
    assert event["actor"] == {"id": world.users["lead"].pk, "name": "charlie", "role": "lead"}
    assert event["reason"] == "back to cards"
    assert event["before"] is None
    assert event["after"] == {"user": oscar.pk, "access": ["work_case"]}


def test_it_revokes_every_grant_the_user_holds_on_the_case(world: World) -> None:
    oscar = world.users["other_analyst"]
    case, other = world.cases["analyst"]["team"], world.cases["lead"]["own"]
    assign_perm("cases.view_case", oscar, case)
    assign_perm("cases.work_case", oscar, case)
    assign_perm("cases.work_case", oscar, other)
    revoke_case(case, oscar, acting_user=world.users["analyst"], reason="done")
    assert codenames(case, oscar) == []
    assert codenames(other, oscar) == ["work_case"]
    assert only_event()["after"] == {"user": oscar.pk, "access": ["view_case", "work_case"]}


def test_it_refuses_to_revoke_a_grant_not_held(world: World) -> None:
    case = world.cases["analyst"]["team"]
    with pytest.raises(ValidationError, match=f"oscar holds no grant on {case.reference}"):
        revoke_case(case, world.users["other_analyst"], acting_user=world.users["analyst"], reason="tidy")
    assert events() == []


def test_it_lets_only_one_who_works_the_case_revoke(world: World) -> None:
    oscar, charlie = world.users["other_analyst"], world.users["lead"]
    case = world.cases["analyst"]["team"]
    assign_perm("cases.view_case", oscar, case)
    for acting in (oscar, world.users["admin"], world.users["manager"]):
        with pytest.raises(PermissionDenied, match="only someone who works the case may withdraw"):
            revoke_case(case, charlie, acting_user=acting, reason="tidy")
    assert codenames(case, oscar) == ["view_case"]
    assert events() == []


def test_it_stores_a_view_grant_as_view_only(world: World) -> None:
    case, bob, oscar = world.cases["analyst"]["team"], world.users["analyst"], world.users["other_analyst"]
    grant_case(case, oscar, "view", acting_user=bob, reason="second opinion")
    assert codenames(case, oscar) == ["view_case"]
    assert reaches(oscar, case, Action.VIEW)
    assert not reaches(oscar, case, Action.WORK)
    grant_case(case, oscar, "work", acting_user=bob, reason="joins the investigation")
    assert codenames(case, oscar) == ["view_case", "work_case"]
    assert reaches(oscar, case, Action.WORK)


def test_it_wants_a_reason_to_withdraw_a_grant(world: World) -> None:
    case, bob, oscar = world.cases["analyst"]["team"], world.users["analyst"], world.users["other_analyst"]
    grant_case(case, oscar, "view", acting_user=bob, reason="second opinion")
    with pytest.raises(ValidationError, match="reason"):
        revoke_case(case, oscar, acting_user=bob, reason=" ")
    assert codenames(case, oscar) == ["view_case"]
