"""The analysts' pages at scale: the queue and the case page with 1,000,000 cases and 10,000,000
ledger events, against a page of the same layout with nothing in it.

A scratch database is filled with SQL (minutes, not hours): 50 teams of 8 analysts, 2 queues each,
1,000,000 cases spread over the queues (10 % new, 20 % in progress, 5 % escalated, 65 % closed),
an alert for each, and 10 events in the ledger for each case (opened, taken, notes, moves: the
bodies the timeline reads). One team's 100 most recent cases are then given what an analyst
adds, through the ORM (encrypted): 3 alerts with 2 transactions each, 3 notes, a file.

Measured in one process, through Django's full stack (middleware, session, permissions,
templates), the server time of each request:

* ``queue_page``: the first page of the analyst's queue, open cases (their team holds 20,000
  cases, 7,000 of them open);
* ``queue_page_filtered``: in progress, overdue, the second page (a keyset position);
* ``queue_page_all_statuses``: the first page with the closed cases too (asked for explicitly);
* ``case_page``: the page of one of the 100 filled cases, each in turn;
* the ceiling, ``/__bench__/page``: the layout with nothing in it, for the same signed-in user.

Figures: p50 and p95 in milliseconds, the ratio to the ceiling's; and the queries of each page
(target ≤ 10, ratio = 10 / queries). The target is p95 ≤ 50 ms.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from bench.database import environment, manage, measure_in_child, scratch_database
from bench.figures import Figure, emit
from bench.pages import interleaved, latency_figures

CASES = int(os.environ.get("CASPIX_BENCH_CASES", "1000000"))  # smaller for a trial run of the code
EVENTS_PER_CASE = 10
TEAMS = 50
WORKERS_PER_TEAM = 8
QUEUES_PER_TEAM = 2
FILLED = 100
ROUNDS = 300
TARGET_QUERIES = 10
REUSE = "CASPIX_BENCH_WORKSPACE_DATABASE"  # measure again on a database filled by an earlier run


def _sql(statement: str, params: list[Any] | None = None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@dataclass(frozen=True)
class Staff:
    """What :func:`staff` made, by id: the cases of a benchmark are spread over these."""

    queue_ids: list[int]
    user_ids: list[int]  # the analysts, team by team, WORKERS_PER_TEAM each, as the queues are
    client_id: int
    party_id: Any


def staff() -> Staff:
    """Teams, analysts and queues through the ORM, one API client and one party (also the
    dashboard's benchmark, which spreads its cases over them differently)."""
    from accounts.models import Membership, Role, RoleAssignment, Team, User
    from cases.models import ApiClient, Party, Queue

    analyst = Role.objects.get(slug="analyst")
    teams = Team.objects.bulk_create([Team(slug=f"team-{t}", name=f"Team {t}") for t in range(TEAMS)])
    Queue.objects.bulk_create(
        [Queue(slug=f"q-{t.pk}-{n}", name=f"Queue {t.pk}-{n}", team=t) for t in teams for n in range(QUEUES_PER_TEAM)]
    )
    users = User.objects.bulk_create(
        [User(username=f"worker-{t}-{n}") for t in range(TEAMS) for n in range(WORKERS_PER_TEAM)]
    )
    RoleAssignment.objects.bulk_create([RoleAssignment(user=u, role=analyst) for u in users])
    Membership.objects.bulk_create([Membership(team=teams[i // WORKERS_PER_TEAM], user=u) for i, u in enumerate(users)])
    client = ApiClient.objects.create(name="Card monitoring", source="tms", scopes=["alerts:write"])
    party = Party()
    party.customer_id = "CUST-BENCH"
    party.save()
    queue_ids = list(Queue.objects.order_by("pk").values_list("pk", flat=True))
    return Staff(queue_ids, [u.pk for u in users], client.pk, party.pk)


def populate() -> None:
    """Teams, analysts and queues through the ORM; cases, alerts and the ledger's events by SQL."""
    made = staff()
    queue_ids, user_ids = made.queue_ids, made.user_ids
    # Cases: queue by id, the assignee one of the queue's team (for those taken), 10 / 20 / 5 / 65 %
    # new / in progress / escalated / closed, opened over the last year, due by priority.
    queues, workers = len(queue_ids), WORKERS_PER_TEAM
    _sql(
        f"""
        INSERT INTO cases_case (title, queue_id, assignee_id, status, priority, opened_at, sla_due_at,
                                closure_reason, closed_at, party_id)
        SELECT 'Case ' || g,
               q.queues[1 + g %% {queues}],
               CASE WHEN s < 2 THEN NULL
                    ELSE q.users[1 + ((g %% {queues}) / {QUEUES_PER_TEAM}) * {workers} + (g / 7) %% {workers}] END,
               CASE WHEN s < 2 THEN 'new' WHEN s < 6 THEN 'in_progress' WHEN s = 6 THEN 'escalated'
                    ELSE 'closed' END,
               1 + (g / 3) %% 4,
               now() - (g %% 525600) * interval '1 minute',
               now() - (g %% 525600) * interval '1 minute' + (4 + ((g / 3) %% 4) * 40) * interval '1 hour',
               CASE WHEN s >= 7 THEN 'false_positive' ELSE '' END,
               CASE WHEN s >= 7 THEN now() - (g %% 1000) * interval '1 minute' END,
               NULL
        FROM (SELECT g, (g / {queues}) %% 20 AS s FROM generate_series(1, {CASES}) AS g) AS cases,
             (SELECT %s::int[] AS queues, %s::int[] AS users) AS q
        """,  # noqa: S608 (numbers of this module only)
        [queue_ids, user_ids],
    )
    # One alert a case (its payload is never opened by these pages).
    _sql(
        """
        INSERT INTO cases_alert (id, client_id, external_id, scenario, score, occurred_at, received_at,
                                 party_id, case_id, amount, currency, payload)
        SELECT gen_random_uuid(), %s, 'ext-' || c.id, 'card-testing', 50, c.opened_at, c.opened_at,
               %s, c.id, 10.00, 'EUR', '\\x00'::bytea
        FROM cases_case c
        """,
        [made.client_id, made.party_id],
    )
    _ledger()
    _sql("ANALYZE")


def _ledger() -> None:
    """Ten events a case, in the ledger's table, as the timeline reads them (their chain and tree
    are not built: these pages do not verify the ledger, ``bench_ledger`` measures that)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM cases_case")
        first, last = cursor.fetchone()
    kinds = [
        # (type, name, reason, before, after) as SQL expressions of g (the case id) and k (the step)
        (
            221,
            "CASE_OPENED",
            "''",
            "NULL",
            "json_build_object('queue','q','priority','High','rule','all','sla_due_at',NULL,'party','p')",
        ),
        (
            260,
            "CASE_TAKEN",
            "''",
            "json_build_object('status','new','assignee',NULL)",
            "json_build_object('status','in_progress','assignee',7)",
        ),
        (
            270,
            "NOTE_ADDED",
            "''",
            "NULL",
            (
                "json_build_object('note',md5(k::text),'thread',md5(g::text),"
                "'version',1,'sha256',encode(sha256(k::text::bytea),'hex'))"
            ),
        ),
        (
            262,
            "CASE_STATUS_CHANGED",
            "'specialist'",
            "json_build_object('status','in_progress')",
            "json_build_object('status','escalated','move','escalate','note',NULL)",
        ),
    ]
    chunk = 250_000
    for start in range(first, last + 1, chunk):
        for k in range(EVENTS_PER_CASE):
            kind, name, reason, before, after = kinds[0 if k == 0 else 1 if k == 1 else 2 + k % 2]
            cursor_sql = f"""
                INSERT INTO audit_event (seq, body, leaf, chain, integrated_at, event_type, occurred_at,
                                         actor_id, object_type, object_id)
                SELECT s.seq, s.body, sha256(s.body), sha256(s.body), now(), {kind}, s.at, 7, 'case', s.g::text
                FROM (
                    SELECT g, (g - {first}) * {EVENTS_PER_CASE} + {k} + 1 AS seq, at,
                           convert_to(json_build_object(
                               'v', 1, 'type', {kind}, 'name', '{name}',
                               'time', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                               'actor', json_build_object('id', 7, 'name', 'Worker Seven', 'role', 'analyst'),
                               'source', json_build_object('address', '10.0.0.7', 'request', md5(g::text)),
                               'object', json_build_object('type', 'case', 'id', g::text),
                               'reason', {reason}, 'before', {before}, 'after', {after}
                           )::text, 'UTF8') AS body
                    FROM (SELECT g, {k} AS k, now() - (g % 525600) * interval '1 minute' + {k} * interval '1 hour' AS at
                          FROM generate_series({start}, {min(start + chunk - 1, last)}) AS g) AS base
                ) AS s
            """  # noqa: S608 (numbers and constants of this module only)
            _sql(cursor_sql)


def fill(cases: list[Any], author: Any) -> None:
    """What an analyst adds to a case, through the ORM (encrypted, as in use)."""
    import hashlib

    from django.utils import timezone

    from cases.models import Account, Alert, ApiClient, Evidence, EvidenceContent, Note, Party, Transaction

    client = ApiClient.objects.get(source="tms")
    for n, case in enumerate(cases):
        party = Party()
        party.customer_id, party.name, party.national_id = f"CUST-{n}", f"Customer {n}", f"AB{n:06d}C"
        party.save()
        case.party = party
        case.save(update_fields=["party"])
        account = Account(party=party, currency="EUR")
        account.number = f"GB82WEST1234569876{n:04d}"
        account.save()
        for a in range(3):
            alert = Alert(
                client=client,
                external_id=f"filled-{n}-{a}",
                scenario="card-testing",
                occurred_at=timezone.now(),
                party=party,
                case=case,
                amount=49,
                currency="EUR",
            )
            alert.payload = "{}"
            alert.save()
            for t in range(2):
                tx = Transaction(
                    alert=alert,
                    account=account,
                    occurred_at=timezone.now(),
                    amount=10 + t,
                    currency="EUR",
                    minor_units=2,
                    direction="debit",
                    channel="card_not_present",
                    card_last_four="4242",
                )
                tx.counterparty_name, tx.counterparty_account = "Shop", f"DE8937040044053201300{n % 10}"
                tx.save()
        for v in range(3):
            note = Note(case=case, author=author)
            note.body = f"Note {v} on the case: the customer called back and confirmed the purchases."
            note.save()
        data = b"date,amount\n2026-11-24,49.99\n"
        evidence = Evidence.objects.create(
            case=case,
            filename="extract.csv",
            content_type="text/plain",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            added_by=author,
        )
        content = EvidenceContent(evidence=evidence)
        content.data = data
        content.save()


def measure_main() -> None:
    """Run in a child process on the scratch database: prints the figures as JSON."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from cases.models import Case
    from tests.conftest import client_for

    reused = bool(os.environ.get(REUSE))
    if not reused:
        populate()
    user = User.objects.get(username="worker-7-3")
    filled = list(Case.objects.restrict(user, "work").exclude(status=Case.Status.CLOSED).order_by("-pk")[:FILLED])
    if not reused:
        fill(filled, user)
        _sql("VACUUM ANALYZE")  # the tables as autovacuum leaves them once they have settled

    client: Client = client_for(user)
    client.defaults["HTTP_HOST"] = "localhost"  # outside the test runner "testserver" is no allowed host
    from urllib.parse import urlencode

    from cases.queue import QueueFilterForm, queue_page

    filters = QueueFilterForm({"status": "in_progress", "sla": "overdue"})
    assert filters.is_valid()
    after = queue_page(user, filters.cleaned_data).after
    second = "?" + urlencode({"status": "in_progress", "sla": "overdue", "after": after or ""})
    rng = random.Random(3)
    pages: dict[str, Any] = {
        "bare_page": lambda: "/__bench__/page",
        "queue_page": lambda: "/work/",
        "queue_page_filtered": lambda: "/work/" + second,
        "queue_page_all_statuses": lambda: "/work/?status=any",
        "case_page": lambda: f"/work/cases/{rng.choice(filled).pk}/",
    }
    queries: dict[str, int] = {}
    for name, url in pages.items():
        for _ in range(20):  # warm: templates compiled, data keys cached, plans made
            target = url()
            response = client.get(target)
            if response.status_code != 200:
                raise RuntimeError(f"{target} answered {response.status_code}: {response.content[:2000]!r}")
        with CaptureQueriesContext(connection) as captured:
            client.get(url())
        queries[name] = len(captured)
    samples = interleaved(client, pages, ROUNDS)
    measured = ("queue_page", "queue_page_filtered", "queue_page_all_statuses", "case_page")
    for figure in latency_figures(samples, measured):
        emit(figure)
    for name in measured:
        emit(Figure.latency(f"{name}_queries", queries[name], "queries", TARGET_QUERIES))


def run() -> list[Figure]:
    kept = os.environ.get(REUSE)
    if kept:  # a database this benchmark filled before (to measure again without filling again)
        env = environment(kept, **{REUSE: kept})
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        return measure_in_child(env, "bench.bench_workspace.measure_main", timeout=5400)
    with scratch_database("bench_workspace") as database:
        env = environment(database)
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        return measure_in_child(env, "bench.bench_workspace.measure_main", timeout=5400)
