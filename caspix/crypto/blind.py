"""Blind indexes: keyed HMAC-SHA256 of a normalised value, for exact-match search on ciphertexts.

A blind index is ``<index-key id>:<hex HMAC-SHA256>`` of ``caspix-blind/1|<kind>|<normalised>``
under an index key (a data key wrapped by the ``index`` key-encryption key, apart from the data
keys). The kind, not the column, separates the domains: the same account number gives the same
index in every table, so one search finds it everywhere, and never matches a national id.

Normalisation (documented in ``docs/KEYS.md``), applied before hashing at write and at search:

* every kind: Unicode NFKC, then surrounding whitespace removed;
* national ids, account numbers (IBANs included) and customer ids: upper case, and the separators
  people type (whitespace, hyphens and dashes of any kind, the minus sign, dots, slashes)
  removed; what is left must be letters and digits only;
* card tokens: lower case; letters, digits and underscores only;
* names: case-folded, every run of whitespace one space;
* dates: an ISO 8601 calendar date, ``YYYY-MM-DD``.

Writes use the newest live index key; a search computes the index under every live index key, so
search keeps working while ``manage.py reindex`` moves rows to a new key.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import unicodedata
from enum import StrEnum

from caspix.crypto.envelope import cache
from caspix.crypto.models import Purpose

INDEX_LENGTH = 75  # up to 10 digits of key id, a colon and 64 hex digits
# whitespace, hyphen-minus, full stop, solidus, and the Unicode hyphens, dashes and minus sign
_SEPARATORS = re.compile(r"[\s\-./\u2010-\u2015\u2212]+")
_ALNUM = re.compile(r"\A[0-9A-Z]+\Z")
_TOKEN = re.compile(r"\A[0-9a-z_]+\Z")


class Kind(StrEnum):
    NATIONAL_ID = "national_id"
    ACCOUNT_NUMBER = "account_number"
    CARD_TOKEN = "card_token"  # noqa: S105 (a kind of value, not a secret)
    CUSTOMER_ID = "customer_id"
    NAME = "name"
    DATE = "date"


_LABELS = {
    Kind.NATIONAL_ID: "a national id",
    Kind.ACCOUNT_NUMBER: "an account number",
    Kind.CUSTOMER_ID: "a customer id",
}


class NormalisationError(ValueError):
    """The value cannot be searched for: it says why, never what the value was."""


def normalise(kind: Kind | str, value: str) -> str:
    if type(kind) is not Kind:  # the Enum's own call costs as much as the rest for a short value
        kind = Kind(kind)
    text = unicodedata.normalize("NFKC", value).strip()
    if kind is Kind.CARD_TOKEN:
        text = text.lower()
        if not _TOKEN.match(text):
            raise NormalisationError("a card token has only letters, digits and underscores")
        return text
    if kind is Kind.NAME:
        text = " ".join(text.casefold().split())
        if not any(char.isalpha() for char in text):
            raise NormalisationError("a name has at least one letter")
        return text
    if kind is Kind.DATE:
        try:
            return datetime.date.fromisoformat(text).isoformat()
        except ValueError:
            raise NormalisationError("a date is written YYYY-MM-DD") from None
    text = _SEPARATORS.sub("", text).upper()
    if not _ALNUM.match(text):
        raise NormalisationError(
            f"{_LABELS[kind]} has only letters and digits, with spaces, hyphens, dots or slashes between"
        )
    return text


def _mac(key_id: int, kind: Kind, normalised: str) -> str:
    message = f"caspix-blind/1|{kind}|{normalised}".encode()
    return f"{key_id}:{hmac.new(cache.raw(key_id), message, hashlib.sha256).hexdigest()}"


def digest(kind: Kind | str, value: str) -> str:
    """The blind index of ``value`` under the index key that serves new writes."""
    kind = Kind(kind)
    return _mac(cache.active(Purpose.INDEX), kind, normalise(kind, value))


def terms(kind: Kind | str, value: str) -> list[str]:
    """Every blind index ``value`` may be stored under: one per live index key."""
    kind = Kind(kind)
    normalised = normalise(kind, value)
    return [_mac(key_id, kind, normalised) for key_id in cache.live(Purpose.INDEX)]
