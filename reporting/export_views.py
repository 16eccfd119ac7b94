"""The auditors' exports: evidence packs of a case or a period, and regulatory registers.

An auditor asks for one (step-up: a pack carries customer data), watches its progress, and
downloads it while it lasts. Each auditor sees and downloads only their own exports.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from accounts.permissions import Perm
from cases.models import Action, Case
from caspix.access import STEP_UP_URL, requires, stepped_up
from caspix.downloads import attachment
from reporting import exports
from reporting.export_forms import ExportForm
from reporting.models import Export

SHOWN = 50


def _export_of(request: HttpRequest, pk: str) -> Export:
    found: Export | None = Export.objects.restrict(request.user, "view").filter(pk=pk).first()
    if found is None:
        raise Http404("no such export")
    return found


def _list(request: HttpRequest, form: ExportForm, status: int = 200) -> HttpResponse:
    listed = Export.objects.restrict(request.user, "view").order_by("-requested_at")[:SHOWN]
    rows = [{"export": export, "label": exports.label(export)} for export in listed]
    return render(request, "reporting/exports.html", {"form": form, "rows": rows}, status=status)


@requires(Perm.EXPORT_EVIDENCE, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def export_list(request: HttpRequest) -> HttpResponse:
    """The auditor's exports, newest first, and the form that asks for another."""
    if request.method != "POST":
        return _list(request, ExportForm())
    form = ExportForm(request.POST)
    if not form.is_valid():
        return _list(request, form, status=400)
    data: dict[str, Any] = form.cleaned_data
    case = None
    if data["kind"] == Export.Kind.CASE_PACK:
        case = Case.objects.restrict(request.user, Action.EXPORT).filter(pk=data["case_pk"]).first()
        if case is None:
            form.add_error("case", "There is no case of that reference.")
            return _list(request, form, status=400)
    try:
        made = exports.request_export(
            data["kind"],
            acting_user=request.user,  # type: ignore[arg-type]
            case=case,
            period_start=data.get("period_start"),
            period_end=data.get("period_end"),
        )
    except ValidationError as error:
        for message in error.messages:
            form.add_error(None, message)
        return _list(request, form, status=400)
    return HttpResponseRedirect(reverse("exports:export", args=[made.pk]))


@requires(Perm.EXPORT_EVIDENCE)
@require_safe
def export_page(request: HttpRequest, pk: str) -> HttpResponse:
    export = _export_of(request, pk)
    context = {"export": export, "label": exports.label(export), "fresh": stepped_up(request)}
    return render(request, "reporting/export.html", context)


@requires(Perm.EXPORT_EVIDENCE)
@require_safe
def export_progress(request: HttpRequest, pk: str) -> HttpResponse:
    """The progress of a build, polled by the page while a worker builds it."""
    context = {"export": _export_of(request, pk), "fresh": stepped_up(request)}
    return render(request, "reporting/_export_progress.html", context)


@requires(Perm.EXPORT_EVIDENCE)
@require_safe
def export_download(request: HttpRequest, pk: str) -> HttpResponseBase:
    """The pack, to its requester, with a fresh second factor like asking for it: a pack can hold
    customer data, and a session left open must not hand it over for days."""
    export = _export_of(request, pk)
    if not stepped_up(request):
        back = urlencode({"next": reverse("exports:export", args=[export.pk])})
        return HttpResponseRedirect(f"{reverse(STEP_UP_URL)}?{back}")
    try:
        export, chunks = exports.download(str(export.pk), acting_user=request.user)  # type: ignore[arg-type]
    except Export.DoesNotExist:
        raise Http404("no such export") from None
    except ValidationError as error:
        context = {"export": export, "label": exports.label(export), "errors": error.messages, "fresh": True}
        return render(request, "reporting/export.html", context, status=409)
    return attachment(
        chunks, content_type="application/zip", filename=export.filename, size=export.size, sha256=export.sha256
    )
