"""The alert schema on its own: what it refuses and how it names it, and how it is documented."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.test import Client

from cases.api import schemas
from tests.intake.conftest import alert

pytestmark = pytest.mark.django_db


def faults(document: Any) -> list[dict[str, str]]:
    with pytest.raises(schemas.SchemaError) as refused:
        schemas.validate(document)
    return refused.value.faults


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(alert())
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("subject", "name"), "Erika\x00Mustermann", "subject.name"),  # PostgreSQL cannot store NUL
        (("transactions", 0, "counterparty"), {"name": "Shop\ud800"}, "transactions[0].counterparty.name"),
        (("subject", "name"), None, "subject.name"),  # an optional field is left out, never null
        (("subject", "customer_id"), 42, "subject.customer_id"),  # text is a JSON string
        (("score",), "lots", "score"),
        (("score",), "-1", "score"),
        (("transactions", 0, "direction"), "sideways", "transactions[0].direction"),
        (("accounts",), [{"number": "DE89370400440532013000"}] * 21, "accounts"),
        (("subject", "date_of_birth"), "1964-02-30", "subject.date_of_birth"),
    ],
)
def test_it_refuses_naming_the_field(path: tuple[Any, ...], value: Any, field: str) -> None:
    assert field in [fault["field"] for fault in faults(changed(path, value))]


def test_it_names_every_fault_at_once() -> None:
    document = changed(("subject", "country"), "XX")
    del document["scenario"]
    document["colour"] = "red"
    assert sorted(faults(document), key=lambda fault: fault["field"]) == [
        {"field": "colour", "message": "unknown field"},
        {"field": "scenario", "message": "This field is required."},
        {"field": "subject.country", "message": "not an ISO 3166-1 alpha-2 country code"},
    ]


def test_it_refuses_what_is_not_an_object() -> None:
    assert faults(["an alert"]) == [{"field": "(body)", "message": "a JSON object is expected here"}]


def test_it_checks_fields_together_once_each_is_valid() -> None:
    document = changed(("transactions", 0, "account"), "GB82WEST12345698765432")
    document["transactions"][0]["card_token"] = "ct_abcdef"
    assert faults(document) == [
        {"field": "transactions[0].account", "message": "not one of the alert's accounts"},
        {"field": "transactions[0].card_token", "message": "give card_number or card_token, not both"},
    ]


def test_it_trims_text_tokenises_cards_and_keeps_the_currency_units() -> None:
    attrs = schemas.validate(changed(("external_id",), "  TMS-1  "))
    assert attrs["external_id"] == "TMS-1"
    transaction = attrs["transactions"][0]
    assert "card_number" not in transaction
    assert (transaction["card_last_four"], transaction["minor_units"]) == ("1111", 2)
    assert transaction["card_token"].startswith("ct_")
    assert "4111111111111111" not in repr(schemas.kept_payload(attrs))  # raw is masked as it is kept


def test_it_documents_the_models_it_validates_with(client: Client) -> None:
    description = client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = description["components"]["schemas"]
    bulk = description["paths"]["/api/v1/alerts/bulk"]["post"]["requestBody"]["content"]["application/json"]
    assert bulk["schema"] == {"$ref": "#/components/schemas/AlertBatch"}
    assert components["AlertBatch"]["items"] == {"$ref": "#/components/schemas/AlertSchema"}
    alert_schema = components["AlertSchema"]
    assert alert_schema["additionalProperties"] is False
    assert set(alert_schema["required"]) == {"external_id", "scenario", "occurred_at", "subject"}
    assert "default" not in alert_schema["properties"]["score"]  # left out, never null
    transaction = components["TransactionSchema"]["properties"]
    assert transaction["amount"]["type"] == "string"
    assert transaction["amount"]["pattern"] == schemas.AMOUNT_PATTERN
    assert transaction["occurred_at"]["format"] == "date-time"
