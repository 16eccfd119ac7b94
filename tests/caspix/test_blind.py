"""Blind indexes: normalised, keyed, separated by kind, kept in step with their source, searchable."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.test.utils import isolate_apps
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from caspix.crypto import blind
from caspix.crypto.blind import Kind, NormalisationError, normalise
from caspix.crypto.checks import errors_for
from caspix.crypto.envelope import cache
from caspix.crypto.fields import BlindIndexField, EncryptedTextField
from caspix.crypto.models import DataKeyRecord, Purpose
from tests.crypto_app.models import Person

pytestmark = pytest.mark.django_db

IBAN_TYPED = "GB82 WEST 1234 5698 7654 32"
IBAN_COMPACT = "GB82WEST12345698765432"


def wide(text: str) -> str:
    """``text`` typed on a full-width (East Asian) keyboard layout."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def stored_index(person: Person, column: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM crypto_tests_person WHERE id = %s", [person.pk])  # noqa: S608
        value: str | None = cursor.fetchone()[0]
        return value


def reload(person: Person) -> Person:
    return Person.objects.get(pk=person.pk)


def names(**lookup: object) -> list[str]:
    return sorted(Person.objects.filter(**lookup).values_list("name", flat=True))


# --- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("AB123456C", "AB123456C"),
        ("ab 12 34 56 c", "AB123456C"),
        ("  AB-12-34-56-C  ", "AB123456C"),
        ("AB.12.34.56.C", "AB123456C"),
        ("AB/12/34/56/C", "AB123456C"),
        ("AB\t12\n34 - 56 . C", "AB123456C"),
        ("AB\u00a012\u300034", "AB1234"),  # no-break and ideographic spaces
        (wide("AB123456C"), "AB123456C"),  # full-width letters and digits (NFKC)
        (wide("AB-12/34.56"), "AB123456"),  # full-width hyphen, slash and full stop (NFKC)
    ],
)
def test_it_normalises_national_ids(typed: str, expected: str) -> None:
    assert normalise(Kind.NATIONAL_ID, typed) == expected


@pytest.mark.parametrize(
    "typed", [IBAN_TYPED, IBAN_COMPACT.lower(), "gb82-west-1234-5698-7654-32", wide("GB82") + " WEST 1234 5698 7654 32"]
)
def test_it_normalises_account_numbers(typed: str) -> None:
    assert normalise(Kind.ACCOUNT_NUMBER, typed) == IBAN_COMPACT


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("ct_ABCdef234", "ct_abcdef234"), ("  CT_XYZ  ", "ct_xyz"), (wide("ct_abc"), "ct_abc")],
)
def test_it_normalises_card_tokens_to_lower_case(typed: str, expected: str) -> None:
    assert normalise(Kind.CARD_TOKEN, typed) == expected


def test_it_accepts_the_kind_as_text() -> None:
    assert normalise("account_number", IBAN_TYPED) == IBAN_COMPACT


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (Kind.NATIONAL_ID, "ZQ#7731X"),
        (Kind.NATIONAL_ID, "ZQ_7731X"),
        (Kind.NATIONAL_ID, "ZQé7731"),
        (Kind.NATIONAL_ID, "ZQ\u200b7731"),  # zero-width space: not a separator
        (Kind.ACCOUNT_NUMBER, "GB82+WEST+7731"),
        (Kind.ACCOUNT_NUMBER, "GB82,7731"),
        (Kind.CARD_TOKEN, "ct_77 31zq"),
        (Kind.CARD_TOKEN, "ct-7731zq"),
    ],
)
def test_it_refuses_other_characters_without_repeating_the_value(kind: Kind, value: str) -> None:
    with pytest.raises(NormalisationError) as raised:
        normalise(kind, value)
    message = str(raised.value)
    assert value not in message
    assert "7731" not in message
    assert message  # it says why


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("value", ["", "   ", "\u3000", " - . / "])
def test_it_refuses_empty_values(kind: Kind, value: str) -> None:
    with pytest.raises(NormalisationError, match=r"only|at least one letter|YYYY-MM-DD"):
        normalise(kind, value)


@pytest.mark.parametrize(
    ("kind", "typed", "expected"),
    [
        (Kind.NAME, "  Erika   MUSTERMANN ", "erika mustermann"),
        (Kind.NAME, "STRAẞE", "strasse"),  # full case folding
        (Kind.NAME, "\uff25\uff52\uff49\uff4b\uff41", "erika"),  # full-width letters
        (Kind.DATE, "1964-08-12", "1964-08-12"),
        (Kind.DATE, " \uff11\uff19\uff16\uff14-\uff10\uff18-\uff11\uff12 ", "1964-08-12"),
        (Kind.CUSTOMER_ID, "cust-0042", "CUST0042"),
    ],
)
def test_it_normalises_names_dates_and_customer_ids(kind: Kind, typed: str, expected: str) -> None:
    assert normalise(kind, typed) == expected


@pytest.mark.parametrize(("kind", "value"), [(Kind.DATE, "12/08/1964"), (Kind.DATE, "1964-02-30"), (Kind.NAME, "42")])
def test_it_refuses_dates_and_names_that_are_none(kind: Kind, value: str) -> None:
    with pytest.raises(NormalisationError):
        normalise(kind, value)


def test_it_makes_normalisation_errors_value_errors() -> None:
    assert issubclass(NormalisationError, ValueError)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ABCXYZabcxyz0189 -./\t\u00a0\u3000" + wide("AB12-"), max_size=30))
def test_it_normalises_idempotently(typed: str) -> None:
    try:
        once = normalise(Kind.NATIONAL_ID, typed)
    except NormalisationError:  # refused only when no letter or digit is left
        assert not re.sub(r"[\s\-./]", "", typed.replace(wide("-"), ""))
        return
    assert re.fullmatch(r"[0-9A-Z]+", once)
    assert normalise(Kind.NATIONAL_ID, once) == once


# --- digests -----------------------------------------------------------------------------------


def test_it_gives_the_same_index_however_the_account_number_is_typed() -> None:
    assert blind.digest(Kind.ACCOUNT_NUMBER, IBAN_TYPED) == blind.digest(Kind.ACCOUNT_NUMBER, IBAN_COMPACT.lower())


def test_it_separates_kinds() -> None:
    assert blind.digest(Kind.NATIONAL_ID, "AB123456C") != blind.digest(Kind.ACCOUNT_NUMBER, "AB123456C")


def test_it_gives_different_values_different_indexes() -> None:
    assert blind.digest(Kind.NATIONAL_ID, "AB123456C") != blind.digest(Kind.NATIONAL_ID, "AB123456D")


def test_it_names_the_index_key_and_gives_64_hex_digits() -> None:
    index = blind.digest(Kind.NATIONAL_ID, "AB123456C")
    key_id = cache.active(Purpose.INDEX)
    assert re.fullmatch(rf"{key_id}:[0-9a-f]{{64}}", index)
    assert DataKeyRecord.objects.get(pk=key_id).purpose == Purpose.INDEX
    assert len(index) <= blind.INDEX_LENGTH


def test_it_uses_a_keyed_hash_not_a_plain_one() -> None:
    index = blind.digest(Kind.NATIONAL_ID, "AB123456C")
    _, hexdigest = index.split(":")
    for message in ("AB123456C", "caspix-blind/1|national_id|AB123456C"):
        assert hexdigest != hashlib.sha256(message.encode()).hexdigest()


def test_it_gives_one_search_term_per_live_index_key() -> None:
    assert blind.terms(Kind.NATIONAL_ID, "ab 123456 c") == [blind.digest(Kind.NATIONAL_ID, "AB123456C")]


# --- the field ---------------------------------------------------------------------------------


def test_it_stores_the_index_and_never_the_plaintext() -> None:
    person = Person.objects.create(name="Ada", national_id="AB 12 34 56 C", account_number=IBAN_TYPED)
    national, account = stored_index(person, "national_id_index"), stored_index(person, "account_number_index")
    assert national == blind.digest(Kind.NATIONAL_ID, "AB123456C")
    assert account == blind.digest(Kind.ACCOUNT_NUMBER, IBAN_COMPACT)
    for plaintext in ("AB 12 34 56 C", "AB123456C", "123456", IBAN_COMPACT, "12345698765432"):
        assert plaintext not in str(national)
        assert plaintext not in str(account)


def test_it_finds_exactly_the_matching_rows() -> None:
    Person.objects.create(name="Ada", national_id="AB 12 34 56 C")
    Person.objects.create(name="Ada again", national_id="ab-12-34-56-c")
    Person.objects.create(name="Bob", national_id="AB123456D")
    Person.objects.create(name="Cy", account_number="AB123456C")  # same text, another kind
    Person.objects.create(name="Dee")
    assert names(national_id_index__matches="ab123456c") == ["Ada", "Ada again"]
    assert names(national_id_index__matches=wide("AB123456C")) == ["Ada", "Ada again"]
    assert names(national_id_index__matches="AB123456D") == ["Bob"]
    assert names(account_number_index__matches="ab 1234 56c") == ["Cy"]
    assert names(national_id_index__matches="ZZ000000Z") == []


def test_it_finds_an_account_number_typed_another_way() -> None:
    Person.objects.create(name="Ada", account_number=IBAN_TYPED)
    assert names(account_number_index__matches=IBAN_COMPACT.lower()) == ["Ada"]


def test_it_finds_card_tokens_whatever_their_case() -> None:
    Person.objects.create(name="Ada", card_token="ct_abcdef", card_last_four="1111")
    assert names(card_token_index__matches="CT_ABCDEF") == ["Ada"]


@pytest.mark.parametrize("value", [123456, None, ["AB123456C"], b"AB123456C"])
def test_it_refuses_a_search_for_something_other_than_text(value: object) -> None:
    with pytest.raises(TypeError, match="as text"):
        Person.objects.filter(national_id_index__matches=value)


def test_it_refuses_a_search_for_a_value_that_cannot_be_normalised() -> None:
    with pytest.raises(NormalisationError):
        Person.objects.filter(national_id_index__matches="ZQ#7731X")


@pytest.mark.parametrize("value", ["", None])
def test_it_stores_null_for_an_empty_source(value: str | None) -> None:
    person = Person.objects.create(name="Ada", national_id="", account_number=value)
    assert person.national_id_index is None
    assert stored_index(person, "national_id_index") is None
    assert stored_index(person, "account_number_index") is None


def test_it_updates_the_index_when_the_source_changes() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    again = reload(person)
    again.national_id = "XY987654Z"
    again.save()
    assert stored_index(person, "national_id_index") == blind.digest(Kind.NATIONAL_ID, "XY987654Z")
    assert names(national_id_index__matches="XY987654Z") == ["Ada"]
    assert names(national_id_index__matches="AB123456C") == []


def test_it_clears_the_index_when_the_source_is_cleared() -> None:
    person = Person.objects.create(name="Ada", account_number=IBAN_TYPED)
    again = reload(person)
    again.account_number = None
    again.save()
    assert stored_index(person, "account_number_index") is None
    assert names(account_number_index__matches=IBAN_TYPED) == []


def test_it_keeps_the_index_when_the_source_is_untouched() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    before = stored_index(person, "national_id_index")
    again = reload(person)
    again.name = "Ada L."
    again.save()
    assert stored_index(person, "national_id_index") == before
    assert names(national_id_index__matches="AB123456C") == ["Ada L."]


def test_it_keeps_the_index_when_the_source_is_deferred() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    deferred = Person.objects.defer("national_id").get(pk=person.pk)
    deferred.name = "Ada L."
    deferred.save()
    assert names(national_id_index__matches="AB123456C") == ["Ada L."]


def test_it_updates_the_index_when_saving_only_the_source() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    person.national_id = "XY987654Z"
    person.save(update_fields=["national_id"])
    assert names(national_id_index__matches="AB123456C") == []
    assert names(national_id_index__matches="XY987654Z") == ["Ada"]


def test_it_keeps_the_index_in_step_when_loaded_with_only_the_source() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    partial = Person.objects.only("national_id").get(pk=person.pk)
    partial.national_id = "XY987654Z"
    partial.save()
    assert names(national_id_index__matches="XY987654Z") == ["Ada"]
    assert names(national_id_index__matches="AB123456C") == []


def test_it_treats_unicode_dashes_as_separators() -> None:
    assert normalise(Kind.NATIONAL_ID, "AB\u201012\u201334\u221256") == "AB123456"


def test_it_reports_an_unsearchable_value_when_the_model_is_cleaned() -> None:
    person = Person(name="Ada", national_id="AB#123")
    with pytest.raises(ValidationError) as raised:
        person.full_clean()
    assert "national_id" in raised.value.message_dict
    assert "AB#123" not in str(raised.value)


@isolate_apps("tests.crypto_app")
def test_it_fails_the_system_check_for_a_blind_index_outside_a_protected_model() -> None:
    class Loose(models.Model):
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        secret = EncryptedTextField()
        secret_index = BlindIndexField(kind="national_id", source="secret")

        class Meta:
            app_label = "crypto_tests"

        def __str__(self) -> str:
            return "loose"

    assert [e.id for e in errors_for(Loose)] == ["crypto.E003"]
