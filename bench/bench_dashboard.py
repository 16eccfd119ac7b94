"""The managers' dashboard at scale: 1,000,000 cases, 1,300,000 alerts and 10,000 reports,
against a page of the same layout with nothing in it.

A scratch database gets the workspace benchmark's people (``bench_workspace.staff``: 50 teams of
8 analysts, 2 queues each) and, by SQL, cases spread as a bank's are over a year rather than as
the workspace benchmark needs them:

* opened evenly over the last 365 days and written in that order (as a bank receives them), on
  every queue, at every priority, due by priority (critical 4 h, high 24 h, medium 72 h, low
  168 h: the shipped SLA);
* closed 3 to 28 days after opening, by one of the queue's team's analysts, for one of the five
  closure reasons (60 % false positive); 2 % are never closed (the old backlog), so about 6 %
  of the cases are open (about 60,000), of every age;
* one alert each, and a second for 30 % of them, from three sources and twelve scenarios;
* a report to the FIU for 1 % of them, drafted two days after the case opened, half of them
  submitted, some acknowledged and some rejected by the FIU.

The indexes of cases and alerts are then rebuilt: one bulk insert leaves them split half-empty
wherever its order is not theirs (closures are not written in the order they happen), whereas a
year of rows arriving in time order leaves them compact, as a rebuilt index is.

Measured in one process, through Django's full stack (middleware, session, permissions,
templates), as a signed-in manager, the server time of each request:

* ``dashboard_default``: ``/dashboard/`` as it opens, the last 8 weeks of every team;
* ``dashboard_filtered``: ranges of 1, 4, 8 or 13 weeks ending on a day of the last 4 weeks,
  every team or one, drawn anew for each request;
* ``dashboard_export``: one table as CSV (with its ledger event), drawn anew for each request;
* the ceiling, ``/__bench__/page``: the layout with nothing in it, for the same signed-in user.

Figures: p50 and p95 in milliseconds, the ratio to the ceiling's; and the queries of the page
(target ≤ 20, ratio = 20 / queries). The target is p95 ≤ 200 ms.
"""

from __future__ import annotations

import datetime
import os
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from bench.database import environment, manage, measure_in_child, scratch_database
from bench.figures import Figure, emit
from bench.pages import interleaved, latency_figures

CASES = int(os.environ.get("CASPIX_BENCH_CASES", "1000000"))  # smaller for a trial run of the code
ROUNDS = 300
TARGET_QUERIES = 20
SCENARIOS = 12
REUSE = "CASPIX_BENCH_DASHBOARD_DATABASE"  # measure again on a database filled by an earlier run


def _sql(statement: str, params: list[Any] | None = None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def populate() -> None:
    """The workspace benchmark's people, then cases, alerts and reports by SQL."""
    from accounts.models import Role, RoleAssignment, User
    from bench.bench_workspace import QUEUES_PER_TEAM, WORKERS_PER_TEAM, staff
    from cases.models import ApiClient
    from reporting.models import FiuProfile

    made = staff()
    sources = [made.client_id] + [
        ApiClient.objects.create(name=name, source=source, scopes=["alerts:write"]).pk
        for name, source in (("Card issuing", "cards"), ("AML engine", "aml"))
    ]
    profile = FiuProfile.objects.create(slug="fiu", name="Bench FIU", rentity_id=1, currency_code_local="EUR")
    manager = User.objects.create(username="manager-0")
    RoleAssignment.objects.create(user=manager, role=Role.objects.get(slug="manager"))
    queues = len(made.queue_ids)
    # r: a number from 0 to 99 drawn from the case's number (Knuth's multiplicative hash), for
    # everything spread by share; age: minutes since it opened, the last case the newest.
    _sql(
        f"""
        INSERT INTO cases_case (title, queue_id, assignee_id, status, priority, opened_at, sla_due_at,
                                closure_reason, closed_at, party_id)
        SELECT 'Case ' || g,
               s.queues[1 + g %% {queues}],
               CASE WHEN closes OR r %% 10 >= 3
                    THEN s.users[1 + ((g %% {queues}) / {QUEUES_PER_TEAM}) * {WORKERS_PER_TEAM}
                                 + (g / 7) %% {WORKERS_PER_TEAM}] END,
               CASE WHEN closes THEN 'closed' WHEN r %% 10 < 3 THEN 'new' WHEN r %% 10 < 8 THEN 'in_progress'
                    WHEN r %% 10 = 8 THEN 'escalated' ELSE 'pending_approval' END,
               priority,
               now() - age * interval '1 minute',
               now() - age * interval '1 minute'
                   + (CASE priority WHEN 4 THEN 4 WHEN 3 THEN 24 WHEN 2 THEN 72 ELSE 168 END) * interval '1 hour',
               CASE WHEN NOT closes THEN ''
                    WHEN r %% 10 < 6 THEN 'false_positive' WHEN r %% 10 = 6 THEN 'confirmed_fraud'
                    WHEN r %% 10 = 7 THEN 'confirmed_genuine' WHEN r %% 10 = 8 THEN 'referred' ELSE 'duplicate' END,
               CASE WHEN closes THEN now() - age * interval '1 minute' + workdays * interval '1 minute' END,
               %s
        FROM (
            SELECT g, r, age, priority, (3 * 1440 + r * 360) AS workdays,
                   r >= 2 AND age > 3 * 1440 + r * 360 AS closes
            FROM (SELECT g, (g * 2654435761 %% 4294967296) %% 100 AS r,
                         ({CASES} - g)::bigint * 525600 / {CASES} AS age, 1 + (g / 3) %% 4 AS priority
                  FROM generate_series(1, {CASES}) AS g) AS drawn
        ) AS c,
        (SELECT %s::int[] AS queues, %s::int[] AS users) AS s
        """,  # noqa: S608 (numbers of this module only)
        [made.party_id, made.queue_ids, made.user_ids],
    )
    # One alert a case, a second for 30 % of them; three sources, twelve scenarios.
    for extra, share in ((0, 100), (1, 30)):
        _sql(
            f"""
            INSERT INTO cases_alert (id, client_id, external_id, scenario, score, occurred_at, received_at,
                                     party_id, case_id, amount, currency, payload)
            SELECT gen_random_uuid(), (%s::int[])[1 + c.id %% 3], 'ext-{extra}-' || c.id,
                   'scenario-' || ((c.id / 5 + {extra}) %% {SCENARIOS}), 50, c.opened_at,
                   c.opened_at + {extra} * interval '2 hours', %s, c.id, 10.00, 'EUR', '\\x00'::bytea
            FROM cases_case c WHERE c.id %% 100 < {share}
            """,  # noqa: S608 (numbers of this module only)
            [sources, made.party_id],
        )
    # A report for 1 % of the cases: drafted two days after the case opened; from the 40th
    # share on submitted a week later, then acknowledged (60th on) or rejected (90th on).
    _sql(
        """
        INSERT INTO reporting_report (key, report_code, status, suspicion_on, due_on, content, revision,
                                      created_at, updated_at, fiu_ref_number, submitted_on, channel,
                                      answered_on, fiu_feedback, editors, case_id, created_by_id, profile_id)
        SELECT gen_random_uuid(), 'STR',
               CASE WHEN r < 30 THEN 'draft' WHEN r < 35 THEN 'pending_approval' WHEN r < 40 THEN 'abandoned'
                    WHEN r < 60 THEN 'submitted' WHEN r < 90 THEN 'acknowledged' ELSE 'draft' END,
               drafted::date, drafted::date + 14, '\\x00'::bytea, 1, drafted, drafted,
               CASE WHEN r >= 40 THEN 'FIU-' || id ELSE '' END,
               CASE WHEN r >= 40 THEN drafted::date + 7 END,
               CASE WHEN r >= 40 THEN 'web_upload' ELSE '' END,
               CASE WHEN r >= 60 THEN drafted::date + 10 END,
               '\\x00'::bytea, '[]'::jsonb, id, assignee, %s
        FROM (SELECT c.id, c.opened_at + interval '2 days' AS drafted, (c.id / 100) %% 100 AS r,
                     coalesce(c.assignee_id, %s) AS assignee
              FROM cases_case c WHERE c.id %% 100 = 42 AND c.opened_at < now() - interval '2 days') AS picked
        """,
        [profile.pk, made.user_ids[0]],
    )
    _sql("REINDEX TABLE cases_case")
    _sql("REINDEX TABLE cases_alert")
    _sql("VACUUM ANALYZE")  # the tables as autovacuum leaves them once they have settled
    _sql("CHECKPOINT")  # and the load written out, not flushed while the pages are measured


def _filters(rng: random.Random, teams: list[str]) -> dict[str, str]:
    """A range of 1, 4, 8 or 13 weeks ending on a day of the last four weeks; every team or one."""
    from django.utils import timezone

    end = timezone.localdate() - datetime.timedelta(days=rng.randrange(28))
    start = end - datetime.timedelta(weeks=rng.choice((1, 4, 8, 13))) + datetime.timedelta(days=1)
    chosen = {"start": start.isoformat(), "end": end.isoformat()}
    return chosen | ({"team": rng.choice(teams)} if rng.random() < 0.5 else {})


def measure_main() -> None:
    """Run in a child process on the scratch database: prints the figures as JSON."""
    from django.db import connection
    from django.test import Client

    from accounts.models import Team, User
    from reporting.dashboard import TABLES
    from tests.conftest import client_for

    if not os.environ.get(REUSE):
        populate()
    client: Client = client_for(User.objects.get(username="manager-0"))
    client.defaults["HTTP_HOST"] = "localhost"  # outside the test runner "testserver" is no allowed host
    teams = list(Team.objects.values_list("slug", flat=True))
    tables = sorted(TABLES)
    rng = random.Random(5)
    pages: dict[str, Callable[[], str]] = {
        "bare_page": lambda: "/__bench__/page",
        "dashboard_default": lambda: "/dashboard/",
        "dashboard_filtered": lambda: "/dashboard/?" + urlencode(_filters(rng, teams)),
        "dashboard_export": lambda: f"/dashboard/{rng.choice(tables)}.csv?" + urlencode(_filters(rng, teams)),
    }
    for url in pages.values():
        for _ in range(10):  # warm: templates compiled, plans made
            target = url()
            response = client.get(target)
            if response.status_code != 200:
                raise RuntimeError(f"{target} answered {response.status_code}: {response.content[:2000]!r}")
    queries: list[str] = []

    def count(execute: Any, sql: str, *args: Any) -> Any:
        queries.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(count):
        client.get("/dashboard/")
    samples = interleaved(client, pages, ROUNDS)
    for figure in latency_figures(samples, ("dashboard_default", "dashboard_filtered", "dashboard_export")):
        emit(figure)
    emit(Figure.latency("dashboard_queries", len(queries), "queries", TARGET_QUERIES))


def run() -> list[Figure]:
    kept = os.environ.get(REUSE)
    if kept:  # a database this benchmark filled before (to measure again without filling again)
        env = environment(kept, **{REUSE: kept})
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        return measure_in_child(env, "bench.bench_dashboard.measure_main", timeout=5400)
    with scratch_database("bench_dashboard") as database:
        env = environment(database)
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        return measure_in_child(env, "bench.bench_dashboard.measure_main", timeout=5400)
