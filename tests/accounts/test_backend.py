"""Permissions come from roles alone, resolved on every request (PRODUCT.md, authorization)."""

from __future__ import annotations

from accounts.backends import RoleBackend
from accounts.models import Role, RoleAssignment, User
from accounts.permissions import Perm
from tests.conftest import client_for
from tests.factories import make_user


def test_it_grants_the_union_of_the_roles(db: None) -> None:
    user = make_user(roles=["analyst", "auditor"])
    assert user.get_all_permissions() == {
        Perm.WORK_CASES,
        Perm.DRAFT_STR,
        Perm.VIEW_LEDGER,
        Perm.EXPORT_EVIDENCE,
        Perm.VIEW_ACCESS_REVIEW,
    }
    assert user.has_perms([Perm.WORK_CASES, Perm.VIEW_LEDGER])
    assert not user.has_perm(Perm.MANAGE_USERS)
    assert user.has_module_perms("audit")
    assert not user.has_module_perms("accounts")


def test_it_grants_a_superuser_nothing(db: None) -> None:
    user = make_user(is_superuser=True, is_staff=True)
    assert not user.has_perm(Perm.MANAGE_USERS)
    assert not user.has_perm("accounts.add_user")
    assert not user.has_module_perms("accounts")
    assert user.get_all_permissions() == set()


def test_it_grants_an_inactive_user_nothing(db: None) -> None:
    user = make_user(roles=["admin"], is_active=False)
    assert not user.has_perm(Perm.MANAGE_USERS)
    assert not user.has_module_perms("accounts")


def test_it_ignores_django_model_permissions(db: None) -> None:
    from django.contrib.auth.models import Permission

    user = make_user()
    user.user_permissions.add(Permission.objects.get(codename="add_user"))
    assert not User.objects.get(pk=user.pk).has_perm("accounts.add_user")


def test_it_answers_no_to_object_checks(db: None) -> None:
    user = make_user(roles=["admin"])
    assert RoleBackend().get_all_permissions(user, obj=Role.objects.first()) == set()


def test_it_applies_a_role_change_to_an_open_session_at_once(db: None) -> None:
    user = make_user(roles=["analyst"])
    client = client_for(user)
    assert client.get("/work/").status_code == 200
    RoleAssignment.objects.filter(user=user).delete()
    assert client.get("/work/").status_code == 403
    RoleAssignment.objects.create(user=user, role=Role.objects.get(slug="auditor"))
    assert client.get("/audit/").status_code == 200


def test_it_ships_the_five_role_templates(db: None) -> None:
    shipped = {role.slug: {g.permission for g in role.grants.all()} for role in Role.objects.filter(builtin=True)}
    assert set(shipped) == {"admin", "analyst", "lead", "manager", "auditor"}
    assert all(p in set(Perm) for perms in shipped.values() for p in perms)
    # Segregation of duties: admins neither work nor approve cases; managers and auditors change nothing.
    assert not shipped["admin"] & {Perm.WORK_CASES, Perm.APPROVE_CASE_CLOSURE, Perm.APPROVE_STR}
    assert shipped["lead"] > shipped["analyst"]
    assert Perm.APPROVE_CASE_CLOSURE not in shipped["analyst"]
    assert not shipped["manager"] & {Perm.WORK_CASES, Perm.VIEW_LEDGER}
    assert not shipped["auditor"] & {Perm.WORK_CASES, Perm.MANAGE_USERS}
