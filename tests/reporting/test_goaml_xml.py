"""goAML XML written and read by the FIU's schema, and the validation gate: every sample of the
UAE FIU round-trips, and one mutation per trap of docs/goaml.md shows the writer or the gate
stops it."""

from __future__ import annotations

import copy
import datetime
import glob
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from reporting.goaml import xml
from reporting.goaml.validate import Gate, gate_for
from tests.reporting.fiu import FIU_DATA, UAE, UAE_AS_ISSUED, fiu_file

SAMPLES = "goaml-uae-5.0.2/samples"


@pytest.fixture(scope="module")
def shape() -> xml.Shape:
    return xml.Shape(fiu_file(UAE))


@pytest.fixture(scope="module")
def gate() -> Gate:
    return gate_for(fiu_file(UAE))


def samples() -> list[str]:
    found = sorted(glob.glob(str(FIU_DATA / SAMPLES / "*.xml")))
    return [str(Path(path).relative_to(FIU_DATA)) for path in found] or [f"{SAMPLES}/STR.xml"]


def canonical(data: bytes, *, without_blank_leaves: bool = False) -> bytes:
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True, resolve_entities=False))
    if without_blank_leaves:  # an empty optional element is left out by the writer, on purpose
        for element in list(root.iter()):
            parent = element.getparent()
            if parent is not None and len(element) == 0 and not (element.text or "").strip():
                parent.remove(element)
    return bytes(etree.tostring(root, method="c14n"))


def str_report(shape: xml.Shape) -> dict[str, Any]:
    return xml.read(shape, fiu_file(f"{SAMPLES}/STR.xml"))


@pytest.mark.parametrize("sample", samples())
def test_every_uae_sample_validates_and_round_trips(shape: xml.Shape, gate: Gate, sample: str) -> None:
    original = fiu_file(sample)
    assert gate.check(original) == []
    written = shape.write(xml.read(shape, original))
    assert canonical(written) == canonical(original, without_blank_leaves=True)
    assert gate.check(written) == []


def test_it_writes_in_the_schemas_order_whatever_the_order_given(shape: xml.Shape, gate: Gate) -> None:
    report = str_report(shape)
    reversed_report = dict(reversed(list(report.items())))
    assert shape.write(reversed_report) == shape.write(report)
    assert gate.check(shape.write(reversed_report)) == []


def test_it_escapes_narratives_and_keeps_large_exact_amounts(shape: xml.Shape, gate: Gate) -> None:
    report = str_report(shape)
    report["reason"] = 'Deposits < 55,000 AED & "structured" across <branches>'
    report["transaction"][0]["amount_local"] = Decimal("7899999999999999.1234567890123")
    written = shape.write(report)
    assert gate.check(written) == []
    again = xml.read(shape, written)
    assert again["reason"] == report["reason"]
    assert again["transaction"][0]["amount_local"] == Decimal("7899999999999999.1234567890123")
    assert b"&amp;" in written
    assert b"&lt;" in written


# --- the traps: the writer refuses them, and the gate catches them in a file written elsewhere ----


def mutated(original: bytes, old: bytes, new: bytes) -> bytes:
    assert old in original
    return original.replace(old, new, 1)


def test_dates_are_written_with_a_time_and_as_given(shape: xml.Shape, gate: Gate) -> None:
    report = str_report(shape)
    report["submission_date"] = datetime.date(2026, 5, 26)
    local_midnight = datetime.datetime(2026, 5, 24, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=4)))
    report["transaction"][0]["date_transaction"] = local_midnight
    written = shape.write(report)
    assert b"<submission_date>2026-05-26T00:00:00</submission_date>" in written
    assert b"<date_transaction>2026-05-24T00:00:00</date_transaction>" in written  # not the 23rd in UTC
    assert gate.check(written) == []
    faults = gate.check(mutated(written, b"2026-05-26T00:00:00", b"2026-05-26"))
    assert any(f.path == "/report/submission_date" for f in faults)


def test_dates_before_1753_are_refused(shape: xml.Shape, gate: Gate) -> None:
    report = str_report(shape)
    report["submission_date"] = datetime.datetime(1752, 12, 31, 12, 0)  # noqa: DTZ001 (goAML's wall clock)
    with pytest.raises(xml.WriteError, match="before 1753"):
        shape.write(report)
    faults = gate.check(mutated(fiu_file(f"{SAMPLES}/STR.xml"), b"2026-05-26T10:00:00", b"1752-12-31T10:00:00"))
    assert any(f.path == "/report/submission_date" for f in faults)


def test_amounts_are_exact_decimals_without_grouping(shape: xml.Shape, gate: Gate) -> None:
    report = str_report(shape)
    report["transaction"][0]["amount_local"] = 120000.0
    with pytest.raises(xml.WriteError, match="float"):
        shape.write(report)
    report["transaction"][0]["amount_local"] = Decimal("1.12345678901234")  # 14 places
    with pytest.raises(xml.WriteError, match="14 decimal places; the schema allows 13"):
        shape.write(report)
    original = fiu_file(f"{SAMPLES}/STR.xml")
    for wrong in (b"120,000.00", b"120000,00", b"1.2E5"):
        faults = gate.check(mutated(original, b"120000.00", wrong))
        assert any(f.path.endswith("/amount_local") for f in faults), wrong


def test_empty_optionals_are_left_out_and_empty_required_ones_named(shape: xml.Shape, gate: Gate) -> None:
    report = str_report(shape)
    report["reason"] = "  "
    report["location"] = {}
    written = shape.write(report)
    assert b"<reason>" not in written
    assert b"<location>" not in written
    report["entity_reference"] = ""
    with pytest.raises(xml.WriteError, match="report/entity_reference: is required"):
        shape.write(report)
    original = fiu_file(f"{SAMPLES}/STR.xml")
    faults = gate.check(
        mutated(original, b"<submission_date>2026-05-26T10:00:00</submission_date>", b"<submission_date/>")
    )
    assert any(f.path == "/report/submission_date" for f in faults)


def test_codes_are_case_sensitive(gate: Gate) -> None:
    faults = gate.check(
        mutated(fiu_file(f"{SAMPLES}/STR.xml"), b"<currency_code_local>AED<", b"<currency_code_local>aed<")
    )
    assert [f.path for f in faults][:1] == ["/report/currency_code_local"]


def test_a_fixed_value_is_written_as_the_schema_spells_it() -> None:
    is_primary = xml.Element("is_primary", min_occurs=0, fixed="1", builtin="boolean")
    assert xml._text(is_primary, True, "t_account/signatory/is_primary") == "1"
    with pytest.raises(xml.WriteError, match="fixed to 1"):
        xml._text(is_primary, False, "t_account/signatory/is_primary")


def test_element_order_and_namespace_are_checked(gate: Gate) -> None:
    original = fiu_file(f"{SAMPLES}/STR.xml")
    swapped = mutated(
        original,
        b"<submission_code>E</submission_code>\n    <report_code>STR</report_code>",
        b"<report_code>STR</report_code>\n    <submission_code>E</submission_code>",
    )
    assert gate.check(swapped)
    assert gate.check(mutated(original, b"<report>", b'<report xmlns="http://www.unodc.org/goaml">'))


def test_the_writer_refuses_what_the_schema_does_not_declare(shape: xml.Shape) -> None:
    report = str_report(shape)
    report["transaction"][0]["amount_locale"] = Decimal(1)
    with pytest.raises(xml.WriteError, match="report/transaction\\[1\\]: the schema declares no amount_locale"):
        shape.write(report)
    both = copy.deepcopy(str_report(shape))
    both["transaction"][0]["t_from"] = both["transaction"][0]["t_from_my_client"]
    with pytest.raises(xml.WriteError, match="alternatives of one choice"):
        shape.write(both)


def test_the_uae_schema_as_issued_refuses_every_real_name() -> None:
    faults = gate_for(fiu_file(UAE_AS_ISSUED)).check(fiu_file(f"{SAMPLES}/STR.xml"))
    assert any(f.path.endswith("/first_name") for f in faults)


def test_an_unreadable_file_is_one_fault(gate: Gate) -> None:
    assert [(f.path, f.validator) for f in gate.check(b"<report><unclosed></report>")] == [("/", "lxml")]
    entity = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><report>&x;</report>'
    assert all("root:" not in f.message for f in gate.check(entity))


def test_the_gate_reads_a_file_of_any_number_of_elements(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """xmlschema refuses an eagerly read file of over MAX_XML_ELEMENTS (a million: an STR of
    50,000 transactions has more); the gate reads lazily, which has no such cap."""
    import xmlschema

    monkeypatch.setattr(xmlschema.limits, "MAX_XML_ELEMENTS", 50)
    assert gate.check(fiu_file(f"{SAMPLES}/STR.xml")) == []
