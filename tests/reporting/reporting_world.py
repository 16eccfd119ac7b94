"""A case in reporting, with a customer, their accounts and payments both ways, and an FIU
profile of each goAML schema: what the report tests draft from."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.models import User
from cases.models import Account, Alert, ApiClient, Case, Party, Transaction
from reporting import actions, reports
from reporting.models import FiuProfile, Report
from tests.personas import World, build_world
from tests.reporting.fiu import GENERIC, OWN, fiu_file

IBAN = "AE070331234567890123456"


@dataclass
class Reporting:
    world: World
    case: Case
    party: Party
    account: Account
    profile: FiuProfile

    @property
    def analyst(self) -> User:
        return self.world.users["analyst"]

    @property
    def lead(self) -> User:
        return self.world.users["lead"]


def client_of(setup: Reporting) -> ApiClient:
    return ApiClient.objects.get(source="core")


def schema_of(setup: Reporting) -> Any:
    schema = setup.profile.current_schema()
    assert schema is not None
    return schema


def profile_of(admin: User, relative: str = OWN, slug: str = "uae") -> FiuProfile:
    generic = relative == GENERIC
    return actions.create_profile(
        slug=slug,
        name=f"{slug.upper()} Financial Intelligence Unit",
        rentity_id=2079,
        rentity_branch="Head office",
        currency_code_local="AED" if not generic else "EUR",
        filename="goAMLSchema.xsd",
        data=fiu_file(relative),
        reporting_user_code="CASPIX-MLRO" if generic else "",
        acting_user=admin,
    )


def payment(
    case: Case,
    party: Party,
    client: ApiClient,
    *,
    account: Account | None,
    amount: str = "950.00",
    currency: str = "AED",
    direction: str = Transaction.Direction.DEBIT,
    channel: str = Transaction.Channel.TRANSFER,
    counterparty: str = "",
    counterparty_account: str = "",
    country: str = "",
    when: datetime.datetime | None = None,
) -> Transaction:
    now = when or timezone.now() - datetime.timedelta(days=2)
    alert = Alert(client=client, external_id=uuid.uuid4().hex, scenario="mule", occurred_at=now, party=party, case=case)
    alert.payload = "{}"
    alert.save()
    made = Transaction(
        alert=alert,
        account=account,
        external_id=f"TX-{uuid.uuid4().hex[:10]}",
        occurred_at=now,
        amount=Decimal(amount),
        currency=currency,
        minor_units=2,
        direction=direction,
        channel=channel,
        counterparty_country=country,
    )
    made.counterparty_name = counterparty
    made.counterparty_account = counterparty_account
    made.save()
    return made


def build(relative: str = OWN, *, name: str = "Layla Hassan", local: str = "AED") -> Reporting:
    world = build_world()
    profile = profile_of(world.users["admin"], relative, "generic" if relative == GENERIC else "uae")
    party = Party(country="AE")
    party.customer_id = "CUST-7001"
    party.name = name
    party.national_id = "784198512345671"
    party.date_of_birth = datetime.date(1989, 7, 2)
    party.save()
    held = Account(party=party, currency=local)
    held.number = IBAN
    held.save()
    case = world.cases["analyst"]["team"]
    Case.objects.filter(pk=case.pk).update(party=party, status=Case.Status.STR)
    case.refresh_from_db()
    client = ApiClient.objects.create(name="Core banking", source="core", scopes=["alerts:write"])
    payment(
        case,
        party,
        client,
        account=held,
        currency=local,
        counterparty="John Smith",
        counterparty_account="GB29NWBK60161331926819",
        country="GB",
    )
    payment(
        case,
        party,
        client,
        account=held,
        currency=local,
        direction=Transaction.Direction.CREDIT,
        counterparty="Acme Trading LLC",
        country="AE",
        amount="120000.00",
    )
    payment(
        case,
        party,
        client,
        account=held,
        currency="USD",
        amount="1234.5678",
        channel=Transaction.Channel.ONLINE_BANKING,
        counterparty="Omar Saleh",
        country="JO",
    )
    payment(case, party, client, account=held, currency=local, channel=Transaction.Channel.ATM, amount="2000.00")
    return Reporting(world, case, party, held, profile)


def contact(schema: Any, phone: str, address: str) -> dict[str, str]:
    """A Dubai phone and address, with the FIU's first contact and communication types."""
    kind = schema.codes("contact_type")[0][0]
    return {
        "phone_type": kind,
        "phone_communication": schema.codes("communication_type")[0][0],
        "phone_prefix": "971",
        "phone_number": phone,
        "address_type": kind,
        "address": address,
        "city": "Dubai",
        "state": "Dubai",
        "country_code": "AE",
    }


def complete(content: dict[str, Any], schema: Any) -> dict[str, Any]:
    """What an analyst adds to the prefilled draft for a report the gate passes."""
    content["reason"] = 'Structured cash deposits & transfers < threshold, "urgent" per customer'
    content["action"] = "Account flagged; enhanced monitoring <ongoing>"
    content["indicators"] = [schema.codes("report_indicator_type")[0][0]]
    content["location"] = {
        "address_type": schema.codes("contact_type")[0][0],
        "address": "Compliance Tower, Office 501",
        "city": "Dubai",
        "state": "Dubai",
        "country_code": "AE",
    }
    subject = content["subject"]
    subject.update(
        gender="F",
        nationality1="AE",
        residence="AE",
        tax_reg_number="Y",
        id_type=schema.codes("identifier_type")[0][0],
        id_issue_country="AE",
        id_issue_date="2020-01-15",
        id_expiry_date="2030-01-14",
        occupation="Trader",
        ssn="784-1985-1234567-1",
        **contact(schema, "509998877", "Villa 12, Al Wasl Road"),
    )
    for held in content["accounts"].values():
        held.update(
            institution_name="Caspix Test Bank",
            swift="CSPXAEAD",
            branch="Dubai Main",
            personal_account_type=schema.codes("account_type")[0][0],
            status_code=schema.codes("account_status_type")[0][0],
            opened="2015-03-01",
        )
        held["signatory_role"] = held["signatory_role"] or schema.codes("account_person_role_type")[0][0]
    for party in content["counterparties"].values():
        if party["name"].endswith("LLC"):
            party["kind"] = "entity"
        if party["account"]:
            party.update(institution_name="NatWest", swift="NWBKGB2L")
    settings = content["transactions"]
    settings["location"] = "Dubai Main Branch"
    settings["transmode_comment"] = "E"
    transmodes = schema.codes("conduction_type")
    settings["transmodes"] = dict.fromkeys(settings["transmodes"], transmodes[0][0])
    funds = schema.codes("funds_type")
    settings["from_funds_code"] = settings["from_funds_code"] or funds[0][0]
    settings["to_funds_code"] = settings["to_funds_code"] or funds[0][0]
    settings["rates"] = dict.fromkeys(settings["rates"], "3.6725")
    return content


def drafted(setup: Reporting, **changes: Any) -> Report:
    report = reports.start(
        setup.case,
        setup.profile,
        report_code="STR",
        suspicion_on=timezone.localdate() - datetime.timedelta(days=1),
        acting_user=setup.analyst,
    )
    schema = setup.profile.current_schema()
    from reporting import drafting

    content = complete(drafting.loads(report), schema)
    content.update(changes)
    return reports.save(report, content, revision=report.revision, acting_user=setup.analyst)


def as_entity(content: dict[str, Any], schema: Any) -> dict[str, Any]:
    """The customer is a company: its registration, and the person who signs for it."""
    subject = content["subject"]
    person = {name: subject[name] for name in subject if name not in ("kind", "entity", "signatory")}
    subject["kind"] = "entity"
    subject["signatory"] = {**person, "role": schema.codes("entity_person_role_type")[0][0]}
    subject["entity"].update(
        name="Hassan General Trading LLC",
        commercial_name="Hassan Trading",
        incorporation_legal_form=schema.codes("legal_form_type")[0][0],
        incorporation_number="DED-778812",
        business="General trading",
        incorporation_state="Dubai",
        incorporation_country_code="AE",
        incorporation_date="2011-05-04",
        tax_reg_number="Y",  # the UAE takes a flag here: Y, registered
        **contact(schema, "44445555", "Warehouse 7, Al Quoz"),
    )
    for held in content["accounts"].values():
        held["account_name"] = "Hassan General Trading LLC"
    return content


def generated(report: Report, user: User) -> Any:
    """The report's file, generated as the worker does it, from the draft as saved."""
    from reporting.models import ReportFile

    report.refresh_from_db()
    made = reports.request_generation(report, revision=report.revision, acting_user=user)
    reports.generate(str(made.pk))
    return ReportFile.objects.get(pk=made.pk)


def ready(setup: Reporting) -> tuple[Report, Any, Any]:
    """A completed draft, its file passed by the gate, sent for approval."""
    report = drafted(setup)
    made = generated(report, setup.analyst)
    request = reports.request_submission(report, reason="Ready", acting_user=setup.analyst)
    report.refresh_from_db()
    return report, made, request


def approved(setup: Reporting) -> Report:
    """A report the lead approved."""
    from accounts import approvals

    report, _, request = ready(setup)
    approvals.approve(request.pk, acting_user=setup.lead, seen_hash=request.payload_hash)
    report.refresh_from_db()
    return report
