"""The managers' dashboard: what the bank's casework adds up to, never what a case holds.

Two kinds of figure. *Now*: the open cases by queue, team, age and SLA, as they stand when the
page is asked for. *In the period* (whole days, in the server's time zone, UTC): the cases closed,
the alerts received and the reports drafted, submitted and answered. The team filter keeps the
cases of the queues the team owns today, and the alerts and reports of those cases.

Every queryset starts at ``restrict(user, "aggregate")``: holders of ``reporting.view_dashboard``
count every case of the bank (``cases.models.WHOLE_BANK``) and read nothing else. What leaves this
module is counts, the names of queues, teams and sources, scenario codes and analysts' usernames:
never a customer's name or identifier, nor anything a case holds. Each figure is one aggregate
query (GROUP BY in the database) read from an index alone at 1,000,000 cases; docs/DASHBOARD.md
gives each one's definition and its SQL, and bench/bench_dashboard.py their cost.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Team, User
from cases.models import Action, Alert, ApiClient, Case, Queue
from caspix.downloads import csv_cell
from reporting.models import Report
from reporting.report_forms import DateInput

#: An open case is at risk when its SLA falls due within this time (and has not passed yet).
AT_RISK = datetime.timedelta(hours=4)
#: The ages of open cases, in days since they opened: (label, from, up to but not including).
AGES: tuple[tuple[str, int, int | None], ...] = (
    ("Under 1 day", 0, 1),
    ("1 to 3 days", 1, 3),
    ("3 to 7 days", 3, 7),
    ("7 to 30 days", 7, 30),
    ("Over 30 days", 30, None),
)
DEFAULT_WEEKS = 8  # the period the page opens on: this ISO week and the seven before it
LONGEST = 366  # days in a period at most: every figure of the period costs its rows
CHART_ROWS = 20  # a chart of many rows draws the first ones; its table lists them all
NO_ASSIGNEE = "(no assignee)"
REASONS = tuple(Case.ClosureReason.values)  # read once: the enum builds the list anew each time


# --- the filters ------------------------------------------------------------------------------------


def weeks_before(end: datetime.date) -> datetime.date:
    """The Monday :data:`DEFAULT_WEEKS` ISO weeks back from ``end``, counting its own week."""
    monday = end - datetime.timedelta(days=end.weekday())
    try:
        return monday - datetime.timedelta(weeks=DEFAULT_WEEKS - 1)
    except OverflowError:  # a last day in the first weeks of year 1
        return datetime.date.min


class DashboardFilterForm(forms.Form):
    """The period and the team, from the query string; both optional, each checked."""

    start = forms.DateField(
        label="From",
        required=False,
        widget=DateInput,
        help_text=f"The first day counted. By default the Monday {DEFAULT_WEEKS - 1} weeks before this one.",
    )
    end = forms.DateField(
        label="To", required=False, widget=DateInput, help_text="The last day counted, today at the latest."
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        required=False,
        to_field_name="slug",
        empty_label="All teams",
        help_text="The cases of the queues the team owns, and their alerts and reports.",
    )

    def __init__(self, data: Mapping[str, Any] | None, *, user: User | Any) -> None:
        super().__init__(data)
        team: Any = self.fields["team"]
        team.queryset = Team.objects.restrict(user, "aggregate").order_by("name")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        today = timezone.localdate()
        end = data.get("end") or today
        start = data.get("start") or weeks_before(end)
        if end > today:
            self.add_error("end", f"The last day is today ({today.isoformat()}) at the latest.")
        elif start > end:
            self.add_error("start", "The first day comes before the last day.")
        elif (end - start).days >= LONGEST:
            self.add_error("start", f"A period is {LONGEST} days at most: choose a later first day.")
        data["start"], data["end"] = start, end
        return data


@dataclass(frozen=True)
class Scope:
    """What one dashboard counts: for whom, over which whole days, for which team, at what time."""

    user: User | Any
    start: datetime.date
    end: datetime.date
    team: Team | None
    now: datetime.datetime

    @classmethod
    def of(cls, user: User | Any, cleaned: Mapping[str, Any]) -> Scope:
        return cls(user, cleaned["start"], cleaned["end"], cleaned["team"], timezone.now())

    @property
    def since(self) -> datetime.datetime:
        return _midnight(self.start)

    @property
    def until(self) -> datetime.datetime:
        """The first instant after the period: the midnight that ends its last day."""
        return _midnight(self.end + datetime.timedelta(days=1))

    def filters(self) -> dict[str, str]:
        """The filters as the query string and the ledger carry them."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "team": self.team.slug if self.team else "",
        }

    def weeks(self) -> list[datetime.date]:
        """The Monday of every ISO week the period touches."""
        monday = self.start - datetime.timedelta(days=self.start.weekday())
        return [monday + datetime.timedelta(weeks=n) for n in range((self.end - monday).days // 7 + 1)]


def _midnight(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def week_label(monday: datetime.date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


# --- what a figure is ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """How a table is drawn: which of its columns, as bars or lines.

    ``by_row`` draws each row as a line across the columns named in ``series`` (weeks); otherwise
    each column of ``series`` is a set of bars, one bar per row. ``rows`` keeps the first rows only.
    ``tones`` name the colour of each set where it means something (``static/caspix/dashboard.js``
    knows ``danger``, ``warning``, ``ok``, ``neutral``); otherwise the palette goes round.
    """

    kind: str = "bar"
    series: tuple[int, ...] = (1,)
    by_row: bool = False
    stacked: bool = False
    horizontal: bool = False
    rows: int | None = None
    tones: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """One figure: its rows as the page and the CSV give them, how it is counted, how it is drawn."""

    name: str  # in the export's URL and file name, and the ledger event's object id
    title: str
    counted: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str | int, ...], ...]
    chart: Chart = field(default_factory=Chart)

    @property
    def script_id(self) -> str:
        return f"chart-data-{self.name}"

    def chart_data(self) -> dict[str, Any]:
        """What ``static/caspix/dashboard.js`` draws: the table's own numbers, nothing more."""
        chart, rows = self.chart, self.rows[: self.chart.rows]
        if chart.by_row:
            labels = [self.columns[i] for i in chart.series]
            datasets = [{"label": str(row[0]), "data": [row[i] for i in chart.series]} for row in rows]
        else:
            labels = [str(row[0]) for row in rows]
            datasets = [{"label": self.columns[i], "data": [row[i] for row in rows]} for i in chart.series]
        return {
            "title": self.title,
            "kind": chart.kind,
            "stacked": chart.stacked,
            "horizontal": chart.horizontal,
            "tones": list(chart.tones),
            "labels": labels,
            "datasets": datasets,
        }


@dataclass(frozen=True)
class Dashboard:
    """The page's figures: the open cases as they stand, then what happened in the period."""

    now: list[Table]
    period: list[Table]


@dataclass(frozen=True)
class Names:
    """The teams and queues counted (all, or the chosen team and its queues), by id."""

    teams: dict[int, str]
    queues: dict[int, tuple[str, int]]  # id: (name, team id)


def names_of(scope: Scope) -> Names:
    teams = Team.objects.restrict(scope.user, "aggregate").order_by("name")
    queues = Queue.objects.restrict(scope.user, "aggregate").order_by("name")
    if scope.team is not None:
        teams, queues = teams.filter(pk=scope.team.pk), queues.filter(team=scope.team)
    return Names(
        dict(teams.values_list("pk", "name")),
        {pk: (name, team) for pk, name, team in queues.values_list("pk", "name", "team_id")},
    )


def _counted(condition: Q | None = None) -> Count:
    """Cases counted, those meeting ``condition`` if given. By their queue, never null and in both
    indexes the counts read: ``COUNT(*)`` takes no filter in Django, and the id is in neither."""
    return Count("queue", filter=condition)


def _cases(scope: Scope, names: Names) -> QuerySet[Case]:
    """The cases counted: every one, or those of the chosen team's queues (named by id, so that
    PostgreSQL reads their indexes rather than joining every case to its queue)."""
    cases = Case.objects.restrict(scope.user, Action.AGGREGATE).order_by()
    return cases.filter(queue_id__in=list(names.queues)) if scope.team is not None else cases


# --- now: the open cases ------------------------------------------------------------------------------


def _age(now: datetime.datetime, low: int, high: int | None) -> Q:
    """Opened ``low`` days ago or earlier, and later than ``high`` days ago."""
    older = Q(opened_at__lte=now - datetime.timedelta(days=low))
    return older if high is None else older & Q(opened_at__gt=now - datetime.timedelta(days=high))


def open_counts(scope: Scope, names: Names) -> dict[int, Counter[str]]:
    """Per queue, the open cases: all, by age bucket (``age0``…), breached, at risk, without SLA."""
    now = scope.now
    ages = {f"age{n}": _counted(_age(now, low, high)) for n, (_, low, high) in enumerate(AGES)}
    rows = (
        _cases(scope, names)
        .exclude(status=Case.Status.CLOSED)
        .values("queue_id")
        .annotate(
            open=_counted(),
            breached=_counted(Q(sla_due_at__lte=now)),
            at_risk=_counted(Q(sla_due_at__gt=now, sla_due_at__lte=now + AT_RISK)),
            no_sla=_counted(Q(sla_due_at__isnull=True)),
            **ages,
        )
    )
    return {row.pop("queue_id"): Counter(row) for row in rows}


def _sla_row(name: str, counted: Counter[str]) -> tuple[str | int, ...]:
    within = counted["open"] - counted["breached"] - counted["at_risk"] - counted["no_sla"]
    return (name, counted["breached"], counted["at_risk"], within, counted["no_sla"])


def open_tables(scope: Scope, names: Names) -> list[Table]:
    counts = open_counts(scope, names)
    by_team: dict[int, Counter[str]] = {team: Counter() for team in names.teams}
    for queue, (_, team) in names.queues.items():
        by_team[team].update(counts.get(queue, Counter()))
    everything = sum(by_team.values(), Counter())
    return [
        Table(
            "open-queues",
            "Open cases by queue",
            "Every case not closed now, whatever its status (new, in progress, escalated, reporting, "
            "pending approval), in the queue it sits in.",
            ("Queue", "Team", "Open cases"),
            tuple(
                (name, names.teams[team], counts.get(queue, Counter())["open"])
                for queue, (name, team) in names.queues.items()
            ),
            Chart(series=(2,), horizontal=True),
        ),
        Table(
            "open-teams",
            "Open cases by team",
            "The open cases of the queues each team owns today.",
            ("Team", "Open cases"),
            tuple((name, by_team[team]["open"]) for team, name in names.teams.items()),
            Chart(horizontal=True),
        ),
        Table(
            "ageing",
            "Age of the open cases",
            "The open cases by the time since they were opened: a case opened exactly 3 days ago is in 3 to 7 days.",
            ("Age", "Open cases"),
            tuple((label, everything[f"age{n}"]) for n, (label, _, _) in enumerate(AGES)),
        ),
        Table(
            "sla",
            "SLA of the open cases by team",
            f"Breached: the SLA due time has passed. At risk: it falls within the next "
            f"{AT_RISK.seconds // 3600} hours. Within SLA: later than that. Cases without an SLA apart.",
            ("Team", "Breached", "At risk", "Within SLA", "No SLA"),
            tuple(_sla_row(name, by_team[team]) for team, name in names.teams.items()),
            Chart(series=(1, 2, 3, 4), stacked=True, horizontal=True, tones=("danger", "warning", "ok", "neutral")),
        ),
    ]


# --- in the period: closed cases --------------------------------------------------------------------


@dataclass(frozen=True)
class Closed:
    """The cases closed in the period: by team and ISO week (its Monday), by assignee (None: no
    one) and week, and by closure reason."""

    by_team: dict[int, Counter[datetime.date]]
    by_analyst: dict[int | None, Counter[datetime.date]]
    reasons: Counter[str]


def week_of(column: str, weeks: list[datetime.date]) -> models.Expression:
    """The Monday of the ISO week in which ``column`` falls, among ``weeks`` (the period's), found
    by halving them: ``CASE WHEN column < <midnight of the middle Monday> THEN <the earlier half>
    ELSE <the later half> END``, so that a year costs six comparisons a row. Cheaper in PostgreSQL
    than ``date_trunc`` on every row, the same on SQLite, and in the period's time zone."""
    if len(weeks) == 1:
        return models.Value(weeks[0], output_field=models.DateField())
    middle = len(weeks) // 2
    return models.Case(
        models.When(**{f"{column}__lt": _midnight(weeks[middle])}, then=week_of(column, weeks[:middle])),
        default=week_of(column, weeks[middle:]),
        output_field=models.DateField(),
    )


def closed_counts(scope: Scope, names: Names) -> Closed:
    """One query, grouped by assignee, queue and week with a count per reason (thousands of rows
    for every team over months: tuples, folded as they come)."""
    reasons = {reason: _counted(Q(closure_reason=reason)) for reason in REASONS}
    rows = (
        _cases(scope, names)
        .filter(status=Case.Status.CLOSED, closed_at__gte=scope.since, closed_at__lt=scope.until)
        .annotate(week=week_of("closed_at", scope.weeks()))
        .values_list("assignee_id", "queue_id", "week")
        .annotate(closed=_counted(), **reasons)
    )
    closed = Closed({team: Counter() for team in names.teams}, defaultdict(Counter), Counter())
    for assignee, queue, week, count, *by_reason in rows:
        closed.by_team[names.queues[queue][1]][week] += count
        closed.by_analyst[assignee][week] += count
        for reason, counted in zip(REASONS, by_reason, strict=True):
            closed.reasons[reason] += counted
    return closed


def _weekly(name: str, per_week: Mapping[datetime.date, int], weeks: list[datetime.date]) -> tuple[str | int, ...]:
    counts = [per_week.get(monday, 0) for monday in weeks]
    return (name, *counts, sum(counts))


def closed_tables(scope: Scope, names: Names) -> list[Table]:
    closed = closed_counts(scope, names)
    weeks = scope.weeks()
    usernames = dict(
        User.objects.restrict(scope.user, "aggregate")
        .filter(pk__in=[pk for pk in closed.by_analyst if pk is not None])
        .values_list("pk", "username")
    )
    analysts = sorted(
        (
            _weekly(usernames.get(pk, NO_ASSIGNEE) if pk else NO_ASSIGNEE, counted, weeks)
            for pk, counted in closed.by_analyst.items()
        ),
        key=lambda row: (-int(row[-1]), str(row[0])),
    )
    columns = tuple(week_label(monday) for monday in weeks)
    span = tuple(range(1, len(weeks) + 1))
    partial = "The first and last weeks count only their days within the period."
    return [
        Table(
            "closed-teams",
            "Cases closed per team and week",
            "The cases closed in the period, by the ISO week (Monday to Sunday) they were closed in, in "
            f"the queues each team owns today. A case reopened since is not counted. {partial}",
            ("Team", *columns, "Total"),
            tuple(_weekly(name, closed.by_team[team], weeks) for team, name in names.teams.items()),
            Chart(kind="line", series=span, by_row=True),
        ),
        Table(
            "closed-analysts",
            "Cases closed per analyst and week",
            "The same closed cases, by the analyst assigned to each when it was closed (a closed "
            f"case is assigned to no one else). The chart stacks the weeks of the {CHART_ROWS} "
            f"analysts who closed most; the table lists every one. {partial}",
            ("Analyst", *columns, "Total"),
            tuple(analysts),
            Chart(series=span, stacked=True, horizontal=True, rows=CHART_ROWS),
        ),
        Table(
            "closure-reasons",
            "Closure reasons",
            "The same closed cases, by the reason each was closed for.",
            ("Reason", "Closed cases"),
            tuple((label, closed.reasons[value]) for value, label in Case.ClosureReason.choices),
            Chart(horizontal=True),
        ),
    ]


# --- in the period: alerts and reports -------------------------------------------------------------------


def alert_counts(scope: Scope, names: Names) -> list[dict[str, Any]]:
    """The alerts received in the period, by source (API client) and scenario."""
    alerts = Alert.objects.restrict(scope.user, Action.AGGREGATE).filter(
        received_at__gte=scope.since, received_at__lt=scope.until
    )
    if scope.team is not None:
        alerts = alerts.filter(case__in=_cases(scope, names).values("pk"))
    return list(alerts.order_by().values("client_id", "scenario").annotate(alerts=Count("*")))


def _ranked(counted: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counted.items(), key=lambda item: (-item[1], item[0])))


def alert_tables(scope: Scope, names: Names) -> list[Table]:
    rows = alert_counts(scope, names)
    sources = dict(ApiClient.objects.restrict(scope.user, "aggregate").values_list("pk", "name"))
    by_source: Counter[str] = Counter(dict.fromkeys(sources.values(), 0))
    by_scenario: Counter[str] = Counter()
    for row in rows:
        by_source[sources[row["client_id"]]] += row["alerts"]
        by_scenario[row["scenario"]] += row["alerts"]
    team = " With a team, the alerts of the cases in its queues." if scope.team else ""
    return [
        Table(
            "alert-sources",
            "Alerts by source",
            f"The alerts received in the period (when Caspix received them), by the API client that sent them.{team}",
            ("Source", "Alerts"),
            _ranked(by_source),
            Chart(horizontal=True),
        ),
        Table(
            "alert-scenarios",
            "Alerts by scenario",
            f"The same alerts, by the scenario (the rule) their source named. The chart shows the "
            f"{CHART_ROWS} most frequent.",
            ("Scenario", "Alerts"),
            _ranked(by_scenario),
            Chart(horizontal=True, rows=CHART_ROWS),
        ),
    ]


def report_counts(scope: Scope, names: Names) -> dict[str, int]:
    """Reports drafted, submitted, acknowledged and rejected in the period."""
    reports = Report.objects.restrict(scope.user, Action.AGGREGATE)
    if scope.team is not None:
        reports = reports.filter(case__in=_cases(scope, names).values("pk"))
    days = (scope.start, scope.end)
    answered = Q(answered_on__range=days)
    acknowledged = Q(status=Report.Status.ACKNOWLEDGED)
    counts: dict[str, int] = reports.aggregate(
        drafted=Count("pk", filter=Q(created_at__gte=scope.since, created_at__lt=scope.until)),
        submitted=Count("pk", filter=Q(submitted_on__range=days)),
        acknowledged=Count("pk", filter=answered & acknowledged),
        rejected=Count("pk", filter=answered & ~acknowledged),
    )
    return counts


def report_tables(scope: Scope, names: Names) -> list[Table]:
    counts = report_counts(scope, names)
    return [
        Table(
            "reports",
            "Reports to the FIU",
            "Reports about the cases counted: drafted (started) in the period; submitted (on the "
            "submission date recorded) in the period; answered by the FIU in the period, acknowledged "
            "or rejected. A report keeps its latest answer only: one rejected and then acknowledged "
            "counts as acknowledged (the ledger keeps every rejection).",
            ("Reports", "Count"),
            (
                ("Drafted", counts["drafted"]),
                ("Submitted", counts["submitted"]),
                ("Acknowledged by the FIU", counts["acknowledged"]),
                ("Rejected by the FIU", counts["rejected"]),
            ),
        )
    ]


# --- the page and its exports ------------------------------------------------------------------------------

NOW = (open_tables,)
PERIOD = (closed_tables, alert_tables, report_tables)
#: Each table by name, with the function that makes it (and the others of its query).
TABLES = {
    "open-queues": open_tables,
    "open-teams": open_tables,
    "ageing": open_tables,
    "sla": open_tables,
    "closed-teams": closed_tables,
    "closed-analysts": closed_tables,
    "closure-reasons": closed_tables,
    "alert-sources": alert_tables,
    "alert-scenarios": alert_tables,
    "reports": report_tables,
}


def dashboard(scope: Scope) -> Dashboard:
    names = names_of(scope)
    return Dashboard(
        now=[table for make in NOW for table in make(scope, names)],
        period=[table for make in PERIOD for table in make(scope, names)],
    )


def table(scope: Scope, name: str) -> Table:
    """One table by name (a ``KeyError`` for an unknown one), computing only its own query."""
    made = TABLES[name](scope, names_of(scope))
    return next(one for one in made if one.name == name)


def to_csv(made: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(column) for column in made.columns])
    writer.writerows([csv_cell(value) for value in row] for row in made.rows)
    return out.getvalue()
