"""record()'s row kept with the connection and sent with the COMMIT (audit.backends.postgresql):
the same statement in the same transaction, one round trip less, nothing else changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from accounts.models import Role
from audit.events import EventType
from audit.ledger import Actor, Entry, record, record_many
from audit.models import Event, PendingEvent
from audit.verify import verify

pytestmark = pytest.mark.django_db

BOB = Actor(8, "bob", "analyst")


def kept() -> list[Any]:
    return connection.ledger_pending  # type: ignore[attr-defined,no-any-return]


def started() -> None:
    """A statement, as an action's lock or read is: the transaction is open on the server."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def object_ids_pending() -> list[str]:
    return [
        json.loads(bytes(body))["object"]["id"]
        for body in PendingEvent.objects.order_by("id").values_list("body", flat=True)
    ]


@pytest.fixture
def refusing() -> Iterator[None]:
    """A constraint that refuses any pending event naming ``refuse-me``: a way to make the kept
    INSERT fail where it is finally sent."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE audit_pending ADD CONSTRAINT test_refuse"
            " CHECK (position('refuse-me' in convert_from(body, 'UTF8')) = 0) NOT VALID"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_pending DROP CONSTRAINT test_refuse")


def test_the_settings_use_the_backend_that_keeps_the_row() -> None:
    assert connection.settings_dict["ENGINE"] == "audit.backends.postgresql"


@pytest.mark.django_db(transaction=True)
def test_the_row_waits_for_the_commit_and_is_stored_with_it() -> None:
    with transaction.atomic():
        started()
        record(EventType.KEY_ROTATED, actor=BOB, object_id="with-the-commit")
        assert len(kept()) == 1
    assert kept() == []
    assert connection.connection.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
    assert bytes(Event.objects.get().body).count(b'"with-the-commit"') == 1  # sequenced inline
    assert verify().intact


@pytest.mark.django_db(transaction=True)
def test_the_first_statement_of_a_transaction_is_sent_at_once() -> None:
    """Before any statement the transaction is not open on the server: psycopg opens it with
    the INSERT, with Django's isolation level."""
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=BOB, object_id="first")
        assert kept() == []
        assert connection.connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert Event.objects.count() == 1


def test_a_read_in_the_same_transaction_sees_the_row() -> None:
    with transaction.atomic():
        started()
        record(EventType.KEY_ROTATED, actor=BOB, object_id="seen")
        assert kept()
        assert object_ids_pending() == ["seen"]
        assert kept() == []


def test_a_savepoint_rolled_back_takes_its_rows_with_it() -> None:
    with transaction.atomic():
        started()
        record(EventType.KEY_ROTATED, actor=BOB, object_id="kept")
        with transaction.atomic():
            record(EventType.KEY_ROTATED, actor=BOB, object_id="undone")
            transaction.set_rollback(True)
        with transaction.atomic():
            record(EventType.KEY_ROTATED, actor=BOB, object_id="released")
        assert object_ids_pending() == ["kept", "released"]


def test_the_order_of_the_calls_is_the_order_of_the_rows() -> None:
    with transaction.atomic():
        started()
        record(EventType.KEY_ROTATED, actor=BOB, object_id="1")
        record(EventType.KEY_ROTATED, actor=BOB, object_id="2")
        record_many(
            [Entry(EventType.KEY_ROTATED, object_id="3"), Entry(EventType.KEY_ROTATED, object_id="4")], actor=BOB
        )
        record(EventType.KEY_ROTATED, actor=BOB, object_id="5")
        assert object_ids_pending() == ["1", "2", "3", "4", "5"]


def action(slug: str, object_id: str, *, fails: bool = False, then: str = "") -> None:
    """A business change and its event, as an action makes them; ``then`` creates another role
    after the event, ``fails`` raises at the end."""
    with transaction.atomic():
        started()
        Role.objects.create(slug=slug, name=slug)
        record(EventType.KEY_ROTATED, actor=BOB, object_id=object_id)
        if then:
            Role.objects.create(slug=then, name=then)
        if fails:
            raise RuntimeError("the action fails")


def nothing_stored(*slugs: str) -> bool:
    return not (Role.objects.filter(slug__in=slugs).exists() or PendingEvent.objects.exists() or Event.objects.exists())


@pytest.mark.django_db(transaction=True)
def test_a_rollback_discards_the_kept_rows() -> None:
    with pytest.raises(RuntimeError):
        action("gone", "gone", fails=True)
    assert kept() == []
    assert nothing_stored("gone")
    action("next", "next")
    assert [bytes(b).count(b'"next"') for b in Event.objects.values_list("body", flat=True)] == [1]


@pytest.mark.django_db(transaction=True)
def test_a_row_refused_at_the_commit_fails_the_action_and_keeps_nothing(refusing: None) -> None:
    with pytest.raises(IntegrityError):
        action("half", "refuse-me")
    assert kept() == []
    assert nothing_stored("half")
    action("after", "after")  # the connection is usable again
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_refused_before_the_next_statement_fails_that_statement(refusing: None) -> None:
    with pytest.raises(IntegrityError):
        action("before", "refuse-me", then="never")
    assert nothing_stored("before", "never")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepared", [False, True], ids=["new-connection", "statement-prepared"])
def test_a_connection_lost_before_the_commit_fails_the_action(prepared: bool) -> None:
    if prepared:
        action("earlier", "earlier")

    def lost() -> None:
        with transaction.atomic():
            started()
            Role.objects.create(slug="lost", name="Lost")
            record(EventType.KEY_ROTATED, actor=BOB, object_id="lost")
            with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])

    with pytest.raises(DatabaseError):
        lost()
    assert kept() == []
    connection.close()
    assert not Role.objects.filter(slug="lost").exists()
    assert not PendingEvent.objects.exists()
    assert Event.objects.count() == (1 if prepared else 0)  # the earlier action's event only
