"""The canonical serialisation of a ledger event: the exact bytes that are hashed and stored.

A body is JSON text encoded in UTF-8 with

* object keys sorted by Unicode code point, no duplicate keys;
* no whitespace outside strings (separators ``,`` and ``:``);
* strings as Python's ``json`` writes them with ``ensure_ascii=False``: only ``"``, ``\\``
  and control characters below U+0020 escaped (``\\n``, ``\\t``… or ``\\u00XX``), everything else
  as itself;
* numbers only as integers in [-(2**53 - 1), 2**53 - 1], written in decimal without sign for
  positives; no floats, no exponent: amounts travel as strings;
* ``true``, ``false``, ``null``, arrays and objects as usual.

The stored bytes are the truth: a verifier hashes them as they are and never re-serialises. Re-
serialising a parsed body with these rules gives the same bytes (``canonical(json.loads(b)) == b``),
which ``audit_verify`` checks too.

Decrypted values (:class:`~caspix.crypto.fields.Sensitive`) are refused: a ledger payload names
a protected value by its blind index or a mask, never in plaintext.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from caspix.crypto.fields import Sensitive, SensitiveDate

MAX_SAFE_INTEGER = 2**53 - 1
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class CanonicalError(TypeError):
    """A value the ledger cannot store as it is; the message says where and why, never the value."""


def canonical(document: Mapping[str, Any]) -> bytes:
    if not _plain(document):
        _check(document, "$")  # finds what is wrong and says where; or accepts an unusual container
    return _ENCODER.encode(document).encode()


def _plain(value: Any) -> bool:
    """True if ``value`` is built of exact dicts, lists, strings, safe integers, booleans and null
    only: the common case, checked without building the path of each value (a loop over a stack:
    it runs in every audited action)."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            for key, member in item.items():
                if type(key) is not str:
                    return False
                if type(member) is not str:
                    push(member)
        elif kind is str or kind is bool or item is None:
            continue
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return False
        elif kind is list or kind is tuple:
            stack.extend(item)
        else:
            return False
    return True


def _check(value: Any, path: str) -> None:
    if isinstance(value, Sensitive | SensitiveDate):
        raise CanonicalError(f"{path} is a decrypted protected value: record its blind index or a mask instead")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalError(f"{path} is an integer beyond ±(2**53 - 1): record it as a string")
        return
    if isinstance(value, float):
        raise CanonicalError(f"{path} is a float: record amounts and measures as strings")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{path} has a key that is not a string")
            _check(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _check(item, f"{path}[{position}]")
        return
    if isinstance(value, datetime.datetime | datetime.date):
        raise CanonicalError(f"{path} is a {type(value).__name__}: record it as an RFC 3339 string")
    raise CanonicalError(f"{path} is a {type(value).__name__}, which the ledger does not store")


def rfc3339(moment: datetime.datetime) -> str:
    """UTC with microseconds and a ``Z``: ``2026-11-24T12:00:00.000000Z``."""
    if moment.tzinfo is None:
        raise CanonicalError("the time is naive: the ledger stores aware times only")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
