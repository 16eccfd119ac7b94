"""The access-review pages: the snapshots, newest first; taking one; a snapshot's report with its
SHA-256 and its sign-off; its CSV and PDF downloads.

Whoever reviews access (``VIEW_ACCESS_REVIEW``, an auditor, or ``SIGN_OFF_ACCESS_REVIEW``, a
manager) reads every snapshot, takes new ones and downloads them; only the holders of
``SIGN_OFF_ACCESS_REVIEW`` sign one off, with a second factor verified within the step-up window.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from accounts.models import REVIEWERS, User
from accounts.permissions import Perm
from caspix.access import requires, stepped_up
from caspix.downloads import attachment
from reporting import actions
from reporting.access_review_files import role_changes, when
from reporting.models import SIGN_OFF_COMMENT_MAX, AccessReview, SnapshotAlteredError

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


class SignOffForm(forms.Form):
    sha256 = forms.RegexField(regex=r"\A[0-9a-f]{64}\Z", widget=forms.HiddenInput)
    comment = forms.CharField(
        label="Comment",
        required=False,
        max_length=SIGN_OFF_COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional; recorded in the audit ledger with the sign-off.",
    )


def _review_of(user: User | Any, pk: UUID, action: str = "view") -> AccessReview:
    found = (
        AccessReview.objects.restrict(user, action).select_related("taken_by", "signed_off_by").filter(pk=pk).first()
    )
    if found is None:
        raise Http404("no such access review")
    return found


def _readable(user: dict[str, Any]) -> dict[str, Any]:
    """A user of the snapshot with its times as people read them."""
    times = {"last_login": when(user["last_login"]), "last_activity": when(user["last_activity"])}
    return {**user, **times, "joined": when(user["joined"], "")}


def _page(
    request: HttpRequest, review: AccessReview, *, form: SignOffForm | None = None, status: int = 200
) -> HttpResponse:
    try:
        snapshot = review.document()
    except SnapshotAlteredError as error:
        context = {"review": review, "errors": [str(error)]}
        return render(request, "reporting/access_review.html", context, status=409)
    users = [_readable(user) for user in snapshot["users"]]
    context = {
        "review": review,
        "snapshot": snapshot,
        "users": users,
        "dormant": [user for user in users if user["dormant"]],
        "conflicts": [user for user in users if user["conflict"]],
        "grants": [(user["username"], grant) for user in users for grant in user["grants"]],
        "changes": [{**change, "at": when(change["at"])} for change in role_changes(snapshot)],
        "may_sign_off": request.user.has_perm(Perm.SIGN_OFF_ACCESS_REVIEW) and not review.signed_off,
        "form": form or SignOffForm(initial={"sha256": review.sha256}),
        "stepped_up": stepped_up(request),
        "step_up_minutes": settings.CASPIX_STEP_UP_MINUTES,
    }
    return render(request, "reporting/access_review.html", context, status=status)


@requires(any_of=REVIEWERS)
@require_safe
def review_list(request: HttpRequest) -> HttpResponse:
    reviews = (
        AccessReview.objects.restrict(request.user, "view")
        .select_related("taken_by", "signed_off_by")
        .order_by("-taken_at", "pk")
    )
    return render(request, "reporting/access_reviews.html", {"reviews": reviews})


@requires(any_of=REVIEWERS)
@require_POST
def review_take(request: HttpRequest) -> HttpResponse:
    taken = actions.take_access_review(acting_user=request.user)  # type: ignore[arg-type]
    messages.success(request, f"A snapshot of {taken.users} users was taken: read it, then sign it off.")
    return redirect("access_review:review", taken.pk)


@requires(any_of=REVIEWERS)
@require_safe
def review(request: HttpRequest, pk: UUID) -> HttpResponse:
    return _page(request, _review_of(request.user, pk))


@requires(Perm.SIGN_OFF_ACCESS_REVIEW, step_up=True)
@require_POST
def review_sign_off(request: HttpRequest, pk: UUID) -> HttpResponse:
    """Sign off the snapshot whose SHA-256 the manager was shown on its page."""
    subject = _review_of(request.user, pk, "sign_off")
    form = SignOffForm(request.POST)
    if not form.is_valid():
        return _page(request, subject, form=form, status=400)
    try:
        actions.sign_off_access_review(
            subject,
            sha256_seen=form.cleaned_data["sha256"],
            comment=form.cleaned_data["comment"],
            acting_user=request.user,  # type: ignore[arg-type]
        )
    except (ValidationError, SnapshotAlteredError) as error:
        form.add_error(None, "; ".join(getattr(error, "messages", [str(error)])))
        return _page(request, _review_of(request.user, pk, "sign_off"), form=form, status=409)
    messages.success(request, "The snapshot is signed off; the ledger records it.")
    return redirect("access_review:review", subject.pk)


@requires(any_of=REVIEWERS)
@require_safe
def review_download(request: HttpRequest, pk: UUID, file_format: str) -> HttpResponseBase:
    """The snapshot as CSV or PDF; each download is recorded."""
    if file_format not in CONTENT_TYPES:
        raise Http404("no such format")
    subject = _review_of(request.user, pk)
    try:
        made = actions.export_access_review(subject, file_format, acting_user=request.user)  # type: ignore[arg-type]
    except SnapshotAlteredError as error:
        context = {"review": subject, "errors": [str(error)]}
        return render(request, "reporting/access_review.html", context, status=409)
    filename = f"{subject.filename}.{file_format}"
    return attachment(made, content_type=CONTENT_TYPES[file_format], filename=filename)
