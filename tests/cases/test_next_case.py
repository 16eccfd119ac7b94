"""Next case: the most urgent waiting case of one's own queues, taken atomically."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cases.actions import take_next_case
from cases.models import Case, OutboxEvent
from tests.conftest import client_for
from tests.personas import World, build_world
from tests.recorded import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: None) -> World:
    world = build_world()
    Case.objects.update(status=Case.Status.CLOSED)  # the personas' cases wait for no one
    return world


NOW = timezone.now()


def waiting(world: World, queue: str, *, due_in_hours: float | None, priority: int = 2, title: str = "") -> Case:
    due = None if due_in_hours is None else NOW + datetime.timedelta(hours=due_in_hours)
    return Case.objects.create(title=title or queue, queue=world.queues[queue], priority=priority, sla_due_at=due)


def test_it_takes_the_earliest_due_then_the_highest_priority_of_ones_own_queues(world: World) -> None:
    analyst = world.users["analyst"]  # in the cards team
    waiting(world, "aml", due_in_hours=1, title="other team")  # more urgent, but not hers
    no_sla = waiting(world, "cards", due_in_hours=None, priority=4)
    later = waiting(world, "cards", due_in_hours=48, priority=1)
    urgent_low = waiting(world, "cards", due_in_hours=4, priority=1)
    urgent_high = waiting(world, "cards", due_in_hours=4, priority=3)
    taken = [take_next_case(acting_user=analyst) for _ in range(5)]
    assert [case.pk if case else None for case in taken] == [urgent_high.pk, urgent_low.pk, later.pk, no_sla.pk, None]
    urgent_high.refresh_from_db()
    assert (urgent_high.assignee, urgent_high.status) == (analyst, Case.Status.IN_PROGRESS)


def test_it_records_the_taking_and_tells_the_banks_systems(world: World) -> None:
    analyst = world.users["analyst"]
    case = waiting(world, "cards", due_in_hours=4)
    take_next_case(acting_user=analyst)
    taken = events()[-1]
    assert (taken["name"], taken["object"]) == ("CASE_TAKEN", {"type": "case", "id": str(case.pk)})
    assert (taken["before"], taken["after"]) == (
        {"status": "new", "assignee": None},
        {"status": "in_progress", "assignee": analyst.pk},
    )
    event = OutboxEvent.objects.get(event_type="case.status-changed")
    assert event.data == {"case": case.reference, "queue": "cards", "from": "new", "to": "in_progress"}


def test_it_leaves_assigned_and_started_cases_alone(world: World) -> None:
    mine = waiting(world, "cards", due_in_hours=1)
    Case.objects.filter(pk=mine.pk).update(assignee=world.users["lead"])
    started = waiting(world, "cards", due_in_hours=1)
    Case.objects.filter(pk=started.pk).update(status=Case.Status.IN_PROGRESS)
    free = waiting(world, "cards", due_in_hours=2)  # less urgent, but the only one waiting
    first = take_next_case(acting_user=world.users["analyst"])
    assert first is not None
    assert first.pk == free.pk
    assert take_next_case(acting_user=world.users["analyst"]) is None


def test_the_button_opens_the_case_or_says_none_waits(world: World) -> None:
    case = waiting(world, "cards", due_in_hours=4)
    browser = client_for(world.users["analyst"])
    assert b"Take the next case" in browser.get(reverse("cases:workspace")).content
    response = browser.post(reverse("cases:next_case"))
    assert response["Location"] == reverse("cases:case", args=[case.pk])
    again = browser.post(reverse("cases:next_case"), follow=True)
    assert again.redirect_chain[-1][0] == reverse("cases:workspace")
    assert b"No new case is waiting" in again.content


@pytest.mark.django_db(transaction=True)
def test_two_analysts_asking_at_once_never_get_the_same_case(db: None) -> None:
    world = build_world()
    Case.objects.update(status=Case.Status.CLOSED)
    cases = [waiting(world, "cards", due_in_hours=1 + n) for n in range(6)]
    takers = [world.users["analyst"], world.users["lead"]] * 4  # eight asks for six cases
    start = threading.Barrier(len(takers))
    results: list[int | None] = []

    def ask(user: object) -> None:
        try:
            start.wait(10)
            taken = take_next_case(acting_user=user)  # type: ignore[arg-type]
            results.append(taken.pk if taken else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(user,)) for user in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    taken = [pk for pk in results if pk is not None]
    assert sorted(taken) == sorted(case.pk for case in cases)  # each case once, none left waiting
    assert results.count(None) == 2
    assert Case.objects.filter(pk__in=taken, status=Case.Status.IN_PROGRESS, assignee__isnull=False).count() == 6


def test_it_assigns_one_case_to_whoever_asks_and_may_work_it(world: World) -> None:
    analyst, lead = world.users["analyst"], world.users["lead"]
    case = waiting(world, "cards", due_in_hours=4)
    browser = client_for(analyst)
    assert b"Assign to me" in browser.get(reverse("cases:case", args=[case.pk])).content
    assert browser.post(reverse("cases:case_take", args=[case.pk])).status_code == 302
    case.refresh_from_db()
    assert (case.assignee, case.status) == (analyst, Case.Status.IN_PROGRESS)
    assert events()[-1]["name"] == "CASE_TAKEN"
    assert b"Assign to me" not in browser.get(reverse("cases:case", args=[case.pk])).content
    taken_twice = client_for(lead).post(reverse("cases:case_take", args=[case.pk]))
    assert taken_twice.status_code == 400
    assert b"assigned to someone else already" in taken_twice.content
    case.refresh_from_db()
    assert case.assignee == analyst


def test_it_takes_a_started_case_without_restarting_it_and_never_a_closed_one(world: World) -> None:
    from django.core.exceptions import ValidationError

    from cases.actions import take_case

    started = waiting(world, "cards", due_in_hours=4)
    Case.objects.filter(pk=started.pk).update(status=Case.Status.IN_PROGRESS)
    before = OutboxEvent.objects.count()
    take_case(started, acting_user=world.users["analyst"])
    assert events()[-1]["before"] == {"status": "in_progress", "assignee": None}
    assert OutboxEvent.objects.count() == before  # no status change, no event
    closed = waiting(world, "cards", due_in_hours=4)
    Case.objects.filter(pk=closed.pk).update(status=Case.Status.CLOSED)
    with pytest.raises(ValidationError, match="closed"):
        take_case(closed, acting_user=world.users["analyst"])
