"""copy_in: rows written through COPY are the rows bulk_create would write."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.db.models import F

from cases.models import Account, OutboxEvent, Party
from caspix.bulk import copy_in
from tests.crypto_app.models import Person

pytestmark = pytest.mark.django_db


def columns(table: str, pk: Any) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608 (a test's own table name)
        names = [column.name for column in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def test_it_writes_what_bulk_create_writes() -> None:
    copied = Person(name="Ada", national_id="AB 12 34 56 C", born=datetime.date(1980, 2, 29), account_number="")
    created = Person(name="Ada", national_id="AB 12 34 56 C", born=datetime.date(1980, 2, 29), account_number="")
    copy_in(Person, [copied])
    Person.objects.bulk_create([created])
    again = Person.objects.get(pk=copied.pk)
    assert (again.name, again.national_id, again.born) == ("Ada", "AB 12 34 56 C", datetime.date(1980, 2, 29))
    row, twin = columns("crypto_tests_person", copied.pk), columns("crypto_tests_person", created.pk)
    assert row["national_id_index"] == twin["national_id_index"] is not None  # the same blind index
    assert bytes(row["national_id"]) != bytes(twin["national_id"])  # sealed, each with its own nonce
    assert b"AB 12" not in bytes(row["national_id"])
    assert Person.objects.filter(national_id_index__matches="ab123456c").count() == 2
    assert not copied._state.adding  # saved: a later save() updates the row


def test_it_takes_the_key_of_a_related_object_saved_since() -> None:
    party = Party(customer_id="CUST-1", name="Grace Hopper", created_at=datetime.datetime.now(datetime.UTC))
    account = Account(party=party, number="DE89 3704 0044 0532 0130 00", currency="EUR")
    copy_in(Party, [party])
    copy_in(Account, [account])
    kept = Account.objects.get(pk=account.pk)
    assert (kept.party_id, kept.number) == (party.pk, "DE89 3704 0044 0532 0130 00")
    assert Account.objects.filter(number_index__matches="DE89370400440532013000").get() == kept


def test_it_leaves_auto_keys_to_the_sequence_in_row_order() -> None:
    now = datetime.datetime.now(datetime.UTC)
    copy_in(OutboxEvent, [OutboxEvent(event_type=f"e.{n}", data={"n": n}, occurred_at=now) for n in range(3)])
    events = list(OutboxEvent.objects.order_by("id"))
    assert [(e.event_type, e.data) for e in events] == [(f"e.{n}", {"n": n}) for n in range(3)]
    with pytest.raises(ValueError, match="sequence"):
        copy_in(OutboxEvent, [OutboxEvent(pk=events[-1].pk + 10, event_type="e", data={}, occurred_at=now)])


def test_it_refuses_expressions_and_writes_nothing() -> None:
    with pytest.raises(TypeError, match="expressions"):
        copy_in(Person, [Person(name="A"), Person(name=F("name"))])
    assert Person.objects.count() == 0


def test_it_enforces_constraints_as_an_insert_does() -> None:
    person = Person(name="Ada")
    copy_in(Person, [person])
    with pytest.raises(Exception, match="duplicate key"):
        copy_in(Person, [Person(pk=person.pk, name="Ada again")])


def test_it_does_nothing_for_no_rows() -> None:
    copy_in(Person, [])
    assert Person.objects.count() == 0
