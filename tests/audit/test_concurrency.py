"""Concurrent writers never fork the chain, leave a gap or lose an event that reported success."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from audit import ledger
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Event, PendingEvent
from audit.verify import verify

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 16
ACTIONS = 15


def act(writer: int) -> list[str]:
    """One writer's actions, each its own transaction; the integrator runs on every commit."""
    done = []
    try:
        for n in range(ACTIONS):
            with transaction.atomic():
                record(EventType.KEY_ROTATED, actor=Actor.system(f"writer {writer}"), object_id=f"{writer}-{n}")
                if n % 5 == 4:
                    transaction.set_rollback(True)  # an action that fails: its event must vanish
                    continue
            done.append(f"{writer}-{n}")
    finally:
        connection.close()
    return done


def test_it_sequences_concurrent_writers_without_gap_fork_or_loss() -> None:
    barrier = threading.Barrier(WRITERS)

    def start(writer: int) -> list[str]:
        barrier.wait()
        return act(writer)

    with ThreadPoolExecutor(WRITERS) as pool:
        succeeded = [item for done in pool.map(start, range(WRITERS)) for item in done]
    ledger.integrate_all()
    assert not PendingEvent.objects.exists()
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(succeeded) + 1))
    assert sorted(Event.objects.values_list("object_id", flat=True)) == sorted(succeeded)
    ledger.seal(force=True)
    report = verify()
    assert report.intact, report.damage
    assert report.size == WRITERS * ACTIONS * 4 // 5
