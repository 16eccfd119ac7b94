"""An API client with a key, queues and routing rules, and requests signed as upstream systems sign them."""

from __future__ import annotations

import json
import secrets
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from accounts.models import Team
from cases.models import ApiClient, ApiKey, Case, Queue, RoutingRule, Scope, secret_text

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from caspix_client import sign  # the standalone client, imported as upstream systems do

Signed = Callable[..., Any]


def issue(client: ApiClient) -> tuple[ApiKey, bytes]:
    raw = secrets.token_bytes(32)
    key = ApiKey(client=client, key_id=f"{client.source}-{uuid.uuid4().hex[:8]}")
    key.secret = secret_text(raw)
    key.save()
    return key, raw


@pytest.fixture
def api_client(db: None) -> ApiClient:
    return ApiClient.objects.create(name="Card monitoring", source="tms", scopes=[s.value for s in Scope])


@pytest.fixture
def api_key(api_client: ApiClient) -> tuple[ApiKey, bytes]:
    return issue(api_client)


@pytest.fixture
def routing(db: None) -> dict[str, Queue]:
    """A card-fraud queue for large card alerts, and a catch-all triage queue."""
    cards = Team.objects.create(slug="cards", name="Card fraud")
    triage = Team.objects.create(slug="triage", name="Triage")
    queues = {
        "cards": Queue.objects.create(slug="cards", name="Card fraud", team=cards),
        "triage": Queue.objects.create(slug="triage", name="Triage", team=triage),
    }
    RoutingRule.objects.create(
        position=10,
        name="large card fraud",
        scenario="card-velocity",
        currency="EUR",
        min_amount=1000,
        queue=queues["cards"],
        priority=Case.Priority.HIGH,
    )
    RoutingRule.objects.create(position=100, name="everything else", queue=queues["triage"], priority=Case.Priority.LOW)
    return queues


def alert(external_id: str = "A-1", customer_id: str = "CUST-1", **fields: Any) -> dict[str, Any]:
    """A valid alert, as an upstream system sends it."""
    document: dict[str, Any] = {
        "external_id": external_id,
        "scenario": "card-velocity",
        "score": 87.5,
        "occurred_at": "2026-11-24T10:15:00Z",
        "subject": {
            "customer_id": customer_id,
            "name": "Erika Mustermann",
            "national_id": "T22000129",
            "date_of_birth": "1964-08-12",
            "country": "DE",
        },
        "accounts": [{"number": "DE89 3704 0044 0532 0130 00", "currency": "EUR"}],
        "transactions": [
            {
                "external_id": "T-1",
                "occurred_at": "2026-11-24T10:14:00+01:00",
                "amount": "1250.00",
                "currency": "EUR",
                "direction": "debit",
                "channel": "card_not_present",
                "account": "DE89370400440532013000",
                "card_number": "4111 1111 1111 1111",
                "counterparty": {"name": "Example Shop", "country": "NL"},
            }
        ],
        "raw": {"rule": "velocity-3", "pan": "4111111111111111"},
    }
    document.update(fields)
    return document


@pytest.fixture
def signed(client: Client, api_key: tuple[ApiKey, bytes]) -> Signed:
    """``signed(method, path, payload, idempotency_key=..., key=..., headers=...)``: a signed request."""
    key, secret = api_key

    def send(
        method: str,
        path: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        body: bytes | None = None,
        as_key: tuple[ApiKey, bytes] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Any:
        signer, raw = as_key or (key, secret)
        data = body if body is not None else (b"" if payload is None else json.dumps(payload).encode())
        all_headers = sign(method, path, data, signer.key_id, raw)
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        all_headers.update(headers or {})
        return client.generic(method, path, data=data, content_type="application/json", headers=all_headers, **extra)

    return send
