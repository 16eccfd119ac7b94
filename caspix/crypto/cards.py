"""Card numbers are never stored: intake turns each into a token and its last four digits.

The token is ``ct_`` and 32 base32 characters of HMAC-SHA256 over the digits, under the card
key (a data key wrapped by the ``index`` key-encryption key). The same card always gives the same
token, so an analyst can link every transaction of a card without anyone holding its number; the
card key is never rotated for that reason (its wrapping is, like every data key's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import unicodedata
from dataclasses import dataclass

from django.db import IntegrityError as DatabaseIntegrityError
from django.db import transaction

from caspix.crypto.envelope import cache, create_data_key
from caspix.crypto.models import DataKeyRecord, Purpose

_SEPARATORS = re.compile(r"[ -]")
_DIGITS = re.compile(r"\A[0-9]{12,19}\Z")


class InvalidCardNumberError(ValueError):
    """Not a card number. The message says why and never repeats the number."""


@dataclass(frozen=True, slots=True)
class CardToken:
    token: str
    last_four: str

    def __str__(self) -> str:
        return f"card ending {self.last_four}"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def tokenise(card_number: str) -> CardToken:
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", card_number).strip())
    if not _DIGITS.match(digits):
        raise InvalidCardNumberError("a card number has 12 to 19 digits, optionally grouped by spaces or hyphens")
    if not luhn_valid(digits):
        raise InvalidCardNumberError("the card number fails its check digit (Luhn)")
    mac = hmac.new(cache.raw(card_key_id()), f"caspix-card/1|{digits}".encode(), hashlib.sha256).digest()
    return CardToken("ct_" + base64.b32encode(mac[:20]).decode("ascii").lower(), digits[-4:])


def card_key_id() -> int:
    """The one card key of this installation, created on first use (a unique index keeps it one)."""
    cached = cache._active.get(Purpose.CARD.value)
    if cached is not None:  # the card key never changes: no expiry
        return cached[0]
    key_id = DataKeyRecord.objects.of(Purpose.CARD).values_list("id", flat=True).first()
    if key_id is not None:
        cache._active[Purpose.CARD.value] = (key_id, time.monotonic())
        return key_id
    try:
        with transaction.atomic():
            return create_data_key(Purpose.CARD).pk
    except DatabaseIntegrityError:  # another process made it first
        return DataKeyRecord.objects.of(Purpose.CARD).values_list("id", flat=True).get()
