"""The managers' dashboard: every figure equals its own SQL over the seeded cases, no customer
datum reaches the page or a CSV, the filters are checked, each CSV is a ledger event with its
cells guarded against formulas, and only holders of ``reporting.view_dashboard`` reach any of it.

The world is the reports' (``reporting_world``: a customer with her identifiers, accounts and
payments, a report drafted about her case), plus an alert ingested through intake with another
customer's identifiers, and cases of every age, SLA state and closure placed by hand.
"""

# ruff: noqa: S608 (the SQL of this module is composed of its own constants; values are parameters)

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from cases.api import schemas
from cases.api.views import incoming_of
from cases.intake import ingest
from cases.models import Alert, ApiClient, Case, Party, Queue, RoutingRule
from caspix.downloads import csv_cell
from reporting import dashboard
from reporting.models import Report
from tests.conftest import client_for
from tests.factories import make_user
from tests.intake.conftest import alert as intake_document
from tests.recorded import events
from tests.reporting import reporting_world as rw

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DAY, HOUR = datetime.timedelta(days=1), datetime.timedelta(hours=1)
FORMULA_SCENARIO = '=HYPERLINK("https://attacker.example","open")'
# Every customer datum the world holds, and a case title: none may appear on the page or in a CSV.
PII = (
    "Layla Hassan",
    "784198512345671",
    "CUST-7001",
    rw.IBAN,
    "John Smith",
    "GB29NWBK60161331926819",
    "Acme Trading",
    "Omar Saleh",
    "Ingrid Kowalczyk",
    "T22000129",
    "CUST-INTAKE-9",
    "DE89370400440532013000",
    "DE89 3704 0044 0532 0130 00",
    "4111111111111111",
    "Structured cash deposits",
    "Mule account of Layla",
)


@dataclass
class Seeded:
    setup: rw.Reporting
    manager: User
    client: Client

    def get(self, path: str, **filters: str) -> Any:
        return self.client.get(path, filters)


def place(queue: Queue, *, opened: datetime.timedelta, **fields: Any) -> Case:
    """A case in ``queue`` opened that long ago (with its SLA, closure and assignee as given)."""
    now = timezone.now()
    return Case.objects.create(title="Mule account of Layla", queue=queue, opened_at=now - opened, **fields)


def closed(queue: Queue, ago: datetime.timedelta, reason: str, assignee: User | None) -> Case:
    return place(
        queue,
        opened=ago + 3 * DAY,
        status="closed",
        closure_reason=reason,
        closed_at=timezone.now() - ago,
        assignee=assignee,
    )


def alert_on(case: Case, client: ApiClient, scenario: str, ago: datetime.timedelta) -> Alert:
    made = Alert(
        client=client,
        external_id=f"{scenario}-{case.pk}-{ago.days}",
        scenario=scenario,
        occurred_at=timezone.now() - ago,
        received_at=timezone.now() - ago,
        party=Party.objects.first(),
        case=case,
    )
    made.payload = json.dumps({"subject": {"name": "Layla Hassan", "national_id": "784198512345671"}})
    made.save()
    return made


def report_on(
    setup: rw.Reporting, case: Case, status: str, *, drafted: int, submitted: int | None, answered: int | None
) -> None:
    """A report on ``case`` in ``status``, drafted, submitted and answered that many days ago."""
    today = timezone.localdate()
    report = Report(
        case=case,
        profile=setup.profile,
        report_code="STR",
        status=status,
        suspicion_on=today - datetime.timedelta(days=drafted),
        due_on=today,
        created_by=setup.analyst,
        created_at=timezone.now() - drafted * DAY,
        submitted_on=None if submitted is None else today - datetime.timedelta(days=submitted),
        answered_on=None if answered is None else today - datetime.timedelta(days=answered),
    )
    report.content = json.dumps({"subject": {"name": "Layla Hassan", "national_id": "784198512345671"}})
    report.save()


def intake_alert(cards: Queue) -> None:
    """An alert about another customer, ingested as the API ingests it (identifiers encrypted)."""
    client = ApiClient.objects.create(name="Card monitoring", source="tms", scopes=["alerts:write"])
    RoutingRule.objects.create(position=1, name="all", queue=cards, priority=Case.Priority.HIGH)
    subject = {"customer_id": "CUST-INTAKE-9", "name": "Ingrid Kowalczyk", "national_id": "T22000129"}
    document = intake_document("INTAKE-1", subject=subject, occurred_at=timezone.now().isoformat())
    ingest(client, [incoming_of(schemas.validate(document))])


@pytest.fixture
def seeded(db: None) -> Seeded:
    setup = rw.build()
    rw.drafted(setup)
    users, queues = setup.world.users, setup.world.queues
    cards, aml = queues["cards"], queues["aml"]
    intake_alert(cards)
    # open cases of every age and SLA state
    now = timezone.now()
    place(cards, opened=2 * HOUR, sla_due_at=now - HOUR, assignee=users["analyst"])
    place(cards, opened=2 * DAY, sla_due_at=now + 2 * HOUR, status="in_progress", assignee=users["analyst"])
    place(aml, opened=5 * DAY, sla_due_at=now + 10 * HOUR, status="escalated")
    place(aml, opened=10 * DAY, sla_due_at=now - 5 * DAY)
    place(cards, opened=40 * DAY, status="pending_approval")
    # closed cases, in the last eight weeks and before them
    closed(cards, DAY, "false_positive", users["analyst"])
    closed(cards, 9 * DAY, "confirmed_fraud", users["lead"])
    closed(cards, 9 * DAY, "false_positive", users["analyst"])
    referred = closed(aml, 20 * DAY, "referred", users["other_analyst"])
    duplicate = closed(aml, 20 * DAY, "duplicate", None)
    closed(cards, 70 * DAY, "false_positive", users["analyst"])
    # alerts from a second source, one named like a formula, one before the period
    issuing = ApiClient.objects.create(name="Card issuing", source="issuing", scopes=["alerts:write"])
    alert_on(referred, issuing, "structuring", 20 * DAY)
    alert_on(duplicate, issuing, FORMULA_SCENARIO, 19 * DAY)
    alert_on(duplicate, issuing, "structuring", 80 * DAY)
    # reports: submitted, acknowledged, rejected (a draft again), and one out of the period
    report_on(setup, referred, "submitted", drafted=15, submitted=10, answered=None)
    report_on(setup, referred, "acknowledged", drafted=30, submitted=25, answered=5)
    report_on(setup, duplicate, "draft", drafted=30, submitted=25, answered=6)
    report_on(setup, duplicate, "abandoned", drafted=100, submitted=None, answered=None)
    manager = setup.world.users["manager"]
    return Seeded(setup, manager, client_for(manager))


# --- the figures, each against its own SQL -----------------------------------------------------------------


def rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


TEAM = "(%(team)s = '' OR t.slug = %(team)s)"
FROM_CASES = "cases_case c JOIN cases_queue q ON q.id = c.queue_id JOIN accounts_team t ON t.id = q.team_id"


def weekly(
    counts: list[tuple[str, datetime.date, int]], names: list[str], weeks: list[datetime.date]
) -> list[tuple[Any, ...]]:
    table = []
    for name in names:
        per_week = [sum(n for who, week, n in counts if who == name and week == monday) for monday in weeks]
        table.append((name, *per_week, sum(per_week)))
    return table


def by_count(pairs: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(pairs, key=lambda row: (-row[-1], row[0]))


def age(low: int, high: int | None) -> str:
    """Open cases opened ``low`` days ago or before, and after ``high`` days ago."""
    condition = f"c.opened_at <= %(now)s - interval '{low} days'"
    if high is not None:
        condition += f" AND c.opened_at > %(now)s - interval '{high} days'"
    return f"COUNT(*) FILTER (WHERE {condition})"


def expected(start: datetime.date, end: datetime.date, team: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each table as SQL written here, apart from the code under test, counts it."""
    since = datetime.datetime.combine(start, datetime.time.min, tzinfo=datetime.UTC)
    until = datetime.datetime.combine(end + DAY, datetime.time.min, tzinfo=datetime.UTC)
    p = {"team": team, "now": timezone.now(), "since": since, "until": until, "start": start, "end": end}
    monday = start - datetime.timedelta(days=start.weekday())
    weeks = [monday + datetime.timedelta(weeks=n) for n in range((end - monday).days // 7 + 1)]
    teams = [name for (name,) in rows(f"SELECT t.name FROM accounts_team t WHERE {TEAM} ORDER BY t.name", p)]
    closing = (
        f"FROM {FROM_CASES} LEFT JOIN accounts_user u ON u.id = c.assignee_id WHERE c.status = 'closed' "
        f"AND c.closed_at >= %(since)s AND c.closed_at < %(until)s AND {TEAM}"
    )
    week = "(date_trunc('week', c.closed_at AT TIME ZONE 'UTC'))::date"
    alerts = (
        "a.received_at >= %(since)s AND a.received_at < %(until)s AND a.case_id IN "
        f"(SELECT c.id FROM {FROM_CASES} WHERE {TEAM})"
    )
    reasons = dict(rows(f"SELECT c.closure_reason, COUNT(*) {closing} GROUP BY 1", p))
    answered = "r.answered_on BETWEEN %(start)s AND %(end)s"
    (reports,) = rows(
        "SELECT COUNT(*) FILTER (WHERE r.created_at >= %(since)s AND r.created_at < %(until)s), "
        "COUNT(*) FILTER (WHERE r.submitted_on BETWEEN %(start)s AND %(end)s), "
        f"COUNT(*) FILTER (WHERE {answered} AND r.status = 'acknowledged'), "
        f"COUNT(*) FILTER (WHERE {answered} AND r.status <> 'acknowledged') "
        f"FROM reporting_report r JOIN {FROM_CASES} ON c.id = r.case_id WHERE {TEAM}",
        p,
    )
    return {
        "open-queues": rows(
            "SELECT q.name, t.name, COUNT(c.id) FROM cases_queue q JOIN accounts_team t ON t.id = q.team_id "
            f"LEFT JOIN cases_case c ON c.queue_id = q.id AND c.status <> 'closed' WHERE {TEAM} "
            "GROUP BY q.id, q.name, t.name ORDER BY q.name",
            p,
        ),
        "open-teams": rows(
            "SELECT t.name, COUNT(c.id) FROM accounts_team t LEFT JOIN cases_queue q ON q.team_id = t.id "
            f"LEFT JOIN cases_case c ON c.queue_id = q.id AND c.status <> 'closed' WHERE {TEAM} "
            "GROUP BY t.id, t.name ORDER BY t.name",
            p,
        ),
        "ageing": list(
            zip(
                ["Under 1 day", "1 to 3 days", "3 to 7 days", "7 to 30 days", "Over 30 days"],
                rows(
                    f"SELECT {age(0, 1)}, {age(1, 3)}, {age(3, 7)}, {age(7, 30)}, {age(30, None)} "
                    f"FROM {FROM_CASES} WHERE c.status <> 'closed' AND {TEAM}",
                    p,
                )[0],
                strict=True,
            )
        ),
        "sla": rows(
            "SELECT t.name, COUNT(c.id) FILTER (WHERE c.sla_due_at <= %(now)s), "
            "COUNT(c.id) FILTER (WHERE c.sla_due_at > %(now)s AND c.sla_due_at <= %(now)s + interval '4 hours'), "
            "COUNT(c.id) FILTER (WHERE c.sla_due_at > %(now)s + interval '4 hours'), "
            "COUNT(c.id) FILTER (WHERE c.sla_due_at IS NULL) "
            "FROM accounts_team t LEFT JOIN cases_queue q ON q.team_id = t.id "
            f"LEFT JOIN cases_case c ON c.queue_id = q.id AND c.status <> 'closed' WHERE {TEAM} "
            "GROUP BY t.id, t.name ORDER BY t.name",
            p,
        ),
        "closed-teams": weekly(rows(f"SELECT t.name, {week}, COUNT(*) {closing} GROUP BY 1, 2", p), teams, weeks),
        "closed-analysts": by_count(
            weekly(
                counts := rows(
                    f"SELECT coalesce(u.username, '(no assignee)'), {week}, COUNT(*) {closing} GROUP BY 1, 2", p
                ),
                sorted({name for name, _, _ in counts}),
                weeks,
            )
        ),
        "closure-reasons": [(label, reasons.get(value, 0)) for value, label in Case.ClosureReason.choices],
        "alert-sources": by_count(
            rows(
                "SELECT s.name, COUNT(a.id) FROM cases_apiclient s "
                f"LEFT JOIN cases_alert a ON a.client_id = s.id AND {alerts} GROUP BY s.id, s.name",
                p,
            )
        ),
        "alert-scenarios": by_count(
            rows(f"SELECT a.scenario, COUNT(*) FROM cases_alert a WHERE {alerts} GROUP BY 1", p)
        ),
        "reports": list(
            zip(["Drafted", "Submitted", "Acknowledged by the FIU", "Rejected by the FIU"], reports, strict=True)
        ),
    }


def shown(response: Any) -> dict[str, list[tuple[Any, ...]]]:
    figures = response.context["figures"]
    return {table.name: [tuple(row) for row in table.rows] for table in [*figures.now, *figures.period]}


def test_it_counts_each_figure_as_its_sql_does(seeded: Seeded) -> None:
    response = seeded.get("/dashboard/")
    assert response.status_code == 200
    today = timezone.localdate()
    start = today - datetime.timedelta(days=today.weekday(), weeks=7)
    assert shown(response) == expected(start, today, "")
    assert set(shown(response)) == set(dashboard.TABLES)


@pytest.mark.parametrize(
    ("days", "team"), [((30, 5), ""), ((60, 0), "cards"), ((90, 3), "aml"), ((3, 0), ""), ((365, 0), "cards")]
)
def test_it_counts_each_figure_as_its_sql_does_with_filters(seeded: Seeded, days: tuple[int, int], team: str) -> None:
    today = timezone.localdate()
    start, end = today - datetime.timedelta(days=days[0]), today - datetime.timedelta(days=days[1])
    response = seeded.get("/dashboard/", start=start.isoformat(), end=end.isoformat(), team=team)
    assert response.status_code == 200
    assert shown(response) == expected(start, end, team)


def test_it_counts_what_the_world_holds(seeded: Seeded) -> None:
    """The SQL above is right too: a few figures read off the seeding by hand."""
    figures = shown(seeded.get("/dashboard/"))
    # the world's 4 in the card-fraud queue (the report's among them), the ingested one, 3 placed
    assert figures["open-teams"] == [("Anti-money laundering", 7), ("Card fraud", 8)]
    assert figures["closure-reasons"] == [
        ("False positive", 2),
        ("Confirmed fraud", 1),
        ("Confirmed genuine by the customer", 0),
        ("Referred elsewhere", 1),
        ("Duplicate of another case", 1),
    ]
    assert {row[0]: row[-1] for row in figures["closed-analysts"]} == {
        "bob": 2,
        "charlie": 1,
        "oscar": 1,
        "(no assignee)": 1,
    }
    assert dict(figures["alert-sources"]) == {"Card issuing": 2, "Card monitoring": 1, "Core banking": 4}
    assert dict(figures["reports"]) == {
        "Drafted": 4,
        "Submitted": 3,
        "Acknowledged by the FIU": 1,
        "Rejected by the FIU": 1,
    }


# --- no customer data, anywhere -------------------------------------------------------------------------


@pytest.mark.parametrize("team", ["", "cards", "aml"])
def test_it_shows_no_customer_data_on_the_page_or_in_a_csv(seeded: Seeded, team: str) -> None:
    start = (timezone.localdate() - datetime.timedelta(days=120)).isoformat()
    page = seeded.get("/dashboard/", team=team, start=start)
    texts = {"page": page.content.decode()}
    for name in dashboard.TABLES:
        download = seeded.get(reverse("reporting:dashboard_export", args=[name]), team=team, start=start)
        assert download.status_code == 200
        texts[name] = download.content.decode()
    for where, text in texts.items():
        assert [value for value in PII if value in text] == [], where
    analysts = {row[0] for row in csv.reader(io.StringIO(texts["closed-analysts"]))}
    assert {"oscar", "bob"} & analysts  # the analysts' usernames are there, the customers' names are not


# --- the filters ------------------------------------------------------------------------------------------------


def test_it_opens_on_the_last_eight_iso_weeks_of_every_team(seeded: Seeded) -> None:
    response = seeded.get("/dashboard/")
    today = timezone.localdate()
    scope = response.context["scope"]
    assert (scope.start, scope.end, scope.team) == (
        today - datetime.timedelta(days=today.weekday(), weeks=7),
        today,
        None,
    )
    assert scope.start.weekday() == 0
    closed_teams = next(table for table in response.context["figures"].period if table.name == "closed-teams")
    assert len(closed_teams.columns) == 1 + 8 + 1  # team, eight weeks, total
    assert f"?start={scope.start.isoformat()}&amp;end={today.isoformat()}&amp;team=" in response.content.decode()


def test_it_keeps_to_the_chosen_team(seeded: Seeded) -> None:
    figures = shown(seeded.get("/dashboard/", team="aml"))
    assert [row[0] for row in figures["open-teams"]] == ["Anti-money laundering"]
    assert [row[0] for row in figures["open-queues"]] == ["Anti-money laundering queue"]
    assert {row[0] for row in figures["closed-analysts"]} == {"oscar", "(no assignee)"}


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"start": "2026-02-30"}, "From: Enter a valid date."),
        ({"end": "yesterday"}, "To: Enter a valid date."),
        ({"start": "{today}", "end": "{week_ago}"}, "From: The first day comes before the last day."),
        ({"end": "{tomorrow}"}, "To: The last day is today ({today}) at the latest."),
        ({"start": "{year_ago}"}, "From: A period is 366 days at most: choose a later first day."),
        ({"team": "nowhere"}, "Team: Select a valid choice. That choice is not one of the available choices."),
    ],
)
@pytest.mark.parametrize("where", ["page", "csv"])
def test_it_refuses_bad_filters_with_a_clear_error(
    seeded: Seeded, filters: dict[str, str], message: str, where: str
) -> None:
    today = timezone.localdate()
    days = {
        "today": today,
        "week_ago": today - datetime.timedelta(days=7),
        "tomorrow": today + DAY,
        "year_ago": today - datetime.timedelta(days=366),
    }
    given = {name: value.format(**days) for name, value in filters.items()}
    path = "/dashboard/" if where == "page" else reverse("reporting:dashboard_export", args=["sla"])
    before = len(events())
    response = seeded.get(path, **given)
    assert response.status_code == 400
    assert message.format(**days) in response.content.decode().replace("&#x27;", "'")
    assert "figures" not in response.context
    assert len(events()) == before  # nothing was exported


def test_it_takes_a_period_of_exactly_366_days_and_a_single_day(seeded: Seeded) -> None:
    today = timezone.localdate()
    assert seeded.get("/dashboard/", start=(today - datetime.timedelta(days=365)).isoformat()).status_code == 200
    assert seeded.get("/dashboard/", start=today.isoformat(), end=today.isoformat()).status_code == 200


# --- the exports ---------------------------------------------------------------------------------------------


def test_it_exports_a_table_as_csv_and_records_it(seeded: Seeded) -> None:
    today = timezone.localdate()
    start = today - datetime.timedelta(days=30)
    response = seeded.get(
        reverse("reporting:dashboard_export", args=["closed-analysts"]), start=start.isoformat(), team="aml"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="caspix-closed-analysts-{start}-{today}.csv"'
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert (table[0][0], table[0][-1]) == ("Analyst", "Total")
    assert sorted(row[0] for row in table[1:]) == ["(no assignee)", "oscar"]
    (recorded,) = [event for event in events() if event["name"] == "DASHBOARD_EXPORTED"]
    assert recorded["object"] == {"type": "dashboard", "id": "closed-analysts"}
    assert recorded["after"] == {"start": start.isoformat(), "end": today.isoformat(), "team": "aml"}
    assert recorded["actor"]["name"] == "dana"  # type: ignore[index]


def test_it_records_no_export_of_a_table_that_does_not_exist(seeded: Seeded) -> None:
    assert seeded.get("/dashboard/nowhere.csv").status_code == 404
    assert [event for event in events() if event["name"] == "DASHBOARD_EXPORTED"] == []


def test_it_gives_each_table_its_download_with_the_filters_shown(seeded: Seeded) -> None:
    page = seeded.get("/dashboard/", team="cards").content.decode()
    for name in dashboard.TABLES:
        assert f'href="/dashboard/{name}.csv?start=' in page
        assert "team=cards" in page.split(f'href="/dashboard/{name}.csv?', 1)[1].split('"', 1)[0]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+44 20", "'+44 20"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTab", "'\tTab"),
        ("\rReturn", "'\rReturn"),
        ("Card fraud", "Card fraud"),
        ("a=b", "a=b"),
        (12, "12"),
    ],
)
def test_it_writes_a_cell_a_spreadsheet_reads_as_text(value: str | int, written: str) -> None:
    assert csv_cell(value) == written


def test_it_guards_a_scenario_named_like_a_formula(seeded: Seeded) -> None:
    response = seeded.get(reverse("reporting:dashboard_export", args=["alert-scenarios"]))
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert ["'" + FORMULA_SCENARIO, "1"] in table
    assert [row for row in table if row[0].startswith("=")] == []


# --- the charts' data and the page's assets ------------------------------------------------------------------


def test_it_draws_each_chart_from_its_tables_numbers(seeded: Seeded) -> None:
    response = seeded.get("/dashboard/")
    page = response.content.decode()
    for table in [*response.context["figures"].now, *response.context["figures"].period]:
        marker = f'<script id="{table.script_id}" type="application/json">'
        assert marker in page
        data = json.loads(page.split(marker, 1)[1].split("</script>", 1)[0])
        assert data == table.chart_data()
        assert f'<canvas data-chart="{table.script_id}"' in page
    sla = next(table for table in response.context["figures"].now if table.name == "sla").chart_data()
    assert [dataset["label"] for dataset in sla["datasets"]] == ["Breached", "At risk", "Within SLA", "No SLA"]


def test_it_loads_chart_js_from_the_app_with_the_pages_nonce(seeded: Seeded) -> None:
    page = seeded.get("/dashboard/").content.decode()
    assert '<script src="/static/vendor/chartjs/chart.umd.min.js" nonce="' in page
    assert '<script src="/static/caspix/dashboard.js" nonce="' in page
    assert "<style" not in page
    assert " style=" not in page


def test_it_vendors_chart_js_at_the_pinned_version() -> None:
    manifest = json.loads((ROOT / "static/vendor/VENDORED.json").read_text(encoding="utf-8"))
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]["chart.js"]
    assert manifest["chart.js"]["version"] == pinned
    for name, digest in manifest["chart.js"]["files"].items():
        assert f"sha256:{hashlib.sha256((ROOT / 'static/vendor' / name).read_bytes()).hexdigest()}" == digest
    assert f"Chart.js v{pinned}\n" in (ROOT / "static/vendor/chartjs/chart.umd.min.js").read_text(encoding="utf-8")
    assert (ROOT / "static/vendor/chartjs/LICENSE.md").exists()


# --- who may see it ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin", "analyst", "lead", "auditor", "roleless", "other_analyst"])
def test_it_refuses_everyone_but_the_holders_of_view_dashboard(seeded: Seeded, persona: str) -> None:
    client = client_for(seeded.setup.world.users[persona])
    assert client.get("/dashboard/").status_code == 403
    assert client.get(reverse("reporting:dashboard_export", args=["sla"])).status_code == 403
    assert [event for event in events() if event["name"] == "DASHBOARD_EXPORTED"] == []


def test_it_sends_the_anonymous_to_sign_in(seeded: Seeded) -> None:
    response = Client().get(reverse("reporting:dashboard_export", args=["sla"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_it_counts_nothing_for_a_user_the_doors_keep_out(seeded: Seeded) -> None:
    """The door, not the view, decides: through it an analyst counts no case, queue or team."""
    analyst = seeded.setup.world.users["analyst"]
    scope = dashboard.Scope(analyst, timezone.localdate() - 30 * DAY, timezone.localdate(), None, timezone.now())
    made = dashboard.dashboard(scope)
    assert [table.rows for table in made.now] == [(), (), tuple((label, 0) for label, _, _ in dashboard.AGES), ()]
    assert all(not row[1:] or not any(row[1:]) for table in made.period for row in table.rows)


def test_it_opens_every_case_alert_and_report_to_a_manager_without_a_subquery(seeded: Seeded) -> None:
    manager = seeded.manager
    alerts = Alert.objects.restrict(manager, "aggregate")
    assert alerts.count() == Alert.objects.count()
    assert "SELECT" not in str(alerts.query).split("FROM", 1)[1]  # no "case IN (every case)"
    assert Report.objects.restrict(manager, "aggregate").count() == Report.objects.count()
    analyst = seeded.setup.world.users["analyst"]
    assert Alert.objects.restrict(analyst, "aggregate").count() == 0
    assert Report.objects.restrict(analyst, "aggregate").count() == 0


def test_it_answers_a_custom_role_holding_view_dashboard(seeded: Seeded) -> None:
    from accounts.models import Role, RoleAssignment, RolePermission
    from accounts.permissions import Perm

    role = Role.objects.create(slug="cfo", name="Chief financial officer")
    RolePermission.objects.create(role=role, permission=Perm.VIEW_DASHBOARD)
    cfo = make_user(username="gina")
    RoleAssignment.objects.create(user=cfo, role=role)
    assert client_for(cfo).get("/dashboard/").status_code == 200


# --- its cost -----------------------------------------------------------------------------------------------


def test_it_costs_the_same_queries_for_one_case_or_many(seeded: Seeded, django_assert_num_queries: Any) -> None:
    seeded.get("/dashboard/")  # the session and the permissions warm
    with django_assert_num_queries(QUERIES):
        seeded.get("/dashboard/")
    cards = seeded.setup.world.queues["cards"]
    for n in range(30):
        closed(cards, n * DAY, "duplicate", seeded.setup.world.users["lead"])
        place(cards, opened=n * DAY)
    with django_assert_num_queries(QUERIES):
        seeded.get("/dashboard/")


QUERIES = 13
