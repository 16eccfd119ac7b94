"""Step-up: a privileged change needs a second factor verified within CASPIX_STEP_UP_MINUTES."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest
from django.db.models import Model
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.approvals import request_change
from accounts.models import (
    ApprovalRequest,
    RecoveryCode,
    RecoveryDevice,
    Role,
    RoleAssignment,
    RolePermission,
    TOTPDevice,
    User,
)
from audit.models import PendingEvent
from cases import workflow
from cases.models import ApiClient, ApiKey, Case, Queue, RoutingRule, Webhook
from caspix.access import STEP_UP_SESSION_KEY, access_rule
from reporting.models import Export, FiuProfile
from tests.caspix.test_access import all_patterns
from tests.conftest import client_for
from tests.personas import World, build_world
from tests.recorded import events, names
from tests.totp import code_at

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]

STALE = 11 * 60  # seconds: past the default CASPIX_STEP_UP_MINUTES of 10


STEP_UP_ROUTES = sorted(route for route, view in all_patterns() if "step-up" in (access_rule(view) or ()))
WEBHOOK = "5b0c7c52-3f0e-4c59-9a57-3d2f1c3e9b21"  # the step-up world's webhook
# The POST-only step-up routes, and the page each one's form lives on.
FORM_PAGES = {
    "account/factors/<int:pk>/remove/": "/account/factors/",
    "account/passkeys/<int:pk>/remove/": "/account/factors/",
    "account/recovery-codes/": "/account/factors/",
    "administration/users/<str:username>/roles/": "/administration/users/bob/",
    "administration/users/<str:username>/active/": "/administration/users/bob/",
    "administration/roles/<slug:slug>/edit/": "/administration/roles/trainee/",
    "administration/teams/<slug:slug>/members/<str:username>/remove/": "/administration/teams/cards/",
    "account/sessions/<int:pk>/end/": "/account/sessions/",
    "account/sessions/end-others/": "/account/sessions/",
    "administration/users/<str:username>/sessions/end/": "/administration/users/bob/",
    "administration/api-clients/<slug:source>/keys/": "/administration/api-clients/tms/",
    "administration/api-clients/<slug:source>/keys/<str:key_id>/revoke/": "/administration/api-clients/tms/",
    "administration/webhooks/<uuid:pk>/replay/": f"/administration/webhooks/{WEBHOOK}/",
    "administration/webhooks/<uuid:pk>/active/": f"/administration/webhooks/{WEBHOOK}/",
    "administration/fiu-profiles/<slug:slug>/rules": "/administration/fiu-profiles/uae/",
    "administration/fiu-profiles/<slug:slug>/holidays": "/administration/fiu-profiles/uae/",
    # the lead decides on the report's page; no report is needed to be sent to verify first
    "reports/<int:pk>/decide": "/reports/",
    # a manager signs off on the snapshot's page; the list is enough to be sent to verify first
    "oversight/access-review/<uuid:pk>/sign-off": "/oversight/access-review/",
}
POST_ONLY_STEP_UP_ROUTES = sorted(FORM_PAGES)


def stale(client: Client, seconds_ago: float = STALE) -> None:
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time() - seconds_ago
    session.save()


def device_of(user: User) -> TOTPDevice:
    device: TOTPDevice = TOTPDevice.objects.get(user=user, confirmed=True)
    return device


def verify_url(next_url: str) -> str:
    return f"/login/verify/?{urlencode({'next': next_url})}"


def page(response: Response) -> str:
    return response.content.decode()


def notice(response: Response) -> str:
    found = re.search(
        r'<div class="banner banner-info" role="note" id="step-up-notice">(.*?)</div>', page(response), re.S
    )
    assert found is not None, "the page shows the step-up notice"
    return " ".join(found.group(1).split())


def grant_lead(admin: User, target: User) -> ApprovalRequest:
    payload = {"user": target.pk, "role": "lead", "change": "grant"}
    return request_change("role_change", payload, acting_user=admin, reason="covers the fraud desk")


def approval_url(request: ApprovalRequest) -> str:
    return f"/administration/approvals/{request.pk}/"


def approve(client: Client, request: ApprovalRequest) -> Response:
    # As a browser does: the form is on the approval page, which the Referer names.
    url = approval_url(request)
    return client.post(
        url, {"decision": "approve", "seen_hash": request.payload_hash}, HTTP_REFERER=f"http://testserver{url}"
    )


def snapshot() -> tuple[int, ...]:
    """Counts of what a step-up view may change: no change means every count is the same."""
    models: tuple[type[Model], ...] = (
        PendingEvent,
        TOTPDevice,
        RecoveryDevice,
        RecoveryCode,
        ApprovalRequest,
        RoleAssignment,
        Role,
        RolePermission,
        User,
    )
    counts = (*(model._default_manager.count() for model in models), Export.objects.all().count())
    return (
        *counts,
        ApprovalRequest.objects.filter(status="pending").count(),
        User.objects.filter(is_active=True).count(),
    )


# --- the approval page ----------------------------------------------------------------------------


def test_it_shows_a_stale_session_the_page_and_how_to_step_up(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    stale(client)
    response = client.get(approval_url(request))
    assert response.status_code == 200
    text = notice(response)
    assert "Changes on this page need a second factor verified within the last 10 minutes." in text
    assert "You will be asked for it when you submit" in text
    assert f'<a href="/login/verify/?next={approval_url(request)}">verify it now</a>' in text


def test_it_sends_a_stale_post_to_verify_and_changes_nothing(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    stale(client)
    before = snapshot()
    response = approve(client, request)
    assert response.status_code == 302
    assert response["Location"] == verify_url(approval_url(request))
    assert snapshot() == before
    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"
    assert not analyst.roles.filter(slug="lead").exists()
    assert names() == ["APPROVAL_REQUESTED"]


def test_it_approves_once_the_factor_is_verified_again(
    admin: User, second_admin: User, analyst: User, clock: float
) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    stale(client)
    location = approve(client, request)["Location"]
    form = client.get(location)
    assert form.status_code == 200
    assert "Confirm it is you" in page(form)
    device = device_of(second_admin)
    before = client.session.session_key
    response = client.post(
        "/login/verify/",
        {"device": device.persistent_id, "code": code_at(device, clock), "next": approval_url(request)},
    )
    assert response.status_code == 302
    assert response["Location"] == approval_url(request)
    assert client.session.session_key != before
    assert "Yours is recent enough." in notice(client.get(approval_url(request)))
    assert approve(client, request)["Location"] == "/administration/approvals/"
    assert ApprovalRequest.objects.get(pk=request.pk).status == "approved"
    assert analyst.roles.filter(slug="lead").exists()
    assert names() == ["APPROVAL_REQUESTED", "SECOND_FACTOR_VERIFIED", "ROLE_GRANTED", "APPROVAL_GRANTED"]
    verified = events()[1]
    assert verified["reason"] == "step-up"
    assert verified["actor"] == {"id": second_admin.pk, "name": "grace", "role": "admin"}


def test_it_says_a_fresh_factor_is_recent_enough(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    text = notice(client.get(approval_url(request)))
    assert "Yours is recent enough." in text
    assert "verify it now" not in text
    assert approve(client, request).status_code == 302
    assert ApprovalRequest.objects.get(pk=request.pk).status == "approved"


def test_it_accepts_a_factor_verified_within_the_window(admin: User, second_admin: User, analyst: User) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    stale(client, seconds_ago=9 * 60)
    assert approve(client, request)["Location"] == "/administration/approvals/"
    assert ApprovalRequest.objects.get(pk=request.pk).status == "approved"


def test_it_follows_the_configured_window(admin: User, second_admin: User, analyst: User, settings: Settings) -> None:
    settings.CASPIX_STEP_UP_MINUTES = 15
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    stale(client)  # 11 minutes: within 15
    assert "within the last 15 minutes" in notice(client.get(approval_url(request)))
    assert approve(client, request)["Location"] == "/administration/approvals/"


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param(None, id="never stepped up"),
        pytest.param(60.0, id="in the future"),
        pytest.param("recently", id="not a time"),
    ],
)
def test_it_treats_an_odd_stamp_as_stale(admin: User, second_admin: User, analyst: User, stamp: object) -> None:
    request = grant_lead(admin, analyst)
    client = client_for(second_admin)
    session = client.session
    if stamp is None:
        del session[STEP_UP_SESSION_KEY]
    else:
        session[STEP_UP_SESSION_KEY] = time.time() + stamp if isinstance(stamp, float) else stamp
    session.save()
    assert approve(client, request)["Location"] == verify_url(approval_url(request))
    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"


def test_it_asks_again_before_adding_another_authenticator(analyst: User) -> None:
    client = client_for(analyst)
    stale(client)
    assert client.get("/login/enrol/")["Location"] == "/login/verify/?next=/login/enrol/"
    assert not TOTPDevice.objects.filter(user=analyst, confirmed=False).exists()


# --- every step-up view ---------------------------------------------------------------------------


def test_it_finds_the_step_up_routes() -> None:
    assert {
        "administration/approvals/<int:pk>/",
        "administration/users/<str:username>/roles/",
        "administration/roles/new/",
        *POST_ONLY_STEP_UP_ROUTES,
    } <= set(STEP_UP_ROUTES)


def step_up_world() -> World:
    """The personas' world, an API client with a key for the API-client pages, a routing rule
    and a webhook."""
    world = build_world()
    client = ApiClient.objects.create(name="Card monitoring", source="tms", scopes=["alerts:write"])
    key = ApiKey(client=client, key_id="tms-key")
    key.secret = "c2VjcmV0LXRoYXQtaXMtbm90LXVzZWQtaW4tdGhpcy10ZXN0"
    key.save()
    RoutingRule.objects.create(position=1, name="everything", queue=Queue.objects.get(slug="cards"), priority=2)
    webhook = Webhook(pk=WEBHOOK, name="case system", url="https://cases.bank.example/h")
    webhook.secret = key.secret
    webhook.save()
    FiuProfile.objects.create(slug="uae", name="UAE FIU", rentity_id=2079, currency_code_local="AED")
    # bob proposes closing a card-fraud case as confirmed fraud: a request for charlie, the lead.
    case = world.cases["analyst"]["team"]
    Case.objects.filter(pk=case.pk).update(status=Case.Status.IN_PROGRESS, assignee=world.users["analyst"])
    workflow.close(case, "confirmed_fraud", "card used abroad", acting_user=world.users["analyst"])
    return world


def actor_for(route: str, world: World) -> User:
    """Who uses a step-up view: the lead decides case closures and reports, the manager signs off
    access reviews, the auditor asks for evidence packs, the administrator the rest."""
    if route.startswith("oversight/access-review/"):
        return world.users["manager"]
    if route.startswith("exports/"):
        return world.users["auditor"]
    return world.users["lead" if route.startswith(("work/", "reports/")) else "admin"]


def _slug_of(route: str) -> str:
    if route.startswith("administration/teams/"):
        return "cards"
    return "uae" if route.startswith("administration/fiu-profiles/") else "trainee"


def concrete(route: str, world: World, admin: User) -> str:
    """The route with the world's objects in it: the pending approval, bob, the trainee template."""
    if route.startswith("administration/approvals/"):
        pk = world.approval.pk
    elif route.startswith("work/approvals/"):
        pk = ApprovalRequest.objects.get(kind=workflow.CLOSURE).pk
    elif route.startswith("administration/routing-rules/"):
        pk = RoutingRule.objects.get().pk
    else:
        pk = device_of(admin).pk
    return "/" + (
        route.replace("<int:pk>", str(pk))
        .replace("<uuid:pk>", WEBHOOK)
        .replace("<str:username>", world.users["analyst"].username)
        .replace("<slug:slug>", _slug_of(route))
        .replace("<slug:source>", "tms")
        .replace("<str:key_id>", "tms-key")
    )


@pytest.mark.parametrize("route", STEP_UP_ROUTES)
def test_it_refuses_a_stale_post_on_every_step_up_view(route: str) -> None:
    world = step_up_world()
    admin = actor_for(route, world)
    client = client_for(admin)
    stale(client)
    url = concrete(route, world, admin)
    before = snapshot()
    response = client.post(
        url,
        {"reason": "stale", "decision": "approve", "seen_hash": world.approval.payload_hash},
        HTTP_REFERER=f"http://testserver{url}",
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/login/verify/?next=")
    assert response["Location"] == verify_url(url)
    assert snapshot() == before


@pytest.mark.parametrize("route", STEP_UP_ROUTES)
def test_it_lets_a_stale_session_read_every_step_up_view(route: str) -> None:
    world = step_up_world()
    admin = actor_for(route, world)
    client = client_for(admin)
    stale(client)
    response = client.get(concrete(route, world, admin))
    assert response.status_code == (405 if route in POST_ONLY_STEP_UP_ROUTES else 200)


@pytest.mark.parametrize("route", POST_ONLY_STEP_UP_ROUTES)
def test_it_brings_a_stepped_up_user_back_to_a_page_after_a_post_only_action(route: str, clock: float) -> None:
    world = step_up_world()
    admin = actor_for(route, world)
    client = client_for(admin)
    stale(client)
    page = FORM_PAGES[route]
    location = client.post(concrete(route, world, admin), {"reason": "stale"}, HTTP_REFERER=f"http://testserver{page}")[
        "Location"
    ]
    device = device_of(admin)
    next_url = client.get(location).context["next"]
    assert next_url == page
    back = client.post(
        "/login/verify/", {"device": device.persistent_id, "code": code_at(device, clock), "next": next_url}
    )
    assert back.status_code == 302
    assert client.get(back["Location"]).status_code == 200


def test_it_sends_home_after_stepping_up_when_the_form_page_is_unknown_or_foreign() -> None:
    world = build_world()
    admin = world.users["admin"]
    client = client_for(admin)
    stale(client)
    url = "/administration/users/bob/active/"
    for headers in ({}, {"Referer": "https://attacker.example/administration/users/bob/"}):
        location = client.post(url, {"reason": "stale"}, headers=headers)["Location"]
        assert location == "/login/verify/?next=%2F"
