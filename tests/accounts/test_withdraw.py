"""A maker withdraws their own request before anyone decides it: the proposal goes back as it was,
as when it is rejected, and the ledger says it was withdrawn and by whom."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts import approvals
from accounts.models import ApprovalRequest
from cases import workflow
from cases.models import Case
from tests.conftest import client_for
from tests.personas import World, build_world
from tests.recorded import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def named(name: str) -> list[dict[str, Any]]:
    return [dict(event) for event in events() if event["name"] == name]


def test_the_maker_withdraws_a_pending_request_and_no_one_else_may(world: World) -> None:
    request = world.approval  # alice asked for frank to become a lead
    with pytest.raises(ValidationError, match="state why"):
        approvals.withdraw(request.pk, acting_user=world.users["admin"], reason=" ")
    with pytest.raises(approvals.ApprovalRefusedError, match="Only the person who asked"):
        approvals.withdraw(request.pk, acting_user=world.users["lead"], reason="not mine")
    approvals.withdraw(request.pk, acting_user=world.users["admin"], reason="Asked for the wrong person")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.WITHDRAWN
    assert request.decided_by is None
    assert request.decision_reason == "Asked for the wrong person"
    [withdrawn] = named("APPROVAL_WITHDRAWN")
    assert withdrawn["actor"]["id"] == world.users["admin"].pk
    with pytest.raises(approvals.ApprovalRefusedError, match="withdrawn already"):
        approvals.withdraw(request.pk, acting_user=world.users["admin"], reason="again")
    with pytest.raises(approvals.ApprovalRefusedError):
        approvals.approve(request.pk, acting_user=world.users["lead"], seen_hash=request.payload_hash)


def test_a_withdrawn_closure_puts_the_case_back(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["team"]
    Case.objects.filter(pk=case.pk).update(status=Case.Status.IN_PROGRESS, assignee=bob)
    request = workflow.close(case, "confirmed_fraud", "Card stolen", acting_user=bob)
    assert request is not None
    page = client_for(bob).get(reverse("cases:case", args=[case.pk])).content.decode()
    assert "Withdraw the request" in page
    response = client_for(bob).post(
        reverse("accounts:approval_withdraw", args=[request.pk]),
        {"reason": "Not confirmed yet", "next": reverse("cases:case", args=[case.pk])},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("cases:case", args=[case.pk])
    assert Case.objects.get(pk=case.pk).status == Case.Status.IN_PROGRESS
    [declined] = named("CASE_CLOSURE_DECLINED")
    assert declined["reason"] == "withdrawn"
    assert declined["actor"]["id"] == bob.pk


def test_a_foreign_next_address_is_not_followed(world: World) -> None:
    response = client_for(world.users["admin"]).post(
        reverse("accounts:approval_withdraw", args=[world.approval.pk]),
        {"reason": "x", "next": "https://elsewhere.example/"},
    )
    assert response["Location"] == reverse("accounts:home")
