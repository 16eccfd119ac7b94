"""Template filters of the case pages."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def masked(value: Any, shown: int = 4) -> str:
    """An identifier with all but its last ``shown`` characters hidden: ``•••• 1234``."""
    text = str(value or "")
    if not text:
        return ""
    return "•••• " + text[-shown:] if len(text) > shown else "••••"


_HEAD = (
    '<thead><tr>{select}<th scope="col">Case</th><th scope="col">Title</th><th scope="col">Queue</th>'
    '<th scope="col">Priority</th><th scope="col">Status</th><th scope="col">SLA</th>'
    '<th scope="col">Assignee</th><th scope="col">Opened (UTC)</th></tr></thead>'
)
_ROW = (
    '<tr data-case-row>{select}<th scope="row"><a href="{url}" data-case-link>{reference}</a></th>'
    "<td>{title}</td><td>{queue}</td><td>{priority}</td><td>{status}</td>"
    '<td><span class="sla sla-{sla_state}">{sla}</span></td><td>{assignee}</td><td>{opened}</td></tr>'
)
_SELECT = (
    '<td><input type="checkbox" name="case" value="{pk}" form="bulk-form" id="select-{pk}" '
    'aria-label="Select {reference}"></td>'
)
_TAKE = (
    '<form method="post" action="{url}" data-take-form><input type="hidden" name="csrfmiddlewaretoken" '
    'value="{token}"><button type="submit" class="button secondary">Assign'
    '<span class="visually-hidden"> {reference}</span> to me</button></form>'
)


@register.simple_tag(takes_context=True)
def case_rows(context: template.Context, cases: Iterable[Any], bulk: bool = False) -> str:
    """The head and rows of a table of cases (the workspace, search results): each row carries
    what the keyboard shortcuts need (static/caspix/keys.js), the case's link and, for an open
    case no one holds, its *Assign to me* form.

    Written in Python with ``format_html`` (every value escaped): the queue renders fifty rows on
    every visit, and a template loop cost ten times as much (bench/bench_workspace.py).
    """
    page = reverse("cases:case", args=[_MARK]).replace(str(_MARK), "{}")
    take = reverse("cases:case_take", args=[_MARK]).replace(str(_MARK), "{}")
    token = str(context.get("csrf_token", ""))
    parts: list[str] = [format_html(_HEAD, select=mark_safe(_SELECT_HEAD if bulk else ""))]  # noqa: S308 (a constant)
    parts.append("<tbody>")
    for case in cases:
        state, sla = case.sla
        reference = case.reference
        assignee: str
        if case.assignee_id is not None:
            assignee = conditional_escape(case.assignee.username)
        elif case.status != "closed":
            assignee = format_html(_TAKE, url=take.format(case.pk), token=token, reference=reference)
        else:
            assignee = "unassigned"
        parts.append(
            format_html(
                _ROW,
                select=format_html(_SELECT, pk=case.pk, reference=reference) if bulk else "",
                url=page.format(case.pk),
                reference=reference,
                title=case.title,
                queue=case.queue.name,
                priority=case.get_priority_display(),
                status=case.get_status_display(),
                sla_state=state,
                sla=sla,
                assignee=assignee,
                opened=case.opened_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
            )
        )
    parts.append("</tbody>")
    return mark_safe("".join(parts))  # noqa: S308 (each part built by format_html)


_MARK = 987654321
_SELECT_HEAD = '<th scope="col"><span class="skip-link">Select</span></th>'
