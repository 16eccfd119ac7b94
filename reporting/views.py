"""Managers' dashboards: counts of the bank's casework, as charts with their tables, and each
table as CSV (``reporting.dashboard``)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_safe

from accounts.permissions import Perm
from caspix.access import requires
from reporting import actions
from reporting import dashboard as figures


@requires(Perm.VIEW_DASHBOARD)
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    form = figures.DashboardFilterForm(request.GET, user=request.user)
    if not form.is_valid():
        return render(request, "reporting/dashboard.html", {"form": form}, status=400)
    scope = figures.Scope.of(request.user, form.cleaned_data)
    # The exports carry the filters as applied (dates spelt out): each CSV is the table shown.
    context = {"form": form, "scope": scope, "figures": figures.dashboard(scope), "query": urlencode(scope.filters())}
    return render(request, "reporting/dashboard.html", context)


@requires(Perm.VIEW_DASHBOARD)
@require_GET  # not HEAD: every download is recorded, and a HEAD downloads nothing
def export(request: HttpRequest, table: str) -> HttpResponse:
    """One table as CSV, with the page's filters; recorded in the ledger (DASHBOARD_EXPORTED)."""
    if table not in figures.TABLES:
        raise Http404
    form = figures.DashboardFilterForm(request.GET, user=request.user)
    if not form.is_valid():
        return render(request, "reporting/dashboard.html", {"form": form}, status=400)
    scope = figures.Scope.of(request.user, form.cleaned_data)
    made = figures.table(scope, table)
    actions.record_dashboard_export(table, scope.filters(), acting_user=request.user)  # type: ignore[arg-type]
    response = HttpResponse(figures.to_csv(made), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="caspix-{table}-{scope.start}-{scope.end}.csv"'
    return response
