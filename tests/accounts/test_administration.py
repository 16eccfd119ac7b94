"""The administration pages end to end: forms, four-eyes requests, refusals and pinned query counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.approvals import request_change
from accounts.models import ApprovalRequest, Membership, Role, RoleAssignment, RolePermission, Team, User
from accounts.permissions import Perm
from tests.conftest import client_for
from tests.factories import PASSWORD, make_user
from tests.recorded import events, names

pytestmark = pytest.mark.django_db


def slugs(user: User) -> set[str]:
    return set(User.objects.get(pk=user.pk).roles.values_list("slug", flat=True))


def grant_lead(admin: User, target: User) -> ApprovalRequest:
    payload = {"user": target.pk, "role": "lead", "change": "grant"}
    return request_change("role_change", payload, acting_user=admin, reason="covers the fraud desk")


def approval_url(request: ApprovalRequest) -> str:
    return f"/administration/approvals/{request.pk}/"


# --- users ----------------------------------------------------------------------------------------


def test_it_creates_a_user_from_the_page(admin: User) -> None:
    client = client_for(admin)
    assert client.get("/administration/users/new/").status_code == 200
    response = client.post(
        "/administration/users/new/",
        {"username": "heidi", "first_name": "Heidi", "last_name": "K", "email": "", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/administration/users/heidi/"
    heidi = User.objects.get(username="heidi")
    assert not heidi.roles.exists()
    assert names() == ["USER_CREATED"]
    assert events()[0]["after"] == {"username": "heidi"}
    page = client.get(response["Location"])
    assert "heidi was created, with no role yet." in page.content.decode()


def test_it_shows_why_a_user_was_not_created(admin: User, analyst: User) -> None:
    client = client_for(admin)
    weak = client.post("/administration/users/new/", {"username": "heidi", "password": "short"})
    assert weak.status_code == 400
    assert "This password is too short" in weak.content.decode()
    taken = client.post("/administration/users/new/", {"username": "Bob", "password": PASSWORD})
    assert taken.status_code == 400
    assert "the username &#x27;Bob&#x27; is taken" in taken.content.decode()
    assert not User.objects.filter(username__in=["heidi", "Bob"]).exists()
    assert events() == []


def test_it_keeps_the_user_pages_from_other_roles(analyst: User, roleless: User) -> None:
    client = client_for(analyst)
    assert client.get("/administration/users/new/").status_code == 403
    assert client.post("/administration/users/new/", {"username": "heidi", "password": PASSWORD}).status_code == 403
    assert client.post("/administration/users/frank/roles/", {"role": "analyst", "change": "grant"}).status_code == 403
    assert not User.objects.filter(username="heidi").exists()
    assert slugs(roleless) == set()


def test_it_sends_a_privileged_role_change_to_approval(admin: User, analyst: User) -> None:
    client = client_for(admin)
    response = client.post(
        "/administration/users/bob/roles/", {"role": "lead", "change": "grant", "reason": "covers the desk"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/administration/users/bob/"
    request = ApprovalRequest.objects.get()
    assert (request.kind, request.status, request.maker) == ("role_change", "pending", admin)
    assert request.payload == {"user": analyst.pk, "role": "lead", "change": "grant"}
    assert slugs(analyst) == {"analyst"}
    assert names() == ["APPROVAL_REQUESTED"]
    page = client.get(response["Location"]).content.decode()
    assert "waits for a second administrator" in page
    assert f'href="/administration/approvals/{request.pk}/"' in page


def test_it_applies_a_role_change_that_is_not_privileged_at_once(admin: User, roleless: User) -> None:
    response = client_for(admin).post(
        "/administration/users/frank/roles/", {"role": "manager", "change": "grant", "reason": "runs the desk"}
    )
    assert response.status_code == 302
    assert slugs(roleless) == {"manager"}
    assert not ApprovalRequest.objects.exists()
    [event] = events()
    assert (event["name"], event["reason"]) == ("ROLE_GRANTED", "direct")


def test_it_shows_a_refused_role_change_on_the_user_page(admin: User, second_admin: User) -> None:
    response = client_for(admin).post(
        "/administration/users/grace/roles/", {"role": "analyst", "change": "grant", "reason": "helps out"}
    )
    assert response.status_code == 400
    assert "grace cannot also hold analyst: segregation of duties" in response.content.decode()
    assert slugs(second_admin) == {"admin"}


def test_it_deactivates_a_user_from_the_page(admin: User, analyst: User) -> None:
    client = client_for(admin)
    assert client.post("/administration/users/bob/active/", {"reason": ""}).status_code == 400
    response = client.post("/administration/users/bob/active/", {"reason": "left the bank"})
    assert response.status_code == 302
    assert response["Location"] == "/administration/users/bob/"
    assert not User.objects.get(pk=analyst.pk).is_active
    [event] = events()
    assert (event["name"], event["reason"]) == ("USER_DEACTIVATED", "left the bank")
    assert "Reactivate bob" in client.get(response["Location"]).content.decode()


def test_it_refuses_to_deactivate_oneself_from_the_page(admin: User) -> None:
    response = client_for(admin).post("/administration/users/alice/active/", {"reason": "holiday"})
    assert response.status_code == 400
    assert "nobody deactivates or reactivates themselves" in response.content.decode()
    assert User.objects.get(pk=admin.pk).is_active


# --- approvals ------------------------------------------------------------------------------------


def test_it_carries_out_a_change_a_second_admin_approves_on_the_page(
    admin: User, second_admin: User, analyst: User
) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    page = client.get(approval_url(request)).content.decode()
    assert "Record the decision" in page
    assert f'value="{request.payload_hash}"' in page
    assert "bob (id " in page
    response = client.post(approval_url(request), {"decision": "approve", "seen_hash": request.payload_hash})
    assert response.status_code == 302
    assert response["Location"] == "/administration/approvals/"
    assert slugs(analyst) == {"analyst", "lead"}
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("approved", second_admin)
    assert names() == ["APPROVAL_REQUESTED", "ROLE_GRANTED", "APPROVAL_GRANTED"]


def test_it_gives_the_maker_no_decision_form(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    page = client_for(admin).get(approval_url(request))
    assert page.status_code == 200
    html = page.content.decode()
    assert "You asked for this: another authorised person must decide it." in html
    assert "Record the decision" not in html
    assert 'name="decision"' not in html


def test_it_refuses_and_records_an_approval_the_maker_posts(admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    response = client_for(admin).post(approval_url(request), {"decision": "approve", "seen_hash": request.payload_hash})
    assert response.status_code == 409
    assert "You cannot approve your own request: another authorised person must." in response.content.decode()
    assert slugs(analyst) == {"analyst"}
    request.refresh_from_db()
    assert request.status == "pending"
    refused = events()[-1]
    assert (refused["name"], refused["reason"]) == ("APPROVAL_REFUSED", "own request")
    assert refused["actor"] == {"id": admin.pk, "name": "alice", "role": "admin"}


def test_it_refuses_an_approval_of_a_hash_other_than_the_stored_one(
    admin: User, second_admin: User, analyst: User
) -> None:
    request = grant_lead(admin, analyst)
    tampered = "f" * 64
    response = client_for(second_admin).post(approval_url(request), {"decision": "approve", "seen_hash": tampered})
    assert response.status_code == 409
    assert "The request changed after you saw it: review it again before approving." in response.content.decode()
    assert slugs(analyst) == {"analyst"}
    refused = events()[-1]
    assert (refused["name"], refused["reason"]) == ("APPROVAL_REFUSED", "altered")


def test_it_wants_a_reason_to_reject(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    response = client.post(approval_url(request), {"decision": "reject", "seen_hash": request.payload_hash})
    assert response.status_code == 400
    assert "State why you reject the request." in response.content.decode()
    request.refresh_from_db()
    assert request.status == "pending"
    response = client.post(
        approval_url(request), {"decision": "reject", "seen_hash": request.payload_hash, "reason": "not needed"}
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.decision_reason) == ("rejected", "not needed")
    assert slugs(analyst) == {"analyst"}


def test_it_keeps_approvals_from_those_without_the_permission(admin: User, analyst: User, lead: User) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(lead)
    assert client.get("/administration/approvals/").status_code == 403
    assert (
        client.post(approval_url(request), {"decision": "approve", "seen_hash": request.payload_hash}).status_code
        == 403
    )
    assert slugs(analyst) == {"analyst"}


# --- role templates -------------------------------------------------------------------------------


def test_it_sends_a_new_role_template_to_approval(admin: User, second_admin: User) -> None:
    client = client_for(admin)
    assert client.get("/administration/roles/new/").status_code == 200
    permissions = [Perm.VIEW_LEDGER.value, Perm.EXPORT_EVIDENCE.value]
    response = client.post(
        "/administration/roles/new/",
        {"slug": "evidence-clerk", "name": "Evidence clerk", "permissions": permissions, "reason": "exports"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/administration/approvals/"
    assert not Role.objects.filter(slug="evidence-clerk").exists()
    request = ApprovalRequest.objects.get()
    assert request.kind == "role_template"
    assert request.payload == {
        "change": "create",
        "slug": "evidence-clerk",
        "name": "Evidence clerk",
        "description": "",
        "permissions": sorted(permissions),
        "mfa_required": False,  # the box was left unticked
        "passkey_sign_in": False,
    }
    assert f'href="/administration/approvals/{request.pk}/"' in client.get(response["Location"]).content.decode()

    approved = client_for(second_admin).post(
        approval_url(request), {"decision": "approve", "seen_hash": request.payload_hash}
    )
    assert approved.status_code == 302
    assert Role.objects.get(slug="evidence-clerk").permissions() == sorted(permissions)


def test_it_shows_why_a_role_template_was_not_requested(admin: User) -> None:
    response = client_for(admin).post(
        "/administration/roles/new/",
        {
            "slug": "super-analyst",
            "name": "Super analyst",
            "permissions": [Perm.MANAGE_USERS.value, Perm.WORK_CASES.value],
            "reason": "speed",
        },
    )
    assert response.status_code == 400
    assert "a role template cannot mix duties" in response.content.decode()
    assert not ApprovalRequest.objects.exists()


def test_it_sends_an_edit_of_a_custom_template_to_approval(admin: User) -> None:
    role = Role.objects.create(slug="reviewer", name="Reviewer")
    RolePermission.objects.create(role=role, permission=Perm.VIEW_DASHBOARD.value)
    client = client_for(admin)
    assert (
        'action="/administration/roles/reviewer/edit/"'
        in client.get("/administration/roles/reviewer/").content.decode()
    )
    response = client.post(
        "/administration/roles/reviewer/edit/",
        {"slug": "ignored", "name": "Reviewer", "permissions": [Perm.VIEW_LEDGER.value], "reason": "audits"},
    )
    assert response.status_code == 302
    request = ApprovalRequest.objects.get()
    assert request.payload["slug"] == "reviewer"
    assert request.payload["change"] == "edit"
    assert role.permissions() == [Perm.VIEW_DASHBOARD.value]


def test_it_offers_no_edit_of_a_shipped_template(admin: User) -> None:
    client = client_for(admin)
    page = client.get("/administration/roles/analyst/").content.decode()
    assert "Shipped with Caspix: not edited." in page
    assert "/edit/" not in page
    response = client.post(
        "/administration/roles/analyst/edit/",
        {"name": "Fraud analyst", "permissions": [Perm.WORK_CASES.value], "reason": "trim"},
    )
    assert response.status_code == 404
    assert not ApprovalRequest.objects.exists()


# --- teams ----------------------------------------------------------------------------------------


def test_it_creates_a_team_and_changes_its_members_from_the_pages(admin: User, analyst: User) -> None:
    client = client_for(admin)
    created = client.post("/administration/teams/", {"slug": "fraud-desk", "name": "Fraud desk", "description": ""})
    assert created.status_code == 302
    assert created["Location"] == "/administration/teams/fraud-desk/"
    team = Team.objects.get(slug="fraud-desk")

    added = client.post("/administration/teams/fraud-desk/", {"user": "bob"})
    assert added.status_code == 302
    assert list(team.members.all()) == [analyst]
    assert "Remove bob" in client.get("/administration/teams/fraud-desk/").content.decode()

    removed = client.post("/administration/teams/fraud-desk/members/bob/remove/")
    assert removed.status_code == 302
    assert removed["Location"] == "/administration/teams/fraud-desk/"
    assert not team.members.exists()
    assert names() == ["TEAM_CREATED", "TEAM_MEMBER_ADDED", "TEAM_MEMBER_REMOVED"]


def test_it_shows_why_a_membership_was_not_changed(admin: User, analyst: User) -> None:
    team = Team.objects.create(slug="fraud-desk", name="Fraud desk")
    Membership.objects.create(team=team, user=analyst)
    client = client_for(admin)
    assert 'value="bob"' not in client.get("/administration/teams/fraud-desk/").content.decode()
    twice = client.post("/administration/teams/fraud-desk/", {"user": "bob"})
    assert twice.status_code == 400  # a member is not among the choices
    assert "Select a valid choice" in twice.content.decode()
    oneself = client.post("/administration/teams/fraud-desk/", {"user": "alice"})
    assert oneself.status_code == 400
    assert "nobody changes their own team membership" in oneself.content.decode()
    absent = client.post("/administration/teams/fraud-desk/members/alice/remove/")
    assert absent.status_code == 400
    assert "nobody changes their own team membership" in absent.content.decode()
    duplicate = client.post("/administration/teams/", {"slug": "desk", "name": "FRAUD DESK"})
    assert duplicate.status_code == 400
    assert "exists already" in duplicate.content.decode()
    assert list(Membership.objects.values_list("user__username", flat=True)) == ["bob"]
    assert events() == []


# --- query counts ---------------------------------------------------------------------------------


def seed_users(first: int, last: int) -> None:
    team = Team.objects.get_or_create(slug="seeded", name="Seeded")[0]
    for n in range(first, last):
        user = make_user(f"user-{n:02}", roles=["analyst", "manager"], last_activity=timezone.now())
        Membership.objects.create(team=team, user=user)


def seed_roles(first: int, last: int) -> None:
    for n in range(first, last):
        role = Role.objects.create(slug=f"custom-{n:02}", name=f"Custom {n:02}")
        RolePermission.objects.bulk_create(
            [RolePermission(role=role, permission=p) for p in (Perm.VIEW_LEDGER, Perm.MANAGE_SETTINGS)]
        )
        RoleAssignment.objects.create(user=make_user(f"holder-{n:02}"), role=role)


def seed_teams(first: int, last: int) -> None:
    for n in range(first, last):
        team = Team.objects.create(slug=f"team-{n:02}", name=f"Team {n:02}", description="seeded")
        Membership.objects.create(team=team, user=make_user(f"member-{n:02}"))


def seed_approvals(first: int, last: int) -> None:
    maker = make_user("maker", roles=["admin"])
    decider = make_user("decider", roles=["admin"])
    now = timezone.now()
    for n in range(first, last):
        for status in ("pending", "rejected"):
            ApprovalRequest.objects.create(
                kind="role_change",
                payload={"user": n, "role": "lead", "change": "grant"},
                payload_hash=f"{n:064x}",
                maker=maker,
                reason=f"seeded {n}",
                created_at=now,
                expires_at=now + timedelta(hours=1 + n),
                status=status,
                decided_by=decider if status != "pending" else None,
                decided_at=now if status != "pending" else None,
            )


# Every page: the session, the user, their permissions, the ledger's integrity status; then the
# listing's own queries (one, plus one per prefetched relation; approvals: pending and decided).
def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    ("url", "seed", "expected"),
    [
        # each +1 for the second factor the session verified (django-otp loads the device)
        ("/administration/", seed_users, 8),
        ("/administration/roles/", seed_roles, 7),
        ("/administration/teams/", seed_teams, 6),
        ("/administration/approvals/", seed_approvals, 7),
    ],
)
def test_it_reads_a_listing_in_a_fixed_number_of_queries(
    admin: User, url: str, seed: Callable[[int, int], None], expected: int
) -> None:
    client = client_for(admin)
    assert client.get(url).status_code == 200  # warm-up: notes the last activity, once a minute
    seed(0, 2)
    few = queries(client, url)
    seed(2, 20)
    many = queries(client, url)
    assert (few, many) == (expected, expected)
