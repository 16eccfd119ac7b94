"""Card numbers become a stable token and the last four digits, under the one card key."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from caspix.crypto import envelope, keys
from caspix.crypto.cards import CardToken, InvalidCardNumberError, card_key_id, luhn_valid, tokenise
from caspix.crypto.envelope import cache
from caspix.crypto.models import DataKeyRecord, Purpose

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"\Act_[a-z2-7]{32}\Z")

# Published test numbers of the card schemes: (as typed, digits)
PANS = [
    ("4111 1111 1111 1111", "4111111111111111"),  # Visa
    ("5555-5555-5555-4444", "5555555555554444"),  # Mastercard
    ("378282246310005", "378282246310005"),  # American Express, 15 digits
    ("4222222222222", "4222222222222"),  # Visa, 13 digits
    ("6011 0009 9013 9424", "6011000990139424"),  # Discover
]


def reference_luhn(digits: str) -> bool:
    """Double every second digit from the right, add the digits of each product, check mod 10."""
    total = 0
    for index, char in enumerate(digits[::-1]):
        if index % 2 == 1:
            doubled = str(int(char) * 2)
            total += sum(int(d) for d in doubled)
        else:
            total += int(char)
    return total % 10 == 0


def with_check_digit(payload: str) -> str:
    return next(payload + digit for digit in string.digits if reference_luhn(payload + digit))


@pytest.mark.parametrize(("typed", "digits"), PANS)
def test_it_tokenises_a_valid_card_number(typed: str, digits: str) -> None:
    card = tokenise(typed)
    assert TOKEN.match(card.token), card.token
    assert card.last_four == digits[-4:]
    assert digits not in card.token


def test_it_gives_the_same_token_however_the_number_is_grouped() -> None:
    typings = ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", " 4111  1111-1111 1111 "]
    assert len({tokenise(typed) for typed in typings}) == 1


def test_it_gives_different_numbers_different_tokens() -> None:
    tokens = {tokenise(typed).token for typed, _ in PANS}
    assert len(tokens) == len(PANS)


def test_it_gives_the_same_token_after_the_key_cache_is_cleared() -> None:
    first = tokenise("4111 1111 1111 1111")
    cache.clear()
    assert tokenise("4111111111111111") == first


@pytest.mark.parametrize(
    "typed",
    [
        "4111 1111 111",  # 11 digits: too short
        "4111 1111 1111 1111 1111",  # 20 digits: too long
        "4111 1111 1111 111X",  # a letter
        "4111.1111.1111.1111",  # dots are not a card grouping
        "",
    ],
)
def test_it_refuses_what_is_not_a_card_number(typed: str) -> None:
    with pytest.raises(InvalidCardNumberError, match="12 to 19 digits") as raised:
        tokenise(typed)
    assert "1111" not in str(raised.value)


def test_it_reads_full_width_digits_as_digits() -> None:
    full_width = "".join(chr(ord(d) + 0xFEE0) for d in "4111111111111111")
    assert tokenise(full_width) == tokenise("4111 1111 1111 1111")


@pytest.mark.parametrize("digits", ["4111111111111112", "5555555555554445", "378282246310006"])
def test_it_refuses_a_number_failing_its_check_digit(digits: str) -> None:
    with pytest.raises(InvalidCardNumberError, match="Luhn") as raised:
        tokenise(digits)
    message = str(raised.value)
    assert digits not in message
    assert digits[-4:] not in message


def test_it_makes_invalid_card_numbers_value_errors() -> None:
    assert issubclass(InvalidCardNumberError, ValueError)


def test_it_never_shows_the_number_in_a_token() -> None:
    card = tokenise("4111 1111 1111 1111")
    for shown in (str(card), repr(card), f"{card}", repr([card])):
        assert "4111111111111111" not in shown
        assert "411111" not in shown
    assert str(card) == "card ending 1111"


def test_it_keeps_tokens_immutable() -> None:
    card = tokenise("4111 1111 1111 1111")
    with pytest.raises(AttributeError):
        card.last_four = "0000"  # type: ignore[misc]
    assert card == CardToken(card.token, "1111")


# --- the card key ------------------------------------------------------------------------------


def test_it_makes_one_card_key_wrapped_by_the_index_key() -> None:
    tokenise("4111 1111 1111 1111")
    tokenise("5555 5555 5555 4444")
    record = DataKeyRecord.objects.of(Purpose.CARD).get()
    assert record.kek is keys.KeyName.INDEX
    assert card_key_id() == record.pk


def test_it_allows_only_one_card_key_per_installation() -> None:
    envelope.create_data_key(Purpose.CARD)
    with pytest.raises(IntegrityError, match="crypto_dk_one_card_key"), transaction.atomic():
        envelope.create_data_key(Purpose.CARD)
    with pytest.raises(IntegrityError, match="crypto_dk_one_card_key"), transaction.atomic():
        DataKeyRecord.objects.create(purpose=Purpose.CARD, wrapped="local:v1:AAAA", kek_version=1)
    assert DataKeyRecord.objects.of(Purpose.CARD).count() == 1


def test_it_allows_many_keys_of_the_other_purposes() -> None:
    for purpose in (Purpose.DATA, Purpose.INDEX):
        envelope.create_data_key(purpose)
        envelope.create_data_key(purpose)
        assert DataKeyRecord.objects.of(purpose).count() == 2


def test_it_uses_the_card_key_another_process_made_first(monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = envelope.create_data_key(Purpose.CARD)
    expected = tokenise("4111 1111 1111 1111")
    cache.clear()
    real_of = DataKeyRecord.objects.of
    lookups: list[str] = []

    def of_missing_the_first_time(purpose: str) -> Any:
        lookups.append(purpose)
        return DataKeyRecord.objects.none() if len(lookups) == 1 else real_of(purpose)

    monkeypatch.setattr(DataKeyRecord.objects, "of", of_missing_the_first_time)
    assert tokenise("4111 1111 1111 1111") == expected
    assert lookups == [Purpose.CARD, Purpose.CARD]
    assert list(DataKeyRecord.objects.filter(purpose=Purpose.CARD).values_list("id", flat=True)) == [theirs.pk]


# --- Luhn --------------------------------------------------------------------------------------


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.digits, max_size=25))
def test_it_agrees_with_a_reference_luhn(digits: str) -> None:
    assert luhn_valid(digits) is reference_luhn(digits)


@hypothesis_settings(max_examples=100, deadline=None)
@given(st.text(alphabet=string.digits, min_size=11, max_size=18), st.integers(min_value=1, max_value=9))
def test_it_catches_every_single_digit_error_in_the_check_digit(payload: str, shift: int) -> None:
    number = with_check_digit(payload)
    wrong = number[:-1] + str((int(number[-1]) + shift) % 10)
    assert luhn_valid(number)
    assert not luhn_valid(wrong)
