"""The tamper suite again, with the ledger walked by two processes in one exported snapshot.

Committed ledgers (a transactional test database) of ten events are split at event 5: the
verifier walks the first half, ``python -m audit.walk`` the second, and every kind of damage
must still be found, at the same event, whichever half it lies in.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from audit import ledger, walk
from audit import verify as verifier
from audit.events import EventType
from audit.ledger import record
from audit.models import Checkpoint
from tests.audit.test_verify import *  # noqa: F403 - every test of the suite, collected again here
from tests.audit.test_verify import SYSTEM, as_owner

pytestmark = pytest.mark.django_db(transaction=True)

LEDGER_TABLES = ("audit_event", "audit_tree_node", "audit_checkpoint", "audit_pending")
MIGRATION = importlib.import_module("audit.migrations.0004_event_columns_match_body")


@pytest.fixture(autouse=True)
def two_walkers(monkeypatch: pytest.MonkeyPatch, transactional_db: None) -> Iterator[None]:
    """Split from two events on; afterwards, empty the ledger and restore what a test took away."""
    monkeypatch.setattr(verifier, "SPLIT_FROM", 2)
    yield
    with connection.cursor() as cursor:
        for table in LEDGER_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(f"TRUNCATE {', '.join(LEDGER_TABLES)}")
        for table in LEDGER_TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", [MIGRATION.CONSTRAINT])
        if cursor.fetchone() is None:
            cursor.execute(MIGRATION.CHECK)


def test_it_walks_with_two_processes(ledger_of_ten: None) -> None:
    report = verifier.verify()
    assert (report.intact, report.walkers, report.size, report.checkpoints) == (True, 2, 10, 10)


def test_it_walks_alone_inside_a_transaction(ledger_of_ten: None) -> None:
    with transaction.atomic():
        report = verifier.verify()
    assert (report.intact, report.walkers) == (True, 1)


def test_it_finds_damage_to_a_subtree_the_second_walker_starts_from(ledger_of_ten: None) -> None:
    """The second walker starts at event 5 from the stored subtree (2, 0): the first must arrive there."""
    value = bytearray(ledger.stored_nodes({(2, 0)})[(2, 0)])
    value[0] ^= 0x01
    as_owner("UPDATE audit_tree_node SET hash = %s WHERE level = 2 AND index = 0", [bytes(value)], "audit_tree_node")
    report = verifier.verify()
    assert (report.first_bad_seq, report.damage[0].kind) == (1, "tree")


def test_it_finds_a_tree_node_beyond_the_ledger(ledger_of_ten: None) -> None:
    as_owner("INSERT INTO audit_tree_node (level, index, hash) VALUES (1, 5, %s)", [bytes(32)], "audit_tree_node")
    report = verifier.verify()
    assert report.damage[0].kind == "tree"
    assert "beyond the ledger" in report.damage[0].detail


def append_two() -> None:
    """Two more events, sequenced and sealed on a connection of their own (a thread's)."""
    try:
        for n in range(2):
            with transaction.atomic():
                record(EventType.KEY_ROTATED, actor=SYSTEM, object_type="key", object_id=f"late {n}")
        ledger.integrate()
        ledger.seal(force=True)
    finally:
        connection.close()


def test_it_verifies_one_snapshot_while_events_are_sequenced(
    ledger_of_ten: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    walk_rows = walk.walk_rows

    def walk_then_append(*args: Any, **kwargs: Any) -> None:
        walk_rows(*args, **kwargs)
        appending = threading.Thread(target=append_two)
        appending.start()
        appending.join()

    monkeypatch.setattr(walk, "walk_rows", walk_then_append)
    report = verifier.verify()
    assert (report.intact, report.size, report.checkpoints) == (True, 10, 10), report.damage
    monkeypatch.setattr(walk, "walk_rows", walk_rows)
    assert Checkpoint.objects.order_by("-size").values_list("size", flat=True).first() == 12
    report = verifier.verify()
    assert (report.intact, report.size) == (True, 12), report.damage


def test_it_walks_alone_when_the_split_has_nothing_to_start_from(ledger_of_ten: None) -> None:
    as_owner("DELETE FROM audit_event WHERE seq = 5")
    report = verifier.verify()
    assert (report.walkers, report.first_bad_seq, report.damage[0].kind) == (1, 5, "missing")
