"""Names written to an FIU that accepts only some characters (the UAE's goAML: ASCII letters,
digits, space, ``.``, ``'`` and ``-``).

A legal name is never rewritten silently: :func:`transliterate` says what it would become
(anyascii: ``José Müller`` → ``Jose Muller``), whether that changed it, and which characters it
still could not represent (``mhmd `bd llh`` keeps a backtick), for the analyst to confirm the
spelling or type it as the customer's documents give it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from anyascii import anyascii
from elementpath.regex import translate_pattern


@dataclass(frozen=True)
class Transliteration:
    original: str
    value: str  # what would be written
    refused: str  # characters of ``value`` the pattern still refuses, in order, once each

    @property
    def changed(self) -> bool:
        return self.value != self.original

    @property
    def acceptable(self) -> bool:
        return not self.refused


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    """An XSD pattern as a Python one (XSD patterns are implicitly anchored)."""
    return re.compile(translate_pattern(pattern, anchors=False))


def matches(pattern: str, value: str) -> bool:
    return _compiled(pattern).fullmatch(value) is not None


def transliterate(value: str, pattern: str | None) -> Transliteration:
    """``value`` as the FIU's ``pattern`` lets it be written: unchanged when it matches, else
    transliterated to ASCII (and its spaces collapsed), with the characters still refused."""
    value = unicodedata.normalize("NFC", value)
    if pattern is None or matches(pattern, value):
        return Transliteration(value, value, "")
    written = " ".join(anyascii(value).split())
    refused = "".join(dict.fromkeys(c for c in written if not matches(pattern, c)))
    return Transliteration(value, written, refused)
