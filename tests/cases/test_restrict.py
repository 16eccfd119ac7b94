"""The one door to cases: ``Case.objects.restrict(user, action)`` and ``get_case_for_user``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.actions import remove_member
from accounts.models import Membership, User
from cases.actions import move_queue
from cases.models import Action, Case, get_case_for_user
from tests.factories import make_user
from tests.personas import MISSING_PK, World, build_world

pytestmark = pytest.mark.django_db

TEAM_ACTIONS = [Action.VIEW, Action.WORK]  # the doors of teams, assignees and grants

NON_CASEWORKERS = ("admin", "manager", "auditor", "roleless")


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def reach(user: User | AnonymousUser, action: Action | str) -> set[int]:
    return set(Case.objects.restrict(user, action).values_list("pk", flat=True))


def fresh(user: User) -> User:
    """The user as the next request would load them (no cached permissions)."""
    return User.objects.get(pk=user.pk)


def open_every_way(world: World, user: User) -> Case:
    """A case ``user`` reaches by every path at once: team, assignment and both grants."""
    Membership.objects.get_or_create(team=world.teams["cards"], user=user)
    case = Case.objects.create(title="every way", queue=world.queues["cards"], assignee=user)
    assign_perm("cases.view_case", user, case)
    assign_perm("cases.work_case", user, case)
    return case


def test_it_opens_the_team_queue_to_its_members_for_both_actions(world: World) -> None:
    bob = world.users["analyst"]
    cards_cases = set(Case.objects.filter(queue=world.queues["cards"]).values_list("pk", flat=True))
    expected = cards_cases | {world.cases["analyst"]["own"].pk}
    assert world.cases["analyst"]["team"].pk in cards_cases
    assert reach(bob, Action.VIEW) == expected
    assert reach(bob, Action.WORK) == expected


def test_it_keeps_another_teams_queue_closed(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    assert world.cases["analyst"]["other team"].pk not in reach(bob, Action.VIEW)
    assert world.cases["other_analyst"]["team"].pk not in reach(bob, Action.VIEW)
    assert world.cases["analyst"]["team"].pk not in reach(oscar, Action.VIEW)


@pytest.mark.parametrize("persona", ["analyst", "lead", "other_analyst"])
@pytest.mark.parametrize("action", TEAM_ACTIONS)
def test_it_lets_the_assignee_reach_a_case_in_another_teams_queue(world: World, persona: str, action: Action) -> None:
    own = world.cases[persona]["own"]
    user = world.users[persona]
    assert not Membership.objects.filter(user=user, team=own.queue.team).exists()
    assert own.pk in reach(user, action)
    assert world.cases[persona]["other team"].pk not in reach(user, action)


def test_it_opens_a_view_grant_for_viewing_only(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["other team"]
    assign_perm("cases.view_case", bob, case)
    assert case.pk in reach(bob, Action.VIEW)
    assert case.pk not in reach(bob, Action.WORK)


def test_it_opens_a_work_grant_for_both_actions(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["other team"]
    assign_perm("cases.work_case", bob, case)
    assert case.pk in reach(bob, Action.VIEW)
    assert case.pk in reach(bob, Action.WORK)


def test_it_ignores_another_users_grant(world: World) -> None:
    case = world.cases["analyst"]["other team"]
    assign_perm("cases.work_case", world.users["lead"], case)
    assert case.pk not in reach(world.users["analyst"], Action.VIEW)
    assert case.pk in reach(world.users["lead"], Action.WORK)


def test_it_accepts_the_action_by_its_value(world: World) -> None:
    bob = world.users["analyst"]
    assert reach(bob, "view") == reach(bob, Action.VIEW)
    with pytest.raises(ValueError, match="'edit'"):
        Case.objects.restrict(bob, "edit")


@pytest.mark.parametrize("action", TEAM_ACTIONS)
def test_it_returns_each_case_once_whatever_the_paths_to_it(world: World, action: Action) -> None:
    bob = world.users["analyst"]
    case = open_every_way(world, bob)
    cases = Case.objects.restrict(bob, action)
    pks = list(cases.values_list("pk", flat=True))
    assert pks.count(case.pk) == 1
    assert len(pks) == len(set(pks))
    assert cases.count() == cases.distinct().count() == len(pks)
    assert len(list(cases.select_related("queue", "assignee"))) == len(pks)


@pytest.mark.parametrize("persona", NON_CASEWORKERS)
def test_it_gives_nothing_to_one_who_does_not_work_cases(world: World, persona: str) -> None:
    user = world.users[persona]
    open_every_way(world, user)
    assert Case.objects.filter(assignee=user).exists()
    assert reach(user, Action.VIEW) == set()
    assert reach(user, Action.WORK) == set()
    with pytest.raises(Http404):
        get_case_for_user(user, Case.objects.filter(assignee=user).get().pk)


def test_it_adds_nothing_for_the_superuser_flag_on_an_analyst(world: World) -> None:
    bob = world.users["analyst"]
    before = {action: reach(bob, action) for action in TEAM_ACTIONS}
    User.objects.filter(pk=bob.pk).update(is_superuser=True, is_staff=True)
    root_bob = fresh(bob)
    assert root_bob.is_superuser
    for action in TEAM_ACTIONS:
        assert reach(root_bob, action) == before[action]
    assert Case.objects.count() > len(before[Action.VIEW])


def test_it_gives_nothing_for_the_superuser_flag_on_a_roleless_user(world: World) -> None:
    frank = world.users["roleless"]
    User.objects.filter(pk=frank.pk).update(is_superuser=True, is_staff=True)
    root = fresh(frank)
    assert root.is_superuser
    assert reach(root, Action.VIEW) == set()
    assert reach(root, Action.WORK) == set()


def test_it_gives_nothing_to_an_inactive_user(world: World) -> None:
    bob = world.users["analyst"]
    open_every_way(world, bob)
    User.objects.filter(pk=bob.pk).update(is_active=False)
    gone = fresh(bob)
    assert reach(gone, Action.VIEW) == set()
    assert reach(gone, Action.WORK) == set()


def test_it_gives_nothing_to_an_anonymous_user(world: World) -> None:
    assert reach(AnonymousUser(), Action.VIEW) == set()
    assert reach(AnonymousUser(), Action.WORK) == set()
    with pytest.raises(Http404):
        get_case_for_user(AnonymousUser(), world.cases["analyst"]["team"].pk)


def test_it_drops_a_removed_members_team_cases_at_once(world: World) -> None:
    bob = world.users["analyst"]
    team_case, own = world.cases["analyst"]["team"], world.cases["analyst"]["own"]
    assert team_case.pk in reach(bob, Action.VIEW)
    remove_member(world.teams["cards"], bob, acting_user=world.users["admin"])
    # the same user object, as within one request: nothing about the teams is cached
    assert reach(bob, Action.VIEW) == {own.pk}
    assert reach(bob, Action.WORK) == {own.pk}


def test_it_hands_a_moved_queues_cases_to_the_new_team_at_once(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    cards = set(Case.objects.filter(queue=world.queues["cards"]).values_list("pk", flat=True))
    assert cards <= reach(bob, Action.WORK)
    assert not cards <= reach(oscar, Action.WORK)
    move_queue(world.queues["cards"], world.teams["aml"], acting_user=world.users["admin"])
    assert reach(bob, Action.WORK) == {world.cases["analyst"]["own"].pk}
    assert reach(oscar, Action.WORK) == set(Case.objects.values_list("pk", flat=True))


def test_it_finds_a_reachable_case(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["team"]
    found = get_case_for_user(bob, case.pk)
    assert found == case
    with CaptureQueriesContext(connection) as queries:
        assert (found.queue.name, found.assignee) == ("Card fraud queue", None)
    assert len(queries) == 0  # queue and assignee came with the case


def test_it_answers_404_alike_for_a_missing_and_an_unreachable_case(world: World) -> None:
    bob = world.users["analyst"]
    with pytest.raises(Http404) as missing:
        get_case_for_user(bob, MISSING_PK)
    with pytest.raises(Http404) as unreachable:
        get_case_for_user(bob, world.cases["analyst"]["other team"].pk)
    assert str(missing.value) == str(unreachable.value)


def test_it_answers_404_for_work_on_a_case_granted_for_viewing(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["other team"]
    assign_perm("cases.view_case", bob, case)
    assert get_case_for_user(bob, case.pk, Action.VIEW) == case
    with pytest.raises(Http404):
        get_case_for_user(bob, case.pk, Action.WORK)


def add_cases(world: World, user: User, count: int) -> None:
    """``count`` cases ``user`` reaches, by turns through the team, assignment and a grant."""
    aml, cards = world.queues["aml"], world.queues["cards"]
    start = Case.objects.count()
    for n in range(start, start + count):
        opened = timezone.now() - timedelta(minutes=n)
        match n % 3:
            case 0:
                Case.objects.create(title=f"team {n}", queue=cards, opened_at=opened)
            case 1:
                Case.objects.create(title=f"assigned {n}", queue=aml, assignee=user, opened_at=opened)
            case _:
                granted = Case.objects.create(title=f"granted {n}", queue=aml, opened_at=opened)
                assign_perm("cases.view_case", user, granted)
                assign_perm("cases.work_case", user, granted)


def listing_queries(user: User) -> tuple[int, int]:
    """(rows, queries) of a workspace-style listing for ``user`` as a new request loads them."""
    user = fresh(user)
    with CaptureQueriesContext(connection) as queries:
        rows = [
            (case.reference, case.queue.name, case.assignee.username if case.assignee else "")
            for case in Case.objects.restrict(user, Action.VIEW).select_related("queue", "assignee")
        ]
    return len(rows), len(queries)


def test_it_lists_in_a_constant_number_of_queries(world: World) -> None:
    pat = make_user("pat", ["analyst"])
    Membership.objects.create(team=world.teams["cards"], user=pat)
    listing_queries(pat)  # warm the content-type cache guardian reads
    add_cases(world, pat, 3)
    few = listing_queries(pat)
    add_cases(world, pat, 27)
    many = listing_queries(pat)
    team_cases = Case.objects.filter(queue=world.queues["cards"]).count()
    assigned = Case.objects.filter(assignee=pat).count()
    granted = Case.objects.filter(grants__user=pat).distinct().count()
    assert (assigned, granted) == (10, 10)
    assert many[0] == few[0] + 27
    assert many[0] == team_cases + assigned + granted
    # the user's permissions, then the listing itself: teams and grants are subqueries of it
    assert few[1] == many[1] == 2


@pytest.mark.parametrize(
    ("action", "holder"), [(Action.AGGREGATE, "manager"), (Action.EXPORT, "auditor")], ids=["aggregate", "export"]
)
def test_the_whole_bank_doors_open_every_case_to_their_permission_only(
    world: World, action: Action, holder: str
) -> None:
    every = set(Case.objects.values_list("pk", flat=True))
    assert every
    assert reach(world.users[holder], action) == every
    for persona in ("admin", "analyst", "lead", "roleless", "manager", "auditor"):
        if persona != holder:
            assert reach(world.users[persona], action) == set(), persona
    # ...and neither opens the workspace's doors
    assert reach(world.users[holder], Action.VIEW) == set()
    assert reach(world.users[holder], Action.WORK) == set()
