"""The API-client pages (register a client, issue a key shown once, revoke it with a reason) and
the routing-rule pages (add a rule, change or deactivate one)."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from accounts.models import User
from cases.models import ApiClient, ApiKey
from caspix.access import STEP_UP_SESSION_KEY
from tests.conftest import client_for
from tests.recorded import names

pytestmark = pytest.mark.django_db

LIST = reverse("api_clients:list")
FORM = {
    "name": "Card monitoring",
    "source": "tms",
    "scopes": ["alerts:write"],
    "networks": "10.20.0.0/16\n",
    "rate_limit": "600",
}


def test_it_registers_a_client_and_lists_it(admin: User) -> None:
    browser = client_for(admin)
    response = browser.post(LIST, FORM)
    assert response.status_code == 302
    client = ApiClient.objects.get()
    assert (client.source, client.networks, client.scopes) == ("tms", ["10.20.0.0/16"], ["alerts:write"])
    listing = browser.get(LIST)
    assert b"Card monitoring" in listing.content
    assert names()[-1] == "API_CLIENT_CREATED"


def test_it_names_what_is_wrong_with_a_client(admin: User) -> None:
    response = client_for(admin).post(LIST, {**FORM, "networks": "10.20.0.1/16"})
    assert response.status_code == 400
    assert b"CIDR" in response.content
    assert not ApiClient.objects.exists()


def test_it_shows_a_new_secret_once_and_never_again(admin: User) -> None:
    browser = client_for(admin)
    browser.post(LIST, FORM)
    issued = browser.post(reverse("api_clients:issue_key", args=["tms"]))
    assert issued.status_code == 200
    assert issued["Cache-Control"] == "no-store"
    key = ApiKey.objects.get()
    assert str(key.secret).encode() in issued.content
    page = browser.get(reverse("api_clients:detail", args=["tms"]))
    assert key.key_id.encode() in page.content
    assert str(key.secret).encode() not in page.content


def test_it_revokes_a_key_with_a_reason(admin: User) -> None:
    browser = client_for(admin)
    browser.post(LIST, FORM)
    browser.post(reverse("api_clients:issue_key", args=["tms"]))
    key = ApiKey.objects.get()
    revoke = reverse("api_clients:revoke_key", args=["tms", key.key_id])
    assert browser.post(revoke, {"reason": ""}).status_code == 400
    assert browser.post(revoke, {"reason": "the system was retired"}).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert names()[-1] == "API_KEY_REVOKED"


def test_it_asks_for_a_fresh_second_factor_before_issuing_a_key(admin: User) -> None:
    browser = client_for(admin)
    browser.post(LIST, FORM)
    session = browser.session
    session[STEP_UP_SESSION_KEY] = time.time() - 3600
    session.save()
    response = browser.post(reverse("api_clients:issue_key", args=["tms"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:verify"))
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("persona", ["analyst", "lead", "manager", "auditor"])
def test_it_shows_the_pages_to_api_client_managers_only(persona: str, request: pytest.FixtureRequest) -> None:
    user: User = request.getfixturevalue(persona)
    assert client_for(user).get(LIST).status_code == 403


def test_it_adds_a_routing_rule_from_its_page(admin: User) -> None:
    from accounts.models import Team
    from cases.models import Queue, RoutingRule

    queue = Queue.objects.create(slug="cards", name="Card fraud", team=Team.objects.create(slug="cards", name="Cards"))
    browser = client_for(admin)
    rules = reverse("routing_rules:list")
    form = {"position": "10", "name": "large card fraud", "scenario": "card-velocity", "currency": "EUR"}
    form |= {"min_amount": "1000", "queue": str(queue.pk), "priority": "3"}
    assert browser.post(rules, {**form, "max_amount": "5"}).status_code == 400  # the band upside down
    assert browser.post(rules, form).status_code == 302
    rule = RoutingRule.objects.get()
    assert (rule.queue, rule.priority, str(rule.min_amount)) == (queue, 3, "1000.0000")
    assert b"large card fraud" in browser.get(rules).content
    assert names()[-1] == "ROUTING_RULE_CREATED"


def test_it_changes_and_deactivates_a_routing_rule_recording_what_it_was(admin: User) -> None:
    from accounts.models import Team
    from cases.actions import create_routing_rule
    from cases.models import Queue, RoutingRule
    from tests.recorded import events

    team = Team.objects.create(slug="cards", name="Cards")
    cards = Queue.objects.create(slug="cards", name="Card fraud", team=team)
    triage = Queue.objects.create(slug="triage", name="Triage", team=team)
    rule = create_routing_rule(
        acting_user=admin, position=10, name="card fraud", currency="EUR", queue=cards, priority=2
    )
    browser = client_for(admin)
    page = reverse("routing_rules:detail", args=[rule.pk])
    assert page.encode() in browser.get(reverse("routing_rules:list")).content  # the list links to it
    shown = browser.get(page)
    assert shown.status_code == 200
    assert b'value="card fraud"' in shown.content
    form = {"position": "10", "name": "card fraud", "currency": "EUR", "queue": str(triage.pk), "priority": "4"}
    form |= {"is_active": "on"}
    refused = browser.post(page, {**form, "min_amount": "50", "max_amount": "5", "name": "renamed"})
    assert refused.status_code == 400
    assert b"<h1>card fraud</h1>" in refused.content  # the rule's name, not what was typed
    assert RoutingRule.objects.get().queue == cards
    assert browser.post(page, form).status_code == 302
    rule.refresh_from_db()
    assert (rule.queue, rule.priority, rule.is_active) == (triage, 4, True)
    changed = events()[-1]
    assert changed["name"] == "ROUTING_RULE_CHANGED"
    assert (changed["before"], changed["after"]) == (
        {"queue": "cards", "priority": "Medium"},
        {"queue": "triage", "priority": "Critical"},
    )
    del form["is_active"]  # an unticked box is not sent
    assert browser.post(page, form).status_code == 302
    assert not RoutingRule.objects.get().is_active
    assert (events()[-1]["before"], events()[-1]["after"]) == ({"active": True}, {"active": False})
    count = len(events())
    assert browser.post(page, form).status_code == 302  # nothing changed: nothing recorded
    assert len(events()) == count


def test_it_changes_only_a_rules_own_fields(admin: User) -> None:
    from django.core.exceptions import ValidationError

    from accounts.models import Team
    from cases.actions import change_routing_rule, create_routing_rule
    from cases.models import Queue

    queue = Queue.objects.create(slug="cards", name="Cards", team=Team.objects.create(slug="cards", name="Cards"))
    rule = create_routing_rule(acting_user=admin, position=1, name="all", queue=queue, priority=2)
    with pytest.raises(ValidationError, match="not a routing rule's field: pk"):
        change_routing_rule(rule, acting_user=admin, pk=5)


def test_it_adds_a_webhook_showing_its_secret_once(admin: User) -> None:
    from cases.models import Webhook

    browser = client_for(admin)
    webhooks = reverse("webhooks:list")
    form = {"name": "case system", "url": "https://cases.bank.example/hooks", "event_types": ["case.created"]}
    assert browser.post(webhooks, {**form, "url": "ftp://cases.bank.example/"}).status_code == 400
    added = browser.post(webhooks, form)
    assert added.status_code == 200
    assert added["Cache-Control"] == "no-store"
    webhook = Webhook.objects.get()
    assert (webhook.event_types, webhook.delivered_through) == (["case.created"], 0)
    assert str(webhook.secret).encode() in added.content
    page = browser.get(reverse("webhooks:detail", args=[webhook.pk]))
    assert str(webhook.secret).encode() not in page.content
    assert b"case system" in browser.get(webhooks).content
    assert names()[-1] == "WEBHOOK_CREATED"


def test_it_replays_and_switches_a_webhook_with_reasons(admin: User) -> None:
    from cases.actions import create_webhook
    from cases.models import Webhook

    webhook, _ = create_webhook(
        name="case system", url="https://cases.bank.example/h", event_types=[], acting_user=admin
    )
    Webhook.objects.filter(pk=webhook.pk).update(delivered_through=40)
    browser = client_for(admin)
    replay = reverse("webhooks:replay", args=[webhook.pk])
    assert browser.post(replay, {"after": "41", "reason": "skip"}).status_code == 400  # never forward
    assert browser.post(replay, {"after": "10", "reason": ""}).status_code == 400
    assert browser.post(replay, {"after": "10", "reason": "the receiver restored a backup"}).status_code == 302
    webhook.refresh_from_db()
    assert webhook.delivered_through == 10
    assert names()[-1] == "WEBHOOK_REPLAYED"
    switch = reverse("webhooks:switch", args=[webhook.pk])
    assert browser.post(switch, {"reason": ""}).status_code == 400
    assert browser.post(switch, {"reason": "the receiver is being moved"}).status_code == 302
    webhook.refresh_from_db()
    assert not webhook.is_active
    assert names()[-1] == "WEBHOOK_CHANGED"
    assert b"Make active" in browser.get(reverse("webhooks:detail", args=[webhook.pk])).content
    assert browser.post(switch, {"reason": "moved"}).status_code == 302
    assert Webhook.objects.get().is_active
