"""record()'s row kept with the connection and sent with the COMMIT (audit.backends.postgresql):
the same statement in the same transaction, one round trip less, nothing else changed."""

from __future__ import annotations

import json
import time
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


# --- what a second review found ---------------------------------------------------------------


def caught_inner_create(slug: str) -> None:
    """The usual ``try: with atomic(): … except IntegrityError``, after an event kept outside it."""
    with transaction.atomic():
        started()
        Role.objects.create(slug=slug, name=slug)
        record(EventType.KEY_ROTATED, actor=BOB, object_id="refuse-me")
        try:
            with transaction.atomic():  # its SAVEPOINT sends the kept row first, which fails
                Role.objects.create(slug=f"{slug}-inner", name="Inner")
        except IntegrityError:
            pass


@pytest.mark.django_db(transaction=True)
def test_a_failure_caught_outside_any_savepoint_fails_the_commit_instead_of_a_silent_rollback(
    refusing: None,
) -> None:
    with pytest.raises(DatabaseError, match="not committed"):
        caught_inner_create("outer")
    assert nothing_stored("outer", "outer-inner")


@pytest.mark.django_db(transaction=True)
def test_a_statement_failure_caught_without_a_savepoint_fails_the_commit() -> None:
    def swallowed() -> None:
        with transaction.atomic():
            Role.objects.create(slug="swallowed", name="Swallowed")
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1 / 0")
            except DatabaseError:
                pass

    with pytest.raises(DatabaseError, match="not committed"):
        swallowed()
    assert not Role.objects.filter(slug="swallowed").exists()


def undone_inside_a_savepoint(object_id: str) -> None:
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=BOB, object_id=object_id)
        raise ValueError("undone")


def inner_create_after(object_id: str) -> None:
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=BOB, object_id=object_id)
        Role.objects.create(slug="inner", name="Inner")


@pytest.mark.django_db(transaction=True)
def test_rows_of_a_savepoint_rolled_back_are_dropped_unsent(refusing: None) -> None:
    with transaction.atomic():
        started()
        Role.objects.create(slug="kept", name="Kept")
        record(EventType.KEY_ROTATED, actor=BOB, object_id="kept")
        with pytest.raises(ValueError, match="undone"):
            undone_inside_a_savepoint("refuse-me")  # would fail if sent
    assert Role.objects.filter(slug="kept").exists()
    assert [json.loads(bytes(b))["object"]["id"] for b in Event.objects.values_list("body", flat=True)] == ["kept"]


@pytest.mark.django_db(transaction=True)
def test_a_failure_inside_a_savepoint_rolled_back_leaves_the_transaction_to_commit(refusing: None) -> None:
    with transaction.atomic():
        started()
        Role.objects.create(slug="outer", name="Outer")
        record(EventType.KEY_ROTATED, actor=BOB, object_id="outer")
        started()  # sends it
        with pytest.raises(IntegrityError):
            inner_create_after("refuse-me")  # the create sends the kept row first: refused
    assert Role.objects.filter(slug="outer").exists()
    assert not Role.objects.filter(slug="inner").exists()
    assert [json.loads(bytes(b))["object"]["id"] for b in Event.objects.values_list("body", flat=True)] == ["outer"]


def test_rows_kept_before_a_wrapper_arrives_keep_their_order() -> None:
    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        return execute(sql, params, many, context)

    with transaction.atomic():
        started()
        record(EventType.KEY_ROTATED, actor=BOB, object_id="1")
        with connection.execute_wrapper(wrapper):
            record(EventType.KEY_ROTATED, actor=BOB, object_id="2")
        record(EventType.KEY_ROTATED, actor=BOB, object_id="3")
        assert object_ids_pending() == ["1", "2", "3"]


@pytest.mark.django_db(transaction=True)
def test_a_statement_deallocated_behind_its_back_fails_one_action_then_is_prepared_again() -> None:
    action("first", "first")
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    with pytest.raises(DatabaseError):
        action("lost", "lost")
    action("again", "again")
    assert set(Role.objects.filter(slug__in=["first", "lost", "again"]).values_list("slug", flat=True)) == {
        "first",
        "again",
    }
    assert Event.objects.count() == 2


@pytest.fixture
def slow_commit() -> Iterator[None]:
    """A deferred constraint trigger that makes each COMMIT of a pending event take 0.5 s."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$"
        )
        cursor.execute(
            "CREATE CONSTRAINT TRIGGER test_slow AFTER INSERT ON audit_pending"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_slow()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_slow ON audit_pending")
        cursor.execute("DROP FUNCTION test_slow()")


@pytest.mark.django_db(transaction=True)
def test_waiting_for_the_commit_lets_other_threads_and_signals_run(slow_commit: None) -> None:
    import signal
    import threading

    counted = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counted
        while not stop.is_set():
            counted += 1

    thread = threading.Thread(target=count)
    thread.start()
    try:
        action("slow", "slow")
    finally:
        stop.set()
        thread.join()
    assert counted > 100_000  # the other thread ran while the COMMIT waited (a held lock: ~0)
    assert Role.objects.filter(slug="slow").exists()

    class TimeLimitError(Exception):
        pass

    def interrupt(signum: int, frame: Any) -> None:
        raise TimeLimitError

    started()
    backend = connection.connection.info.backend_pid
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(TimeLimitError):
            action("interrupted", "interrupted")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    for _ in range(100):  # the server may finish the COMMIT it was sent: let it end
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
            if not cursor.fetchone()[0]:
                break
        time.sleep(0.05)
    action("after", "after")  # on a new connection: the interrupted one, in an unknown state, was closed
    assert Role.objects.filter(slug="after").exists()
    # the server may have committed or not; either way, the change and its event together
    committed = Role.objects.filter(slug="interrupted").exists()
    assert Event.objects.filter(object_id="interrupted").exists() is committed
    assert verify().intact


@pytest.mark.django_db(transaction=True)
def test_more_rows_than_the_socket_takes_at_once_are_all_sent() -> None:
    with transaction.atomic():
        started()
        for n in range(200):
            record(EventType.KEY_ROTATED, actor=BOB, object_id=str(n), reason="x" * 50_000)
        assert len(kept()) == 200
    assert Event.objects.count() == 200
    assert verify().intact


@pytest.mark.django_db(transaction=True)
def test_a_connection_on_a_descriptor_above_1024_commits() -> None:
    """A busy process (a worker with many sockets) has descriptors past ``select``'s limit."""
    import os

    connection.close()
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        action("high", "high")  # the new connection's socket is numbered above the ones held
        assert connection.connection.pgconn.socket > 1024
    finally:
        for descriptor in held:
            os.close(descriptor)
    assert bytes(Event.objects.get().body).count(b'"high"') == 1
