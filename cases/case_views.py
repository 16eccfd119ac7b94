"""The case page and what is done from it: the workflow, notes, evidence, links, and the lead's
decisions on proposed closures and reopenings.

The page itself costs a fixed number of queries whatever the case holds (the case with what its
reader may do, its alerts, its transactions, its timeline, its notes, its evidence): related cases
and suggestions come in their own request (htmx, or a link without JavaScript), and so does the
list of users the case is opened to.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef, Subquery
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import approvals
from accounts.administration import refused
from accounts.forms import DecisionForm
from accounts.models import ApprovalRequest, User
from accounts.permissions import Perm
from cases import casework, workflow
from cases.forms import (
    CloseForm,
    EvidenceForm,
    GrantForm,
    LinkForm,
    MoveForm,
    NoteForm,
    NoteRevisionForm,
    ReopenForm,
    UnlinkForm,
)
from cases.models import (
    Action,
    Alert,
    Case,
    CaseApproval,
    CaseUserObjectPermission,
    Evidence,
    Transaction,
    get_case_for_user,
)
from cases.timeline import timeline
from caspix.access import requires
from caspix.downloads import attachment

SHOWN = 100  # alerts and transactions on the page; the timeline has its own limit


def _case_of(user: User | Any, pk: int) -> Case:
    """The case as its page shows it: with whether ``user`` may work it and the request waiting
    for a decision on it, if any (one query)."""
    pending = CaseApproval.objects.filter(case=OuterRef("pk"), request__status=ApprovalRequest.Status.PENDING)
    found = (
        Case.objects.restrict(user, Action.VIEW)
        .select_related("queue", "assignee", "party")
        .annotate(
            workable=Exists(Case.objects.restrict(user, Action.WORK).filter(pk=OuterRef("pk"))),
            pending_id=Subquery(pending.values("request_id")[:1]),
            pending_kind=Subquery(pending.values("request__kind")[:1]),
            pending_maker=Subquery(pending.values("request__maker__username")[:1]),
            report_id=Subquery(
                Case.objects.filter(pk=OuterRef("pk")).order_by("-reports__created_at").values("reports__pk")[:1]
            ),
        )
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise Http404("no such case")
    return found


def _page(
    request: HttpRequest,
    case: Case,
    *,
    bound: dict[str, Form] | None = None,
    status: int = 200,
    errors: list[str] | None = None,
) -> HttpResponse:
    user = request.user
    workable: bool = case.workable  # type: ignore[attr-defined]
    alerts = list(Alert.objects.of(case, user, Action.VIEW).select_related("client").defer("payload")[: SHOWN + 1])
    transactions = list(
        Transaction.objects.of(case, user, Action.VIEW)
        .select_related("account")
        .order_by("-occurred_at", "pk")[: SHOWN + 1]
    )
    accounts, counterparties = _accounts_and_counterparties(transactions)
    forms: dict[str, Any] = {}
    if workable and case.status != Case.Status.CLOSED:
        forms["note"] = NoteForm()
        forms["evidence"] = EvidenceForm()
    if workable:
        forms["moves"] = [MoveForm(move=move) for move in workflow.moves_from(case.status)]
        if case.status in workflow.CLOSABLE:
            forms["close"] = CloseForm()
        if case.status == Case.Status.CLOSED and case.pending_id is None:  # type: ignore[attr-defined]
            forms["reopen"] = ReopenForm()
    shown_errors = list(errors or [])
    for name, form in (bound or {}).items():
        if name.startswith("move:"):
            moves = forms.get("moves", [])
            if any(f.prefix == form.prefix for f in moves):
                forms["moves"] = [form if f.prefix == form.prefix else f for f in moves]
            else:  # the case moved meanwhile: this move is no longer offered, say why it failed
                shown_errors += [str(e) for e in form.non_field_errors()]
        else:
            forms[name] = form
    context = {
        "case": case,
        "workable": workable,
        "alerts": alerts[:SHOWN],
        "more_alerts": len(alerts) > SHOWN,
        "transactions": transactions[:SHOWN],
        "accounts": accounts,
        "counterparties": counterparties,
        "more_transactions": len(transactions) > SHOWN,
        "timeline": timeline(case, user),
        "notes": casework.note_threads(case, user),
        "evidence": list(Evidence.objects.of(case, user, Action.VIEW).select_related("added_by")),
        "forms": forms,
        "errors": shown_errors,
        "shown": SHOWN,
    }
    return render(request, "cases/case.html", context, status=status)


def page_with_errors(request: HttpRequest, pk: int, errors: list[str], status: int = 400) -> HttpResponse:
    """The case page, saying why an action from it was not done."""
    return _page(request, _case_of(request.user, pk), status=status, errors=errors)


def _accounts_and_counterparties(transactions: list[Transaction]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The subject's accounts and the counterparties the shown transactions name, each once, with
    how many transactions name them (from the rows already loaded: no query)."""
    accounts: dict[Any, dict[str, Any]] = {}
    others: dict[tuple[str, str, str], dict[str, Any]] = {}
    for tx in transactions:
        if tx.account is not None:
            entry = accounts.setdefault(tx.account_id, {"account": tx.account, "count": 0})
            entry["count"] += 1
        name, number = str(tx.counterparty_name or ""), str(tx.counterparty_account or "")
        if name or number:
            key = (name, number, tx.counterparty_country)
            entry = others.setdefault(
                key, {"name": name, "number": number, "country": tx.counterparty_country, "count": 0}
            )
            entry["count"] += 1
    return list(accounts.values()), list(others.values())


def _back(case: Case, anchor: str = "") -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("cases:case", args=[case.pk]) + (f"#{anchor}" if anchor else ""))


@requires(Perm.WORK_CASES)
@require_safe
def case(request: HttpRequest, pk: int) -> HttpResponse:
    """Everything about one case its reader may see, and what they may do with it."""
    return _page(request, _case_of(request.user, pk))


# --- the workflow --------------------------------------------------------------------------------


@requires(Perm.WORK_CASES)
@require_POST
def case_move(request: HttpRequest, pk: int) -> HttpResponse:
    subject = _case_of(request.user, pk)
    chosen = request.POST.get("move", "")
    if chosen not in workflow.Move.values:
        return _page(request, subject, status=400, errors=["Choose a move the workflow knows."])
    form = MoveForm(request.POST, move=workflow.Move(chosen))
    if form.is_valid():
        data = form.cleaned_data
        try:
            workflow.move(subject, chosen, data["reason"], note=data["note"], acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, f"{subject.reference}: {workflow.Move(chosen).label.lower()}, done.")
            return _back(subject)
    return _page(request, subject, bound={f"move:{chosen}": form}, status=400)


@requires(Perm.WORK_CASES)
@require_POST
def case_close(request: HttpRequest, pk: int) -> HttpResponse:
    subject = _case_of(request.user, pk)
    form = CloseForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            proposal = workflow.close(subject, data["reason"], data["note"], acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            if proposal is None:
                messages.success(request, f"{subject.reference} is closed.")
            else:
                messages.success(
                    request,
                    f"{subject.reference} is pending approval: another authorised person must approve the closure "
                    f"(request {proposal.pk}).",
                )
            return _back(subject)
    return _page(request, subject, bound={"close": form}, status=400)


@requires(Perm.WORK_CASES)
@require_POST
def case_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    subject = _case_of(request.user, pk)
    form = ReopenForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            proposal = workflow.request_reopening(subject, data["reason"], data["note"], acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(
                request,
                f"Reopening {subject.reference} waits for another authorised person's approval "
                f"(request {proposal.pk}).",
            )
            return _back(subject)
    return _page(request, subject, bound={"reopen": form}, status=400)


# --- notes and evidence --------------------------------------------------------------------------


@requires(Perm.WORK_CASES)
@require_POST
def note_add(request: HttpRequest, pk: int) -> HttpResponse:
    subject = _case_of(request.user, pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            casework.add_note(subject, form.cleaned_data["text"], acting_user=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            refused(form, error)
        else:
            messages.success(request, "The note is added.")
            return _back(subject, "notes")
    return _page(request, subject, bound={"note": form}, status=400)


@requires(Perm.WORK_CASES)
@require_http_methods(["GET", "HEAD", "POST"])
def note_revise(request: HttpRequest, pk: int, thread: uuid.UUID) -> HttpResponse:
    """A note's versions, and a new one (an edit never changes what was written)."""
    subject = get_case_for_user(request.user, pk, Action.VIEW)
    threads = [t for t in casework.note_threads(subject, request.user) if t.current.thread == thread]
    if not threads:
        raise Http404("no such note")
    note = threads[0]
    workable = Case.objects.restrict(request.user, Action.WORK).filter(pk=subject.pk).exists()
    form = NoteRevisionForm(initial={"text": str(note.current.body), "version": note.current.version})
    status = 200
    if request.method == "POST":
        if not workable:
            raise PermissionDenied
        form = NoteRevisionForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                casework.revise_note(
                    subject,
                    thread,
                    data["text"],
                    acting_user=request.user,  # type: ignore[arg-type]
                    seen_version=data["version"],
                )
            except ValidationError as error:
                refused(form, error)
            else:
                messages.success(request, "The note has a new version; the earlier ones are kept.")
                return _back(subject, "notes")
        status = 400
    context = {
        "case": subject,
        "note": note,
        "form": form,
        "workable": workable and subject.status != Case.Status.CLOSED,
    }
    return render(request, "cases/note.html", context, status=status)


@requires(Perm.WORK_CASES)
@require_POST
def evidence_add(request: HttpRequest, pk: int) -> HttpResponse:
    subject = _case_of(request.user, pk)
    form = EvidenceForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        limit = casework.max_evidence_bytes()
        if upload.size > limit:
            form.add_error("file", f"The file is larger than the limit of {filesizeformat(limit)}.")
        else:
            try:
                added = casework.add_evidence(
                    subject,
                    upload.name,
                    upload.read(),
                    description=form.cleaned_data["description"],
                    acting_user=request.user,  # type: ignore[arg-type]
                )
            except ValidationError as error:
                form.add_error("file", error)
            else:
                messages.success(request, f"{added.filename} is attached (SHA-256 {added.sha256}).")
                return _back(subject, "evidence")
    return _page(request, subject, bound={"evidence": form}, status=400)


@requires(Perm.WORK_CASES)
@require_safe
def evidence_download(request: HttpRequest, pk: int, evidence: uuid.UUID) -> HttpResponseBase:
    """The file, as an attachment never rendered by the browser; the download is recorded."""
    subject = get_case_for_user(request.user, pk, Action.VIEW)
    try:
        item, data = casework.download_evidence(subject, evidence, acting_user=request.user)  # type: ignore[arg-type]
    except Evidence.DoesNotExist:
        raise Http404("no such evidence") from None
    except ValidationError as error:
        return _page(request, _case_of(request.user, pk), status=409, errors=error.messages)
    return attachment(data, content_type=item.content_type, filename=item.filename, sha256=item.sha256)


# --- related cases -------------------------------------------------------------------------------


def _related(
    request: HttpRequest,
    subject: Case,
    form: Form | None = None,
    status: int = 200,
    errors: list[str] | None = None,
) -> HttpResponse:
    workable = Case.objects.restrict(request.user, Action.WORK).filter(pk=subject.pk).exists()
    partial = request.headers.get("HX-Request") == "true" and request.method in ("GET", "HEAD")
    context = {
        "case": subject,
        "linked": casework.linked_cases(subject, request.user),  # type: ignore[arg-type]
        "suggested": casework.suggested_cases(subject, request.user),  # type: ignore[arg-type]
        "form": form or LinkForm(),
        "workable": workable,
        "partial": partial,
        "errors": errors or [],
        "base_template": "partials/_bare.html" if partial else "base.html",
    }
    return render(request, "cases/related.html", context, status=status)


@requires(Perm.WORK_CASES)
@require_safe
def related(request: HttpRequest, pk: int) -> HttpResponse:
    """Linked cases, and cases sharing the subject or an account (compared by blind index)."""
    return _related(request, get_case_for_user(request.user, pk, Action.VIEW))


@requires(Perm.WORK_CASES)
@require_POST
def link(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_case_for_user(request.user, pk, Action.WORK)
    form = LinkForm(request.POST)
    if form.is_valid():
        other = Case.objects.restrict(request.user, Action.WORK).filter(pk=form.cleaned_data["case"]).first()
        if other is None:
            form.add_error("case", "There is no case with this reference that you may work.")
        else:
            try:
                casework.link_cases(subject, other, form.cleaned_data["reason"], acting_user=request.user)  # type: ignore[arg-type]
            except (ValidationError, PermissionDenied) as error:
                form.add_error(None, error.messages if isinstance(error, ValidationError) else str(error))
            else:
                messages.success(request, f"{subject.reference} and {other.reference} are linked.")
                return HttpResponseRedirect(reverse("cases:related", args=[subject.pk]))
    return _related(request, subject, form, status=400)


@requires(Perm.WORK_CASES)
@require_POST
def unlink(request: HttpRequest, pk: int, other: int) -> HttpResponse:
    subject = get_case_for_user(request.user, pk, Action.WORK)
    that = get_case_for_user(request.user, other, Action.WORK)
    form = UnlinkForm(request.POST)
    if form.is_valid():
        try:
            casework.unlink_cases(subject, that, acting_user=request.user, reason=form.cleaned_data["reason"])  # type: ignore[arg-type]
        except ValidationError as error:
            return _related_error(request, subject, error)
        messages.success(request, f"{subject.reference} and {that.reference} are no longer linked.")
        return HttpResponseRedirect(reverse("cases:related", args=[subject.pk]))
    return _related_error(request, subject, ValidationError("State why the cases are not related."))


def _related_error(request: HttpRequest, subject: Case, error: ValidationError) -> HttpResponse:
    """The related page, saying why an unlink was not done."""
    return _related(request, subject, status=400, errors=error.messages)


# --- who else reaches the case -------------------------------------------------------------------


def _access_page(
    request: HttpRequest, subject: Case, form: Form, status: int = 200, errors: list[str] | None = None
) -> HttpResponse:
    grants = (
        CaseUserObjectPermission.objects.restrict(request.user, Action.VIEW)
        .filter(content_object=subject)
        .select_related("user", "permission")
    )
    workable = Case.objects.restrict(request.user, Action.WORK).filter(pk=subject.pk).exists()
    context = {"case": subject, "grants": grants, "form": form, "workable": workable, "errors": errors or []}
    return render(request, "cases/access.html", context, status=status)


@requires(Perm.WORK_CASES)
@require_safe
def access(request: HttpRequest, pk: int) -> HttpResponse:
    """The users a case is opened to besides its team and assignee, and opening it to one more."""
    return _access_page(request, get_case_for_user(request.user, pk, Action.VIEW), GrantForm(user=request.user))


@requires(Perm.WORK_CASES)
@require_POST
def case_grant(request: HttpRequest, pk: int) -> HttpResponse:
    from cases import actions

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
            return HttpResponseRedirect(reverse("cases:access", args=[subject.pk]))
    return _access_page(request, subject, form, status=400)


@requires(Perm.WORK_CASES)
@require_POST
def case_revoke(request: HttpRequest, pk: int, username: str) -> HttpResponse:
    from cases import actions

    subject = get_case_for_user(request.user, pk, Action.WORK)
    grantee = get_object_or_404(User.objects.restrict(request.user, "colleague"), username=username)
    try:
        actions.revoke_case(subject, grantee, acting_user=request.user, reason="withdrawn from the case's access page")  # type: ignore[arg-type]
    except ValidationError as error:
        return _access_page(request, subject, GrantForm(user=request.user), status=400, errors=error.messages)
    messages.success(request, f"{grantee.username} no longer holds a grant on {subject.reference}.")
    return HttpResponseRedirect(reverse("cases:access", args=[subject.pk]))


# --- the leads' decisions ------------------------------------------------------------------------


def _case_requests(user: User | Any) -> Any:
    """The requests about cases ``user`` may work and whose kind they may decide."""
    links = CaseApproval.objects.filter(case__in=workflow.decidable_by(user)).values("request_id")
    return (
        ApprovalRequest.objects.restrict(user, "decide")
        .filter(kind__in=(workflow.CLOSURE, workflow.REOPENING), pk__in=links)
        .select_related("maker", "decided_by", "case_link__case")
    )


@requires(Perm.APPROVE_CASE_CLOSURE)
@require_safe
def approval_list(request: HttpRequest) -> HttpResponse:
    """Closures and reopenings waiting for a decision, in the cases the lead may work."""
    requests = _case_requests(request.user)
    pending = requests.filter(status=ApprovalRequest.Status.PENDING).order_by("expires_at")
    decided = requests.exclude(status=ApprovalRequest.Status.PENDING).order_by("-decided_at")[:50]
    return render(request, "cases/approvals.html", {"pending": pending, "decided": decided})


@requires(Perm.APPROVE_CASE_CLOSURE, step_up=True)
@require_http_methods(["GET", "HEAD", "POST"])
def approval(request: HttpRequest, pk: int) -> HttpResponse:
    """One request: the case, the proposal and its note, and the decision (bound to its hash)."""
    subject = get_object_or_404(_case_requests(request.user), pk=pk)
    form = DecisionForm(initial={"seen_hash": subject.payload_hash})
    status = 200
    if request.method == "POST":
        form = DecisionForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if data["decision"] == "approve":
                    approvals.approve(
                        subject.pk,
                        acting_user=request.user,  # type: ignore[arg-type]
                        seen_hash=data["seen_hash"],
                        reason=data["reason"],
                    )
                else:
                    approvals.reject(subject.pk, acting_user=request.user, reason=data["reason"])  # type: ignore[arg-type]
            except approvals.ApprovalRefusedError as error:
                form.add_error(None, str(error))
                subject.refresh_from_db()
                status = 409
            else:
                verb = "approved" if data["decision"] == "approve" else "rejected"
                messages.success(request, f"Request {subject.pk} is {verb}.")
                return HttpResponseRedirect(reverse("cases:approvals"))
        else:
            status = 400
    case_ = subject.case_link.case
    note = casework.note_by_id(case_, request.user, subject.payload.get("note", ""))
    context = {
        "approval": subject,
        "case": case_,
        "note": note,
        "form": form,
        "own": subject.maker_id == request.user.pk,
        "reason_label": _request_reason(subject),
    }
    return render(request, "cases/approval.html", context, status=status)


def _request_reason(request: ApprovalRequest) -> str:
    code = request.payload.get("reason", "")
    if request.kind == workflow.CLOSURE:
        return str(dict(Case.ClosureReason.choices).get(code, code))
    return str(dict(workflow.REOPEN_REASONS).get(code, code))
