"""Encrypted model fields: sealed at rest, bound to their row, opened only when read."""

from __future__ import annotations

import datetime
import io
import struct
from typing import Any

import pytest
from django import forms
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import connection, models, transaction
from django.test.utils import isolate_apps

from caspix.crypto import envelope, keys
from caspix.crypto.checks import check_encrypted_fields, errors_for
from caspix.crypto.envelope import DecryptionError, Sealed
from caspix.crypto.fields import EncryptedTextField, Sensitive, SensitiveDate
from caspix.crypto.keys import KeyServiceError
from caspix.crypto.models import DataKeyRecord, IntegrityIncident, Purpose
from tests.crypto_app.models import Note, Person
from tests.openbao import OpenBao, transit_backend

pytestmark = pytest.mark.django_db


def stored(person: Person, column: str) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM crypto_tests_person WHERE id = %s", [person.pk])  # noqa: S608
        return bytes(cursor.fetchone()[0])


def overwrite(person: Person, column: str, value: bytes) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE crypto_tests_person SET {column} = %s WHERE id = %s", [value, person.pk])  # noqa: S608


def reload(person: Person) -> Person:
    return Person.objects.get(pk=person.pk)


def test_it_round_trips_text_and_dates() -> None:
    person = Person.objects.create(name="Ada", national_id="AB 12 34 56 C", born=datetime.date(1980, 2, 29))
    again = reload(person)
    assert again.national_id == "AB 12 34 56 C"
    assert again.born == datetime.date(1980, 2, 29)
    assert isinstance(again.national_id, Sensitive)
    assert isinstance(again.born, SensitiveDate)


def test_it_stores_only_ciphertext_with_format_and_key_id() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    raw = stored(person, "national_id")
    assert b"AB123456C" not in raw
    version, key_id = struct.unpack_from(">BI", raw)
    assert version == envelope.FORMAT
    assert DataKeyRecord.objects.get(pk=key_id).purpose == Purpose.DATA
    assert len(raw) == envelope.HEADER_BYTES + envelope.NONCE_BYTES + len("AB123456C") + envelope.TAG_BYTES


def test_it_uses_a_fresh_nonce_for_every_encryption() -> None:
    first = Person.objects.create(national_id="same")
    second = Person.objects.create(national_id="same")
    a, b = stored(first, "national_id"), stored(second, "national_id")
    assert (
        a[envelope.HEADER_BYTES : envelope.HEADER_BYTES + envelope.NONCE_BYTES]
        != b[envelope.HEADER_BYTES : envelope.HEADER_BYTES + envelope.NONCE_BYTES]
    )
    first.national_id = "same"
    first.save()
    assert stored(first, "national_id") != a


def test_it_keeps_values_sealed_until_read() -> None:
    person = reload(Person.objects.create(name="Ada", national_id="AB123456C"))
    assert isinstance(person.__dict__["national_id"], Sealed)
    assert "AB123456C" not in repr(person.__dict__)
    assert person.national_id == "AB123456C"
    assert person.__dict__["national_id"] == "AB123456C"


def test_it_redacts_values_in_reprs() -> None:
    person = reload(Person.objects.create(name="Ada", national_id="AB123456C", born=datetime.date(1980, 1, 2)))
    shown = repr([person.national_id, person.born, person])
    assert "AB123456C" not in shown
    assert "1980" not in shown
    assert "redacted" in shown
    assert str(person.national_id) == "AB123456C"  # templates and forms still get the value


def test_it_saves_an_untouched_row_without_re_encrypting() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    before = stored(person, "national_id")
    again = reload(person)
    again.name = "Ada L."
    again.save()
    assert stored(person, "national_id") == before


def test_it_loads_a_deferred_field_on_access() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    deferred = Person.objects.only("name").get(pk=person.pk)
    assert deferred.national_id == "AB123456C"


def test_it_returns_sealed_values_from_values_queries() -> None:
    Person.objects.create(name="Ada", national_id="AB123456C")
    (value,) = Person.objects.values_list("national_id", flat=True)
    assert isinstance(value, Sealed)
    assert repr(value) == "<Sealed>"


def test_it_keeps_nulls_as_nulls() -> None:
    person = reload(Person.objects.create(name="Ada", born=None, account_number=None))
    assert person.born is None
    assert person.account_number is None
    assert person.account_number_index is None


def test_it_encrypts_in_bulk_create() -> None:
    people = Person.objects.bulk_create([Person(national_id=f"ID{n}") for n in range(3)])
    assert sorted(reload(p).national_id for p in people) == ["ID0", "ID1", "ID2"]


def test_it_binds_to_another_field_when_asked() -> None:
    note = Note.objects.create(body="suspicious pattern")
    assert Note.objects.get(pk=note.pk).body == "suspicious pattern"


def test_it_refuses_queryset_update() -> None:
    Person.objects.create(name="Ada", national_id="AB123456C")
    with pytest.raises(TypeError, match="is encrypted"):
        Person.objects.update(national_id="XY")


def test_it_refuses_to_filter_on_ciphertext() -> None:
    with pytest.raises(TypeError, match="blind index"):
        list(Person.objects.filter(national_id="AB123456C"))


def test_it_refuses_to_serialise() -> None:
    Person.objects.create(name="Ada", national_id="AB123456C")
    with pytest.raises(CommandError, match=r"manage\.py backup"):
        call_command("dumpdata", "crypto_tests.person", stdout=io.StringIO())


def test_it_validates_the_plaintext_length() -> None:
    person = Person(name="Ada", national_id="X" * 33)
    with pytest.raises(Exception, match="at most 32"):
        person.full_clean()


def test_it_refuses_a_datetime_for_a_date() -> None:
    with pytest.raises(TypeError, match="not a datetime"):
        Person.objects.create(born=datetime.datetime(1980, 1, 2, tzinfo=datetime.UTC))


def test_it_gives_form_fields_for_plaintext() -> None:
    text = Person._meta.get_field("national_id").formfield()
    date = Person._meta.get_field("born").formfield()
    assert isinstance(text, forms.CharField)
    assert isinstance(date, forms.DateField)
    assert text.max_length == 32
    assert date.clean("1980-01-02") == datetime.date(1980, 1, 2)


# --- tampering -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_ciphertext_moved_to_another_row() -> None:
    """ASVS 11.3.3: the associated data binds table, column and row."""
    victim = Person.objects.create(name="victim", national_id="AB123456C")
    attacker = Person.objects.create(name="attacker", national_id="ZZ999999Z")
    overwrite(attacker, "national_id", stored(victim, "national_id"))
    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = reload(attacker).national_id
    incident = IntegrityIncident.objects.get()
    assert (incident.kind, incident.table, incident.column, incident.row) == (
        "field",
        "crypto_tests_person",
        "national_id",
        str(attacker.pk),
    )


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_ciphertext_moved_to_another_column() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C", account_number="GB00")
    overwrite(person, "account_number", stored(person, "national_id"))
    with pytest.raises(DecryptionError):
        _ = reload(person).account_number
    assert reload(person).national_id == "AB123456C"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("position", [0, 1, 4, 5, 16, 17, -1])
def test_it_refuses_a_flipped_byte(position: int) -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    raw = bytearray(stored(person, "national_id"))
    raw[position] ^= 0x01
    overwrite(person, "national_id", bytes(raw))
    with pytest.raises(DecryptionError):
        _ = reload(person).national_id
    assert IntegrityIncident.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_truncated_ciphertext() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    overwrite(person, "national_id", stored(person, "national_id")[:20])
    with pytest.raises(DecryptionError, match="truncated"):
        _ = reload(person).national_id


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_incident_when_the_request_rolls_back() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    overwrite(person, "national_id", b"\x01\x00\x00\x00\x01" + b"\x00" * 40)

    def request() -> None:
        with transaction.atomic():
            Person.objects.create(name="written then rolled back")
            _ = reload(person).national_id

    with pytest.raises(DecryptionError):
        request()
    assert not Person.objects.filter(name="written then rolled back").exists()
    assert IntegrityIncident.objects.count() == 1


# --- the key service ---------------------------------------------------------------------------


class CountingService:
    """The configured key service, counting every call that would be a round trip."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if callable(attribute):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attribute(*args, **kwargs)

            return counted
        return attribute


def test_it_makes_no_key_service_call_on_a_warm_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingService(keys.key_service())
    monkeypatch.setattr(envelope, "key_service", lambda: counting)
    first = Person.objects.create(name="warm-up", national_id="AB123456C")
    envelope.cache.clear()
    assert reload(first).national_id == "AB123456C"
    Person.objects.create(name="warm-up 2", national_id="CD123456E")
    # one data key for the field and one index key for its blind index, then, on a cold cache,
    # one unwrap of each
    assert counting.calls == ["generate_data_key", "generate_data_key", "unwrap", "unwrap"]
    counting.calls.clear()
    for n in range(20):
        person = Person.objects.create(name=f"p{n}", national_id=f"ID{n}", born=datetime.date(1990, 1, 1))
        assert reload(person).national_id == f"ID{n}"
    assert counting.calls == []


@pytest.mark.django_db(transaction=True)
def test_it_writes_nothing_when_the_key_service_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise KeyServiceError(f"{name}: the key service cannot be reached (ConnectionError)")

            return fail

    monkeypatch.setattr(envelope, "key_service", Down)

    def action() -> None:
        with transaction.atomic(durable=True):
            Person.objects.create(name="half", national_id="AB123456C")

    with pytest.raises(KeyServiceError):
        action()
    assert not Person.objects.exists()
    assert not DataKeyRecord.objects.exists()


def test_it_opens_an_envelope_sealed_for_the_same_location() -> None:
    where = envelope.location("t", "c", "r")
    assert envelope.open_envelope(envelope.seal(b"x", where), where) == b"x"


# --- system checks -----------------------------------------------------------------------------


def test_it_passes_the_system_check_for_the_shipped_models() -> None:
    assert check_encrypted_fields() == []


@isolate_apps("tests.crypto_app")
def test_it_fails_the_system_check_for_an_autoincrement_row_id() -> None:
    class Unbound(models.Model):
        secret = EncryptedTextField()

        class Meta:
            app_label = "crypto_tests"

        def __str__(self) -> str:
            return "unbound"

    errors = errors_for(Unbound)
    assert [e.id for e in errors] == ["crypto.E001"]
    assert isinstance(errors[0], checks.Error)


# --- on OpenBao --------------------------------------------------------------------------------


def test_it_round_trips_through_openbao_transit(openbao: OpenBao) -> None:
    with transit_backend(openbao.config()) as service:
        service.ensure_keys()
        person = Person.objects.create(name="Ada", national_id="AB123456C", account_number="GB82WEST12345698765432")
        envelope.cache.clear()
        again = reload(person)
        assert (again.national_id, again.account_number) == ("AB123456C", "GB82WEST12345698765432")
        assert DataKeyRecord.objects.get(purpose=Purpose.DATA).wrapped.startswith("vault:v1:")
        assert Person.objects.filter(account_number_index__matches="gb82 west 1234 5698 7654 32").get() == person
