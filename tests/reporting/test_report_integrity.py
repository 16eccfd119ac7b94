"""What keeps a report honest once alerts keep arriving, people change their minds and the FIU
answers: new transactions are never reported by a guess, the four-eyes approver has not worked on
the report, the approved file is the one read and recorded as submitted, the gate's faults are
encrypted, and a case leaves reporting only once its report is submitted or abandoned."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm
from lxml import etree

from accounts import approvals
from cases import workflow
from cases.models import Account, Case, Transaction
from reporting import actions, drafting, reports
from reporting.models import Report, ReportFile, ReportFileContent
from tests.conftest import client_for
from tests.recorded import events
from tests.reporting import reporting_world as rw

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(db: None) -> rw.Reporting:
    return rw.build()


def named(name: str) -> list[dict[str, Any]]:
    return [dict(event) for event in events() if event["name"] == name]


# --- alerts that join the case after the draft --------------------------------------------------------


def test_a_transaction_that_joins_later_is_never_reported_by_a_guess(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    other = Account(party=setup.party, currency="EUR")
    other.number = "CH9300762011623852957"
    other.save()
    rw.payment(
        setup.case,
        setup.party,
        rw.client_of(setup),
        account=other,
        amount="50000.00",
        currency="EUR",
        channel=Transaction.Channel.INSTANT,
        counterparty="Viktor Petrov",
        counterparty_account="CH5604835012345678009",
        country="CH",
    )
    made = rw.generated(report, setup.analyst)
    assert made.status == ReportFile.Status.INVALID
    fields = {fault["field"] for fault in made.faults}
    assert f"account-{other.pk}-branch" in fields  # the new account, to complete
    assert "transactions-rate-EUR" in fields  # the new currency's rate
    assert "transactions-transmode-instant" in fields  # the new channel's mode
    # the page offers every new part, to complete and save
    page = client_for(setup.analyst).get(reverse("reports:report", args=[report.pk])).content.decode()
    assert f'name="account-{other.pk}-branch"' in page
    assert 'name="transactions-rate-EUR"' in page
    assert 'name="transactions-transmode-instant"' in page
    report.refresh_from_db()
    content = drafting.loads(report)
    drafting.refresh(content, setup.case, setup.profile, rw.schema_of(setup))
    content = rw.complete(content, rw.schema_of(setup))
    report = reports.save(report, content, revision=report.revision, acting_user=setup.analyst)
    made = rw.generated(report, setup.analyst)
    assert made.status == ReportFile.Status.VALID, made.faults
    root = etree.fromstring(ReportFileContent.objects.get(file=made).xml())
    eur = next(tx for tx in root.iter("transaction") if tx.findtext(".//foreign_currency_code") == "EUR")
    assert eur.findtext("amount_local") == "183625.00"  # 50,000.00 at 3.6725, never the euros as dirhams
    assert eur.findtext("t_from_my_client/from_account/account") == "CH9300762011623852957"
    assert eur.findtext("t_to/to_account/account") == "CH5604835012345678009"


def test_cash_with_no_counterparty_has_the_customer_on_both_sides(setup: rw.Reporting) -> None:
    made = rw.generated(rw.drafted(setup), setup.analyst)
    root = etree.fromstring(ReportFileContent.objects.get(file=made).xml())
    atm = next(tx for tx in root.iter("transaction") if tx.find("t_to_my_client/to_person") is not None)
    assert atm.find("t_from_my_client/from_account") is not None
    assert atm.findtext("t_to_my_client/to_person/last_name") == "Hassan"


def test_a_local_currency_with_three_decimals_is_not_rounded_to_cents() -> None:
    setup = rw.build(local="KWD")
    from reporting.models import FiuProfile

    FiuProfile.objects.filter(pk=setup.profile.pk).update(currency_code_local="KWD")
    setup.profile.refresh_from_db()
    Transaction.objects.filter(alert__case=setup.case).update(currency="KWD", minor_units=3)
    rw.payment(setup.case, setup.party, rw.client_of(setup), account=setup.account, amount="10.00", currency="USD")
    made = rw.generated(rw.drafted(setup), setup.analyst)
    assert made.status == ReportFile.Status.VALID, made.faults
    root = etree.fromstring(ReportFileContent.objects.get(file=made).xml())
    usd = next(tx for tx in root.iter("transaction") if tx.findtext(".//foreign_currency_code") == "USD")
    assert usd.findtext("amount_local") == "36.725"


# --- four-eyes ------------------------------------------------------------------------------------------


def test_a_lead_who_saved_the_draft_does_not_approve_it(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    content = drafting.loads(report)
    reports.save(
        report, {**content, "reason": "Rewritten by the lead"}, revision=report.revision, acting_user=setup.lead
    )
    rw.generated(report, setup.analyst)
    request = reports.request_submission(report, reason="", acting_user=setup.analyst)
    with pytest.raises(approvals.ApprovalRefusedError, match="not allowed"):
        approvals.approve(request.pk, acting_user=setup.lead, seen_hash=request.payload_hash)


def test_a_declined_file_is_not_sent_again_to_another_lead(setup: rw.Reporting) -> None:
    report, _, request = rw.ready(setup)
    approvals.reject(request.pk, acting_user=setup.lead, reason="Thin")
    report.refresh_from_db()
    with pytest.raises(ValidationError, match="only a file the gate passed"):
        reports.request_submission(report, reason="again", acting_user=setup.analyst)


def test_only_the_approved_file_is_read_and_recorded_as_submitted(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    first = rw.generated(report, setup.analyst)
    content = drafting.loads(report)
    report = reports.save(
        report, {**content, "action": "Account closed"}, revision=report.revision, acting_user=setup.analyst
    )
    second = rw.generated(report, setup.analyst)
    request = reports.request_submission(report, reason="", acting_user=setup.analyst)
    approvals.approve(request.pk, acting_user=setup.lead, seen_hash=request.payload_hash)
    report.refresh_from_db()
    assert report.approved_file == second
    bob = client_for(setup.analyst)
    assert bob.get(reverse("reports:download", args=[report.pk, first.pk])).status_code == 404
    assert bob.get(reverse("reports:download", args=[report.pk, second.pk])).status_code == 200
    today = timezone.localdate()
    with pytest.raises(ValidationError, match="before it was approved"):
        reports.mark_submitted(
            report,
            fiu_ref_number="R",
            submitted_on=today - datetime.timedelta(days=3),
            channel="api",
            acting_user=setup.analyst,
        )
    assert report.approved_at is not None
    reports.mark_submitted(
        report, fiu_ref_number="R", submitted_on=report.approved_at.date(), channel="api", acting_user=setup.analyst
    )
    [submitted] = named("REPORT_SUBMITTED")
    assert submitted["after"]["file"] == str(second.pk)
    assert submitted["after"]["sha256"] == second.sha256


def test_a_view_grant_on_the_case_does_not_open_its_report(setup: rw.Reporting) -> None:
    report, made, _ = rw.ready(setup)
    oscar = setup.world.users["other_analyst"]
    assign_perm("cases.view_case", oscar, setup.case)
    assert client_for(oscar).get(reverse("reports:report", args=[report.pk])).status_code == 404
    assert client_for(oscar).get(reverse("reports:download", args=[report.pk, made.pk])).status_code == 404


def test_the_gate_faults_are_encrypted_at_rest() -> None:
    setup = rw.build(name="Łayla Ħassan")
    made = rw.generated(rw.drafted(setup), setup.analyst)
    assert any("Łayla" in fault["message"] for fault in made.faults)
    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed_faults FROM reporting_reportfile WHERE id = %s", [made.pk])
        (raw,) = cursor.fetchone()
    assert "Łayla".encode() not in bytes(raw)


# --- the case and its report --------------------------------------------------------------------------------


def test_a_case_leaves_reporting_only_once_its_report_is_submitted_or_abandoned(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    with pytest.raises(ValidationError, match="submit it or abandon it"):
        workflow.move(setup.case, workflow.Move.WITHDRAW, "no_suspicion", acting_user=setup.analyst)
    with pytest.raises(ValidationError, match="submit it or abandon it"):
        workflow.close(setup.case, "false_positive", "Nothing found", acting_user=setup.analyst)
    with pytest.raises(ValidationError, match="say why"):
        reports.abandon(report, reason=" ", acting_user=setup.analyst)
    reports.abandon(report, reason="Reported with another case", acting_user=setup.analyst)
    [abandoned] = named("REPORT_ABANDONED")
    assert abandoned["reason"] == "Reported with another case"
    workflow.move(setup.case, workflow.Move.WITHDRAW, "reported_elsewhere", acting_user=setup.analyst)
    assert Case.objects.get(pk=setup.case.pk).status == Case.Status.IN_PROGRESS


def test_a_report_waiting_for_approval_is_not_abandoned(setup: rw.Reporting) -> None:
    report, _, _ = rw.ready(setup)
    with pytest.raises(ValidationError, match="only a draft or an approved report"):
        reports.abandon(report, reason="changed my mind", acting_user=setup.analyst)


def test_the_abandon_form_is_on_the_page_and_refuses_without_a_reason(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    bob = client_for(setup.analyst)
    assert "Abandon the report" in bob.get(reverse("reports:report", args=[report.pk])).content.decode()
    assert bob.post(reverse("reports:abandon", args=[report.pk]), {"reason": ""}).status_code == 400
    assert bob.post(reverse("reports:abandon", args=[report.pk]), {"reason": "Duplicate"}).status_code == 302
    assert Report.objects.get(pk=report.pk).status == Report.Status.ABANDONED


# --- saving and deadlines -------------------------------------------------------------------------------------


def test_saving_again_after_a_conflict_is_still_refused(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    stale = report.revision
    content = drafting.loads(report)
    reports.save(report, {**content, "reason": "the lead's"}, revision=stale, acting_user=setup.lead)
    from tests.reporting.test_reports import form_data

    posted = {**form_data(report), "revision": str(stale), "report-reason": "bob's"}
    bob = client_for(setup.analyst)
    first = bob.post(reverse("reports:report", args=[report.pk]), posted)
    assert first.status_code == 409
    assert f'name="revision" value="{stale}"' in first.content.decode()
    assert bob.post(reverse("reports:report", args=[report.pk]), posted).status_code == 409
    report.refresh_from_db()
    assert drafting.loads(report)["reason"] == "the lead's"


def test_a_deadline_moved_later_may_be_escalated_again(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    Report.objects.filter(pk=report.pk).update(due_on=timezone.localdate(), deadline_escalated_at=timezone.now())
    report.refresh_from_db()
    actions.set_rules(
        setup.profile,
        report_due_days=20,
        warn_days=2,
        weekend=[],
        time_zone="Asia/Dubai",
        reporting_user_code="",
        acting_user=setup.world.users["admin"],
    )
    report.refresh_from_db()
    assert report.deadline_escalated_at is None
    assert report.due_on == report.suspicion_on + datetime.timedelta(days=20)  # no weekend: every day counts


def plain(value: Any) -> Any:
    """``value`` with every shared part as an ordinary dictionary (written element by element)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def test_a_shared_part_is_written_as_it_would_be_element_by_element(setup: rw.Reporting) -> None:
    from reporting.goaml.xml import Shape, Shared

    report = rw.drafted(setup)
    schema = rw.schema_of(setup)
    builder = drafting.Builder(report, drafting.loads(report), schema)
    document = builder.document(timezone.now())
    document["transaction"] = list(document["transaction"])
    shared = [
        part
        for tx in document["transaction"]
        for side in tx.values()
        if isinstance(side, dict)
        for part in side.values()
        if isinstance(part, Shared)
    ]
    assert len(shared) >= 4  # the customer's account, in each transaction that names it
    shape = Shape(bytes(schema.xsd))
    assert shape.write(document) == shape.write(plain(document))


def test_an_officer_who_only_approves_reads_and_decides_but_does_not_draft(setup: rw.Reporting) -> None:
    """A money-laundering reporting officer: works the team's cases and approves its reports,
    without drafting them."""
    from accounts.models import Membership, Role, RolePermission
    from accounts.permissions import Perm
    from tests.factories import make_user

    role = Role.objects.create(slug="mlro", name="Money-laundering reporting officer")
    for perm in (Perm.WORK_CASES, Perm.APPROVE_STR):
        RolePermission.objects.create(role=role, permission=perm)
    officer = make_user("olivia", ["mlro"])
    Membership.objects.create(team=setup.world.teams["cards"], user=officer)
    report, made, request = rw.ready(setup)
    olivia = client_for(officer)
    page = olivia.get(reverse("reports:report", args=[report.pk])).content.decode()
    assert "Record the decision" in page
    assert 'name="report-reason"' not in page  # no draft form for whoever does not draft
    assert reverse("reports:list") in olivia.get(reverse("reports:list")).content.decode()
    assert olivia.get(reverse("reports:download", args=[report.pk, made.pk])).status_code == 200
    assert olivia.post(reverse("reports:report", args=[report.pk]), {"report-reason": "x"}).status_code == 403
    decided = olivia.post(
        reverse("reports:decide", args=[report.pk]),
        {"decision": "approve", "seen_hash": request.payload_hash, "reason": "Read"},
    )
    assert decided.status_code == 302
    assert Report.objects.get(pk=report.pk).status == Report.Status.APPROVED


def test_the_maker_withdraws_the_request_and_the_report_is_a_draft_again(setup: rw.Reporting) -> None:
    report, _, request = rw.ready(setup)
    url = reverse("reports:report", args=[report.pk])
    bob = client_for(setup.analyst)
    assert "Withdraw the request" in bob.get(url).content.decode()
    response = bob.post(
        reverse("accounts:approval_withdraw", args=[request.pk]), {"reason": "The action is wrong", "next": url}
    )
    assert response.status_code == 302
    report.refresh_from_db()
    assert report.status == Report.Status.DRAFT
    [declined] = named("REPORT_APPROVAL_DECLINED")
    assert declined["reason"] == "withdrawn"
    with pytest.raises(ValidationError, match="only a file the gate passed"):
        reports.request_submission(report, reason="", acting_user=setup.analyst)  # a new revision: generate again


def test_the_stored_file_is_compressed_and_read_back_in_pieces_as_generated(setup: rw.Reporting) -> None:
    made = rw.generated(rw.drafted(setup), setup.analyst)
    content = ReportFileContent.objects.get(file=made)
    whole = content.xml()
    assert len(bytes(content.data)) < len(whole)  # gzip, then encrypted
    assert b"".join(content.xml_chunks(size=1000)) == whole
    assert len(whole) == made.size


def test_a_channel_may_have_funds_types_of_its_own(setup: rw.Reporting) -> None:
    report = rw.drafted(setup)
    content = drafting.loads(report)
    assert set(content["transactions"]["funds"]) == {"transfer", "online_banking", "atm"}
    content["transactions"]["funds"]["atm"] = {"from": "B", "to": "A"}  # an account debited for cash
    report = reports.save(report, content, revision=report.revision, acting_user=setup.analyst)
    page = client_for(setup.analyst).get(reverse("reports:report", args=[report.pk])).content.decode()
    assert 'name="transactions-funds-atm-to"' in page
    made = rw.generated(report, setup.analyst)
    assert made.status == ReportFile.Status.VALID, made.faults
    root = etree.fromstring(ReportFileContent.objects.get(file=made).xml())
    atm = next(
        tx
        for tx in root.iter("transaction")
        if tx.find("t_to_my_client") is not None and tx.find("t_from_my_client") is not None
    )
    assert atm.findtext("t_from_my_client/from_funds_code") == "B"
    assert atm.findtext("t_to_my_client/to_funds_code") == "A"
    default = content["transactions"]["from_funds_code"]
    transfer = next(tx for tx in root.iter("transaction") if tx.find("t_to") is not None)
    assert transfer.findtext("t_from_my_client/from_funds_code") == default
