"""The analysts' workspace, the case page with its grants, and the queue administration pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from guardian.shortcuts import assign_perm

from accounts.models import Team
from audit.models import PendingEvent
from cases.models import Action, Case, CaseUserObjectPermission, Queue
from cases.queue import PAGE_SIZE
from tests.conftest import client_for
from tests.personas import MISSING_PK, World, build_world

pytestmark = pytest.mark.django_db

WORKSPACE = reverse("cases:workspace")
QUEUES = reverse("queues:list")


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def case_url(case: Case | int) -> str:
    return reverse("cases:case", args=[case if isinstance(case, int) else case.pk])


def access_url(case: Case) -> str:
    return reverse("cases:access", args=[case.pk])


def add_team_cases(world: World, count: int) -> None:
    """``count`` more cases in the card-fraud queue, each opened at its own minute."""
    start = Case.objects.count()
    now = timezone.now()
    Case.objects.bulk_create(
        Case(title=f"bulk {n}", queue=world.queues["cards"], opened_at=now - timedelta(minutes=n))
        for n in range(start, start + count)
    )


def listed(client: Client, query: dict[str, str] | None = None) -> list[int]:
    response = client.get(WORKSPACE, query or {})
    assert response.status_code == 200
    return [case.pk for case in response.context["page"].cases]


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def without_per_response_tokens(html: bytes) -> str:
    """The page with its CSP nonce and masked CSRF tokens, which change on every response, blanked."""
    text = html.decode()
    text = re.sub(r'nonce="[^"]*"', 'nonce=""', text)
    text = re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": ""', text)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken" value=""', text)


# --- the workspace --------------------------------------------------------------------------------


def test_it_lists_exactly_the_cases_the_user_reaches(world: World) -> None:
    bob = world.users["analyst"]
    client = client_for(bob)
    reachable = set(Case.objects.restrict(bob, Action.VIEW).values_list("pk", flat=True))
    assert set(listed(client)) == reachable
    html = client.get(WORKSPACE).content.decode()
    for ownership in ("own", "team"):
        assert world.cases["analyst"][ownership].reference in html
    for case in (world.cases["analyst"]["other team"], world.cases["other_analyst"]["team"]):
        assert case.reference not in html
        assert case_url(case) not in html


def test_it_lists_a_case_granted_to_the_user(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["other team"]
    assign_perm("cases.view_case", bob, case)
    assert case.pk in listed(client_for(bob))


def test_it_tells_a_user_with_no_case_so(world: World) -> None:
    Case.objects.all().delete()
    response = client_for(world.users["analyst"]).get(WORKSPACE)
    assert "There are no cases in your queues." in response.content.decode()


def test_it_pages_the_workspace_by_position_most_urgent_first(world: World) -> None:
    add_team_cases(world, 60)
    now = timezone.now()
    Case.objects.filter(title="bulk 20").update(sla_due_at=now + timedelta(hours=1))  # the most urgent
    Case.objects.filter(title="bulk 21").update(sla_due_at=now + timedelta(hours=1), priority=4)  # more so
    bob = world.users["analyst"]
    reachable = Case.objects.restrict(bob, Action.VIEW)
    assert PAGE_SIZE == 50
    client = client_for(bob)
    first = client.get(WORKSPACE)
    page = first.context["page"]
    assert len(page.cases) == PAGE_SIZE
    assert [case.title for case in page.cases[:2]] == ["bulk 21", "bulk 20"]
    assert page.total == reachable.count()
    next_url = first.context["next_url"]
    assert next_url is not None
    assert 'rel="next"' in first.content.decode()
    second = client.get(WORKSPACE + next_url)
    rest = [case.pk for case in second.context["page"].cases]
    assert second.context["next_url"] is None
    shown = [case.pk for case in page.cases] + rest
    assert sorted(shown) == sorted(reachable.values_list("pk", flat=True))  # nothing twice, nothing left out
    no_sla = [pk for pk in shown if pk not in {page.cases[0].pk, page.cases[1].pk}]
    assert no_sla == list(
        reachable.filter(sla_due_at__isnull=True).order_by("-priority", "pk").values_list("pk", flat=True)
    )
    assert "First page" in second.content.decode()


def test_it_filters_the_workspace_and_counts_by_status(world: World) -> None:
    bob = world.users["analyst"]
    now = timezone.now()
    mine = world.cases["analyst"]["own"]
    Case.objects.filter(pk=mine.pk).update(status=Case.Status.IN_PROGRESS, sla_due_at=now - timedelta(hours=1))
    team = world.cases["analyst"]["team"]
    Case.objects.filter(pk=team.pk).update(priority=Case.Priority.CRITICAL, title="card-velocity")
    client = client_for(bob)
    assert listed(client, {"assignee": "me"}) == [mine.pk]
    assert listed(client, {"sla": "overdue"}) == [mine.pk]
    assert listed(client, {"priority": "4"}) == [team.pk]
    assert listed(client, {"scenario": "CARD-VELOCITY"}) == [team.pk]
    assert listed(client, {"status": "in_progress"}) == [mine.pk]
    assert mine.pk not in listed(client, {"assignee": "nobody"})
    counts = dict(client.get(WORKSPACE, {"status": "in_progress"}).context["counts"])
    new = Case.objects.restrict(bob, Action.VIEW).filter(status=Case.Status.NEW).count()
    assert (counts["In progress"], counts["New"]) == (1, new)  # counted whatever the status filter


@pytest.mark.parametrize(
    "query",
    [{"after": "yesterday~1~5"}, {"after": "2026-02-30T00:00:00+00:00~2~5"}, {"priority": "9"}, {"sla": "soon"}],
)
def test_it_refuses_a_filter_or_position_it_cannot_read(world: World, query: dict[str, str]) -> None:
    response = client_for(world.users["analyst"]).get(WORKSPACE, query)
    assert response.status_code == 400
    assert response.context["page"] is None


def test_it_lists_the_workspace_in_a_constant_number_of_queries(world: World) -> None:
    client = client_for(world.users["analyst"])
    client.get(WORKSPACE)  # the activity middleware writes last_activity at most once a minute
    few = queries_for(client, WORKSPACE)
    add_team_cases(world, 80)
    many = queries_for(client, WORKSPACE)
    # session, user, the verified factor, permissions, the counts by status, the page of cases
    # with queue and assignee, and the bulk form's choices of colleagues and queues
    assert few == many == 8


# --- the case page --------------------------------------------------------------------------------


@pytest.mark.parametrize("ownership", ["own", "team"])
def test_it_shows_a_case_the_user_reaches(world: World, ownership: str) -> None:
    case = world.cases["analyst"][ownership]
    response = client_for(world.users["analyst"]).get(case_url(case))
    assert response.status_code == 200
    html = response.content.decode()
    assert escape(f"{case.reference}: {case.title}") in html
    assert "Work the case" in html  # bob works it
    assert "Open the case to another user" in client_for(world.users["analyst"]).get(access_url(case)).content.decode()


def test_it_shows_a_view_grant_without_the_grant_form(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["other team"]
    assign_perm("cases.view_case", bob, case)
    response = client_for(bob).get(case_url(case))
    assert response.status_code == 200
    assert "Work the case" not in response.content.decode()
    html = client_for(bob).get(access_url(case)).content.decode()
    assert "Open the case to another user" not in html
    assert "View the case" in html  # bob's own grant, listed


def test_it_answers_404_alike_for_another_teams_case_and_a_missing_one(world: World) -> None:
    client = client_for(world.users["analyst"])
    client.get(WORKSPACE)
    unreachable = client.get(case_url(world.cases["analyst"]["other team"]))
    missing = client.get(case_url(MISSING_PK))
    assert unreachable.status_code == missing.status_code == 404
    assert [t.name for t in unreachable.templates] == [t.name for t in missing.templates] == ["404.html", "base.html"]
    assert without_per_response_tokens(unreachable.content) == without_per_response_tokens(missing.content)
    assert world.cases["analyst"]["other team"].title not in unreachable.content.decode()


def test_it_opens_a_case_to_another_analyst_and_withdraws_it(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    granter, grantee = client_for(bob), client_for(oscar)
    assert grantee.get(case_url(case)).status_code == 404

    response = granter.post(
        reverse("cases:case_grant", args=[case.pk]), {"user": "oscar", "access": "work", "reason": "AML angle"}
    )
    assert response.status_code == 302
    assert response["Location"] == access_url(case)
    assert grantee.get(case_url(case)).status_code == 200
    page = granter.get(access_url(case)).content.decode()
    assert f"{case.reference} is open to oscar." in page
    assert reverse("cases:case_revoke", args=[case.pk, "oscar"]) in page

    response = granter.post(reverse("cases:case_revoke", args=[case.pk, "oscar"]))
    assert response.status_code == 302
    assert response["Location"] == access_url(case)
    assert grantee.get(case_url(case)).status_code == 404
    assert not CaseUserObjectPermission.objects.exists()
    assert PendingEvent.objects.count() == 2  # one grant, one revocation


def test_it_answers_400_to_a_grant_without_a_reason(world: World) -> None:
    case = world.cases["analyst"]["team"]
    response = client_for(world.users["analyst"]).post(
        reverse("cases:case_grant", args=[case.pk]), {"user": "oscar", "access": "work", "reason": ""}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["reason"] == ["This field is required."]
    assert 'class="errorlist"' in response.content.decode()
    assert not CaseUserObjectPermission.objects.exists()
    assert not PendingEvent.objects.exists()


def test_it_offers_only_colleagues_who_work_cases(world: World) -> None:
    case = world.cases["analyst"]["team"]
    client = client_for(world.users["analyst"])
    page = client.get(access_url(case)).content.decode()
    assert 'value="oscar"' in page
    assert 'value="dana"' not in page  # a manager: no case can be opened to her
    assert 'value="alice"' not in page  # an administrator
    assert 'value="bob"' not in page  # oneself
    response = client.post(
        reverse("cases:case_grant", args=[case.pk]), {"user": "dana", "access": "view", "reason": "a second look"}
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not CaseUserObjectPermission.objects.exists()


def test_it_answers_400_to_withdrawing_a_grant_not_held(world: World) -> None:
    case = world.cases["analyst"]["team"]
    response = client_for(world.users["analyst"]).post(reverse("cases:case_revoke", args=[case.pk, "oscar"]))
    assert response.status_code == 400
    assert f"oscar holds no grant on {case.reference}" in response.content.decode()


def test_it_answers_404_to_a_grant_on_a_case_out_of_reach(world: World) -> None:
    case = world.cases["analyst"]["other team"]
    response = client_for(world.users["analyst"]).post(
        reverse("cases:case_grant", args=[case.pk]), {"user": "charlie", "access": "work", "reason": "mine now"}
    )
    assert response.status_code == 404
    assert not CaseUserObjectPermission.objects.exists()


# --- queue administration -------------------------------------------------------------------------


def test_it_creates_a_queue_from_the_list_page(world: World) -> None:
    client = client_for(world.users["admin"])
    data = {"slug": "wires", "name": "Wire fraud", "team": "aml", "description": "SWIFT alerts"}
    response = client.post(QUEUES, data)
    assert response.status_code == 302
    assert response["Location"] == QUEUES
    queue = Queue.objects.get(slug="wires")
    assert (queue.name, queue.team, queue.description) == ("Wire fraud", world.teams["aml"], "SWIFT alerts")
    html = client.get(QUEUES).content.decode()
    assert "The queue Wire fraud was created for Anti-money laundering." in html
    assert reverse("queues:detail", args=["wires"]) in html


def test_it_answers_400_naming_a_queue_that_exists(world: World) -> None:
    data = {"slug": "cards-2", "name": "Card fraud queue", "team": "aml"}
    response = client_for(world.users["admin"]).post(QUEUES, data)
    assert response.status_code == 400
    assert escape("a queue named 'Card fraud queue' or 'cards-2' exists already") in response.content.decode()
    assert Queue.objects.count() == 2


def test_it_moves_a_queue_to_another_team(world: World) -> None:
    client = client_for(world.users["admin"])
    response = client.post(reverse("queues:move", args=["cards"]), {"team": "aml"})
    assert response.status_code == 302
    assert response["Location"] == reverse("queues:detail", args=["cards"])
    assert Queue.objects.get(slug="cards").team == world.teams["aml"]
    page = client.get(reverse("queues:detail", args=["cards"])).content.decode()
    assert "Card fraud queue now belongs to Anti-money laundering." in page
    # the cards team's members lost the queue's cases at once
    assert client_for(world.users["analyst"]).get(case_url(world.cases["analyst"]["team"])).status_code == 404


def test_it_answers_400_to_a_move_to_the_same_team(world: World) -> None:
    response = client_for(world.users["admin"]).post(reverse("queues:move", args=["cards"]), {"team": "cards"})
    assert response.status_code == 400
    assert "Card fraud queue already belongs to Card fraud" in response.content.decode()


def test_it_lists_the_queues_in_a_constant_number_of_queries(world: World) -> None:
    client = client_for(world.users["admin"])
    client.get(QUEUES)  # the activity middleware writes last_activity at most once a minute
    few = queries_for(client, QUEUES)
    for n in range(20):
        team = Team.objects.create(slug=f"team-{n}", name=f"Team {n}")
        queue = Queue.objects.create(slug=f"queue-{n}", name=f"Queue {n}", team=team)
        Case.objects.create(title=f"case {n}", queue=queue)
    many = queries_for(client, QUEUES)
    # session, user, the verified factor, permissions, the ledger's integrity banner, the queues
    # with their team and size, and the teams of the creation form
    assert few == many == 7
    html = client.get(QUEUES).content.decode()
    assert "Queue 19" in html


def test_the_queue_shows_open_cases_unless_asked_for_closed_ones(world: World) -> None:
    bob = world.users["analyst"]
    closed = world.cases["analyst"]["team"]
    Case.objects.filter(pk=closed.pk).update(status=Case.Status.CLOSED)
    client = client_for(bob)
    assert closed.pk not in listed(client)
    assert dict(client.get(WORKSPACE).context["counts"])["Closed"] == 0
    assert closed.pk in listed(client, {"status": "any"})
    assert listed(client, {"status": "closed"}) == [closed.pk]
    assert client.get(WORKSPACE, {"status": "closed"}).context["page"].total == 1


def test_a_grant_is_not_withdrawn_from_the_outsider_who_holds_the_case(world: World) -> None:
    """Withdrawing the grant would leave the outsider the case as its assignee: refused."""
    from cases.actions import grant_case, revoke_case

    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    grant_case(case, oscar, "work", acting_user=bob, reason="AML angle")
    Case.objects.filter(pk=case.pk).update(assignee=oscar)
    with pytest.raises(ValidationError, match="assign it to a member of its team first"):
        revoke_case(case, oscar, acting_user=bob, reason="done")
    assert CaseUserObjectPermission.objects.filter(user=oscar).exists()


def test_a_combination_with_another_queryset_is_not_the_doors(world: World) -> None:
    """A case loaded through restrict() remembers it (its rows are then reached by id); a union
    or an OR with another queryset must not pass that mark to cases outside the door."""
    from cases.models import reached

    bob = world.users["analyst"]
    outside = world.cases["analyst"]["other team"]
    combined = Case.objects.restrict(bob, Action.VIEW) | Case.objects.filter(pk=outside.pk)
    assert not reached(combined.get(pk=outside.pk), bob, Action.VIEW)
    united = Case.objects.restrict(bob, Action.VIEW).union(Case.objects.filter(pk=outside.pk))
    assert not any(reached(case, bob, Action.VIEW) for case in united)
    inside = Case.objects.restrict(bob, Action.VIEW).get(pk=world.cases["analyst"]["team"].pk)
    assert reached(inside, bob, Action.VIEW)
    assert not reached(inside, bob, Action.WORK)
    assert not reached(inside, world.users["lead"], Action.VIEW)
