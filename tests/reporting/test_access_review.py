"""Access-review data: roles, teams, grants, activity and every role change with its approver."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from accounts import actions
from accounts.approvals import approve, request_change
from accounts.models import Role, User
from audit.ledger import integrate
from reporting.access_review import Grant, UserAccess, access_review
from tests.factories import make_user
from tests.personas import build_world

pytestmark = pytest.mark.django_db


def reviewer() -> User:
    """An auditor: auditors read access reviews."""
    return make_user("erin", roles=["auditor"])


def review_of(username: str) -> UserAccess:
    return next(row for row in access_review(reviewer()) if row.username == username)


def test_it_lists_roles_permissions_teams_and_grants() -> None:
    world = build_world()
    oscar_case = world.cases["other_analyst"]["team"]
    assign_perm("cases.view_case", world.users["analyst"], oscar_case)
    bob = review_of("bob")
    assert bob.roles == ("analyst",)
    assert bob.permissions == ("cases.work_cases", "reporting.draft_str")
    assert bob.teams == ("cards",)
    assert bob.grants == (Grant(oscar_case.reference, "view"),)
    assert review_of("frank").roles == ()


def test_it_shows_every_role_change_with_maker_and_approver(admin: User, analyst: User) -> None:
    grace = make_user("grace", roles=["admin"])
    auditor_role = Role.objects.get(slug="auditor")
    frank = make_user("frank")
    actions.change_role(frank, auditor_role, "grant", acting_user=admin)
    request = request_change(
        "role_change", {"user": frank.pk, "role": "auditor", "change": "revoke"}, acting_user=admin, reason="moved"
    )
    approve(request.pk, acting_user=grace, seen_hash=request.payload_hash)
    integrate()
    changes = review_of("frank").changes
    assert [(c.change.change, c.change.role, c.maker, c.approver) for c in changes] == [
        ("grant", "auditor", "alice", None),
        ("revoke", "auditor", "alice", "grace"),
    ]
    assert changes[1].change.approval_id == request.pk


def test_it_keeps_inactive_users_and_their_last_activity(admin: User, analyst: User) -> None:
    actions.set_active(analyst, False, acting_user=admin, reason="left the bank")
    actions.note_activity(admin)
    rows = {row.username: row for row in access_review(reviewer())}
    assert rows["bob"].active is False
    assert rows["alice"].last_activity is not None


def test_it_takes_the_same_queries_for_many_users() -> None:
    build_world()
    erin = reviewer()
    access_review(erin)  # her permissions are read once, as on a request
    with CaptureQueriesContext(connection) as few:
        access_review(erin)
    for n in range(20):
        make_user(f"extra{n}", roles=["analyst"])
    with CaptureQueriesContext(connection) as many:
        assert len(access_review(erin)) > 20
    # users, their roles, the roles' grants, their teams, case grants, role changes from the ledger
    assert len(few) == len(many) == 6


def test_it_gives_nothing_to_who_may_not_review(admin: User) -> None:
    build_world()
    assert access_review(admin) == []


def test_it_reads_no_case_content() -> None:
    build_world()
    with CaptureQueriesContext(connection) as queries:
        access_review(reviewer())
    sql = [q["sql"] for q in queries.captured_queries]
    assert not any('"cases_case"."title"' in statement for statement in sql)
