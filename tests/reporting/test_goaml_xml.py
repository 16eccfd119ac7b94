"""goAML XML written and read by the FIU's schema, and the validation gate: every sample of the
UAE FIU round-trips, and one mutation per trap of docs/goaml.md shows the writer or the gate
stops it."""

from __future__ import annotations

import copy
import datetime
import glob
import io
import random
import weakref
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from reporting.goaml import xml
from reporting.goaml.validate import Gate, decided_element_by_element, gate_for
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


# --- streaming: written a transaction at a time, checked as the file is read ------------------------


class Transaction(dict[str, Any]):
    """A transaction that can be watched (weakly referenced) while it is written."""


def numbered(
    transaction: dict[str, Any], count: int, changed: dict[int, dict[str, Any]] | None = None
) -> Iterator[Any]:
    """``count`` copies of ``transaction``, numbered apart (the last one is number ``count``),
    one at a time; ``changed`` replaces fields of some of them."""
    for n in range(1, count + 1):
        yield Transaction(transaction, transactionnumber=f"TXN-{n:06d}", **(changed or {}).get(n, {}))


def streamed(shape: xml.Shape, report: dict[str, Any]) -> bytes:
    output = io.BytesIO()
    shape.write_to(output, report)
    return output.getvalue()


@pytest.mark.parametrize("sample", samples())
def test_write_to_writes_what_write_returns(shape: xml.Shape, sample: str) -> None:
    report = xml.read(shape, fiu_file(sample))
    assert streamed(shape, report) == shape.write(report)
    if "transaction" in report:
        as_generator = {**report, "transaction": (t for t in report["transaction"])}
        assert streamed(shape, as_generator) == shape.write(report)


def test_transactions_from_a_generator_are_read_once_and_never_held(shape: xml.Shape) -> None:
    report = str_report(shape)
    first = report["transaction"][0]
    made = alive = 0

    def freed() -> None:
        nonlocal alive
        alive -= 1

    def transactions() -> Iterator[Transaction]:
        nonlocal made, alive
        for transaction in numbered(first, 2000):
            assert alive <= 1, "the transactions written before are still held"
            made += 1
            alive += 1
            weakref.finalize(transaction, freed)
            yield transaction

    stream = transactions()
    written = streamed(shape, {**report, "transaction": stream})
    assert made == 2000
    assert next(stream, None) is None  # read to its end, once
    assert written == shape.write({**report, "transaction": list(numbered(first, 2000))})
    assert written.count(b"<transaction>") == 2000


def test_errors_in_a_stream_still_name_their_paths(shape: xml.Shape) -> None:
    report = str_report(shape)
    first = report["transaction"][0]
    late_float = numbered(first, 50, {40: {"amount_local": 120000.0}})
    with pytest.raises(xml.WriteError, match=r"^report/transaction\[40\]/amount_local: a float") as raised:
        streamed(shape, {**report, "transaction": late_float})
    assert raised.value.path == "report/transaction[40]/amount_local"
    no_indicator = {**report, "report_indicators": {"indicator": iter(["", " "])}}  # nothing present
    with pytest.raises(xml.WriteError, match=r"^report/report_indicators/indicator: is required"):
        streamed(shape, no_indicator)
    with pytest.raises(xml.WriteError, match=r"^report/reason: occurs once here, not as a list"):
        streamed(shape, {**report, "reason": (reason for reason in ["one", "two"])})
    both = {**report, "transaction": numbered(first, 3, {2: {"t_from": first["t_from_my_client"]}})}
    with pytest.raises(xml.WriteError, match=r"^report/transaction\[2\]: .* alternatives of one choice"):
        streamed(shape, both)


def test_check_file_finds_a_fault_in_the_last_of_thousands(shape: xml.Shape, gate: Gate, tmp_path: Path) -> None:
    """libxml2 validates as it parses: the elements cleared behind it do not stop it checking
    the last transaction (xmlschema finds the fault there too, at the same path)."""
    report = str_report(shape)
    path = tmp_path / "str.xml"
    with path.open("wb") as output:
        shape.write_to(output, {**report, "transaction": numbered(report["transaction"][0], 3000)})
    assert gate.check_file(path) == []
    written = path.read_bytes()
    at = written.rindex(b"<amount_local>120000.00</amount_local>")
    path.write_bytes(written[:at] + b"<amount_local>120,000.00</amount_local>" + written[at + 38 :])
    faults = gate.check_file(path)
    assert [(f.path, f.validator) for f in faults] == [("/report/transaction[3000]/amount_local", "lxml")]
    with path.open("rb") as file:
        assert gate.check_file(file) == faults
    assert gate.check(path.read_bytes()) == faults


def test_a_fault_only_xsd11_finds_is_found_in_a_transaction_like_the_others(shape: xml.Shape, tmp_path: Path) -> None:
    """Transactions of one structure are checked whole by xmlschema once, then by their values:
    a value libxml2 accepts and xmlschema refuses is still found in the last of them. The two read
    ``\\w`` differently: libxml2 takes the currency sign ฿ as a word character, xmlschema does not
    (XSD's ``\\w`` is every character but punctuation, separators and others: libxml2 is right)."""
    gate = Gate(fiu_file(UAE).replace(b"[a-zA-Z0-9 .'-]*", b"(\\w|[ .'-])*"))
    report = str_report(shape)
    first = report["transaction"][0]
    odd_name = {
        2000: {
            "t_from_my_client": {
                **first["t_from_my_client"],
                "from_person": {**first["t_from_my_client"]["from_person"], "first_name": "Layla฿"},
            }
        }
    }
    path = tmp_path / "str.xml"
    with path.open("wb") as output:
        shape.write_to(output, {**report, "transaction": numbered(first, 2000, odd_name)})
    faults = gate.check_file(path)
    assert [(f.path, f.validator) for f in faults] == [
        ("/report/transaction[2000]/t_from_my_client/from_person/first_name", "XSD 1.1")
    ]


def test_check_file_refuses_a_doctype_and_an_unreadable_file(gate: Gate, tmp_path: Path) -> None:
    original = fiu_file(f"{SAMPLES}/STR.xml")
    path = tmp_path / "str.xml"
    entity = b'<!DOCTYPE report [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<report>'
    path.write_bytes(mutated(original, b"<report>", entity).replace(b"<reason>", b"<reason>&x;", 1))
    assert [(f.path, f.message) for f in gate.check_file(path)] == [
        ("/", "the file declares a DOCTYPE: a goAML report has none")
    ]
    # A fault of the schema first, then the file breaks off: libxml2, streaming, would report the
    # fault alone; the file is one fault at the root.
    path.write_bytes(mutated(original, b">AED<", b">aed<")[:-40])
    faults = gate.check_file(path)
    assert [(f.path, f.validator) for f in faults] == [("/", "lxml")]
    assert faults[0].message.startswith("the file is not well-formed XML")


def test_a_schema_not_decided_element_by_element_is_checked_whole_by_xsd11(gate: Gate) -> None:
    """An identity constraint relates transactions to one another: xmlschema then reads the
    whole file instead of checking transactions apart (``decided_element_by_element``)."""
    import xmlschema

    assert decided_element_by_element(xmlschema.XMLSchema11(fiu_file(UAE).decode()))
    unique = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
      <xs:element name="report">
        <xs:complexType><xs:sequence>
          <xs:element name="transaction" maxOccurs="unbounded"><xs:complexType><xs:sequence>
            <xs:element name="transactionnumber" type="xs:string"/>
          </xs:sequence></xs:complexType></xs:element>
        </xs:sequence></xs:complexType>
        <xs:unique name="numbers"><xs:selector xpath="transaction"/><xs:field xpath="transactionnumber"/></xs:unique>
      </xs:element>
    </xs:schema>"""
    assert not decided_element_by_element(xmlschema.XMLSchema11(unique.decode()))
    numbers = b"".join(
        b"<transaction><transactionnumber>" + number + b"</transactionnumber></transaction>"
        for number in (b"1", b"2", b"1")
    )
    faults = Gate(unique).check(b"<report>" + numbers + b"</report>")
    assert [(f.path, f.validator) for f in faults] == [
        ("/report/transaction[3]", "lxml"),
        ("/report/transaction[3]/transactionnumber", "XSD 1.1"),
    ]


def test_xsd11_reading_a_transaction_at_a_time_finds_what_a_whole_validation_finds(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty transactions of one structure, a few values, elements or repetitions changed at
    random: xmlschema's faults, from structures seen once and values, are those it finds reading
    the whole document as one tree."""
    from reporting.goaml import validate

    streamed_faults: list[validate.Fault] = []
    faults_of = validate._Xsd11.faults

    def noted(self: validate._Xsd11, root: Any) -> list[validate.Fault]:
        streamed_faults[:] = faults_of(self, root)
        return streamed_faults

    monkeypatch.setattr(validate._Xsd11, "faults", noted)
    report = etree.fromstring(fiu_file(f"{SAMPLES}/STR.xml"))
    transaction = report.find("transaction")
    assert transaction is not None
    for n in range(29):
        again = copy.deepcopy(transaction)
        again.find("transactionnumber").text = f"TXN-{n:06d}"  # type: ignore[union-attr]
        transaction.addnext(again)
    chance = random.Random(20261125)
    values = ["1x", "", "2026-13-01T00:00:00", "ae", "L@yla", "-1", "1752-12-31T00:00:00", "12,000.00"]
    for _ in range(60):
        changed = copy.deepcopy(report)
        for _ in range(chance.randint(1, 3)):
            element = chance.choice(list(chance.choice(changed.findall("transaction")).iter())[1:])
            how = chance.choice(["value", "value", "drop", "repeat"])
            if how == "value" and len(element) == 0:
                element.text = chance.choice(values)
            elif how == "drop":
                element.getparent().remove(element)  # type: ignore[union-attr]
            elif how == "repeat":
                element.addnext(copy.deepcopy(element))
        document = etree.tostring(changed)
        gate.check(document)
        whole = gate._xsd11.iter_errors(etree.fromstring(document))
        expected = sorted((str(problem.path), validate._message(problem)) for problem in whole)
        assert sorted((fault.path, fault.message) for fault in streamed_faults) == expected
