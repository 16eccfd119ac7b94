"""The workflow of a case: moves with reason codes, closure (four-eyes where it applies), reopening."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings

from accounts import approvals
from accounts.approvals import ApprovalRefusedError
from accounts.models import ApprovalRequest, User
from audit.ledger import integrate
from cases import workflow
from cases.models import Alert, ApiClient, Case, CaseApproval, Note, OutboxEvent, Party, Transaction
from tests.conftest import client_for
from tests.personas import World, build_world
from tests.recorded import events, names

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.fixture
def bob(world: World) -> User:
    return world.users["analyst"]


@pytest.fixture
def charlie(world: World) -> User:
    return world.users["lead"]


def in_progress(world: World, who: str = "analyst") -> Case:
    """The card team's case, taken by ``who``."""
    case = world.cases["analyst"]["team"]
    Case.objects.filter(pk=case.pk).update(status=Case.Status.IN_PROGRESS, assignee=world.users[who])
    case.refresh_from_db()
    return case


def with_transactions(case: Case, *amounts: tuple[str, str]) -> None:
    """Give ``case`` an alert naming one transaction per (amount, currency)."""
    client, _ = ApiClient.objects.get_or_create(name="Card monitoring", source="tms", scopes=["alerts:write"])
    party = Party()
    party.customer_id = f"CUST-{case.pk}-{Party.objects.count()}"
    party.save()
    alert = Alert(
        client=client,
        external_id=f"A-{case.pk}-{Alert.objects.count()}",
        scenario="card-testing",
        occurred_at=timezone.now(),
        party=party,
        case=case,
    )
    alert.payload = "{}"
    alert.save()
    for amount, currency in amounts:
        Transaction.objects.create(
            alert=alert,
            occurred_at=timezone.now(),
            amount=Decimal(amount),
            currency=currency,
            minor_units=2,
            direction="debit",
            channel="card_not_present",
        )


def field(event: dict[str, object], part: str, key: str) -> object:
    """One field of an event's part (its actor, its after state)."""
    value = event[part]
    assert isinstance(value, dict)
    return value[key]


def since(mark: int) -> list[dict[str, object]]:
    return events()[mark:]


# --- moves ---------------------------------------------------------------------------------------


def test_it_escalates_returns_and_sends_to_reporting_with_a_reason_each(world: World, bob: User) -> None:
    case = in_progress(world)
    mark = len(events())
    workflow.move(case, "escalate", "specialist", acting_user=bob)
    workflow.move(case, "return", "answered", acting_user=bob)
    workflow.move(case, "report", "suspicion", acting_user=bob)
    workflow.move(case, "withdraw", "no_suspicion", acting_user=bob)
    recorded = since(mark)
    assert [(e["name"], e["reason"], e["before"], e["after"]) for e in recorded] == [
        (
            "CASE_STATUS_CHANGED",
            "specialist",
            {"status": "in_progress"},
            {"status": "escalated", "move": "escalate", "note": None},
        ),
        (
            "CASE_STATUS_CHANGED",
            "answered",
            {"status": "escalated"},
            {"status": "in_progress", "move": "return", "note": None},
        ),
        (
            "CASE_STATUS_CHANGED",
            "suspicion",
            {"status": "in_progress"},
            {"status": "str", "move": "report", "note": None},
        ),
        (
            "CASE_STATUS_CHANGED",
            "no_suspicion",
            {"status": "str"},
            {"status": "in_progress", "move": "withdraw", "note": None},
        ),
    ]
    assert all(e["object"] == {"type": "case", "id": str(case.pk)} for e in recorded)
    changes = [(e.data["from"], e.data["to"]) for e in OutboxEvent.objects.filter(event_type="case.status-changed")]
    assert changes == [
        ("in_progress", "escalated"),
        ("escalated", "in_progress"),
        ("in_progress", "str"),
        ("str", "in_progress"),
    ]


def test_it_refuses_a_move_the_workflow_does_not_allow_from_where_the_case_is(world: World, bob: User) -> None:
    case = in_progress(world)
    with pytest.raises(ValidationError, match="cannot be moved"):
        workflow.move(case, "return", "answered", acting_user=bob)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.NEW)
    with pytest.raises(ValidationError, match="is new"):
        workflow.move(case, "escalate", "specialist", acting_user=bob)
    assert Case.objects.get(pk=case.pk).status == Case.Status.NEW
    assert "CASE_STATUS_CHANGED" not in names()


def test_it_requires_a_known_reason_and_a_note_for_other(world: World, bob: User) -> None:
    case = in_progress(world)
    with pytest.raises(ValidationError, match="unknown reason"):
        workflow.move(case, "escalate", "bored", acting_user=bob)
    with pytest.raises(ValidationError, match="explain the reason in the note"):
        workflow.move(case, "escalate", "other", note="  ", acting_user=bob)
    assert Case.objects.get(pk=case.pk).status == Case.Status.IN_PROGRESS
    workflow.move(case, "escalate", "other", note="The customer's lawyer called.", acting_user=bob)
    note = Note.objects.get(case=case)
    assert str(note.body) == "The customer's lawyer called."
    moved = events()[-1]
    assert moved["name"] == "CASE_STATUS_CHANGED"
    assert moved["after"] == {"status": "escalated", "move": "escalate", "note": str(note.pk)}
    assert "lawyer" not in str(events())  # the note's text stays out of the ledger


def test_it_lets_only_those_who_work_the_case_move_it(world: World) -> None:
    case = in_progress(world)
    with pytest.raises(PermissionDenied):
        workflow.move(case, "escalate", "specialist", acting_user=world.users["other_analyst"])
    with pytest.raises(PermissionDenied):
        workflow.move(case, "escalate", "specialist", acting_user=world.users["manager"])
    assert Case.objects.get(pk=case.pk).status == Case.Status.IN_PROGRESS


# --- closure -------------------------------------------------------------------------------------


def test_it_closes_a_false_positive_at_once(world: World, bob: User) -> None:
    case = in_progress(world)
    with_transactions(case, ("120.00", "EUR"))
    assert workflow.close(case, "false_positive", "Customer confirmed the purchase.", acting_user=bob) is None
    case.refresh_from_db()
    assert (case.status, case.closure_reason) == (Case.Status.CLOSED, "false_positive")
    assert case.closed_at is not None
    assert names()[-2:] == ["NOTE_ADDED", "CASE_CLOSED"]
    closed = events()[-1]
    assert closed["reason"] == "false_positive"
    assert closed["before"] == {"status": "in_progress"}
    assert closed["after"] == {"status": "closed", "note": str(Note.objects.get(case=case).pk)}
    assert not ApprovalRequest.objects.filter(kind=workflow.CLOSURE).exists()


def test_it_requires_a_closing_note_and_a_known_reason(world: World, bob: User) -> None:
    case = in_progress(world)
    with pytest.raises(ValidationError, match="note"):
        workflow.close(case, "false_positive", " ", acting_user=bob)
    with pytest.raises(ValidationError, match="unknown closure reason"):
        workflow.close(case, "tired", "a note", acting_user=bob)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.NEW)
    with pytest.raises(ValidationError, match="cannot be closed now"):
        workflow.close(case, "false_positive", "a note", acting_user=bob)
    assert not Note.objects.exists()


@pytest.mark.parametrize(
    ("reason", "amounts", "grounds"),
    [
        ("confirmed_fraud", [("10.00", "EUR")], ["closed as confirmed fraud"]),
        (
            "false_positive",
            [("6000.00", "EUR"), ("4000.00", "EUR")],
            ["EUR 10,000.00 at stake, at or above EUR 10,000.00"],
        ),
        ("false_positive", [("50.00", "SEK")], ["amounts in SEK, which has no threshold"]),
    ],
)
def test_it_sends_closures_that_need_four_eyes_for_approval(
    world: World, bob: User, reason: str, amounts: list[tuple[str, str]], grounds: list[str]
) -> None:
    case = in_progress(world)
    with_transactions(case, *amounts)
    assert workflow.approval_grounds(case, reason) == grounds
    request = workflow.close(case, reason, "Grounds.", acting_user=bob)
    assert request is not None
    case.refresh_from_db()
    assert case.status == Case.Status.PENDING_APPROVAL
    assert case.closure_reason == ""
    assert CaseApproval.objects.get(case=case).request == request
    note = Note.objects.get(case=case)
    assert request.payload == {"case": case.pk, "reason": reason, "note": str(note.pk), "from": "in_progress"}
    assert names()[-3:] == ["NOTE_ADDED", "APPROVAL_REQUESTED", "CASE_CLOSURE_PROPOSED"]
    assert events()[-1]["after"] == {
        "status": "pending_approval",
        "approval": request.pk,
        "note": str(note.pk),
        "grounds": grounds,
    }


def test_the_threshold_is_configured_by_currency(world: World, bob: User, settings: Settings) -> None:
    settings.CASES = {**settings.CASES, "CLOSURE_APPROVAL_AT": {"EUR": Decimal("100"), "SEK": Decimal("1000")}}
    case = in_progress(world)
    with_transactions(case, ("99.99", "EUR"), ("999.99", "SEK"))
    assert workflow.approval_grounds(case, "false_positive") == []
    with_transactions(case, ("0.01", "EUR"))
    assert workflow.approval_grounds(case, "false_positive") == ["EUR 100.00 at stake, at or above EUR 100.00"]


def propose(world: World) -> tuple[Case, ApprovalRequest]:
    case = in_progress(world)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.ESCALATED)
    request = workflow.close(
        case, "confirmed_fraud", "Card used in two countries at once.", acting_user=world.users["analyst"]
    )
    assert request is not None
    return case, request


def test_a_lead_of_the_team_approves_a_proposed_closure(world: World, charlie: User) -> None:
    case, request = propose(world)
    mark = len(events())
    approvals.approve(request.pk, acting_user=charlie, seen_hash=request.payload_hash)
    case.refresh_from_db()
    assert (case.status, case.closure_reason) == (Case.Status.CLOSED, "confirmed_fraud")
    recorded = since(mark)
    assert [e["name"] for e in recorded] == ["CASE_CLOSED", "APPROVAL_GRANTED"]
    assert field(recorded[0], "actor", "id") == charlie.pk
    assert recorded[0]["after"] == {
        "status": "closed",
        "note": request.payload["note"],
        "maker": world.users["analyst"].pk,
        "approver": charlie.pk,
        "approval": request.pk,
    }
    changes = [(e.data["from"], e.data["to"]) for e in OutboxEvent.objects.filter(event_type="case.status-changed")]
    assert changes[-2:] == [("escalated", "pending_approval"), ("pending_approval", "closed")]


def test_no_one_approves_their_own_proposal(world: World) -> None:
    charlie = world.users["lead"]
    case = in_progress(world, "lead")
    request = workflow.close(case, "confirmed_fraud", "Seen it myself.", acting_user=charlie)
    assert request is not None
    with pytest.raises(ApprovalRefusedError, match="your own request"):
        approvals.approve(request.pk, acting_user=charlie, seen_hash=request.payload_hash)
    assert Case.objects.get(pk=case.pk).status == Case.Status.PENDING_APPROVAL
    assert names()[-1] == "APPROVAL_REFUSED"


@pytest.mark.parametrize("persona", ["analyst", "other_analyst", "admin"])
def test_only_a_lead_who_works_the_case_approves(world: World, persona: str) -> None:
    """bob lacks the approver's permission; oscar and alice lack it too, and would not reach the
    case; a lead of another team holds the permission but not the case."""
    case, request = propose(world)
    with pytest.raises(ApprovalRefusedError):
        approvals.approve(request.pk, acting_user=world.users[persona], seen_hash=request.payload_hash)
    assert Case.objects.get(pk=case.pk).status == Case.Status.PENDING_APPROVAL


def test_a_lead_of_another_team_may_not_approve(world: World) -> None:
    from accounts.models import Membership

    case, request = propose(world)
    charlie = world.users["lead"]
    Membership.objects.filter(user=charlie).update(team=world.teams["aml"])
    with pytest.raises(ApprovalRefusedError, match="not allowed"):
        approvals.approve(request.pk, acting_user=charlie, seen_hash=request.payload_hash)
    assert Case.objects.get(pk=case.pk).status == Case.Status.PENDING_APPROVAL


def test_a_rejected_closure_puts_the_case_back_where_it_was(world: World, charlie: User) -> None:
    case, request = propose(world)
    approvals.reject(request.pk, acting_user=charlie, reason="Call the customer first.")
    case.refresh_from_db()
    assert (case.status, case.closure_reason) == (Case.Status.ESCALATED, "")
    declined = events()[-1]
    assert (declined["name"], declined["reason"]) == ("CASE_CLOSURE_DECLINED", "rejected")
    assert declined["after"] == {"status": "escalated", "approval": request.pk}
    assert names()[-2] == "APPROVAL_REJECTED"


def test_an_expired_proposal_puts_the_case_back_too(world: World) -> None:
    case, request = propose(world)
    ApprovalRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=10), expires_at=timezone.now() - datetime.timedelta(days=1)
    )
    assert approvals.expire_overdue() == 1
    case.refresh_from_db()
    assert case.status == Case.Status.ESCALATED
    declined = events()[-1]
    assert (declined["name"], declined["reason"], field(declined, "actor", "role")) == (
        "CASE_CLOSURE_DECLINED",
        "expired",
        "system",
    )


def test_a_case_pending_approval_does_not_move(world: World, bob: User) -> None:
    case, _ = propose(world)
    with pytest.raises(ValidationError):
        workflow.move(case, "return", "answered", acting_user=bob)
    with pytest.raises(ValidationError, match="cannot be closed now"):
        workflow.close(case, "false_positive", "again", acting_user=bob)


# --- reopening -----------------------------------------------------------------------------------


def closed(world: World) -> Case:
    case = in_progress(world)
    workflow.close(case, "false_positive", "Nothing in it.", acting_user=world.users["analyst"])
    case.refresh_from_db()
    return case


def test_a_reopening_waits_for_approval_then_restarts_the_case(world: World, bob: User, charlie: User) -> None:
    case = closed(world)
    request = workflow.request_reopening(case, "new_information", "The customer disputes it now.", acting_user=bob)
    case.refresh_from_db()
    assert case.status == Case.Status.CLOSED  # until approved
    assert names()[-1] == "CASE_REOPEN_REQUESTED"
    with pytest.raises(ValidationError, match="waiting for approval already"):
        workflow.request_reopening(case, "closed_in_error", "Again.", acting_user=bob)
    approvals.approve(request.pk, acting_user=charlie, seen_hash=request.payload_hash)
    case.refresh_from_db()
    assert (case.status, case.closure_reason, case.closed_at) == (Case.Status.IN_PROGRESS, "", None)
    assert case.sla_due_at is not None
    assert case.sla_due_at > timezone.now()
    reopened = next(e for e in events() if e["name"] == "CASE_REOPENED")
    assert reopened["before"] == {"status": "closed", "closure_reason": "false_positive"}
    assert field(reopened, "after", "approver") == charlie.pk


def test_a_rejected_reopening_leaves_the_case_closed(world: World, bob: User, charlie: User) -> None:
    case = closed(world)
    request = workflow.request_reopening(case, "closed_in_error", "Wrong case closed.", acting_user=bob)
    approvals.reject(request.pk, acting_user=charlie, reason="It was the right one.")
    case.refresh_from_db()
    assert case.status == Case.Status.CLOSED
    assert (events()[-1]["name"], events()[-1]["reason"]) == ("CASE_REOPEN_DECLINED", "rejected")
    # and it may be asked again
    workflow.request_reopening(case, "new_information", "A chargeback arrived.", acting_user=bob)


def test_only_a_closed_case_is_reopened(world: World, bob: User) -> None:
    case = in_progress(world)
    with pytest.raises(ValidationError, match="not closed"):
        workflow.request_reopening(case, "new_information", "why", acting_user=bob)
    with pytest.raises(ValidationError, match="note"):
        workflow.request_reopening(closed(world), "new_information", "", acting_user=bob)


# --- the pages -----------------------------------------------------------------------------------


def test_the_case_page_offers_the_moves_of_the_cases_status(world: World, bob: User) -> None:
    case = in_progress(world)
    html = client_for(bob).get(reverse("cases:case", args=[case.pk])).content.decode()
    assert "Escalate" in html
    assert "Prepare a suspicious transaction report" in html
    assert "Return from escalation" not in html
    assert "Close the case" in html
    assert "Reopen the case" not in html


def test_a_move_from_the_page_redirects_and_a_bad_one_answers_400(world: World, bob: User) -> None:
    case = in_progress(world)
    client = client_for(bob)
    url = reverse("cases:case_move", args=[case.pk])
    refused = client.post(url, {"move": "escalate", "escalate-move": "escalate", "escalate-reason": "other"})
    assert refused.status_code == 400
    assert "Explain the reason in the note." in refused.content.decode()
    assert client.post(url, {"move": "fly"}).status_code == 400
    done = client.post(url, {"move": "escalate", "escalate-move": "escalate", "escalate-reason": "high_risk"})
    assert done.status_code == 302
    assert Case.objects.get(pk=case.pk).status == Case.Status.ESCALATED


def test_the_four_eyes_walk_through_the_pages(world: World, bob: User, charlie: User) -> None:
    case = in_progress(world)
    analyst = client_for(bob)
    response = analyst.post(
        reverse("cases:case_close", args=[case.pk]), {"reason": "confirmed_fraud", "note": "Two countries at once."}
    )
    assert response.status_code == 302
    request = ApprovalRequest.objects.get(kind=workflow.CLOSURE)
    page = analyst.get(reverse("cases:case", args=[case.pk])).content.decode()
    assert f"waits for another authorised person's approval (request {request.pk})" in page

    lead = client_for(charlie)
    listing = lead.get(reverse("cases:approvals")).content.decode()
    assert reverse("cases:approval", args=[request.pk]) in listing
    detail = lead.get(reverse("cases:approval", args=[request.pk])).content.decode()
    assert "Two countries at once." in detail
    assert "Confirmed fraud" in detail
    decided = lead.post(
        reverse("cases:approval", args=[request.pk]), {"decision": "approve", "seen_hash": request.payload_hash}
    )
    assert decided.status_code == 302
    assert Case.objects.get(pk=case.pk).status == Case.Status.CLOSED

    integrate()  # the test's transaction never commits: sequence the events by hand
    timeline = analyst.get(reverse("cases:case", args=[case.pk])).context["timeline"]
    assert [entry.what for entry in timeline][:3] == ["Closed", "Closure proposed", "Note added"]
    assert timeline[0].actor == charlie.get_full_name() or timeline[0].actor == charlie.username


def test_the_maker_cannot_decide_from_the_page(world: World, bob: User, charlie: User) -> None:
    case = in_progress(world, "lead")
    request = workflow.close(case, "confirmed_fraud", "Mine.", acting_user=charlie)
    assert request is not None
    lead = client_for(charlie)
    assert (
        "another authorised person must decide it"
        in lead.get(reverse("cases:approval", args=[request.pk])).content.decode()
    )
    refused = lead.post(
        reverse("cases:approval", args=[request.pk]), {"decision": "approve", "seen_hash": request.payload_hash}
    )
    assert refused.status_code == 409
    assert Case.objects.get(pk=case.pk).status == Case.Status.PENDING_APPROVAL


def test_another_teams_lead_does_not_see_the_request(world: World) -> None:
    from accounts.models import Membership

    _, request = propose(world)
    charlie = world.users["lead"]
    Membership.objects.filter(user=charlie).update(team=world.teams["aml"])
    lead = client_for(charlie)
    assert reverse("cases:approval", args=[request.pk]) not in lead.get(reverse("cases:approvals")).content.decode()
    assert lead.get(reverse("cases:approval", args=[request.pk])).status_code == 404


# --- the case page's cost ------------------------------------------------------------------------


def case_page_queries(client: Client, case: Case) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(reverse("cases:case", args=[case.pk]))  # data keys loaded, session refreshed
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("cases:case", args=[case.pk]))
    assert response.status_code == 200
    return len(queries)


def fill(case: Case, bob: User, rows: int) -> None:
    from cases import casework

    for n in range(rows):
        with_transactions(case, ("10.00", "EUR"), ("20.00", "GBP"))
        casework.add_note(case, f"note {n}", acting_user=bob)
        casework.add_evidence(case, f"extract-{n}.txt", f"line {n}\n".encode(), acting_user=bob)
        workflow.move(case, "escalate", "specialist", acting_user=bob)
        workflow.move(case, "return", "answered", acting_user=bob)
    integrate()


def test_the_case_page_costs_ten_queries_however_much_the_case_holds(world: World, bob: User) -> None:
    case = in_progress(world)
    client = client_for(bob)
    fill(case, bob, 1)
    few = case_page_queries(client, case)
    fill(case, bob, 8)
    many = case_page_queries(client, case)
    assert few == many <= 10


def test_a_grant_does_not_make_a_lead_of_another_team_the_approver(world: World) -> None:
    """The maker may open the case to anyone who works cases; that never makes them its
    four-eyes approver: only a lead of the team that owns the queue decides."""
    from accounts.models import Membership
    from cases.actions import grant_case

    case, request = propose(world)
    charlie = world.users["lead"]
    Membership.objects.filter(user=charlie).update(team=world.teams["aml"])
    grant_case(case, charlie, "work", acting_user=world.users["analyst"], reason="a second opinion")
    with pytest.raises(ApprovalRefusedError, match="not allowed"):
        approvals.approve(request.pk, acting_user=charlie, seen_hash=request.payload_hash)
    lead = client_for(charlie)
    assert reverse("cases:approval", args=[request.pk]) not in lead.get(reverse("cases:approvals")).content.decode()
    assert Case.objects.get(pk=case.pk).status == Case.Status.PENDING_APPROVAL


def test_a_move_refused_because_the_case_moved_meanwhile_says_so(world: World, bob: User) -> None:
    case = in_progress(world)
    client = client_for(bob)
    workflow.move(case, "escalate", "specialist", acting_user=world.users["lead"])
    refused = client.post(
        reverse("cases:case_move", args=[case.pk]),
        {"move": "escalate", "escalate-move": "escalate", "escalate-reason": "high_risk"},
    )
    assert refused.status_code == 400
    assert "it cannot be moved to escalated from there" in refused.content.decode()


def test_the_case_page_lists_the_subjects_accounts_and_the_counterparties(world: World, bob: User) -> None:
    from cases.models import Account

    case = in_progress(world)
    with_transactions(case, ("10.00", "EUR"), ("20.00", "EUR"))
    party = Party.objects.get()
    account = Account(party=party, currency="EUR")
    account.number = "GB82WEST12345698765432"
    account.save()
    for tx in Transaction.objects.filter(alert__case=case):
        tx.account = account
        tx.counterparty_name, tx.counterparty_account = "Shop & Co", "DE89370400440532013000"
        tx.save()
    response = client_for(bob).get(reverse("cases:case", args=[case.pk]))
    assert [(e["account"].pk, e["count"]) for e in response.context["accounts"]] == [(account.pk, 2)]
    assert [(c["name"], c["count"]) for c in response.context["counterparties"]] == [("Shop & Co", 2)]
    html = response.content.decode()
    assert "•••• 5432" in html
    assert "Shop &amp; Co" in html
    assert "GB82WEST12345698765432" not in html  # masked
