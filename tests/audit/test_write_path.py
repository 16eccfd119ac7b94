"""The ledger's hot path: record()'s kept statement, and integration's batches, kept frontier and
checkpoint signed in the batch's own transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from audit import ledger, merkle
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint, Event, PendingEvent, TreeNode
from audit.verify import verify

pytestmark = pytest.mark.django_db

BOB = Actor(8, "bob", "analyst")


def recorded(count: int, prefix: str = "k") -> None:
    with transaction.atomic():
        for n in range(count):
            record(EventType.KEY_ROTATED, actor=BOB, object_type="key", object_id=f"{prefix}{n}")


def stored_tree_matches_the_leaves() -> bool:
    leaves = [bytes(leaf) for leaf in Event.objects.order_by("seq").values_list("leaf", flat=True)]
    nodes = {(n.level, n.index): bytes(n.hash) for n in TreeNode.objects.all()}
    expected = {}
    for level, index in nodes:
        width = 2**level
        expected[(level, index)] = merkle.root(leaves[index * width : (index + 1) * width])
    return nodes == expected and len(nodes) == len(leaves) - bin(len(leaves)).count("1")


# --- record() ---------------------------------------------------------------------------------


def test_the_insert_goes_through_the_execute_wrappers_and_the_query_log() -> None:
    seen: list[str] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper), transaction.atomic():
        record(EventType.KEY_ROTATED, actor=BOB)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        record(EventType.KEY_ROTATED, actor=BOB)
    assert [sql for sql in seen if "audit_pending" in sql] == [ledger._INSERT_PENDING]
    logged = [q["sql"] for q in queries if "audit_pending" in q["sql"]]  # as sent: $1, $2 for %s
    assert logged == ["INSERT INTO audit_pending (body, recorded_at) VALUES ($1, $2)"]
    assert PendingEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_records_on_a_new_connection_after_the_old_one_closed() -> None:
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=BOB, object_id="before")
    kept = connection._caspix_ledger_cursor  # type: ignore[attr-defined]
    connection.close()
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=BOB, object_id="after")
    assert connection._caspix_ledger_cursor is not kept  # type: ignore[attr-defined]
    assert kept[0].closed  # the kept cursor belonged to the closed connection
    assert Event.objects.count() == 2  # sequenced inline, as each transaction committed
    assert verify().intact


def test_it_refuses_to_record_in_a_broken_transaction_as_any_query_would() -> None:
    with transaction.atomic():
        with pytest.raises(DatabaseError), transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
        with pytest.raises(TransactionManagementError):
            record(EventType.KEY_ROTATED, actor=BOB)
        transaction.set_rollback(True)
    assert not PendingEvent.objects.exists()


def test_it_returns_the_body_it_stored() -> None:
    with transaction.atomic():
        body = record(EventType.KEY_ROTATED, actor=BOB, object_id="x")
    assert bytes(PendingEvent.objects.get().body) == body


# --- integration ------------------------------------------------------------------------------


def test_a_frontier_kept_from_a_rolled_back_batch_is_not_built_on() -> None:
    recorded(3, "gone")
    with transaction.atomic():
        assert ledger.integrate() == 3
        kept = ledger._frontier_kept
        transaction.set_rollback(True)
    assert kept is not None
    assert kept.head.size == 3
    PendingEvent.objects.all().delete()
    recorded(3, "kept")  # the same size again, other events: another chain link
    assert ledger.integrate() == 3
    recorded(2, "more")
    assert ledger.integrate() == 2
    assert Event.objects.count() == 5
    assert stored_tree_matches_the_leaves()
    assert verify().intact


def test_a_frontier_another_process_moved_past_is_read_again() -> None:
    recorded(5)
    assert ledger.integrate() == 5
    ledger._frontier_kept = ledger._Frontier(ledger.Head(2, bytes(32)), {})  # as if this process had stopped at 2
    recorded(3, "later")
    assert ledger.integrate() == 3
    assert stored_tree_matches_the_leaves()
    assert verify().intact


def test_a_frontier_kept_for_the_same_size_but_another_chain_is_not_built_on(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded(3)
    assert ledger.integrate() == 3
    kept = ledger._frontier_kept
    assert kept is not None
    assert kept.head == ledger.head()
    bogus = dict.fromkeys(kept.nodes, bytes(32))
    monkeypatch.setattr(ledger, "_frontier_kept", ledger._Frontier(ledger.Head(3, bytes(32)), bogus))  # another chain
    recorded(2, "next")
    assert ledger.integrate() == 2
    assert stored_tree_matches_the_leaves()
    assert verify().intact


def test_a_kept_frontier_is_what_the_next_batch_builds_on(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded(3)
    assert ledger.integrate() == 3
    kept = ledger._frontier_kept
    assert kept is not None
    monkeypatch.setattr(ledger, "_frontier_kept", ledger._Frontier(kept.head, dict.fromkeys(kept.nodes, bytes(32))))
    recorded(1, "next")
    assert ledger.integrate() == 1  # built on the (here, damaged) frontier, not read again
    assert not stored_tree_matches_the_leaves()


def test_each_batch_is_six_round_trips_whatever_its_size(settings: Settings) -> None:
    settings.LEDGER = {**settings.LEDGER, "CHECKPOINT_EVENTS": 1_000_000, "CHECKPOINT_SECONDS": 3600}
    recorded(1)
    ledger.integrate_all()  # the first checkpoint
    for count in (1, 300):
        recorded(count)
        with CaptureQueriesContext(connection) as queries:
            ledger.integrate_all(seal_when_idle=False)
        # exists, lock, batch + head + checkpoint, move + nodes; BEGIN and COMMIT are not logged
        # (here, inside the test's transaction, they are a savepoint and its release)
        statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
        assert len(statements) == 4, statements
    assert verify().intact


def test_the_batch_that_empties_the_queue_signs_in_its_own_transaction(settings: Settings) -> None:
    settings.LEDGER = {**settings.LEDGER, "CHECKPOINT_EVENTS": 4}
    recorded(6)
    assert ledger.integrate_all(seal_when_idle=False) == 6
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [6]
    recorded(2)
    assert ledger.integrate_all(seal_when_idle=False) == 2  # 2 events and a young checkpoint: not due
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [6]
    assert verify().intact


def test_a_queue_of_whole_batches_is_signed_once_at_the_end(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    settings.LEDGER = {**settings.LEDGER, "CHECKPOINT_EVENTS": 4}
    monkeypatch.setattr(ledger, "BATCH", 4)
    recorded(8)
    assert ledger.integrate_all(seal_when_idle=False) == 8  # 4, 4, then nothing: seal() signs
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [8]
    recorded(6)
    assert ledger.integrate_all(seal_when_idle=False) == 6  # 4, then 2: the second batch signs
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [8, 14]
    assert verify().intact


def test_a_checkpoint_that_cannot_be_signed_leaves_the_batch_sequenced_and_fails_the_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LEDGER = {**settings.LEDGER, "CHECKPOINT_EVENTS": 1}

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the key service is out of reach")

    monkeypatch.setattr(ledger, "key_service", unreachable)
    recorded(3)
    with pytest.raises(ConnectionError):
        ledger.integrate_all(seal_when_idle=False)  # the task fails, as a failing seal() made it
    assert ledger.head().size == 3
    assert not PendingEvent.objects.exists()
    assert not Checkpoint.objects.exists()
    monkeypatch.undo()
    assert ledger.seal() is not None  # the beat's next run signs it


def test_a_stored_tree_that_does_not_extend_the_checkpoint_is_not_signed_in_a_batch(settings: Settings) -> None:
    settings.LEDGER = {**settings.LEDGER, "CHECKPOINT_EVENTS": 1}
    recorded(4)
    ledger.integrate_all()
    assert Checkpoint.objects.get().size == 4
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_tree_node DISABLE TRIGGER USER")
        cursor.execute("UPDATE audit_tree_node SET hash = %s WHERE level = 2", [bytes(32)])
        cursor.execute("ALTER TABLE audit_tree_node ENABLE TRIGGER USER")
    recorded(1)
    ledger._frontier_kept = None  # a process that reads the frontier from the stored nodes
    with pytest.raises(merkle.ProofError):
        ledger.integrate_all(seal_when_idle=False)
    assert ledger.head().size == 5
    assert Checkpoint.objects.count() == 1
    with pytest.raises(merkle.ProofError):
        ledger.seal(force=True)
    assert not verify().intact
