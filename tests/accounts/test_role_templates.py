"""Role templates change only with a second administrator's approval, within the catalog and its duties."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from accounts.approvals import ApprovalRefusedError, approve, request_change
from accounts.models import ApprovalRequest, Role, RoleAssignment, RolePermission, User
from accounts.permissions import Perm
from tests.factories import make_user
from tests.recorded import events, names

pytestmark = pytest.mark.django_db


def template(
    change: str,
    slug: str,
    permissions: list[str],
    *,
    name: str | None = None,
    description: str = "",
    mfa_required: bool = True,
) -> dict[str, object]:
    return {
        "change": change,
        "slug": slug,
        "name": name or slug.replace("-", " ").capitalize(),
        "description": description,
        "permissions": permissions,
        "mfa_required": mfa_required,
        "passkey_sign_in": False,
    }


def ask(maker: User, payload: dict[str, object]) -> ApprovalRequest:
    return request_change("role_template", payload, acting_user=maker, reason="the reviewers need it")


def custom(slug: str, permissions: list[str], *holders: User) -> Role:
    """A custom template as an earlier approval would have left it."""
    role = Role.objects.create(slug=slug, name=slug.replace("-", " ").capitalize())
    RolePermission.objects.bulk_create([RolePermission(role=role, permission=p) for p in permissions])
    for holder in holders:
        RoleAssignment.objects.create(user=holder, role=role)
    return role


def fresh(user: User) -> User:
    """The user as their next request loads them (the permission cache lives on the object)."""
    return User.objects.get(pk=user.pk)


def test_it_creates_a_template_only_once_a_second_admin_approves(admin: User, second_admin: User) -> None:
    permissions = [Perm.VIEW_LEDGER.value, Perm.EXPORT_EVIDENCE.value]
    request = ask(admin, template("create", "evidence-clerk", permissions, description="Exports packs"))
    assert not Role.objects.filter(slug="evidence-clerk").exists()
    assert not RolePermission.objects.filter(role__slug="evidence-clerk").exists()

    approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)

    role = Role.objects.get(slug="evidence-clerk")
    assert (role.name, role.description, role.builtin) == ("Evidence clerk", "Exports packs", False)
    assert role.permissions() == sorted(permissions)
    assert names() == ["APPROVAL_REQUESTED", "ROLE_TEMPLATE_CREATED", "APPROVAL_GRANTED"]
    created = events()[1]
    assert created["object"] == {"type": "role", "id": "evidence-clerk"}
    assert created["reason"] == "four-eyes"
    assert created["before"] is None
    assert created["after"] == {
        "name": "Evidence clerk",
        "permissions": sorted(permissions),
        "mfa_required": True,
        "passkey_sign_in": False,
        "maker": admin.pk,
        "approver": second_admin.pk,
        "approval": request.pk,
    }
    assert created["actor"] == {"id": second_admin.pk, "name": "grace", "role": "admin"}


def test_it_changes_a_custom_template_and_its_holders_next_request(
    admin: User, second_admin: User, roleless: User
) -> None:
    custom("reviewer", [Perm.VIEW_DASHBOARD.value, Perm.VIEW_ACCESS_REVIEW.value], roleless)
    this_request = fresh(roleless)
    assert this_request.has_perm(Perm.VIEW_DASHBOARD)
    assert not this_request.has_perm(Perm.VIEW_LEDGER)

    after = [Perm.VIEW_ACCESS_REVIEW.value, Perm.VIEW_LEDGER.value]
    request = ask(admin, template("edit", "reviewer", after, name="Access reviewer", description="Reads reviews"))
    approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)

    role = Role.objects.get(slug="reviewer")
    assert (role.name, role.description) == ("Access reviewer", "Reads reviews")
    assert role.permissions() == sorted(after)
    next_request = fresh(roleless)
    assert next_request.has_perm(Perm.VIEW_LEDGER)
    assert next_request.has_perm(Perm.VIEW_ACCESS_REVIEW)
    assert not next_request.has_perm(Perm.VIEW_DASHBOARD)
    # The request already being served keeps the set it read.
    assert this_request.has_perm(Perm.VIEW_DASHBOARD)

    changed = events()[1]
    assert (changed["name"], changed["reason"]) == ("ROLE_TEMPLATE_CHANGED", "four-eyes")
    assert changed["object"] == {"type": "role", "id": "reviewer"}
    assert changed["before"] == {"permissions": sorted([Perm.VIEW_DASHBOARD.value, Perm.VIEW_ACCESS_REVIEW.value])}
    assert changed["after"] == {
        "name": "Access reviewer",
        "permissions": sorted(after),
        "mfa_required": True,
        "passkey_sign_in": False,
        "maker": admin.pk,
        "approver": second_admin.pk,
        "approval": request.pk,
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            template("create", "root", ["auth.add_user", Perm.VIEW_LEDGER.value, "cases.delete_all"]),
            "unknown permission 'auth.add_user', 'cases.delete_all': not in the catalog",
        ),
        (
            template("create", "super-analyst", [Perm.MANAGE_USERS.value, Perm.WORK_CASES.value]),
            "cannot mix duties: segregation of duties: accounts.manage_users and cases.work_cases",
        ),
        (
            template("create", "closer", [Perm.MANAGE_SETTINGS.value, Perm.APPROVE_CASE_CLOSURE.value]),
            "cannot mix duties",
        ),
        (template("edit", "analyst", [Perm.WORK_CASES.value]), "'analyst' ships with Caspix and is not edited"),
        (template("edit", "ghost", [Perm.WORK_CASES.value]), "unknown role 'ghost'"),
        (template("create", "auditor", [Perm.VIEW_LEDGER.value], name="Other"), "exists already"),
        (template("create", "other", [Perm.VIEW_LEDGER.value], name="AUDITOR"), "exists already"),
        (template("create", "empty", []), "at least one permission"),
        (template("create", "twice", [Perm.VIEW_LEDGER.value] * 2), "listed twice"),
        (template("create", "Not_A_Slug", [Perm.VIEW_LEDGER.value]), "is not a template slug"),
        (template("rename", "other", [Perm.VIEW_LEDGER.value]), "unknown template change 'rename'"),
        ({"change": "create", "slug": "other"}, "names the change"),
    ],
)
def test_it_refuses_a_template_it_cannot_make(admin: User, payload: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        ask(admin, payload)
    assert not ApprovalRequest.objects.exists()
    assert events() == []


def test_it_refuses_an_edit_that_would_break_a_holders_duties(admin: User, analyst: User) -> None:
    custom("dashboards", [Perm.VIEW_DASHBOARD.value], analyst)
    payload = template("edit", "dashboards", [Perm.VIEW_DASHBOARD.value, Perm.MANAGE_TEAMS.value])
    with pytest.raises(ValidationError, match="bob holds 'dashboards', and would then break segregation of duties"):
        ask(admin, payload)
    assert not ApprovalRequest.objects.exists()


def test_it_refuses_at_approval_a_request_the_world_has_overtaken(admin: User, second_admin: User) -> None:
    first = ask(admin, template("create", "fraud-desk", [Perm.VIEW_DASHBOARD.value]))
    second = ask(admin, template("create", "fraud-desk", [Perm.VIEW_LEDGER.value], name="Fraud desk bis"))
    approve(first.pk, acting_user=second_admin, seen_hash=first.payload_hash)

    with pytest.raises(
        ApprovalRefusedError, match=r"can no longer be made as requested: .*'fraud-desk'.*exists already"
    ):
        approve(second.pk, acting_user=second_admin, seen_hash=second.payload_hash)

    role = Role.objects.get(slug="fraud-desk")
    assert (role.name, role.permissions()) == ("Fraud desk", [Perm.VIEW_DASHBOARD.value])
    second.refresh_from_db()
    assert (second.status, second.decided_by) == ("pending", None)
    refused = events()[-1]
    assert (refused["name"], refused["reason"]) == ("APPROVAL_REFUSED", "no longer valid")
    assert refused["object"] == {"type": "approval", "id": str(second.pk)}
    assert "exists already" in str(refused["after"])
    assert names().count("ROLE_TEMPLATE_CREATED") == 1


def test_it_refuses_an_approval_by_the_person_the_change_is_about(admin: User, second_admin: User) -> None:
    payload = {"user": second_admin.pk, "role": "admin", "change": "revoke"}
    request = request_change("role_change", payload, acting_user=admin, reason="moves to the fraud desk")
    with pytest.raises(ApprovalRefusedError, match="cannot approve a change to your own access"):
        approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    assert fresh(second_admin).roles.filter(slug="admin").exists()
    refused = events()[-1]
    assert (refused["name"], refused["reason"]) == ("APPROVAL_REFUSED", "about you")

    third_admin = make_user("heidi", roles=["admin"])
    approve(request.pk, acting_user=third_admin, seen_hash=request.payload_hash)
    assert not fresh(second_admin).roles.filter(slug="admin").exists()


def test_it_lets_the_database_refuse_a_permission_outside_the_catalog() -> None:
    analyst = Role.objects.get(slug="analyst")
    with pytest.raises(IntegrityError, match="role_permission_in_catalog"), transaction.atomic():
        RolePermission.objects.create(role=analyst, permission="auth.add_user")
    assert analyst.permissions() == sorted([Perm.WORK_CASES.value, Perm.DRAFT_STR.value])


def test_it_keeps_a_holder_from_approving_an_edit_of_their_own_template(admin: User, second_admin: User) -> None:
    custom("auditors-plus", [Perm.VIEW_LEDGER], second_admin)
    request = ask(admin, template("edit", "auditors-plus", [Perm.VIEW_LEDGER, Perm.EXPORT_EVIDENCE]))
    with pytest.raises(ApprovalRefusedError, match="your own access"):
        approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    assert Role.objects.get(slug="auditors-plus").permissions() == [Perm.VIEW_LEDGER]
    assert names()[-1] == "APPROVAL_REFUSED"


def test_it_lets_only_a_role_manager_ask_for_a_template(analyst: User) -> None:
    with pytest.raises(PermissionDenied, match=r"accounts\.manage_roles"):
        ask(analyst, template("create", "shadow-admin", [Perm.MANAGE_USERS]))
    assert not ApprovalRequest.objects.exists()


def test_it_sets_whether_the_holders_need_a_second_factor(admin: User, second_admin: User) -> None:
    request = ask(admin, template("create", "readers", [Perm.VIEW_DASHBOARD], mfa_required=False))
    approve(request.pk, acting_user=second_admin, seen_hash=request.payload_hash)
    assert Role.objects.get(slug="readers").mfa_required is False
    assert events()[-2]["after"]["mfa_required"] is False  # type: ignore[index]


def test_it_wants_a_second_factor_of_a_privileged_template(admin: User) -> None:
    with pytest.raises(ValidationError, match="requires a second factor"):
        ask(admin, template("create", "approvers", [Perm.APPROVE_STR], mfa_required=False))
