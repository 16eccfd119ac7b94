"""record(), integrate() and seal(): events sequenced without gaps, hashed, and signed."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from audit import ledger, merkle
from audit.canonical import CanonicalError
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint, Event, PendingEvent, TreeNode
from audit.verify import note_problem, verify
from caspix.crypto.fields import Sensitive
from caspix.crypto.keys import KeyName, key_service
from caspix.requestcontext import client_address_var, request_id_var
from tests.openbao import OpenBao, transit_backend

pytestmark = pytest.mark.django_db

ALICE = Actor(7, "alice", "admin")


def recorded(count: int, **fields: object) -> None:
    with transaction.atomic():
        for n in range(count):
            record(EventType.KEY_ROTATED, actor=ALICE, object_type="key", object_id=f"k{n}", **fields)  # type: ignore[arg-type]


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_record_outside_a_transaction() -> None:
    with pytest.raises(RuntimeError, match="inside the action's transaction"):
        record(EventType.KEY_ROTATED, actor=ALICE)


def test_it_records_the_event_with_its_context_in_canonical_form() -> None:
    request = request_id_var.set("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    address = client_address_var.set("192.0.2.10")
    try:
        with transaction.atomic():
            body = record(
                EventType.KEY_ROTATED,
                actor=ALICE,
                object_type="key",
                object_id=3,
                reason="scheduled",
                before={"version": 1},
                after={"version": 2},
            )
    finally:
        request_id_var.reset(request)
        client_address_var.reset(address)
    assert bytes(PendingEvent.objects.get().body) == body
    document = json.loads(body)
    assert body == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert document["type"] == 401
    assert document["name"] == "KEY_ROTATED"
    assert document["actor"] == {"id": 7, "name": "alice", "role": "admin"}
    assert document["source"] == {"address": "192.0.2.10", "request": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}
    assert document["object"] == {"type": "key", "id": "3"}
    assert (document["before"], document["after"], document["reason"]) == ({"version": 1}, {"version": 2}, "scheduled")
    assert document["time"].endswith("Z")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Sensitive("AB123456C"), "decrypted protected value"),
        (1.5, "float"),
        (2**60, "beyond"),
        (datetime.date(2026, 1, 1), "RFC 3339"),
        ({1: "x"}, "not a string"),
        (object(), "does not store"),
    ],
)
def test_it_refuses_what_a_payload_must_not_hold(value: object, message: str) -> None:
    with pytest.raises(CanonicalError, match=message) as raised, transaction.atomic():
        record(EventType.KEY_ROTATED, actor=ALICE, after={"field": value})
    assert "AB123456C" not in str(raised.value)


def test_it_sequences_without_gaps_and_links_the_chain() -> None:
    recorded(5)
    assert ledger.integrate() == 5
    events = list(Event.objects.order_by("seq"))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    chain = ledger.ZERO_CHAIN
    for event in events:
        assert bytes(event.leaf) == hashlib.sha256(b"\x00" + bytes(event.body)).digest()
        chain = hashlib.sha256(chain + bytes(event.leaf)).digest()
        assert bytes(event.chain) == chain
    assert not PendingEvent.objects.exists()
    assert ledger.integrate() == 0


def test_it_stores_the_merkle_nodes_each_event_completes() -> None:
    recorded(7)
    ledger.integrate(batch_size=3)
    ledger.integrate(batch_size=3)
    ledger.integrate(batch_size=3)
    leaves = [bytes(leaf) for leaf in Event.objects.order_by("seq").values_list("leaf", flat=True)]
    nodes = {(n.level, n.index): bytes(n.hash) for n in TreeNode.objects.all()}
    assert set(nodes) == {(1, 0), (1, 1), (1, 2), (2, 0)}
    assert nodes[(2, 0)] == merkle.root(leaves[:4])
    assert ledger.tree_root(7) == merkle.root(leaves)


def test_it_repeats_body_fields_in_columns_for_filtering() -> None:
    recorded(1)
    ledger.integrate()
    event = Event.objects.get()
    assert (event.event_type, event.actor_id, event.object_type, event.object_id) == (401, 7, "key", "k0")


def test_it_signs_a_checkpoint_in_c2sp_note_form() -> None:
    recorded(3)
    ledger.integrate()
    with override_settings(
        LEDGER={"ORIGIN": "bank.example/caspix", "CHECKPOINT_SECONDS": 10, "CHECKPOINT_EVENTS": 1000}
    ):
        checkpoint = ledger.seal()
    assert checkpoint is not None
    body, signature = checkpoint.note.split("\n\n")
    assert body == f"bank.example/caspix\n3\n{base64.b64encode(ledger.tree_root(3)).decode()}"
    assert signature.startswith("\u2014 bank.example/caspix ")
    assert note_problem(checkpoint, key_service().public_keys(KeyName.LEDGER)) is None


def test_it_seals_only_when_due() -> None:
    recorded(2)
    ledger.integrate()
    assert ledger.seal() is not None
    recorded(1)
    ledger.integrate()
    assert ledger.seal() is None  # 1 event and less than CHECKPOINT_SECONDS since the last
    assert ledger.seal(force=True) is not None
    assert ledger.seal(force=True) is None  # nothing new to sign
    assert list(Checkpoint.objects.values_list("size", flat=True)) == [2, 3]


def test_it_refuses_to_sign_a_tree_that_does_not_extend_the_last_checkpoint() -> None:
    recorded(4)
    ledger.integrate()
    ledger.seal()
    recorded(1)
    ledger.integrate()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_tree_node DISABLE TRIGGER USER")
        cursor.execute("UPDATE audit_tree_node SET hash = %s WHERE level = 2", [bytes(32)])
        cursor.execute("ALTER TABLE audit_tree_node ENABLE TRIGGER USER")
    with pytest.raises(merkle.ProofError):
        ledger.seal(force=True)
    assert Checkpoint.objects.count() == 1


@pytest.mark.parametrize(
    "statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}", "TRUNCATE {table}"]
)
@pytest.mark.parametrize(
    ("table", "column"), [("audit_event", "seq"), ("audit_tree_node", "level"), ("audit_checkpoint", "size")]
)
def test_it_refuses_to_change_the_ledger_in_the_database(statement: str, table: str, column: str) -> None:
    recorded(2)
    ledger.integrate()
    ledger.seal()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement.format(table=table, column=column))


@pytest.mark.django_db(transaction=True)
def test_it_integrates_and_seals_when_the_recording_transaction_commits() -> None:
    recorded(3)  # LEDGER["INTEGRATE"] is "inline" under the test settings
    assert list(Event.objects.values_list("seq", flat=True)) == [1, 2, 3]
    assert Checkpoint.objects.get().size == 3


@pytest.mark.django_db(transaction=True)
def test_it_records_nothing_when_the_action_rolls_back() -> None:
    def failing_action() -> None:
        with transaction.atomic():
            record(EventType.KEY_ROTATED, actor=ALICE)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_action()
    recorded(1)
    assert list(Event.objects.values_list("seq", flat=True)) == [1]


def test_it_signs_checkpoints_in_openbao_transit(openbao: OpenBao) -> None:
    """The production path: the ledger key lives in Transit and signs there."""
    with transit_backend(openbao.config()) as service:
        service.ensure_keys()
        recorded(2)
        ledger.integrate()
        checkpoint = ledger.seal()
        assert checkpoint is not None
        public = service.public_keys(KeyName.LEDGER)
        assert note_problem(checkpoint, public) is None
        assert verify(public_keys=public).intact
        assert ledger.published_keys()["keys"][0]["public_key"] == base64.b64encode(public[1]).decode()


def test_it_records_a_batch_in_order_with_one_copy() -> None:
    actor = Actor.system("intake")
    entries = [ledger.Entry(EventType.ALERT_INGESTED, "alert", f"a-{n}", after={"n": n}) for n in range(5)]
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        ledger.record_many(entries, actor=actor)
        assert PendingEvent.objects.count() == 5
    assert [q["sql"] for q in queries if "audit_pending" in q["sql"]] == [  # no INSERT: a COPY, unlogged
        'SELECT COUNT(*) AS "__count" FROM "audit_pending"'
    ]
    ledger.integrate()
    bodies = [json.loads(bytes(body)) for body in Event.objects.order_by("seq").values_list("body", flat=True)]
    assert [(b["object"]["id"], b["after"]["n"], b["actor"]["name"]) for b in bodies] == [
        (f"a-{n}", n, "intake") for n in range(5)
    ]
    assert verify().intact


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_batch_outside_a_transaction() -> None:
    with pytest.raises(RuntimeError, match="inside the action's transaction"):
        ledger.record_many([ledger.Entry(EventType.ALERT_INGESTED, "alert", "a-1")], actor=Actor.system("intake"))


def test_it_refuses_a_batch_with_a_sensitive_value() -> None:
    with pytest.raises(CanonicalError), transaction.atomic():
        ledger.record_many(
            [ledger.Entry(EventType.ALERT_INGESTED, after={"x": Sensitive("secret")})], actor=Actor.system("intake")
        )
    assert not PendingEvent.objects.exists()
