"""The tables of the managers' dashboard (``reporting.dashboard.Table``), head and rows.

Written in Python, every value escaped: a table of every analyst by week is thousands of cells,
and a template loop over them (or ``format_html`` for each) cost more than the queries behind the
whole page (bench/bench_dashboard.py).
"""

from __future__ import annotations

from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from reporting.dashboard import Table

register = template.Library()


@register.simple_tag
def figure_rows(table: Table) -> SafeString:
    head = "".join(f'<th scope="col">{escape(column)}</th>' for column in table.columns)
    rows = "".join(
        f'<tr><th scope="row">{escape(str(row[0]))}</th>{"".join(f"<td>{escape(str(v))}</td>" for v in row[1:])}</tr>'
        for row in table.rows
    )
    if not rows:
        rows = f'<tr><td colspan="{len(table.columns)}" class="empty-state">Nothing to count.</td></tr>'
    return mark_safe(f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>")  # noqa: S308 (every value escaped)
