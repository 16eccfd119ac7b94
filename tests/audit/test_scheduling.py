"""Asking a worker to sequence new events: at most two tasks a window, on Redis, and every event
sequenced by a real worker soon after its commit all the same."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from django.db import transaction
from pytest_django.fixtures import Settings

from audit import ledger
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Event, PendingEvent
from audit.tasks import integrate_ledger
from caspix.celery import app
from tests.audit.test_windows import not_at_a_window_end
from tests.caspix.test_celery_worker import wait_until, worker_queue  # noqa: F401 - the fixture

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WORKER = Actor.system("scheduling test")
PUBLISH = integrate_ledger.apply_async


@pytest.fixture
def routed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Sequencing tasks go to a queue of this test's own, from a fresh scheduler."""
    queue = f"test-{uuid.uuid4().hex}"
    settings.LEDGER = {**settings.LEDGER, "INTEGRATE": "task"}
    route(monkeypatch, queue)
    monkeypatch.setattr(ledger, "_scheduler", ledger._Scheduler(uuid.uuid4().hex))
    yield queue
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(queue)  # type: ignore[attr-defined]


def route(monkeypatch: pytest.MonkeyPatch, queue: str) -> None:
    """The real publishing, to ``queue``."""
    monkeypatch.setattr(integrate_ledger, "apply_async", functools.partial(PUBLISH, queue=queue))


def published(queue: str) -> list[dict[str, object]]:
    """The tasks in ``queue``, oldest first (kombu pushes at the head of the Redis list)."""
    with app.connection_for_write() as conn:
        raw = conn.default_channel.client.lrange(queue, 0, -1)  # type: ignore[attr-defined]
    return [json.loads(message)["headers"] for message in reversed(raw)]


def audited_actions(count: int) -> None:
    for n in range(count):
        with transaction.atomic():
            record(EventType.KEY_ROTATED, actor=WORKER, object_type="key", object_id=n)


def test_a_busy_process_publishes_twice_a_window_not_once_a_transaction(routed: str, settings: Settings) -> None:
    settings.LEDGER = {**settings.LEDGER, "SCHEDULE_WINDOW": 30.0}  # the whole test is one window
    not_at_a_window_end(30.0)
    audited_actions(20)
    tasks = published(routed)
    assert len(tasks) == 2
    assert tasks[0]["eta"] is None  # at once, for the first commit
    assert tasks[1]["eta"] is not None  # at the window's end, for the commits after it
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=WORKER, object_type="key", object_id="rolled back")
        transaction.set_rollback(True)
    assert len(published(routed)) == 2  # nothing committed, nothing asked


def test_a_new_window_publishes_at_once_again(routed: str, settings: Settings) -> None:
    settings.LEDGER = {**settings.LEDGER, "SCHEDULE_WINDOW": 0.05}
    audited_actions(1)
    time.sleep(0.1)
    audited_actions(1)
    assert [task["eta"] for task in published(routed)] == [None, None]


def test_a_worker_sequences_every_event_soon_after_a_burst(
    routed: str,
    settings: Settings,
    worker_queue: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route(monkeypatch, worker_queue)
    settings.LEDGER = {**settings.LEDGER, "SCHEDULE_WINDOW": 0.5}
    audited_actions(40)  # faster than the window: most commits publish nothing themselves
    assert wait_until(lambda: Event.objects.count() == 40, seconds=30)
    assert not PendingEvent.objects.exists()
    assert list(Event.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 41))
