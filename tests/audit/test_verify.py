"""The tamper suite: audit_verify finds every kind of damage and names the first bad event."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from audit import ledger, merkle
from audit.canonical import canonical
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint, Event
from audit.verify import constraint_enforced, verify

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")
EVERY_EVENT = {"ORIGIN": "test/caspix", "CHECKPOINT_SECONDS": 3600, "CHECKPOINT_EVENTS": 1}


@pytest.fixture
def ledger_of_ten() -> Iterator[None]:
    """Ten events, with a checkpoint after every one of them."""
    with override_settings(LEDGER=EVERY_EVENT):
        for n in range(10):
            with transaction.atomic():
                record(EventType.KEY_ROTATED, actor=SYSTEM, object_type="key", object_id=n, after={"n": n})
            ledger.integrate()
            ledger.seal()
        yield


def as_owner(sql: str, params: list[Any] | None = None, table: str = "audit_event") -> None:
    """Change the ledger as someone with the table owner's rights would (triggers off)."""
    with connection.cursor() as cursor:
        # the owner can drop what binds the columns to the bodies too (verify then parses them all)
        cursor.execute("ALTER TABLE audit_event DROP CONSTRAINT IF EXISTS audit_event_columns_match_body")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params or [])
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def row(seq: int) -> Event:
    return Event.objects.get(seq=seq)


def first_damage() -> tuple[int | None, str]:
    report = verify()
    assert not report.intact
    return report.first_bad_seq, report.damage[0].kind


def test_it_finds_an_intact_ledger_intact(ledger_of_ten: None) -> None:
    report = verify()
    assert report.intact, report.damage
    assert (report.size, report.checkpoints, report.last_checkpoint) == (10, 10, 10)


def test_it_finds_an_empty_ledger_intact() -> None:
    assert verify().intact


def test_it_exits_0_when_intact_and_1_with_the_first_damage(ledger_of_ten: None) -> None:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "intact: 10 events, 10 checkpoints" in out.getvalue()
    as_owner("UPDATE audit_event SET body = %s WHERE seq = 4", [b'{"v":1}'])
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("audit_verify", "--json", stdout=out)
    assert exited.value.code == 1
    assert '"first_bad_seq": 4' in out.getvalue()


def test_it_finds_an_updated_payload(ledger_of_ten: None) -> None:
    body = bytes(row(4).body).replace(b'"n":3', b'"n":9')
    as_owner("UPDATE audit_event SET body = %s WHERE seq = 4", [body])
    assert first_damage() == (4, "altered")


def test_it_finds_a_deleted_row(ledger_of_ten: None) -> None:
    as_owner("DELETE FROM audit_event WHERE seq = 6")
    assert first_damage() == (6, "missing")


def test_it_finds_a_deleted_tail(ledger_of_ten: None) -> None:
    as_owner("DELETE FROM audit_event WHERE seq >= 8")
    assert first_damage() == (8, "missing")


def forge_into_the_middle(at: int) -> None:
    """The forger renumbers the rows from ``at`` and links a forged row to its predecessor."""
    as_owner("UPDATE audit_event SET seq = seq + 1000000 WHERE seq >= %s", [at])
    as_owner("UPDATE audit_event SET seq = seq - 1000000 + 1 WHERE seq > 1000000")
    before = row(at - 1)
    forged = bytes(before.body).replace(b'"reason":""', b'"reason":"forged"')
    leaf = merkle.leaf_hash(forged)
    chain = hashlib.sha256(bytes(before.chain) + leaf).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_event (seq, body, leaf, chain, integrated_at, event_type, occurred_at, actor_id,"
            " object_type, object_id) VALUES (%s, %s, %s, %s, now(), %s, %s, NULL, %s, %s)",
            [at, forged, leaf, chain, before.event_type, before.occurred_at, before.object_type, before.object_id],
        )


def test_it_finds_a_row_forged_into_the_middle(ledger_of_ten: None) -> None:
    forge_into_the_middle(5)
    assert first_damage() == (5, "checkpoint")  # the checkpoint at size 5 never saw it


def test_it_finds_a_row_forged_between_checkpoints() -> None:
    for n in range(10):
        with transaction.atomic():
            record(EventType.KEY_ROTATED, actor=SYSTEM, object_type="key", object_id=n)
    ledger.integrate()
    ledger.seal()
    forge_into_the_middle(5)
    assert first_damage() == (5, "inserted")


def test_it_finds_two_rows_swapped(ledger_of_ten: None) -> None:
    as_owner("UPDATE audit_event SET seq = seq + 1000000 WHERE seq IN (3, 7)")
    as_owner("UPDATE audit_event SET seq = 7 WHERE seq = 1000003")
    as_owner("UPDATE audit_event SET seq = 3 WHERE seq = 1000007")
    assert first_damage() == (3, "chain")


def test_it_finds_a_rewrite_with_recomputed_hashes_by_the_signed_checkpoints(ledger_of_ten: None) -> None:
    """Everything from event 6 rewritten consistently: only the signatures can tell."""
    chain = bytes(row(5).chain)
    for seq in range(6, 11):
        document = {**json.loads(bytes(row(seq).body)), "reason": "rewritten"}
        body = canonical(document)
        leaf = merkle.leaf_hash(body)
        chain = hashlib.sha256(chain + leaf).digest()
        as_owner("UPDATE audit_event SET body = %s, leaf = %s, chain = %s WHERE seq = %s", [body, leaf, chain, seq])
    assert first_damage() == (6, "checkpoint")


def test_it_finds_a_replaced_checkpoint(ledger_of_ten: None) -> None:
    checkpoint = Checkpoint.objects.get(size=7)
    forged_root = bytes(32)
    note = checkpoint.note.replace(checkpoint.note.split("\n")[2], base64.b64encode(forged_root).decode())
    as_owner(
        "UPDATE audit_checkpoint SET root = %s, note = %s WHERE size = 7", [forged_root, note], table="audit_checkpoint"
    )
    assert first_damage() == (7, "checkpoint")


def test_it_finds_a_flipped_bit_in_a_tree_node(ledger_of_ten: None) -> None:
    value = bytearray(ledger.stored_nodes({(1, 2)})[(1, 2)])
    value[0] ^= 0x80
    as_owner(
        "UPDATE audit_tree_node SET hash = %s WHERE level = 1 AND index = 2", [bytes(value)], table="audit_tree_node"
    )
    assert first_damage() == (5, "tree")


@pytest.mark.parametrize("column", ["body", "leaf", "chain"])
@pytest.mark.parametrize("seq", [1, 5, 10])
def test_it_finds_a_flipped_bit_in_an_event(ledger_of_ten: None, column: str, seq: int) -> None:
    value = bytearray(bytes(getattr(row(seq), column)))
    value[len(value) // 2] ^= 0x01
    as_owner(f"UPDATE audit_event SET {column} = %s WHERE seq = %s", [bytes(value), seq])  # noqa: S608
    bad, kind = first_damage()
    assert bad == seq
    assert kind in {"altered", "chain"}


def test_it_finds_a_flipped_bit_in_a_checkpoint_signature(ledger_of_ten: None) -> None:
    note = Checkpoint.objects.get(size=3).note
    signature = note.rstrip("\n").rsplit(" ", 1)[1]
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    as_owner(
        "UPDATE audit_checkpoint SET note = %s WHERE size = 3",
        [note.replace(signature, flipped)],
        table="audit_checkpoint",
    )
    assert first_damage() == (3, "checkpoint")


def test_it_verifies_incrementally_from_a_checkpoint(ledger_of_ten: None) -> None:
    report = verify(since=Checkpoint.objects.get(size=6))
    assert report.intact, report.damage
    assert (report.start, report.size) == (6, 10)
    as_owner("DELETE FROM audit_event WHERE seq = 9")
    assert verify(since=Checkpoint.objects.get(size=6)).first_bad_seq == 9


def test_it_finds_a_column_that_disagrees_with_its_body(ledger_of_ten: None) -> None:
    as_owner("UPDATE audit_event SET actor_id = 99 WHERE seq = 6")
    assert first_damage() == (6, "altered")


def test_it_finds_a_body_that_is_not_an_event_even_with_recomputed_hashes(ledger_of_ten: None) -> None:
    body = b"not json"
    leaf = merkle.leaf_hash(body)
    chain = hashlib.sha256(bytes(row(3).chain) + leaf).digest()
    as_owner("UPDATE audit_event SET body = %s, leaf = %s, chain = %s WHERE seq = 4", [body, leaf, chain])
    report = verify()
    assert report.first_bad_seq == 4
    assert {damage.kind for damage in report.damage} == {"checkpoint", "altered"}


def test_it_relies_on_the_database_to_bind_columns_to_bodies(ledger_of_ten: None) -> None:
    assert constraint_enforced()
    assert verify().warnings == []
    last = row(10)
    forged = Event(
        seq=11,
        body=bytes(last.body),
        leaf=bytes(last.leaf),
        chain=bytes(last.chain),
        event_type=last.event_type,
        occurred_at=last.occurred_at,
        actor_id=99,  # the body says the system acted
        object_type=last.object_type,
        object_id=last.object_id,
    )
    with pytest.raises(IntegrityError, match="audit_event_columns_match_body"), transaction.atomic():
        forged.save(force_insert=True)


def test_it_parses_every_body_when_the_constraint_is_gone(ledger_of_ten: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_event DROP CONSTRAINT audit_event_columns_match_body")
    assert not constraint_enforced()
    report = verify()
    assert report.intact
    assert "no longer binds the columns" in report.warnings[0]
