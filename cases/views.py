"""The analysts' workspace: the cases of their teams' queues, each reached through the one door."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts.administration import refused
from accounts.models import User
from accounts.permissions import Perm
from cases import actions, search
from cases.forms import GrantForm, SearchForm
from cases.models import Action, Case, CaseUserObjectPermission, get_case_for_user
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
    context = {
        "form": form,
        "page": page,
        "counts": counts,
        "first_url": f"?{first.urlencode()}",
        "next_url": f"?{following.urlencode()}" if page.after else None,
    }
    return render(request, "cases/workspace.html", context)


def _case_page(
    request: HttpRequest, case: Case, form: Form, status: int = 200, errors: list[str] | None = None
) -> HttpResponse:
    grants = (
        CaseUserObjectPermission.objects.restrict(request.user, Action.VIEW)
        .filter(content_object=case)
        .select_related("user", "permission")
    )
    workable = Case.objects.restrict(request.user, Action.WORK).filter(pk=case.pk).exists()
    context = {"case": case, "grants": grants, "form": form, "workable": workable, "errors": errors or []}
    return render(request, "cases/case.html", context, status=status)


@requires(Perm.WORK_CASES)
@require_safe
def case(request: HttpRequest, pk: int) -> HttpResponse:
    return _case_page(request, get_case_for_user(request.user, pk, Action.VIEW), GrantForm(user=request.user))


@requires(Perm.WORK_CASES)
@require_POST
def case_grant(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_case_for_user(request.user, pk, Action.WORK)
    form = GrantForm(request.POST, user=request.user)
    if form.is_valid():
        data = form.cleaned_data
        try:
            actions.grant_case(subject, data["user"], data["access"], acting_user=request.user, reason=data["reason"])  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{subject.reference} is open to {data['user'].username}.")
            return HttpResponseRedirect(reverse("cases:case", args=[subject.pk]))
    return _case_page(request, subject, form, status=400)


@requires(Perm.WORK_CASES)
@require_POST
def case_revoke(request: HttpRequest, pk: int, username: str) -> HttpResponse:
    subject = get_case_for_user(request.user, pk, Action.WORK)
    grantee = get_object_or_404(User.objects.restrict(request.user, "colleague"), username=username)
    try:
        actions.revoke_case(subject, grantee, acting_user=request.user, reason="withdrawn from the case page")  # type: ignore[arg-type]
    except ValidationError as error:
        return _case_page(request, subject, GrantForm(user=request.user), status=400, errors=error.messages)
    messages.success(request, f"{grantee.username} no longer holds a grant on {subject.reference}.")
    return HttpResponseRedirect(reverse("cases:case", args=[subject.pk]))


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
        return _case_page(request, subject, GrantForm(user=request.user), status=400, errors=error.messages)
    messages.success(request, f"{subject.reference} is assigned to you.")
    return HttpResponseRedirect(reverse("cases:case", args=[subject.pk]))
