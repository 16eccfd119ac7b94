"""Bulk actions: each case checked on its own, done or refused with its reason, one event each."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import User
from cases import bulk_actions
from cases.models import Case, OutboxEvent
from tests.conftest import client_for
from tests.personas import MISSING_PK, World, build_world
from tests.recorded import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.fixture
def bob(world: World) -> User:
    return world.users["analyst"]


def test_it_assigns_what_it_may_and_says_why_it_refused_the_rest(world: World, bob: User) -> None:
    charlie = world.users["lead"]
    team = world.cases["analyst"]["team"]  # new, unassigned: charlie may work it
    own = world.cases["analyst"]["own"]  # in the AML queue: charlie may not work it
    other = world.cases["analyst"]["other team"]  # bob may not work it
    closed = Case.objects.create(title="closed", queue=world.queues["cards"], status=Case.Status.CLOSED)
    summary = bulk_actions.assign(
        [team.pk, own.pk, other.pk, closed.pk, MISSING_PK, team.pk], charlie, acting_user=bob, reason="holiday cover"
    )
    assert summary.done == [team.reference]
    assert dict(summary.refused) == {
        own.reference: "charlie may not work it",
        other.reference: "you may not work this case, or it does not exist",
        closed.reference: "it is closed",
        f"C-{MISSING_PK:06d}": "you may not work this case, or it does not exist",
    }
    team.refresh_from_db()
    assert (team.assignee, team.status) == (charlie, Case.Status.IN_PROGRESS)
    assigned = [e for e in events() if e["name"] == "CASE_ASSIGNED"]
    assert len(assigned) == 1
    actor = assigned[0]["actor"]
    assert isinstance(actor, dict)
    assert actor["id"] == bob.pk
    assert (assigned[0]["reason"], assigned[0]["before"], assigned[0]["after"]) == (
        "holiday cover",
        {"status": "new", "assignee": None},
        {"status": "in_progress", "assignee": charlie.pk},
    )
    assert OutboxEvent.objects.filter(event_type="case.status-changed").count() == 1


def test_it_reroutes_a_case_to_another_team_unassigned_and_new(world: World, bob: User) -> None:
    case = world.cases["analyst"]["team"]
    Case.objects.filter(pk=case.pk).update(assignee=bob, status=Case.Status.IN_PROGRESS)
    summary = bulk_actions.reroute([case.pk], world.queues["aml"], acting_user=bob, reason="laundering, not fraud")
    assert summary.done == [case.reference]
    case.refresh_from_db()
    assert (case.queue, case.assignee, case.status) == (world.queues["aml"], None, Case.Status.NEW)
    rerouted = events()[-1]
    assert rerouted["name"] == "CASE_REROUTED"
    assert rerouted["before"] == {"queue": "cards", "status": "in_progress", "assignee": bob.pk}
    assert rerouted["after"] == {"queue": "aml", "status": "new", "assignee": None}
    # bob no longer reaches it: it left his team's queue and he no longer holds it
    assert not Case.objects.restrict(bob, "view").filter(pk=case.pk).exists()


def test_it_sets_the_priority_and_the_sla_follows(world: World, bob: User) -> None:
    case = world.cases["analyst"]["team"]
    summary = bulk_actions.set_priority([case.pk], Case.Priority.CRITICAL, acting_user=bob, reason="card still active")
    assert summary.done == [case.reference]
    case.refresh_from_db()
    assert case.priority == Case.Priority.CRITICAL
    assert case.sla_due_at is not None
    assert (case.sla_due_at - case.opened_at).total_seconds() == 4 * 3600
    again = bulk_actions.set_priority([case.pk], Case.Priority.CRITICAL, acting_user=bob, reason="again")
    assert again.refused == [(case.reference, "its priority is critical already")]
    assert [e["name"] for e in events()].count("CASE_PRIORITY_CHANGED") == 1


def test_it_refuses_an_empty_or_oversized_selection_and_a_missing_reason(world: World, bob: User) -> None:
    with pytest.raises(ValidationError, match="at least one case"):
        bulk_actions.set_priority([], 2, acting_user=bob, reason="x")
    with pytest.raises(ValidationError, match="at most"):
        bulk_actions.set_priority(range(1, bulk_actions.LIMIT + 2), 2, acting_user=bob, reason="x")
    with pytest.raises(ValidationError, match="reason"):
        bulk_actions.reroute([1], world.queues["aml"], acting_user=bob, reason=" ")


def test_the_queue_ticks_cases_and_the_summary_page_reports(world: World, bob: User) -> None:
    client = client_for(bob)
    team, other = world.cases["analyst"]["team"], world.cases["analyst"]["other team"]
    page = client.get(reverse("cases:workspace")).content.decode()
    assert f'name="case" value="{team.pk}" form="bulk-form"' in page
    response = client.post(
        reverse("cases:bulk"),
        {"case": [str(team.pk), str(other.pk)], "action": "priority", "priority": "3", "reason": "review"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "1 case done, 1 refused." in html
    assert other.reference in html
    assert "you may not work this case" in html
    missing = client.post(reverse("cases:bulk"), {"case": [str(team.pk)], "action": "assign", "reason": "x"})
    assert missing.status_code == 400
    assert "Choose one for this action." in missing.content.decode()
