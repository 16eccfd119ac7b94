"""Four-eyes approvals: a second authorised person, the exact change, in time, or nothing happens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import approvals
from accounts.approvals import ApprovalRefusedError, approve, expire_overdue, reject, request_change
from accounts.models import ApprovalRequest, User
from tests.factories import make_user
from tests.recorded import events, names

pytestmark = pytest.mark.django_db


def overdue(request: ApprovalRequest) -> None:
    now = timezone.now()
    ApprovalRequest.objects.filter(pk=request.pk).update(
        created_at=now - timedelta(days=2), expires_at=now - timedelta(seconds=1)
    )


def grant_lead(admin: User, target: User) -> ApprovalRequest:
    payload = {"user": target.pk, "role": "lead", "change": "grant"}
    return request_change("role_change", payload, acting_user=admin, reason="covers the fraud desk")


def test_it_carries_out_a_change_another_admin_approves(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    assert not analyst.roles.filter(slug="lead").exists()
    approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    assert analyst.roles.filter(slug="lead").exists()
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("approved", second_admin)
    assert names() == ["APPROVAL_REQUESTED", "ROLE_GRANTED", "APPROVAL_GRANTED"]
    granted = events()[1]
    assert granted["after"] == {"role": "lead", "maker": admin.pk, "approver": second_admin.pk, "approval": request.pk}
    assert granted["actor"] == {"id": second_admin.pk, "name": "grace", "role": "admin"}


def test_it_refuses_the_maker_even_in_another_session(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    same_person = User.objects.get(pk=admin.pk)  # as another session would load them
    with pytest.raises(ApprovalRefusedError, match="cannot approve your own request"):
        approve(request.pk, acting_user=same_person, seen_hash=request.payload_hash)
    assert not analyst.roles.filter(slug="lead").exists()
    refused = events()[-1]
    assert (refused["name"], refused["reason"]) == ("APPROVAL_REFUSED", "own request")


def test_it_gives_a_superuser_nothing(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    root = make_user(username="root")
    root.is_superuser = root.is_staff = True
    root.save()
    with pytest.raises(ApprovalRefusedError, match="not allowed"):
        approve(request.pk, acting_user=root, seen_hash=request.payload_hash)


def test_it_refuses_a_service_identity(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    service = make_user(username="intake-service")
    with pytest.raises(ApprovalRefusedError, match="not allowed"):
        approve(request.pk, acting_user=service, seen_hash=request.payload_hash)


def test_it_refuses_a_request_altered_after_it_was_seen(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    seen = request.payload_hash
    ApprovalRequest.objects.filter(pk=request.pk).update(
        payload={"user": analyst.pk, "role": "admin", "change": "grant"}
    )
    with pytest.raises(ApprovalRefusedError, match="changed after you saw it"):
        approve(request.pk, acting_user=second_admin, seen_hash=seen)
    assert not analyst.roles.filter(slug__in=["admin", "lead"]).exists()


def test_it_refuses_a_hash_other_than_the_one_stored(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    with pytest.raises(ApprovalRefusedError, match="changed after you saw it"):
        approve(request.pk, acting_user=second_admin, seen_hash="0" * 64)


def test_it_refuses_an_expired_request_and_marks_it(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    overdue(request)
    with pytest.raises(ApprovalRefusedError, match="expired"):
        approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    request.refresh_from_db()
    assert request.status == "expired"
    assert names()[-2:] == ["APPROVAL_EXPIRED", "APPROVAL_REFUSED"]


def test_it_refuses_a_second_decision(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    reject(request.pk, acting_user=second_admin, reason="not needed")
    with pytest.raises(ApprovalRefusedError, match="already been decided"):
        approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    assert names()[:2] == ["APPROVAL_REQUESTED", "APPROVAL_REJECTED"]


def test_it_refuses_a_rejection_by_the_maker(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    with pytest.raises(ApprovalRefusedError, match="own request"):
        reject(request.pk, acting_user=admin, reason="changed my mind")


def test_it_expires_overdue_requests(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    overdue(request)
    assert expire_overdue() == 1
    assert ApprovalRequest.objects.get(pk=request.pk).status == "expired"
    assert expire_overdue() == 0


def test_it_revokes_a_privileged_role(admin: User, second_admin: User, lead: User) -> None:
    payload = {"user": lead.pk, "role": "lead", "change": "revoke"}
    request = request_change("role_change", payload, acting_user=admin, reason="left the team")
    approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    assert not lead.roles.filter(slug="lead").exists()
    assert "ROLE_REVOKED" in names()


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("role_change", {"user": 1, "role": "overlord", "change": "grant"}, "unknown role 'overlord'"),
        ("role_change", {"user": 999_999, "role": "lead", "change": "grant"}, "unknown user 999999"),
        ("role_change", {"user": 1, "role": "lead", "change": "promote"}, "unknown role change 'promote'"),
        ("role_change", {"role": "lead"}, "exactly a user, a role and the change"),
        ("make_me_rich", {}, "unknown kind of change 'make_me_rich'"),
    ],
)
def test_it_names_what_it_does_not_know(admin: User, kind: str, payload: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        request_change(kind, payload, acting_user=admin, reason="test")
    assert not ApprovalRequest.objects.exists()


def test_it_wants_a_reason(admin: User, analyst: User) -> None:
    with pytest.raises(ValidationError, match="states its reason"):
        request_change(
            "role_change", {"user": analyst.pk, "role": "lead", "change": "grant"}, acting_user=admin, reason=" "
        )


def test_it_binds_the_hash_to_the_kind_and_payload() -> None:
    payload = {"user": 1, "role": "lead", "change": "grant"}
    assert approvals.payload_hash("role_change", payload) != approvals.payload_hash("other", payload)
    assert approvals.payload_hash("role_change", payload) == approvals.payload_hash("role_change", dict(payload))


def test_it_lets_the_database_refuse_a_maker_deciding(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=request.pk).update(decided_by=admin)


def test_it_expires_in_the_background_task(admin: User, analyst: User) -> None:
    from accounts.tasks import expire_approvals

    overdue(grant_lead(admin, analyst))
    assert expire_approvals() == 1


def test_it_lets_only_a_user_manager_ask_for_a_role_change(analyst: User, roleless: User) -> None:
    with pytest.raises(PermissionDenied, match=r"accounts\.manage_users"):
        request_change(
            "role_change", {"user": roleless.pk, "role": "lead", "change": "grant"}, acting_user=analyst, reason="me"
        )
    assert not ApprovalRequest.objects.exists()


def test_it_refuses_a_request_whose_maker_was_deactivated(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    User.objects.filter(pk=admin.pk).update(is_active=False)
    with pytest.raises(ApprovalRefusedError, match="may no longer ask"):
        approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    assert not analyst.roles.filter(slug="lead").exists()
    assert names()[-1] == "APPROVAL_REFUSED"


def test_it_marks_an_expired_request_expired_when_rejected(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    overdue(request)
    with pytest.raises(ApprovalRefusedError, match="expired"):
        reject(request.pk, acting_user=second_admin, reason="too late anyway")
    request.refresh_from_db()
    assert request.status == "expired"
    assert names()[-1] == "APPROVAL_EXPIRED"


def test_it_wants_a_reason_to_reject(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    with pytest.raises(ValidationError, match="why"):
        reject(request.pk, acting_user=second_admin, reason="")
    request.refresh_from_db()
    assert request.status == "pending"
