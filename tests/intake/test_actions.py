"""Managing API clients, their keys and the routing rules: who may, what is refused, what is recorded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from cases.actions import create_api_client, create_routing_rule, issue_api_key, revoke_api_key
from cases.models import ApiClient, ApiKey, Case, RoutingRule
from tests.personas import World, build_world
from tests.recorded import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def client_of(world: World, **changes: object) -> ApiClient:
    fields: dict[str, object] = {
        "name": "Card monitoring",
        "source": "tms",
        "scopes": ["alerts:write"],
        "networks": ["10.20.0.0/16"],
        "rate_limit": 600,
    }
    fields.update(changes)
    return create_api_client(acting_user=world.users["admin"], **fields)  # type: ignore[arg-type]


def test_it_registers_a_client_and_records_it(world: World) -> None:
    client = client_of(world)
    assert (client.source, client.scopes, client.networks) == ("tms", ["alerts:write"], ["10.20.0.0/16"])
    [event] = events()
    after: Any = event["after"]
    assert (event["name"], event["object"], after["networks"]) == (
        "API_CLIENT_CREATED",
        {"type": "api-client", "id": str(client.pk)},
        ["10.20.0.0/16"],
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scopes": ["alerts:delete"]}, "scopes must be among"),
        ({"scopes": []}, "scopes must be among"),
        ({"networks": ["10.20.0.1/16"]}, "CIDR"),  # host bits set: not a network
        ({"networks": ["example.org"]}, "CIDR"),
    ],
)
def test_it_refuses_a_client_badly_described(world: World, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        client_of(world, **changes)
    assert not ApiClient.objects.exists()


def test_it_refuses_a_second_client_of_the_same_source(world: World) -> None:
    client_of(world)
    with pytest.raises(ValidationError, match="exists already"):
        client_of(world, name="Another")


@pytest.mark.parametrize("persona", ["analyst", "lead", "manager", "auditor", "roleless"])
def test_it_lets_only_an_administrator_manage_clients(world: World, persona: str) -> None:
    with pytest.raises(PermissionDenied):
        create_api_client(
            name="x", source="x", scopes=["alerts:write"], networks=[], rate_limit=1, acting_user=world.users[persona]
        )


def test_it_issues_a_secret_once_and_keeps_it_encrypted(world: World) -> None:
    client = client_of(world)
    key, secret = issue_api_key(client, acting_user=world.users["admin"])
    assert len(key.secret_bytes()) == 32
    assert ApiKey.objects.get().secret == secret
    assert key.key_id.startswith("tms-")
    assert events()[-1]["name"] == "API_KEY_ISSUED"
    assert secret not in repr(events())


def test_it_keeps_two_keys_active_at_most_and_revokes_with_a_reason(world: World) -> None:
    client = client_of(world)
    admin = world.users["admin"]
    first, _ = issue_api_key(client, acting_user=admin)
    issue_api_key(client, acting_user=admin)
    with pytest.raises(ValidationError, match="2 active keys"):
        issue_api_key(client, acting_user=admin)
    with pytest.raises(ValidationError, match="reason"):
        revoke_api_key(first, acting_user=admin, reason=" ")
    revoke_api_key(first, acting_user=admin, reason="rotated")
    assert ApiKey.objects.active().count() == 1
    assert events()[-1]["reason"] == "rotated"
    issue_api_key(client, acting_user=admin)  # room again for the successor
    with pytest.raises(ValidationError, match="revoked already"):
        revoke_api_key(first, acting_user=admin, reason="again")


def test_it_adds_a_routing_rule_and_records_its_conditions(world: World) -> None:
    rule = create_routing_rule(
        acting_user=world.users["admin"],
        position=10,
        name="large card fraud",
        scenario="card-velocity",
        currency="EUR",
        min_amount=Decimal(1000),
        queue=world.queues["cards"],
        priority=Case.Priority.HIGH,
    )
    assert RoutingRule.objects.get() == rule
    after: Any = events()[-1]["after"]
    assert (after["min_amount"], after["max_amount"], after["priority"]) == ("1000", None, "High")


def test_it_refuses_an_amount_band_upside_down(world: World) -> None:
    with pytest.raises(ValidationError):
        create_routing_rule(
            acting_user=world.users["admin"],
            position=10,
            name="upside down",
            min_amount=Decimal(10),
            max_amount=Decimal(5),
            queue=world.queues["cards"],
            priority=Case.Priority.LOW,
        )


def test_it_lets_only_a_settings_manager_add_rules(world: World) -> None:
    with pytest.raises(PermissionDenied):
        create_routing_rule(
            acting_user=world.users["analyst"], position=1, name="x", queue=world.queues["cards"], priority=1
        )


def test_it_forgets_idempotent_answers_after_their_retention(world: World, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from cases.models import IdempotencyRecord
    from cases.tasks import purge_idempotency_records

    client = client_of(world)
    old = timezone.now() - timedelta(hours=settings.INTAKE["IDEMPOTENCY_HOURS"] + 1)
    IdempotencyRecord.objects.create(client=client, key="old", fingerprint="f", status=201, response={}, created_at=old)
    IdempotencyRecord.objects.create(client=client, key="new", fingerprint="f", status=201, response={})
    assert purge_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
