"""Names for an FIU that accepts ASCII only: transliterated, never silently, and what still
cannot be written is named."""

from __future__ import annotations

import pytest

from reporting.goaml.transliterate import matches, transliterate

UAE_NAME = "[a-zA-Z0-9 .'-]*"  # the UAE goAML name pattern (repaired schema)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("José Müller", "Jose Muller"),
        ("Łukasz Żółć", "Lukasz Zolc"),
        ("Ørsted-Søn", "Orsted-Son"),
        ("O\u2019Brien", "O'Brien"),  # a typographic apostrophe
        ("İstanbul  Trading", "Istanbul Trading"),
    ],
)
def test_it_transliterates_what_the_pattern_refuses_and_says_so(name: str, written: str) -> None:
    result = transliterate(name, UAE_NAME)
    assert (result.value, result.changed, result.acceptable) == (written, True, True)
    assert result.original == name
    assert matches(UAE_NAME, result.value)


def test_a_name_the_pattern_accepts_is_left_as_it_is() -> None:
    result = transliterate("Sara Khan", UAE_NAME)
    assert (result.value, result.changed, result.refused) == ("Sara Khan", False, "")


def test_it_names_the_characters_it_still_cannot_write() -> None:
    result = transliterate("محمد عبد الله", UAE_NAME)
    assert result.changed
    assert not result.acceptable
    assert result.refused == "`"  # the analyst types the name as the documents spell it
    assert transliterate("Smith & Sons", UAE_NAME).refused == "&"


def test_without_a_pattern_nothing_is_rewritten() -> None:
    assert transliterate("José", None).value == "José"


def test_xsd_patterns_are_anchored_and_literal_anchors_are_characters() -> None:
    assert matches(UAE_NAME, "Anne-Marie O'Neil")
    assert not matches(UAE_NAME, "x<y")
    assert not matches("^[a-z]*$", "abc")  # the UAE schema as issued: ^ and $ are characters
    assert matches("^[a-z]*$", "^abc$")
