"""A report's draft, from the case it is about to the goAML document the writer takes.

The draft is one JSON document (encrypted on :class:`~reporting.models.Report`), in the words of
the form the analyst fills, not goAML's:

* ``reason``, ``action`` (the narratives) and ``indicators`` (codes of the profile's list);
* ``subject``: the bank's own customer, a person or an entity (with the person who signs for it),
  prefilled from the case's party;
* ``accounts``: the customer's accounts the case's transactions name, prefilled;
* ``counterparties``: the third parties the transactions name, each once, a person or an entity;
* ``transactions``: which of the case's transactions are left out, and what goAML asks of each
  that the bank's systems did not say (the mode of each channel, the funds codes, the exchange
  rate of each foreign currency to the local one, the place);
* ``names``: each name the FIU's pattern refuses as typed, with the spelling the analyst
  confirmed for it (never rewritten silently: ``reporting/goaml/transliterate.py``).

:func:`document` turns a draft into the dictionaries :class:`reporting.goaml.xml.Shape` writes,
with the transactions as a generator (read from the database a chunk at a time), and a
:class:`Locator` that takes a fault of the gate (``/report/transaction[2]/t_from_my_client/…``)
back to the field of the form it came from, in plain words. :func:`business_faults` are the FIU's
rules the schema does not state.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from lxml import etree

from cases.api.schemas import minor_units
from cases.models import Case, Transaction
from reporting.goaml import transliterate
from reporting.goaml.schema import XS, parser
from reporting.goaml.validate import Fault
from reporting.goaml.xml import Shared
from reporting.models import FiuProfile, FiuSchema, Report

# How a person or an entity is reached: one phone and one address.
CONTACT_FIELDS = (
    "phone_type",
    "phone_communication",
    "phone_prefix",
    "phone_number",
    "address_type",
    "address",
    "city",
    "state",
    "country_code",
)
PERSON_FIELDS = (
    "gender",
    "title",
    "first_name",
    "middle_name",
    "last_name",
    "birthdate",
    "ssn",
    "id_number",
    "nationality1",
    "residence",
    "occupation",
    "tax_reg_number",
    "id_type",
    "id_issue_country",
    "id_issue_date",
    "id_expiry_date",
    *CONTACT_FIELDS,
)
ENTITY_FIELDS = (
    "name",
    "commercial_name",
    "incorporation_legal_form",
    "incorporation_number",
    "business",
    "incorporation_state",
    "incorporation_country_code",
    "incorporation_date",
    "tax_reg_number",
    *CONTACT_FIELDS,
)
ACCOUNT_FIELDS = (
    "institution_name",
    "swift",
    "branch",
    "account",
    "currency_code",
    "account_name",
    "client_number",
    "personal_account_type",
    "signatory_role",
    "opened",
    "status_code",
    "country",
)
LOCATION_FIELDS = ("address_type", "address", "city", "state", "country_code")
COUNTERPARTY_FIELDS = ("kind", "first_name", "last_name", "name", "account", "institution_name", "swift", "country")

# What each field is called on the form: the words every fault is told in.
LABELS = {
    "reason": "Reason for suspicion",
    "action": "Action taken",
    "indicators": "Indicators",
    "report_code": "Kind of report",
    "gender": "Gender",
    "title": "Title",
    "first_name": "First name",
    "middle_name": "Middle name",
    "last_name": "Last name",
    "birthdate": "Date of birth",
    "id_number": "National id number",
    "ssn": "Social security number",
    "commercial_name": "Trading name",
    "nationality1": "Nationality",
    "residence": "Country of residence",
    "occupation": "Occupation",
    "tax_reg_number": "Tax registration number",
    "id_type": "Identity document type",
    "id_issue_country": "Document issued by",
    "id_issue_date": "Document issued on",
    "id_expiry_date": "Document expires on",
    "phone_type": "Phone: contact type",
    "phone_communication": "Phone: communication type",
    "phone_prefix": "Phone: country prefix",
    "phone_number": "Phone number",
    "address_type": "Address type",
    "address": "Address",
    "city": "City",
    "state": "State or emirate",
    "country_code": "Country",
    "name": "Name",
    "reporting_user_code": "The bank's goAML user code (FIU profile)",
    "incorporation_legal_form": "Legal form",
    "incorporation_number": "Registration number",
    "business": "Business",
    "incorporation_state": "State of incorporation",
    "incorporation_country_code": "Country of incorporation",
    "incorporation_date": "Date of incorporation",
    "institution_name": "Bank",
    "swift": "SWIFT/BIC",
    "branch": "Branch",
    "account": "Account number",
    "currency_code": "Account currency",
    "account_name": "Account name",
    "client_number": "Customer number",
    "personal_account_type": "Account type",
    "signatory_role": "Customer's role on the account",
    "opened": "Opened on",
    "status_code": "Account status",
    "country": "Country",
    "kind": "Person or entity",
    "location": "Where the transactions took place",
    "from_funds_code": "Funds type, paying side",
    "to_funds_code": "Funds type, receiving side",
    "transmodes": "Transaction mode",
    "transmode_comment": "Transaction mode comment",
    "rates": "Exchange rate",
    "names": "Spelling for the FIU",
}

# goAML elements and the form fields that fill them, where the names differ.
_ELEMENT_FIELDS = {
    "type": "id_type",
    "issue_country": "id_issue_country",
    "issue_date": "id_issue_date",
    "expiry_date": "id_expiry_date",
    "number": "id_number",
    "tph_contact_type": "phone_type",
    "tph_communication_type": "phone_communication",
    "tph_country_prefix": "phone_prefix",
    "tph_number": "phone_number",
    "role": "signatory_role",
    "from_country": "country",
    "to_country": "country",
    "nationality2": "nationality1",
    "date_transaction": "transactions",
    "transaction_location": "location",
    "transmode_comment": "transmode_comment",
    "transmode_code": "transmodes",
    "amount_local": "rates",
    "foreign_exchange_rate": "rates",
    "from_funds_code": "from_funds_code",
    "to_funds_code": "to_funds_code",
    "report_indicators": "indicators",
    "indicator": "indicators",
    "incorporation_country_code": "incorporation_country_code",
    "director_id": "signatory",
    "beneficiary": "account_name",
    "phones": "phone_number",
    "phone": "phone_number",
    "addresses": "address",
    "identifications": "id_type",
    "identification": "id_type",
}

_MISSING = re.compile(r"Expected is(?: one of)? \(\s*([^)]*)\)")


@dataclass(frozen=True)
class Issue:
    """A fault told in the form's words: ``field`` is the form field's id (``subject-birthdate``),
    ``section`` the part of the page it is in."""

    section: str
    field: str
    label: str
    message: str
    path: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "section": self.section,
            "field": self.field,
            "label": self.label,
            "message": self.message,
            "path": self.path,
        }


# --- the draft, prefilled from the case ------------------------------------------------------------


def counterparty_key(name: str, number: str, country: str) -> str:
    """A counterparty's key in the draft: the same name, account and country are one party."""
    return hashlib.sha256(json.dumps([name, number, country]).encode()).hexdigest()[:16]


def _split_name(name: str) -> tuple[str, str]:
    words = name.split()
    if len(words) < 2:
        return "", name.strip()
    return " ".join(words[:-1]), words[-1]


def _iban_country(number: str) -> str:
    compact = number.replace(" ", "")
    return compact[:2] if re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", compact) else ""


def _first_code(codes: list[tuple[str, str]], *words: str) -> str:
    """The first code whose meaning names one of ``words``: a default the analyst may change."""
    for word in words:
        for code, label in codes:
            if word.lower() in label.lower() or word.lower() == code.lower():
                return code
    return ""


def initial(case: Case, profile: FiuProfile, schema: FiuSchema) -> dict[str, Any]:
    """A new draft: what the case knows, in the form's words, and nothing invented."""
    party = case.party
    subject: dict[str, Any] = {"kind": "person", **dict.fromkeys(PERSON_FIELDS, "")}
    subject["entity"] = dict.fromkeys(ENTITY_FIELDS, "")
    subject["signatory"] = {**dict.fromkeys(PERSON_FIELDS, ""), "role": ""}
    if party is not None:
        first, last = _split_name(str(party.name or ""))
        subject.update(first_name=first, last_name=last, id_number=str(party.national_id or ""))
        subject["birthdate"] = party.date_of_birth.isoformat() if party.date_of_birth else ""
        subject.update(nationality1=party.country, residence=party.country, country_code=party.country)
        subject["entity"]["name"] = str(party.name or "")
    funds = schema.codes("funds_type")
    content: dict[str, Any] = {
        "reason": "",
        "action": "",
        "indicators": [],
        "location": dict.fromkeys(LOCATION_FIELDS, ""),
        "subject": subject,
        "accounts": {},
        "counterparties": {},
        "transactions": {
            "excluded": [],
            "location": "",
            "transmode_comment": "",
            "transmodes": {},
            "funds": {},
            "from_funds_code": _first_code(funds, "deposit", "account"),
            "to_funds_code": _first_code(funds, "deposit", "account"),
            "rates": {},
        },
        "names": {},
        "seen_until": "",  # alerts received up to then are in the draft (ISO 8601)
    }
    refresh(content, case, profile, schema)
    return content


LOOK_BACK = datetime.timedelta(minutes=10)  # longer than any intake transaction


def refresh(content: dict[str, Any], case: Case, profile: FiuProfile, schema: FiuSchema) -> bool:
    """Take into the draft what the case's alerts that arrived since bring: their accounts,
    counterparties, currencies (a rate to give) and channels (a mode to choose), each blank where
    the bank's systems did not say. Alerts keep joining an open case in reporting; their
    transactions are reported with the rest, and never with a missing part filled by a guess.
    Returns whether the draft gained anything."""
    mark = content.get("seen_until") or ""
    since = datetime.datetime.fromisoformat(mark) if mark else None
    party = case.party
    roles = schema.codes("account_person_role_type")
    accounts, counterparties = content["accounts"], content["counterparties"]
    settings = content["transactions"]
    changed = False
    # Received since the mark (alerts read again add nothing twice): one range, however many
    # alerts the case already has.
    new = Transaction.objects.filter(alert__case=case).select_related("account", "alert").defer("alert__payload")
    if since is not None:
        # An alert stamped before the mark may commit after it was set: look back a little.
        new = new.filter(alert__received_at__gte=since - LOOK_BACK)
    latest = since
    for tx in new.order_by("occurred_at", "pk").iterator(chunk_size=2000):
        received = tx.alert.received_at
        latest = received if latest is None else max(latest, received)
        if tx.channel not in settings["transmodes"]:
            settings["transmodes"][tx.channel] = ""
            changed = True
        if tx.channel not in settings.setdefault("funds", {}):
            settings["funds"][tx.channel] = {"from": "", "to": ""}  # blank: the default below
        if tx.currency != profile.currency_code_local and tx.currency not in settings["rates"]:
            settings["rates"][tx.currency] = ""
            changed = True
        if tx.account is not None and str(tx.account_id) not in accounts:
            changed = True
            number = str(tx.account.number)
            accounts[str(tx.account_id)] = {
                **dict.fromkeys(ACCOUNT_FIELDS, ""),
                "account": number,
                "currency_code": tx.account.currency or tx.currency,
                "account_name": str(party.name or "") if party is not None else "",
                "client_number": str(party.customer_id or "") if party is not None else "",
                "signatory_role": _first_code(roles, "owner", "holder", "signatory"),
                "country": _iban_country(number) or (party.country if party is not None else ""),
            }
        name, number = str(tx.counterparty_name or ""), str(tx.counterparty_account or "")
        key = counterparty_key(name, number, tx.counterparty_country) if name or number else ""
        if key and key not in counterparties:
            changed = True
            first, last = _split_name(name)
            counterparties[key] = {
                "kind": "person",
                "first_name": first,
                "last_name": last,
                "name": name,
                "account": number,
                "institution_name": "",
                "swift": "",
                "country": tx.counterparty_country or _iban_country(number),
            }
    content["seen_until"] = latest.isoformat() if latest is not None else mark
    return changed


def loads(report: Report) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(str(report.content))
    return content


def dumps(content: Mapping[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, ensure_ascii=False)


# --- names the FIU's pattern refuses -----------------------------------------------------------------


@lru_cache(maxsize=8)
def _patterns(xsd: bytes) -> dict[str, str]:
    """The pattern of each named element that has one (the first declaration of that name),
    its own or its named simple type's (followed through the types it restricts)."""
    root = etree.fromstring(xsd, parser())
    named = {node.get("name"): node for node in root if node.get("name")}

    def pattern_of(node: Any, depth: int = 0) -> str | None:
        found = node.find(f".//{{{XS}}}pattern")
        if found is not None:
            return str(found.get("value"))
        restriction = node.find(f".//{{{XS}}}restriction")
        base = restriction.get("base") if restriction is not None else node.get("type")
        if base and not base.startswith("xs:") and base in named and depth < 20:
            return pattern_of(named[base], depth + 1)
        return None

    found: dict[str, str] = {}
    for element in root.iter(f"{{{XS}}}element"):
        name = element.get("name")
        if name and name not in found:
            pattern = pattern_of(element)
            if pattern is not None:
                found[name] = pattern
    return found


NAME_ELEMENTS = ("first_name", "middle_name", "last_name", "name", "account_name", "title")


def name_pattern(schema: FiuSchema, element: str) -> str | None:
    return _patterns(bytes(schema.xsd)).get(element)


def names_to_confirm(content: Mapping[str, Any], schema: FiuSchema) -> list[transliterate.Transliteration]:
    """Every name of the draft the FIU's pattern refuses as typed, with what it would become."""
    seen: dict[str, transliterate.Transliteration] = {}
    for element, value in _names(content):
        pattern = name_pattern(schema, element)
        if value and value not in seen:
            found = transliterate.transliterate(value, pattern)
            if found.changed or not found.acceptable:
                seen[value] = found
    return list(seen.values())


def _names(content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    subject = content["subject"]
    people = [subject, subject["signatory"]]
    people += list(content["counterparties"].values())
    for person in people:
        for element in ("first_name", "middle_name", "last_name", "title"):
            yield element, str(person.get(element, ""))
    yield "name", str(subject["entity"].get("name", ""))
    for cp in content["counterparties"].values():
        yield "name", str(cp.get("name", ""))
        yield "account_name", str(cp.get("name", ""))
    for account in content["accounts"].values():
        yield "account_name", str(account.get("account_name", ""))


class Spelling:
    """How each name is written to the FIU: as typed when its pattern takes it, else as the
    analyst confirmed it; a name neither is a business fault (never written unconfirmed)."""

    def __init__(self, content: Mapping[str, Any], schema: FiuSchema) -> None:
        self.confirmed: Mapping[str, str] = content.get("names", {})
        self.schema = schema
        self.unconfirmed: dict[str, str] = {}

    def __call__(self, element: str, value: str) -> str:
        if not value:
            return value
        pattern = name_pattern(self.schema, element)
        if pattern is None or transliterate.matches(pattern, value):
            return value
        chosen = self.confirmed.get(value)
        if chosen is not None and transliterate.matches(pattern, chosen):
            return chosen
        self.unconfirmed.setdefault(value, element)
        # Not confirmed: a business fault refuses the file; the suggestion keeps the schema's
        # faults to the names the analyst has not confirmed, told once.
        return transliterate.transliterate(value, pattern).value


# --- the goAML document -----------------------------------------------------------------------------


@dataclass
class Row:
    """What a written transaction came from, to take its faults back to the form."""

    account: str  # the subject's account in the draft, or ""
    counterparty: str  # the counterparty's key, or ""


@dataclass
class Locator:
    """Takes a gate fault's path back to the form: the section, the field and its words."""

    content: Mapping[str, Any]
    rows: list[Row] = field(default_factory=list)

    def issue(self, fault: Fault) -> Issue:
        steps = [step for step in fault.path.strip("/").split("/") if step]
        names = [step.split("[", 1)[0] for step in steps]
        element = names[-1] if names else "report"
        missing = _MISSING.search(fault.message)
        wanted = missing.group(1).split(",")[0].strip() if missing else ""
        if wanted and ("Missing child" in fault.message or "not expected" in fault.message):
            element_of_field = wanted
            message = "is required by the FIU's schema"
        else:
            element_of_field = element
            message = _plain(fault.message)
        section, prefix = self._section(steps, names)
        field_name = _ELEMENT_FIELDS.get(element_of_field, element_of_field)
        if prefix == "location" and field_name in ("location", "transaction_location"):
            field_name = "address"  # the reporting office's address as a whole
        if section == "transactions" and field_name not in ("location", "transmodes", "transmode_comment", "rates"):
            field_name = {"from_funds_code": "from_funds_code", "to_funds_code": "to_funds_code"}.get(
                field_name, "transactions"
            )
        label = LABELS.get(field_name, element_of_field.replace("_", " ").capitalize())
        where = self._where(steps)
        return Issue(section, f"{prefix}-{field_name}", label, f"{where}{message}", fault.path)

    def _section(self, steps: list[str], names: list[str]) -> tuple[str, str]:
        if "transaction" not in names:
            if "location" in names:
                return "report", "location"
            return "report", "report"
        index = _index(steps[names.index("transaction")])
        row = self.rows[index - 1] if 0 < index <= len(self.rows) else None
        rest = names[names.index("transaction") + 1 :]
        if row is None or len(rest) < 2:
            return "transactions", "transactions"
        side, party = rest[0], rest[1]
        if side.endswith("_my_client"):
            if party.endswith("_account") and "signatory" not in rest and "t_entity" not in rest:
                return "accounts", f"account-{row.account}"
            if "director_id" in rest or ("signatory" in rest and self.content["subject"]["kind"] == "entity"):
                return "subject", "signatory"
            if party.endswith("_entity") or "t_entity" in rest:
                return "subject", "entity"
            return "subject", "subject"
        if side.startswith(("t_from", "t_to")):
            return "counterparties", f"party-{row.counterparty}"
        return "transactions", "transactions"

    def _where(self, steps: list[str]) -> str:
        names = [step.split("[", 1)[0] for step in steps]
        if "transaction" in names:
            index = _index(steps[names.index("transaction")])
            return f"In transaction {index}: "
        return ""


def _index(step: str) -> int:
    found = re.search(r"\[(\d+)\]", step)
    return int(found.group(1)) if found else 1


def _plain(message: str) -> str:
    text = re.sub(r"^Element '[^']*'(, attribute '[^']*')?: ", "", message).strip()
    text = text.replace("The value ", "").replace(" is not accepted by the pattern", " is not in the FIU's format")
    text = re.sub(r"is not an element of the set \{[^}]*\}", "is not one of the FIU's codes", text)
    return text.rstrip(".")


def _date_time(value: str) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.combine(datetime.date.fromisoformat(value), datetime.time())
    except ValueError:
        return None


def _person(data: Mapping[str, Any], spell: Spelling, *, my_client: bool) -> dict[str, Any]:
    person: dict[str, Any] = {
        "gender": data.get("gender", ""),
        "title": spell("title", data.get("title", "")),
        "first_name": spell("first_name", data.get("first_name", "")),
        "middle_name": spell("middle_name", data.get("middle_name", "")),
        "last_name": spell("last_name", data.get("last_name", "")),
        "birthdate": _date_time(data.get("birthdate", "")),
        "ssn": data.get("ssn", ""),
        "id_number": data.get("id_number", ""),
        "nationality1": data.get("nationality1", ""),
        "residence": data.get("residence", ""),
    }
    if data.get("phone_number"):
        person["phones"] = _phones(data)
    if data.get("address"):
        person["addresses"] = {"address": [_address(data)]}
    person["occupation"] = data.get("occupation", "")
    if my_client and data.get("id_type"):
        person["identifications"] = {
            "identification": [
                {
                    "type": data.get("id_type", ""),
                    "number": data.get("id_number", ""),
                    "issue_date": _date_time(data.get("id_issue_date", "")),
                    "expiry_date": _date_time(data.get("id_expiry_date", "")),
                    "issue_country": data.get("id_issue_country", ""),
                }
            ]
        }
    person["tax_reg_number"] = data.get("tax_reg_number", "")
    return person


def _phones(data: Mapping[str, Any]) -> dict[str, Any]:
    phone = {
        "tph_contact_type": data.get("phone_type", ""),
        "tph_communication_type": data.get("phone_communication", ""),
        "tph_country_prefix": data.get("phone_prefix", ""),
        "tph_number": data.get("phone_number", ""),
    }
    return {"phone": [phone]}


def _address(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "address_type": data.get("address_type", ""),
        "address": data.get("address", ""),
        "city": data.get("city", ""),
        "country_code": data.get("country_code", ""),
        "state": data.get("state", ""),
    }


def _entity(data: Mapping[str, Any], director: dict[str, Any] | None, spell: Spelling) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "name": spell("name", data.get("name", "")),
        "commercial_name": spell("name", data.get("commercial_name", "")),
        "incorporation_legal_form": data.get("incorporation_legal_form", ""),
        "incorporation_number": data.get("incorporation_number", ""),
        "business": data.get("business", ""),
    }
    if data.get("phone_number"):
        entity["phones"] = _phones(data)
    if data.get("address"):
        entity["addresses"] = {"address": [_address(data)]}
    entity["incorporation_state"] = data.get("incorporation_state", "")
    entity["incorporation_country_code"] = data.get("incorporation_country_code", "")
    if director is not None:
        entity["director_id"] = [director]
    entity["incorporation_date"] = _date_time(data.get("incorporation_date", ""))
    entity["tax_reg_number"] = data.get("tax_reg_number", "")
    return entity


WRITTEN_FROM = (
    "id",
    "account_id",
    "external_id",
    "occurred_at",
    "amount",
    "currency",
    "direction",
    "channel",
    "counterparty_name",
    "counterparty_account",
    "counterparty_country",
)


class Builder:
    """The goAML document of one draft, for one submission date."""

    def __init__(self, report: Report, content: Mapping[str, Any], schema: FiuSchema) -> None:
        self.report = report
        self.content = content
        self.schema = schema
        self.spell = Spelling(content, schema)
        self.locator = Locator(content)
        profile = report.profile
        self.local = profile.currency_code_local
        self.zone = zoneinfo.ZoneInfo(profile.time_zone)
        subject = content["subject"]
        self.entity_subject = subject.get("kind") == "entity"
        self._own_person = Shared(
            _person(subject["signatory"] if self.entity_subject else subject, self.spell, my_client=True)
        )
        if self.entity_subject:
            director = dict(self._own_person, role=subject["signatory"].get("role", ""))
            self._own_entity = Shared(_entity(subject["entity"], director, self.spell))
        units = minor_units(self.local)
        self.cent = Decimal(1).scaleb(-(units if units is not None else 2))
        # What a transaction needs and the draft does not give (a transaction that came after
        # the draft was last saved): each a fault, never filled by a guess.
        self.problems: dict[str, Issue] = {}
        self._accounts: dict[str, dict[str, Any]] = {}
        self._parties: dict[str, tuple[str, dict[str, Any]]] = {}

    def _problem(self, section: str, field: str, label: str, message: str) -> None:
        self.problems.setdefault(field, Issue(section, field, label, message))

    def document(self, submission: datetime.datetime, progress: Any = None) -> dict[str, Any]:
        profile = self.report.profile
        content = self.content
        return {
            "rentity_id": profile.rentity_id,
            "rentity_branch": profile.rentity_branch,
            "submission_code": "E",
            "report_code": self.report.report_code,
            "entity_reference": self.report.reference,
            "submission_date": submission.astimezone(self.zone).replace(tzinfo=None, microsecond=0),
            "currency_code_local": self.local,
            "reporting_user_code": profile.reporting_user_code,
            "location": _address(content["location"]) if content.get("location", {}).get("address") else None,
            "reason": content.get("reason", ""),
            "action": content.get("action", ""),
            "transaction": self._transactions(progress),
            "report_indicators": {"indicator": list(content.get("indicators", []))},
        }

    def _transactions(self, progress: Any) -> Iterator[dict[str, Any]]:
        excluded = set(self.content["transactions"].get("excluded", []))
        # Only what a transaction is written from: the account by its id (its number is in the
        # draft), the card's token never read.
        query = (
            Transaction.objects.filter(alert__case=self.report.case).only(*WRITTEN_FROM).order_by("occurred_at", "pk")
        )
        written = 0
        for tx in query.iterator(chunk_size=2000):
            if str(tx.pk) in excluded:
                continue
            written += 1
            if progress is not None and written % 1000 == 0:
                progress(written)
            yield self.transaction(tx)

    def transaction(self, tx: Transaction) -> dict[str, Any]:
        settings = self.content["transactions"]
        counterparty = ""
        name, number = str(tx.counterparty_name or ""), str(tx.counterparty_account or "")
        if name or number:
            counterparty = counterparty_key(name, number, tx.counterparty_country)
        debit = tx.direction == Transaction.Direction.DEBIT
        account = str(tx.account_id) if tx.account_id is not None else ""
        self.locator.rows.append(Row(account, counterparty))
        amount, foreign = self._amount(tx)
        own = self._own_side("from" if debit else "to", account, foreign, tx.channel)
        if counterparty:
            other = self._other_side("to" if debit else "from", counterparty, foreign, tx.channel)
            sides = {"t_from_my_client": own, "t_to": other} if debit else {"t_from": other, "t_to_my_client": own}
        else:  # no counterparty named (cash at an ATM): the customer is both sides
            mirror = self._own_side("to" if debit else "from", "", foreign, tx.channel)
            sides = (
                {"t_from_my_client": own, "t_to_my_client": mirror}
                if debit
                else {
                    "t_from_my_client": mirror,
                    "t_to_my_client": own,
                }
            )
        channel = Transaction.Channel(tx.channel).label
        transmode = settings.get("transmodes", {}).get(tx.channel, "")
        if not transmode:
            self._problem(
                "transactions",
                f"transactions-transmode-{tx.channel}",
                f"{LABELS['transmodes']}: {channel}",
                "Choose the FIU's code.",
            )
        return {
            "transactionnumber": tx.external_id or str(tx.pk),
            "internal_ref_number": str(tx.pk),
            "transaction_location": settings.get("location", ""),
            "transaction_description": f"{channel}, {tx.get_direction_display().lower()}",
            "date_transaction": tx.occurred_at.astimezone(self.zone).replace(tzinfo=None, microsecond=0),
            "transmode_code": transmode,
            "transmode_comment": settings.get("transmode_comment", ""),
            "amount_local": amount,
            **sides,
        }

    def _amount(self, tx: Transaction) -> tuple[Decimal, dict[str, Any] | None]:
        if tx.currency == self.local:
            return tx.amount, None
        rate = _decimal(self.content["transactions"].get("rates", {}).get(tx.currency, ""))
        if rate is None or rate <= 0:
            self._problem(
                "transactions",
                f"transactions-rate-{tx.currency}",
                f"{LABELS['rates']} {tx.currency}",
                f"Give the rate of {tx.currency} to {self.local}: its transactions are reported in both.",
            )
            rate = Decimal(0)
        local = (tx.amount * rate).quantize(self.cent, rounding=ROUND_HALF_EVEN)
        return local, {
            "foreign_currency_code": tx.currency,
            "foreign_amount": tx.amount,
            "foreign_exchange_rate": rate,
        }

    def _funds(self, side: str, channel: str) -> str:
        """The funds type of a side of a transaction: its channel's, else the report's default
        (cash at an ATM and a transfer are different funds)."""
        settings = self.content["transactions"]
        chosen = str(settings.get("funds", {}).get(channel, {}).get(side, ""))
        return chosen or str(settings.get(f"{side}_funds_code", ""))

    def _own_side(self, side: str, account: str, foreign: dict[str, Any] | None, channel: str) -> dict[str, Any]:
        data: dict[str, Any] = {f"{side}_funds_code": self._funds(side, channel)}
        if foreign is not None:
            data[f"{side}_foreign_currency"] = foreign
        held = self.content["accounts"].get(account) if account else None
        if account and held is None:
            self._problem(
                "accounts",
                f"account-{account}",
                "Account",
                "An account of the customer is not in the draft: reload the draft and complete it.",
            )
        if held is not None:
            if account not in self._accounts:  # written once, shared by its transactions
                self._accounts[account] = Shared(self._own_account(held))
            data[f"{side}_account"] = self._accounts[account]
            country = held.get("country", "")
        elif self.entity_subject:
            data[f"{side}_entity"] = self._own_entity
            country = self.content["subject"]["entity"].get("incorporation_country_code", "")
        else:
            data[f"{side}_person"] = self._own_person
            country = self.content["subject"].get("residence", "")
        data[f"{side}_country"] = country
        return data

    def _own_account(self, held: Mapping[str, Any]) -> dict[str, Any]:
        account_name = self.spell("account_name", held.get("account_name", ""))
        account: dict[str, Any] = {
            "institution_name": held.get("institution_name", ""),
            "swift": held.get("swift", ""),
            "non_bank_institution": False,
            "branch": held.get("branch", ""),
            "account": held.get("account", ""),
            "currency_code": held.get("currency_code", ""),
            "account_name": account_name,
            "client_number": held.get("client_number", ""),
            "personal_account_type": held.get("personal_account_type", ""),
        }
        if self.entity_subject:
            account["t_entity"] = self._own_entity
        account["signatory"] = [
            {"is_primary": True, "t_person": self._own_person, "role": held.get("signatory_role", "")}
        ]
        account["opened"] = _date_time(held.get("opened", ""))
        account["status_code"] = held.get("status_code", "")
        account["beneficiary"] = account_name[:50]
        return account

    def _other_side(self, side: str, key: str, foreign: dict[str, Any] | None, channel: str) -> dict[str, Any]:
        data: dict[str, Any] = {f"{side}_funds_code": self._funds(side, channel)}
        if foreign is not None:
            data[f"{side}_foreign_currency"] = foreign
        party = self.content["counterparties"].get(key)
        if party is None:
            self._problem(
                "counterparties",
                f"party-{key}",
                "Counterparty",
                "A counterparty is not in the draft: reload the draft and complete it.",
            )
            party = {}
        if key not in self._parties:  # written once, shared by its transactions
            kind, written = self._third_party(party)
            self._parties[key] = (kind, Shared(written))
        kind, written = self._parties[key]
        data[f"{side}_{kind}"] = written
        data[f"{side}_country"] = party.get("country", "")
        return data

    def _third_party(self, party: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if party.get("account"):
            return "account", {
                "institution_name": party.get("institution_name", ""),
                "swift": party.get("swift", ""),
                "account": party["account"],
                "account_name": self.spell("account_name", party.get("name", "")),
            }
        if party.get("kind") == "entity":
            return "entity", {"name": self.spell("name", party.get("name", ""))}
        return "person", {
            "first_name": self.spell("first_name", party.get("first_name", "")),
            "last_name": self.spell("last_name", party.get("last_name", "")),
        }


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if str(value).strip() else None
    except InvalidOperation:
        return None


# --- the FIU's rules the schema does not state ---------------------------------------------------------

NARRATIVE_CODES = frozenset({"STR", "SAR"})
OWN_PERSON_REQUIRED = ("gender", "first_name", "last_name", "birthdate", "id_number", "nationality1", "residence")
OWN_ENTITY_REQUIRED = ("name", "incorporation_number", "incorporation_country_code")


def business_faults(
    report: Report, content: Mapping[str, Any], schema: FiuSchema, submission: datetime.date, last_day: Any
) -> list[Issue]:
    """The rules of a report the XSD leaves out: narratives, indicators, complete own-customer
    records, exchange rates, confirmed spellings, no transaction after the submission."""
    issues: list[Issue] = []
    if report.report_code in NARRATIVE_CODES:
        for name in ("reason", "action"):
            if not str(content.get(name, "")).strip():
                issues.append(Issue("report", f"report-{name}", LABELS[name], f"A {report.report_code} states it."))
    indicators = list(content.get("indicators", []))
    known = {code for code, _ in schema.codes("report_indicator_type")}
    if not indicators:
        issues.append(Issue("report", "report-indicators", LABELS["indicators"], "Choose at least one indicator."))
    for code in indicators:
        if known and code not in known:
            issues.append(
                Issue("report", "report-indicators", LABELS["indicators"], f"{code} is not on the FIU's list.")
            )
    subject = content["subject"]
    own = subject["entity"] if subject.get("kind") == "entity" else subject
    required = OWN_ENTITY_REQUIRED if subject.get("kind") == "entity" else OWN_PERSON_REQUIRED
    prefix = "entity" if subject.get("kind") == "entity" else "subject"
    for name in required:
        if not str(own.get(name, "")).strip():
            issues.append(
                Issue("subject", f"{prefix}-{name}", LABELS[name], "The bank's own customer is reported in full.")
            )
    if subject.get("kind") == "entity":
        for name in OWN_PERSON_REQUIRED:
            if not str(subject["signatory"].get(name, "")).strip():
                issues.append(
                    Issue(
                        "subject",
                        f"signatory-{name}",
                        LABELS[name],
                        "The person who signs for the customer is reported in full.",
                    )
                )
    for key, held in content["accounts"].items():
        for name in (
            "institution_name",
            "swift",
            "branch",
            "account",
            "opened",
            "status_code",
            "personal_account_type",
        ):
            if not str(held.get(name, "")).strip():
                issues.append(
                    Issue(
                        "accounts", f"account-{key}-{name}", LABELS[name], "The customer's account is reported in full."
                    )
                )
    settings = content["transactions"]
    for currency, rate in sorted(settings.get("rates", {}).items()):
        value = _decimal(rate)
        if value is None or value <= 0:
            issues.append(
                Issue(
                    "transactions",
                    f"transactions-rate-{currency}",
                    f"{LABELS['rates']} {currency}",
                    f"Give the rate of {currency} to {report.profile.currency_code_local}: "
                    "its transactions are reported in both.",
                )
            )
    for channel, code in sorted(settings.get("transmodes", {}).items()):
        if not code:
            label = Transaction.Channel(channel).label if channel in Transaction.Channel.values else channel
            issues.append(
                Issue(
                    "transactions",
                    f"transactions-transmode-{channel}",
                    f"{LABELS['transmodes']}: {label}",
                    "Choose the FIU's code.",
                )
            )
    if last_day is not None and last_day.date() > submission:
        issues.append(
            Issue(
                "transactions",
                "transactions-transactions",
                "Transactions",
                f"A transaction is dated {last_day.date().isoformat()}, "
                f"after the submission on {submission.isoformat()}.",
            )
        )
    for found in names_to_confirm(content, schema):
        if content.get("names", {}).get(found.original) is None:
            issues.append(
                Issue("names", "names", LABELS["names"], f"Confirm how “{found.original}” is written for the FIU.")
            )
    return issues
