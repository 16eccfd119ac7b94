"""The analysts' queue: the cases they may see, filtered, most urgent first, a page at a time.

Most urgent first means the earliest SLA due time (cases without one last), then the highest
priority, then the oldest (the case number). Pages are cut by keyset, not by offset: the link to
the next page carries the position of the last case shown (``after``), so a page costs the same
at the millionth case as at the first, and a case opened meanwhile never shifts a page.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import Count, DateTimeField, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from cases.models import NO_DUE, Action, Case, CaseQuerySet

PAGE_SIZE = 50
ANY_STATUS = "any"
_CURSOR = re.compile(r"\A([0-9T:+.\-]{19,40})~([1-4])~([1-9][0-9]{0,11})\Z")


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Open (not closed)"), (ANY_STATUS, "Any status"), *Case.Status.choices], required=False
    )
    priority = forms.TypedChoiceField(
        choices=[("", "Any priority"), *Case.Priority.choices], coerce=int, empty_value=None, required=False
    )
    sla = forms.ChoiceField(
        label="SLA",
        choices=[
            ("", "Any"),
            ("overdue", "Overdue"),
            ("today", "Due within 24 hours"),
            ("later", "Due later"),
            ("none", "No SLA"),
        ],
        required=False,
    )
    assignee = forms.ChoiceField(choices=[("", "Anyone or no one"), ("me", "Me"), ("nobody", "No one")], required=False)
    scenario = forms.CharField(max_length=100, required=False)
    after = forms.CharField(max_length=80, required=False, widget=forms.HiddenInput)

    def clean_after(self) -> str:
        position: str = self.cleaned_data["after"]
        if position:
            try:
                _after(position)
            except ValueError:
                raise forms.ValidationError("not a position in the queue: start again from the first page") from None
        return position


@dataclass(frozen=True)
class Page:
    cases: list[Case]
    counts: dict[str, int]  # by status, of the cases the other filters keep (closed ones only when asked for)
    total: int
    after: str | None  # the position to ask the next page from; None on the last page


def queue_page(user: Any, filters: dict[str, Any], *, now: datetime.datetime | None = None) -> Page:
    """One page of the cases ``user`` may see that pass ``filters`` (a valid form's data): two queries."""
    now = now or timezone.now()
    cases = _filtered(Case.objects.restrict(user, Action.VIEW), user, filters, now)
    status = filters.get("status") or ""
    if status not in (ANY_STATUS, Case.Status.CLOSED):
        # Open cases, the default: partial indexes of open cases serve both queries
        # (case_open_by_queue for the counts, case_open_by_urgency for the page).
        cases = cases.exclude(status=Case.Status.CLOSED)
    counted = dict(cases.order_by().values_list("status").annotate(Count("pk")))
    by_status = {value: counted.get(value, 0) for value in Case.Status.values}
    total = sum(by_status.values())
    if status and status != ANY_STATUS:
        cases = cases.filter(status=status)
        total = by_status[status]
    ordered = by_urgency(cases)
    if filters.get("after"):
        ordered = ordered.filter(_after(filters["after"]))
    rows = list(ordered.select_related("queue", "assignee")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    after = _position(rows[-1]) if more else None
    return Page(rows, by_status, total, after)


def by_urgency(cases: CaseQuerySet) -> CaseQuerySet:
    """``cases`` most urgent first (the queue's order, and the order *Take the next case* takes
    from), each annotated with ``due``: its SLA due time, or ``NO_DUE``."""
    due = Coalesce("sla_due_at", Value(NO_DUE, output_field=DateTimeField()))
    return cases.annotate(due=due).order_by("due", "-priority", "pk")


def _filtered(cases: CaseQuerySet, user: Any, filters: dict[str, Any], now: datetime.datetime) -> CaseQuerySet:
    if filters.get("priority"):
        cases = cases.filter(priority=filters["priority"])
    sla = filters.get("sla")
    if sla == "overdue":
        cases = cases.filter(sla_due_at__lt=now).exclude(status=Case.Status.CLOSED)
    elif sla == "today":
        cases = cases.filter(sla_due_at__gte=now, sla_due_at__lt=now + datetime.timedelta(hours=24))
    elif sla == "later":
        cases = cases.filter(sla_due_at__gte=now + datetime.timedelta(hours=24))
    elif sla == "none":
        cases = cases.filter(sla_due_at__isnull=True)
    if filters.get("assignee") == "me":
        cases = cases.filter(assignee=user)
    elif filters.get("assignee") == "nobody":
        cases = cases.filter(assignee__isnull=True)
    if filters.get("scenario"):
        cases = cases.filter(title__iexact=filters["scenario"].strip())
    return cases


def _position(case: Any) -> str:
    return f"{case.due.astimezone(datetime.UTC).isoformat()}~{case.priority}~{case.pk}"


def _after(position: str) -> Q:
    """The cases after ``position`` in the queue's order (due ascending, priority descending, pk)."""
    match = _CURSOR.match(position)
    if match is None:
        raise ValueError("not a queue position")
    due = datetime.datetime.fromisoformat(match.group(1))  # ValueError for a date that is none
    if due.utcoffset() is None:
        raise ValueError("a queue position is in UTC")
    priority, pk = int(match.group(2)), int(match.group(3))
    return Q(due__gt=due) | Q(due=due, priority__lt=priority) | Q(due=due, priority=priority, pk__gt=pk)
