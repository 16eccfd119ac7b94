"""The analysts' workspace: the cases of their teams' queues, each reached through the one door."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts.models import User
from accounts.permissions import Perm
from cases import actions, bulk_actions, case_views, search
from cases.forms import BulkForm, SearchForm
from cases.models import Action, Case, get_case_for_user
from cases.queue import QueueFilterForm, queue_page
from caspix.access import requires


@requires(Perm.WORK_CASES)
@require_safe
def workspace(request: HttpRequest) -> HttpResponse:
    """The queue (``cases.queue``): filters, counts by status, most urgent first, keyset pages."""
    form = QueueFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "cases/workspace.html", {"form": form, "page": None}, status=400)
    page = queue_page(request.user, form.cleaned_data)
    first = request.GET.copy()  # the same filters, from the top
    first.pop("after", None)
    following = first.copy()
    following["after"] = page.after or ""
    counts = [(label, page.counts[value]) for value, label in Case.Status.choices]
    bulk_form = BulkForm(user=request.user)
    context = {
        "bulk_form": bulk_form,
        "bulk_assignees": bulk_form.fields["assignee"].queryset.only("username"),  # type: ignore[attr-defined]
        "bulk_queues": bulk_form.fields["queue"].queryset.only("slug", "name"),  # type: ignore[attr-defined]
        "bulk_priorities": Case.Priority.choices,
        "form": form,
        "page": page,
        "counts": counts,
        "first_url": f"?{first.urlencode()}",
        "next_url": f"?{following.urlencode()}" if page.after else None,
    }
    return render(request, "cases/workspace.html", context)


@requires(Perm.WORK_CASES)
@require_POST
def next_case(request: HttpRequest) -> HttpResponse:
    """Take the most urgent waiting case (``cases.actions.take_next_case``) and open it."""
    taken = actions.take_next_case(acting_user=request.user)  # type: ignore[arg-type]
    if taken is None:
        messages.info(request, "No new case is waiting in your queues.")
        return HttpResponseRedirect(reverse("cases:workspace"))
    messages.success(request, f"{taken.reference} is yours: it is in progress.")
    return HttpResponseRedirect(reverse("cases:case", args=[taken.pk]))


@requires(Perm.WORK_CASES)
@require_safe
def case_search(request: HttpRequest) -> HttpResponse:
    """Cases by reference or by an identifier of their subject, exact (``cases.search``)."""
    form = SearchForm(request.GET if "q" in request.GET else None)
    found: list[Case] | None = None
    total = 0
    if form.is_bound and form.is_valid():
        try:
            found, total = search.search(request.user, search.Kind(form.cleaned_data["kind"]), form.cleaned_data["q"])  # type: ignore[arg-type]
        except search.SearchError as error:
            form.add_error("q", str(error))
    status = 400 if form.errors else 200
    context = {"form": form, "found": found, "total": total, "limit": search.LIMIT}
    return render(request, "cases/search.html", context, status=status)


@requires(Perm.WORK_CASES)
@require_POST
def take_case(request: HttpRequest, pk: int) -> HttpResponse:
    """Assign this case to oneself (``cases.actions.take_case``)."""
    subject = get_case_for_user(request.user, pk, Action.WORK)
    try:
        actions.take_case(subject, acting_user=request.user)  # type: ignore[arg-type]
    except ValidationError as error:
        return case_views.page_with_errors(request, subject.pk, error.messages)
    messages.success(request, f"{subject.reference} is assigned to you.")
    return HttpResponseRedirect(reverse("cases:case", args=[subject.pk]))


@requires(Perm.WORK_CASES)
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    """Assign, re-route or change the priority of the ticked cases, each checked on its own."""
    form = BulkForm(request.POST, user=request.user)
    summary = None
    if form.is_valid():
        data = form.cleaned_data
        user: User = request.user  # type: ignore[assignment]
        try:
            if data["action"] == "assign":
                summary = bulk_actions.assign(data["case"], data["assignee"], acting_user=user, reason=data["reason"])
            elif data["action"] == "reroute":
                summary = bulk_actions.reroute(data["case"], data["queue"], acting_user=user, reason=data["reason"])
            else:
                summary = bulk_actions.set_priority(
                    data["case"], data["priority"], acting_user=user, reason=data["reason"]
                )
        except ValidationError as error:
            form.add_error(None, error)
    status = 200 if summary is not None else 400
    context = {"form": form, "summary": summary, "action": dict(BulkForm.ACTIONS).get(form.data.get("action", ""), "")}
    return render(request, "cases/bulk.html", context, status=status)
