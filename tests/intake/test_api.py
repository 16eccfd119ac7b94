"""The intake API end to end: signed requests in, alerts kept once, grouped, routed and recorded."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from caspix_client import sign  # on the path that conftest gives, as upstream systems import it
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.events import EventType
from cases.models import Alert, ApiClient, ApiKey, Case, IdempotencyRecord, Party, Queue, Transaction
from tests import recorded
from tests.intake.conftest import Signed, alert, issue

pytestmark = pytest.mark.django_db

ALERTS = "/api/v1/alerts"
BULK = "/api/v1/alerts/bulk"


def events(event_type: EventType) -> list[dict[str, Any]]:
    return [event for event in recorded.sequenced_and_pending() if event["type"] == event_type]


def problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/api/v1/problems/{kind}"
    assert body["status"] == status
    return dict(body)


def test_it_keeps_an_alert_opens_a_routed_case_and_records_both(signed: Signed, routing: dict[str, Queue]) -> None:
    response = signed("POST", ALERTS, alert(), idempotency_key="k-1")
    assert response.status_code == 201, response.content
    answer = response.json()
    kept = Alert.objects.get(pk=answer["id"])
    assert (answer["external_id"], answer["result"]) == ("A-1", "created")
    assert answer["case"] == kept.case.reference
    case = kept.case
    assert (case.queue, case.priority, case.status) == (routing["cards"], Case.Priority.HIGH, Case.Status.NEW)
    assert case.sla_due_at == case.opened_at + datetime.timedelta(hours=24)
    assert [e["object"]["id"] for e in events(EventType.ALERT_INGESTED)] == [str(kept.pk)]
    assert events(EventType.CASE_OPENED)[0]["after"]["rule"] == "large card fraud"


def test_it_encrypts_identifiers_and_never_keeps_a_card_number(signed: Signed, routing: dict[str, Queue]) -> None:
    signed("POST", ALERTS, alert(), idempotency_key="k-1")
    party = Party.objects.get()
    assert (party.customer_id, party.national_id, str(party.date_of_birth)) == ("CUST-1", "T22000129", "1964-08-12")
    assert Party.objects.filter(national_id_index__matches="t 2200 0129").exists()
    transaction = Transaction.objects.get()
    assert transaction.card_last_four == "1111"
    assert transaction.card_token.startswith("ct_")
    assert (str(transaction.amount), transaction.minor_units) == ("1250.0000", 2)
    with connection.cursor() as cursor:
        for table in ("cases_party", "cases_alert", "cases_transaction", "cases_account"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (constant names)
            stored = repr(cursor.fetchall())
            for plain in ("4111111111111111", "4111 1111 1111 1111", "T22000129", "Mustermann", "DE89", "CUST-1"):
                assert plain not in stored, (table, plain)
    payload = json.loads(Alert.objects.get().payload)
    assert "card_number" not in payload["transactions"][0]
    assert payload["raw"]["pan"] == "[card]"


def test_it_answers_a_repeated_delivery_with_the_alert_it_kept(signed: Signed, routing: dict[str, Queue]) -> None:
    first = signed("POST", ALERTS, alert(), idempotency_key="k-1").json()
    again = signed("POST", ALERTS, alert(), idempotency_key="k-2")  # another key: a redelivery
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["result"]) == (first["id"], "duplicate")
    assert Alert.objects.count() == 1


def test_it_replays_the_first_answer_to_a_retry_with_the_same_key(signed: Signed, routing: dict[str, Queue]) -> None:
    first = signed("POST", ALERTS, alert(), idempotency_key="k-1")
    retry = signed("POST", ALERTS, alert(), idempotency_key="k-1")
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert retry["Idempotent-Replayed"] == "true"
    assert (Alert.objects.count(), IdempotencyRecord.objects.count()) == (1, 1)


def test_it_refuses_the_same_key_for_another_request(signed: Signed, routing: dict[str, Queue]) -> None:
    signed("POST", ALERTS, alert(), idempotency_key="k-1")
    problem(signed("POST", ALERTS, alert("A-2"), idempotency_key="k-1"), 422, "idempotency-key-reused")
    assert Alert.objects.count() == 1


def test_it_answers_409_while_the_same_key_is_in_flight(
    signed: Signed, routing: dict[str, Queue], api_client: ApiClient
) -> None:
    holder = _other_connection_holding(api_client, "k-1")  # another request is being served
    try:
        problem(signed("POST", ALERTS, alert(), idempotency_key="k-1"), 409, "idempotency-key-in-flight")
    finally:
        holder.close()
    assert Alert.objects.count() == 0
    assert signed("POST", ALERTS, alert(), idempotency_key="k-1").status_code == 201


def _other_connection_holding(client: ApiClient, key: str) -> Any:
    import hashlib

    import psycopg
    from django.conf import settings

    lock = int.from_bytes(hashlib.sha256(f"idempotency|{client.pk}|{key}".encode()).digest()[:8], "big", signed=True)
    database = settings.DATABASES["default"]
    other = psycopg.connect(dbname=database["NAME"], host=database["HOST"], user=database["USER"], autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s)", [lock])
    return other


def test_it_requires_an_idempotency_key(signed: Signed, routing: dict[str, Queue]) -> None:
    problem(signed("POST", ALERTS, alert()), 400, "idempotency-key-required")


def test_it_groups_alerts_of_one_customer_into_their_open_case(signed: Signed, routing: dict[str, Queue]) -> None:
    first = signed("POST", ALERTS, alert("A-1", "CUST-1"), idempotency_key="k-1").json()
    second = signed("POST", ALERTS, alert("A-2", "cust 1"), idempotency_key="k-2").json()  # the same id, typed apart
    other = signed("POST", ALERTS, alert("A-3", "CUST-2"), idempotency_key="k-3").json()
    assert first["case"] == second["case"] != other["case"]
    assert Party.objects.count() == 2
    Case.objects.filter(alerts__external_id="A-1").update(status=Case.Status.CLOSED)
    reopened = signed("POST", ALERTS, alert("A-4", "CUST-1"), idempotency_key="k-4").json()
    assert reopened["case"] != first["case"]  # a closed case takes no more alerts


@pytest.mark.parametrize(
    ("changes", "queue", "priority"),
    [
        ({}, "cards", Case.Priority.HIGH),
        ({"scenario": "mule-account"}, "triage", Case.Priority.LOW),  # another scenario
        ({"amount": "999.99"}, "triage", Case.Priority.LOW),  # under the band
        ({"currency": "USD"}, "triage", Case.Priority.LOW),  # another currency
        ({"amount": "1000"}, "cards", Case.Priority.HIGH),  # the band's lower bound is inclusive
    ],
)
def test_it_routes_by_the_first_rule_that_matches(
    signed: Signed, routing: dict[str, Queue], changes: dict[str, str], queue: str, priority: int
) -> None:
    document = alert()
    if "scenario" in changes:
        document["scenario"] = changes["scenario"]
    for name in ("amount", "currency"):
        if name in changes:
            document["transactions"][0][name] = changes[name]
    response = signed("POST", ALERTS, document, idempotency_key="k-1")
    case = Alert.objects.get(pk=response.json()["id"]).case
    assert (case.queue.slug, case.priority) == (queue, priority)


def test_it_answers_503_and_keeps_nothing_when_no_rule_routes(signed: Signed, routing: dict[str, Queue]) -> None:
    from cases.models import RoutingRule

    RoutingRule.objects.filter(name="everything else").update(is_active=False)
    document = alert()
    document["scenario"] = "mule-account"
    problem(signed("POST", ALERTS, document, idempotency_key="k-1"), 503, "not-routed")
    assert (Alert.objects.count(), Case.objects.count(), IdempotencyRecord.objects.count()) == (0, 0, 0)


def test_it_answers_each_alert_of_a_bulk_request(signed: Signed, routing: dict[str, Queue]) -> None:
    signed("POST", ALERTS, alert("A-0"), idempotency_key="k-0")
    bad = alert("A-2")
    bad["transactions"][0]["amount"] = 12.5
    response = signed(
        "POST", BULK, [alert("A-0"), alert("A-1", "CUST-9"), bad, alert("A-1", "CUST-9")], idempotency_key="b-1"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["status"] for r in body["results"]] == [200, 201, 422, 200]
    assert body["results"][2]["errors"][0]["field"] == "transactions[0].amount"
    assert body["results"][1]["id"] == body["results"][3]["id"]  # the same alert twice in one request
    assert (body["accepted"], body["rejected"]) == (3, 1)
    assert Alert.objects.count() == 2
    replay = signed(
        "POST", BULK, [alert("A-0"), alert("A-1", "CUST-9"), bad, alert("A-1", "CUST-9")], idempotency_key="b-1"
    )
    assert replay.json() == body


def test_it_refuses_a_bulk_request_over_the_limit(signed: Signed, routing: dict[str, Queue], settings: Any) -> None:
    settings.INTAKE = {**settings.INTAKE, "BULK_MAX": 2}
    problem(signed("POST", BULK, [alert(f"A-{n}") for n in range(3)], idempotency_key="b-1"), 413, "too-many-alerts")


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("transactions", 0, "amount"), 12.5, "transactions[0].amount"),  # a float is no amount
        (("transactions", 0, "amount"), "0", "transactions[0].amount"),
        (("transactions", 0, "amount"), "-5.00", "transactions[0].amount"),
        (("transactions", 0, "currency"), "XAU", "transactions[0].currency"),  # no minor units
        (("transactions", 0, "currency"), "EURO", "transactions[0].currency"),
        (("transactions", 0, "occurred_at"), "2026-11-24T10:14:00", "transactions[0].occurred_at"),  # no offset
        (("occurred_at",), "0492-10-21T04:07:26+19:56", "occurred_at"),  # an offset no zone has (Schemathesis)
        (("transactions", 0, "card_number"), "4111 1111 1111 1112", "transactions[0].card_number"),  # Luhn
        (("transactions", 0, "channel"), "carrier-pigeon", "transactions[0].channel"),
        (("subject", "country"), "XX", "subject.country"),
        (("subject", "customer_id"), "CUST#1", "subject.customer_id"),
        (("subject", "date_of_birth"), "12/08/1964", "subject.date_of_birth"),
        (("subject", "nickname"), "Eri", "subject.nickname"),  # unknown field
        (("colour",), "red", "colour"),  # unknown field at the top
        (("external_id",), "", "external_id"),
    ],
)
def test_it_refuses_invalid_input_naming_the_field(
    signed: Signed, routing: dict[str, Queue], path: tuple[Any, ...], value: Any, field: str
) -> None:
    document = alert()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    body = problem(signed("POST", ALERTS, document, idempotency_key="k-1"), 422, "invalid-request")
    assert field in [error["field"] for error in body["errors"]], body
    assert Alert.objects.count() == 0


def test_it_refuses_more_decimals_than_the_currency_has(signed: Signed, routing: dict[str, Queue]) -> None:
    document = alert()
    document["transactions"][0].update(amount="1250.5", currency="JPY")
    body = problem(signed("POST", ALERTS, document, idempotency_key="k-1"), 422, "invalid-request")
    assert body["errors"][0]["field"] == "transactions[0].amount"
    assert "JPY has 0 decimals" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"external_id": "A-1", "external_id": "A-2"}', b'{"score": NaN}', b"\xff\xfe"],
)
def test_it_refuses_a_body_that_is_not_strict_json(signed: Signed, routing: dict[str, Queue], body: bytes) -> None:
    problem(signed("POST", ALERTS, body=body, idempotency_key="k-1"), 400, "malformed-request")


def test_it_refuses_a_body_over_the_limit(signed: Signed, routing: dict[str, Queue], settings: Any) -> None:
    settings.INTAKE = {**settings.INTAKE, "MAX_BODY_BYTES": 4096}
    document = alert()
    document["raw"] = {"padding": "x" * 5000}
    problem(signed("POST", ALERTS, document, idempotency_key="k-1"), 413, "too-large")


def test_it_refuses_an_unsigned_request_and_records_it(client: Client, routing: dict[str, Queue]) -> None:
    response = client.post(ALERTS, data=json.dumps(alert()), content_type="application/json")
    problem(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"] == 'Signature realm="caspix"'
    assert events(EventType.API_REQUEST_REFUSED)[0]["reason"] == "missing_header"


def test_it_refuses_a_request_signed_for_another_path(
    client: Client, routing: dict[str, Queue], api_key: tuple[ApiKey, bytes]
) -> None:
    key, secret = api_key
    body = json.dumps(alert()).encode()
    headers = {**sign("POST", BULK, body, key.key_id, secret), "Idempotency-Key": "k-1"}  # signed for another path
    problem(
        client.generic("POST", ALERTS, data=body, content_type="application/json", headers=headers),
        401,
        "unauthenticated",
    )
    refused = events(EventType.API_REQUEST_REFUSED)[0]
    assert (refused["reason"], refused["object"]["id"]) == ("signature_mismatch", key.key_id)


def test_it_refuses_a_revoked_key_and_takes_the_next_one(
    signed: Signed, routing: dict[str, Queue], api_key: tuple[ApiKey, bytes]
) -> None:
    key, _ = api_key
    following = issue(key.client)
    key.revoked_at = timezone.now()
    key.save()
    problem(signed("POST", ALERTS, alert(), idempotency_key="k-1"), 401, "unauthenticated")
    assert signed("POST", ALERTS, alert(), idempotency_key="k-1", as_key=following).status_code == 201


def test_it_refuses_a_replayed_request(
    client: Client, routing: dict[str, Queue], api_key: tuple[ApiKey, bytes]
) -> None:
    key, secret = api_key
    body = json.dumps(alert()).encode()
    headers = {**sign("POST", ALERTS, body, key.key_id, secret), "Idempotency-Key": "k-1"}
    first = client.generic("POST", ALERTS, data=body, content_type="application/json", headers=headers)
    again = client.generic("POST", ALERTS, data=body, content_type="application/json", headers=headers)
    assert first.status_code == 201
    problem(again, 401, "unauthenticated")
    assert events(EventType.API_REQUEST_REFUSED)[0]["reason"] == "nonce_replayed"


def test_it_refuses_a_source_outside_the_client_networks(
    signed: Signed, routing: dict[str, Queue], api_client: ApiClient
) -> None:
    api_client.networks = ["10.20.0.0/16"]
    api_client.save()
    problem(signed("POST", ALERTS, alert(), idempotency_key="k-1"), 403, "source-not-allowed")
    assert signed("POST", ALERTS, alert(), idempotency_key="k-1", REMOTE_ADDR="10.20.3.4").status_code == 201


def test_it_refuses_a_client_without_the_scope(
    signed: Signed, routing: dict[str, Queue], api_client: ApiClient
) -> None:
    api_client.scopes = ["alerts:read"]
    api_client.save()
    problem(signed("POST", ALERTS, alert(), idempotency_key="k-1"), 403, "forbidden")


def test_it_holds_a_client_to_its_rate_limit(signed: Signed, routing: dict[str, Queue], api_client: ApiClient) -> None:
    api_client.rate_limit = 2
    api_client.save()
    statuses = [signed("POST", ALERTS, alert(f"A-{n}"), idempotency_key=f"k-{n}").status_code for n in range(3)]
    assert statuses[:2] == [201, 201]
    response = signed("POST", ALERTS, alert("A-9"), idempotency_key="k-9")
    problem(response, 429, "rate-limited")
    assert int(response["Retry-After"]) >= 1


def test_it_shows_a_client_its_own_alerts_only(signed: Signed, routing: dict[str, Queue]) -> None:
    created = signed("POST", ALERTS, alert(), idempotency_key="k-1").json()
    status = signed("GET", f"{ALERTS}/{created['id']}")
    assert status.status_code == 200, status.content
    assert (status.json()["case"], status.json()["case_status"]) == (created["case"], "new")
    other = ApiClient.objects.create(name="Other", source="other", scopes=["alerts:read", "alerts:write"])
    problem(signed("GET", f"{ALERTS}/{created['id']}", as_key=issue(other)), 404, "not-found")
