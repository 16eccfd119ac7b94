"""Alert intake: keep each delivered alert once, group it into its subject's open case, route new cases.

:func:`ingest` is the action behind ``POST /api/v1/alerts`` and ``/alerts/bulk``. One
transaction takes a batch of validated alerts from one API client and, for each:

1. an alert the client delivered before (same ``external_id``) is answered with the one kept,
   never stored twice (upstream systems deliver repeatedly: that is normal, not an error);
2. its subject is found by the blind index of the customer id, or created;
3. it joins its subject's open case, or opens one: the first active routing rule it meets
   chooses the queue and the priority, and the priority the SLA due time;
4. the alert, its transactions and the subject's accounts are stored, identifiers encrypted, and
   the ledger records ``ALERT_INGESTED`` (and ``CASE_OPENED``) in the same transaction.

Concurrent deliveries of the same alert, or of alerts about the same new subject, are serialised
by transaction-scoped advisory locks taken in one sorted order (no deadlock), so neither an
alert nor a subject's open case is ever made twice. The work is done in a few set queries per
batch, not per alert.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.events import EventType
from audit.ledger import Actor, Entry, record_many
from cases import outbox
from cases.models import Account, Alert, ApiClient, Case, Party, RoutingRule, Transaction
from caspix.bulk import copy_in
from caspix.crypto import blind


class NoRouteError(Exception):
    """No active routing rule takes the alert: intake is misconfigured (add a catch-all rule)."""


@dataclass
class Incoming:
    """One validated alert, as the API's schema delivers it (``cases.api.schemas``)."""

    external_id: str
    scenario: str
    occurred_at: datetime.datetime
    subject: dict[str, Any]
    score: Decimal | None = None
    accounts: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)  # what is kept, card numbers tokenised

    def amount(self) -> tuple[Decimal | None, str]:
        """The total of the transactions when they share one currency (what amount bands route on)."""
        currencies = {t["currency"] for t in self.transactions}
        if len(currencies) != 1:
            return None, ""
        return sum((t["amount"] for t in self.transactions), Decimal(0)), currencies.pop()


@dataclass(frozen=True)
class Outcome:
    alert: Alert
    created: bool  # False: a repeated delivery, answered with the alert kept the first time
    case_opened: bool = False


def actor_of_client(client: ApiClient) -> Actor:
    return Actor(None, client.name, f"api-client:{client.source}")


def ingest(
    client: ApiClient, alerts: Sequence[Incoming], *, finish: Callable[[list[Outcome]], None] | None = None
) -> list[Outcome]:
    """Keep ``alerts`` from ``client``, in order, in one transaction; ``finish`` runs inside it
    (the API stores its idempotent answer there, so that both commit or neither)."""
    now = timezone.now()
    actor = actor_of_client(client)
    with transaction.atomic(durable=True):
        _lock(
            [f"alert|{client.pk}|{alert.external_id}" for alert in alerts]
            + [f"party|{blind.normalise(blind.Kind.CUSTOMER_ID, a.subject['customer_id'])}" for a in alerts]
        )
        kept = {
            alert.external_id: alert
            for alert in Alert.objects.filter(
                client=client, external_id__in=[a.external_id for a in alerts]
            ).select_related("case")
        }
        parties = _parties([alert.subject for alert in alerts if alert.external_id not in kept], now)
        cases = _open_cases(list(parties.values()))
        rules = list(RoutingRule.objects.filter(is_active=True).select_related("queue"))
        outcomes: list[Outcome] = []
        new_alerts: list[tuple[Alert, Incoming]] = []
        opening: list[tuple[Case, RoutingRule]] = []
        for incoming in alerts:
            if incoming.external_id in kept:
                outcomes.append(Outcome(kept[incoming.external_id], created=False))
                continue
            party = parties[_customer_key(incoming.subject["customer_id"])]
            case = cases.get(party.pk)
            opened = case is None
            if case is None:
                rule = route(rules, incoming, client.source)
                case = cases[party.pk] = _new_case(incoming, rule, party, now)
                opening.append((case, rule))
            amount, currency = incoming.amount()
            alert = Alert(
                client=client,
                external_id=incoming.external_id,
                scenario=incoming.scenario,
                score=incoming.score,
                occurred_at=incoming.occurred_at,
                received_at=now,
                party=party,
                case=case,
                amount=amount,
                currency=currency,
                payload=json.dumps(incoming.payload, sort_keys=True, default=_plain),
            )
            new_alerts.append((alert, incoming))
            kept[incoming.external_id] = alert
            outcomes.append(Outcome(alert, created=True, case_opened=opened))
        accounts = _accounts([(alert.party, given) for alert, incoming in new_alerts for given in incoming.accounts])
        new_transactions = [
            _transaction(alert, accounts, given) for alert, incoming in new_alerts for given in incoming.transactions
        ]
        Case.objects.bulk_create([case for case, _ in opening])
        copy_in(Alert, [alert for alert, _ in new_alerts])
        copy_in(Transaction, new_transactions)
        record_many(
            [_opened(case, rule) for case, rule in opening]
            + [
                Entry(
                    EventType.ALERT_INGESTED,
                    object_type="alert",
                    object_id=str(alert.pk),
                    after={
                        "source": client.source,
                        "scenario": alert.scenario,
                        "case": alert.case.reference,
                        "transactions": len(incoming.transactions),
                    },
                )
                for alert, incoming in new_alerts
            ],
            actor=actor,
        )
        outbox.emit_many(
            [("case.created", _case_event(case)) for case, _ in opening]
            + [
                (
                    "alert.ingested",
                    {
                        "alert": str(alert.pk),
                        "external_id": alert.external_id,
                        "source": client.source,
                        "scenario": alert.scenario,
                        "case": alert.case.reference,
                    },
                )
                for alert, _ in new_alerts
            ]
        )
        if finish is not None:
            finish(outcomes)
    return outcomes


def _plain(value: Any) -> str:
    """JSON for what the schema parsed: timestamps and dates in ISO 8601, amounts as strings."""
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


def _lock(keys: list[str]) -> None:
    """Transaction-scoped advisory locks on ``keys``, in one order for every caller."""
    if connection.vendor != "postgresql" or not keys:
        return  # SQLite serialises writing transactions itself
    ids = sorted({int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True) for key in keys})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(id) FROM unnest(%s::bigint[]) AS id ORDER BY id", [ids])


def _customer_key(customer_id: str) -> str:
    return blind.normalise(blind.Kind.CUSTOMER_ID, customer_id)


def _parties(subjects: list[dict[str, Any]], now: datetime.datetime) -> dict[str, Party]:
    """The subjects' parties by normalised customer id: found by blind index, or made."""
    wanted: dict[str, dict[str, Any]] = {}
    for subject in subjects:
        wanted.setdefault(_customer_key(subject["customer_id"]), subject)
    if not wanted:
        return {}
    terms = {term: key for key in wanted for term in blind.terms(blind.Kind.CUSTOMER_ID, key)}
    found = {
        terms[party.customer_id_index]: party
        for party in Party.objects.filter(customer_id_index__in=terms).only("id", "customer_id_index")
    }
    made = [
        Party(
            customer_id=subject["customer_id"],
            name=subject.get("name", ""),
            national_id=subject.get("national_id", ""),
            date_of_birth=subject.get("date_of_birth"),
            country=subject.get("country", ""),
            created_at=now,
        )
        for key, subject in wanted.items()
        if key not in found
    ]
    copy_in(Party, made)  # computes the blind indexes as save() does (pre_save)
    found.update({_customer_key(party.customer_id): party for party in made})
    return found


def _open_cases(parties: list[Party]) -> dict[Any, Case]:
    """Each party's open case (the oldest, should there be several), by party id."""
    cases: dict[Any, Case] = {}
    open_cases = Case.objects.filter(party__in=parties).exclude(status=Case.Status.CLOSED)
    for case in open_cases.order_by("-opened_at").only("id", "party_id"):
        cases[case.party_id] = case
    return cases


def route(rules: Sequence[RoutingRule], incoming: Incoming, source: str) -> RoutingRule:
    amount, currency = incoming.amount()
    for rule in rules:
        if rule.matches(scenario=incoming.scenario, source=source, currency=currency, amount=amount):
            return rule
    raise NoRouteError(f"no active routing rule takes scenario {incoming.scenario!r} from {source!r}")


def sla_due(priority: int, opened_at: datetime.datetime) -> datetime.datetime:
    return opened_at + datetime.timedelta(hours=settings.INTAKE["SLA_HOURS"][Case.Priority(priority).name.lower()])


def _new_case(incoming: Incoming, rule: RoutingRule, party: Party, now: datetime.datetime) -> Case:
    return Case(
        title=incoming.scenario,
        queue=rule.queue,
        priority=rule.priority,
        party=party,
        opened_at=now,
        sla_due_at=sla_due(rule.priority, now),
    )


def _case_event(case: Case) -> dict[str, Any]:
    return {
        "case": case.reference,
        "queue": case.queue.slug,
        "priority": case.get_priority_display(),
        "status": case.status,
        "sla_due_at": case.sla_due_at.isoformat() if case.sla_due_at else None,
    }


def _opened(case: Case, rule: RoutingRule) -> Entry:
    return Entry(
        EventType.CASE_OPENED,
        object_type="case",
        object_id=case.pk,
        after={
            "queue": rule.queue.slug,
            "priority": case.get_priority_display(),
            "rule": rule.name,
            "sla_due_at": case.sla_due_at.isoformat() if case.sla_due_at else None,
            "party": str(case.party_id),
        },
    )


def _accounts(wanted: list[tuple[Party, dict[str, Any]]]) -> dict[tuple[Any, str], Account]:
    """The accounts the alerts name, by (party id, normalised number): found in one query, or made."""
    by_key: dict[tuple[Any, str], tuple[Party, dict[str, Any]]] = {}
    for party, given in wanted:
        by_key.setdefault((party.pk, blind.normalise(blind.Kind.ACCOUNT_NUMBER, given["number"])), (party, given))
    if not by_key:
        return {}
    terms = {term: number for _, number in by_key for term in blind.terms(blind.Kind.ACCOUNT_NUMBER, number)}
    found = {
        (account.party_id, terms[account.number_index]): account
        for account in Account.objects.filter(
            party__in={party.pk for party, _ in by_key.values()}, number_index__in=terms
        ).only("id", "party_id", "number_index")
    }
    made = [
        Account(party=party, number=given["number"], currency=given.get("currency", ""))
        for key, (party, given) in by_key.items()
        if key not in found
    ]
    copy_in(Account, made)
    found.update(
        {(account.party_id, blind.normalise(blind.Kind.ACCOUNT_NUMBER, account.number)): account for account in made}
    )
    return found


def _transaction(alert: Alert, accounts: dict[tuple[Any, str], Account], given: dict[str, Any]) -> Transaction:
    account = None
    if given.get("account"):
        account = accounts.get((alert.party_id, blind.normalise(blind.Kind.ACCOUNT_NUMBER, given["account"])))
    counterparty = given.get("counterparty") or {}
    return Transaction(
        alert=alert,
        account=account,
        external_id=given.get("external_id", ""),
        occurred_at=given["occurred_at"],
        amount=given["amount"],
        currency=given["currency"],
        minor_units=given["minor_units"],
        direction=given["direction"],
        channel=given["channel"],
        counterparty_name=counterparty.get("name", ""),
        counterparty_account=counterparty.get("account", ""),
        counterparty_country=counterparty.get("country", ""),
        card_token=given.get("card_token", ""),
        card_last_four=given.get("card_last_four", ""),
    )
