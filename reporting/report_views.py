"""The pages of suspicious transaction reports: the list with deadlines, starting a report from a
case, the draft with the gate's faults beside their fields, generation with its progress, the
lead's four-eyes decision, the download of the file, and what the FIU said."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import approvals
from accounts.forms import DecisionForm
from accounts.models import User
from accounts.permissions import Perm
from cases.models import Action, Case
from caspix.access import requires
from caspix.downloads import attachment
from reporting import deadlines, drafting, reports
from reporting.models import Report, ReportFile
from reporting.report_forms import (
    AbandonForm,
    AnswerForm,
    DraftForm,
    StartForm,
    SubmissionRequestForm,
    SubmittedForm,
)

# Those who read reports: who drafts them and who approves them (an MLRO may only approve).
READERS = (Perm.DRAFT_STR, Perm.APPROVE_STR)


def _report_of(user: User | Any, pk: int) -> Report:
    found: Report | None = (
        Report.objects.restrict(user, Action.WORK)  # a report is read by those who work its case
        .select_related("case", "case__queue", "profile", "created_by", "approved_file")
        .annotate(workable=Exists(Case.objects.restrict(user, Action.WORK).filter(pk=OuterRef("case_id"))))
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise Http404("no such report")
    return found


def _back(report: Report, anchor: str = "") -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("reports:report", args=[report.pk]) + (f"#{anchor}" if anchor else ""))


@requires(any_of=READERS)
@require_safe
def report_list(request: HttpRequest) -> HttpResponse:
    """The reports of the cases the reader may see, the most pressing first, with their deadlines."""
    today = timezone.localdate()
    shown = request.GET.get("show", "open")
    listed = Report.objects.restrict(request.user, Action.WORK).select_related("case", "profile")
    if shown == "open":
        listed = listed.filter(status__in=reports.OPEN)
    elif shown == "waiting":
        listed = listed.filter(status=Report.Status.PENDING_APPROVAL)
    elif shown != "all":
        shown = "open"
        listed = listed.filter(status__in=reports.OPEN)
    rows = []
    calendars: deadlines.Calendars = {}
    for report in listed.order_by("due_on", "pk")[:200]:
        standing, left = deadlines.standing(report.profile, report.due_on, today, calendars)
        rows.append({"report": report, "standing": str(standing), "left": left})
    return render(request, "reporting/reports.html", {"rows": rows, "shown": shown})


@requires(Perm.WORK_CASES, Perm.DRAFT_STR)
@require_http_methods(["GET", "HEAD", "POST"])
def report_new(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a report about a case in reporting."""
    subject = Case.objects.restrict(request.user, Action.WORK).filter(pk=pk).first()
    if subject is None:
        raise Http404("no such case")
    form = StartForm(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                made = reports.start(
                    subject,
                    data["profile"],
                    report_code=data["report_code"].strip(),
                    suspicion_on=data["suspicion_on"],
                    acting_user=request.user,  # type: ignore[arg-type]
                )
            except (ValidationError, PermissionDenied) as error:
                form.add_error(None, "; ".join(getattr(error, "messages", [str(error)])))
            else:
                messages.success(request, f"{made.reference} is drafted from {subject.reference}: complete it below.")
                return _back(made)
        status = 400
    return render(request, "reporting/report_new.html", {"case": subject, "form": form}, status=status)


def _draft_form(report: Report, data: Any = None) -> DraftForm | None:
    """The draft's form by the profile's current schema, with what alerts that joined the case
    since the last save bring (blank where the bank's systems did not say)."""
    schema = report.profile.current_schema()
    if schema is None:
        return None
    content = drafting.loads(report)
    drafting.refresh(content, report.case, report.profile, schema)
    return DraftForm(data, report=report, content=content, schema=schema)


def _page(
    request: HttpRequest, report: Report, *, draft: DraftForm | None = None, status: int = 200, **forms: Any
) -> HttpResponse:
    user = request.user
    latest = reports.latest_file(report)
    workable: bool = report.workable  # type: ignore[attr-defined]
    if draft is None and report.editable and workable and user.has_perm(Perm.DRAFT_STR):
        draft = _draft_form(report)
    content = draft.saved if draft is not None else drafting.loads(report)
    issues: dict[str, list[dict[str, str]]] = {}
    current = latest is not None and latest.revision == report.revision
    if latest is not None and current:
        for issue in latest.faults:
            issues.setdefault(issue["field"], []).append(issue)
    pending = reports.pending_request(report)
    standing, left = deadlines.standing(report.profile, report.due_on, timezone.localdate())
    context = {
        "report": report,
        "workable": workable,
        "draft": draft,
        "sections": _sections(draft, issues, content),
        "issues": _anchored(latest.faults if latest is not None and current else [], draft),
        "latest": latest,
        "current": current,
        "offered": reports.downloadable(report),
        "revision": forms.get("revision") or report.revision,
        "abandon_form": forms.get("abandon_form") or AbandonForm(),
        "pending": pending,
        "may_decide": pending is not None
        and pending.maker_id != user.pk
        and user.has_perm(Perm.APPROVE_STR)
        and approvals.KINDS[reports.SUBMISSION].may_decide(pending.payload, user),  # type: ignore[arg-type]
        "standing": str(standing),
        "left": left,
        "request_form": forms.get("request_form") or SubmissionRequestForm(),
        "submitted_form": forms.get("submitted_form") or SubmittedForm(),
        "answer_form": forms.get("answer_form") or AnswerForm(),
        "decision_form": forms.get("decision_form")
        or (DecisionForm(initial={"seen_hash": pending.payload_hash}) if pending is not None else None),
        "errors": forms.get("errors", []),
    }
    return render(request, "reporting/report.html", context, status=status)


def _sections(draft: DraftForm | None, issues: dict[str, list[dict[str, str]]], content: Any) -> list[dict[str, Any]]:
    """The draft's parts as the page shows them: a heading, and each field with its faults."""
    if draft is None:
        return []
    shown = []
    for section, fields in draft.bound_sections().items():
        paired = [(field, issues.get(field.html_name, [])) for field in fields]
        shown.append(
            {
                "id": f"section-{section}",
                "heading": _heading(section, content),
                "fields": paired,
                "faults": sum(len(found) for _, found in paired) + sum(1 for field, _ in paired if field.errors),
            }
        )
    return shown


_HEADINGS = {
    "report": "The report",
    "location": "The reporting office",
    "subject": "The customer (the bank's own client)",
    "entity": "If the customer is an entity",
    "signatory": "Who signs for the entity",
    "transactions": "Transactions",
    "names": "Names the FIU cannot take as typed: confirm their spelling",
}


def _heading(section: str, content: Any) -> str:
    if section.startswith("account-"):
        number = str(content["accounts"].get(section.removeprefix("account-"), {}).get("account", ""))
        return f"Account ending {number[-4:]}" if number else "Account"
    if section.startswith("party-"):
        party = content["counterparties"].get(section.removeprefix("party-"), {})
        return f"Counterparty: {party.get('name') or 'account ending ' + str(party.get('account', ''))[-4:]}"
    return _HEADINGS.get(section, section)


def _anchored(faults: list[dict[str, str]], draft: DraftForm | None) -> list[dict[str, str]]:
    """Each fault with where on the page it points: its field, else the part of the draft its
    field belongs to, else the file's panel."""
    fields = draft.fields if draft is not None else {}
    parts = sorted(draft.sections if draft is not None else (), key=len, reverse=True)

    def anchor(fault: dict[str, str]) -> str:
        if fault["field"] in fields:
            return f"id_{fault['field']}"
        part = next((part for part in parts if fault["field"].startswith(f"{part}-")), None)
        return f"section-{part}" if part else "file"

    return [{**fault, "anchor": anchor(fault)} for fault in faults]


@requires(any_of=READERS)
@require_http_methods(["GET", "HEAD", "POST"])
def report(request: HttpRequest, pk: int) -> HttpResponse:
    """The report: its draft (saved with POST), its files, its approval and its tracking."""
    subject = _report_of(request.user, pk)
    if request.method != "POST":
        return _page(request, subject)
    if not request.user.has_perm(Perm.DRAFT_STR):
        raise PermissionDenied("only those who draft reports save a draft")
    draft = _draft_form(subject, request.POST) if subject.editable else None
    if draft is None:
        return _page(request, subject, status=409, errors=[f"{subject.reference} is not a draft: it cannot be edited."])
    posted = request.POST.get("revision", "")
    revision = int(posted) if posted.isdigit() else 0
    if not draft.is_valid():
        return _page(request, subject, draft=draft, status=400, revision=revision)
    try:
        saved = reports.save(
            subject,
            draft.content(),
            revision=revision,
            suspicion_on=draft.cleaned_data.get("report-suspicion_on"),
            acting_user=request.user,  # type: ignore[arg-type]
        )
        if request.POST.get("then") == "generate":
            reports.request_generation(saved, revision=saved.revision, acting_user=request.user)  # type: ignore[arg-type]
    except (ValidationError, PermissionDenied) as error:
        # The revision the analyst saw stays on the page: saving again is refused again, never
        # taken over another person's save.
        return _page(
            request,
            subject,
            draft=draft,
            status=409,
            errors=getattr(error, "messages", [str(error)]),
            revision=revision,
        )
    if request.POST.get("then") == "generate":
        messages.info(request, "The draft is saved; the file is being written and checked.")
        return _back(subject, "file")
    messages.success(request, "The draft is saved. Generate the file to check it.")
    return _back(subject)


@requires(Perm.DRAFT_STR)
@require_POST
def report_generate(request: HttpRequest, pk: int) -> HttpResponse:
    subject = _report_of(request.user, pk)
    try:
        reports.request_generation(
            subject,
            revision=int(request.POST.get("revision", "0")),
            acting_user=request.user,  # type: ignore[arg-type]
        )
    except (ValidationError, PermissionDenied, ValueError) as error:
        return _page(request, subject, status=409, errors=getattr(error, "messages", [str(error)]))
    messages.info(request, "The file is being written and checked.")
    return _back(subject, "file")


@requires(any_of=READERS)
@require_safe
def report_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The latest generation's state, for the page to poll while a worker writes the file."""
    subject = _report_of(request.user, pk)
    latest = reports.latest_file(subject)
    if latest is not None and latest.finished and request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"  # the faults go beside their fields: show the page again
        return response
    return render(request, "reporting/_progress.html", {"report": subject, "latest": latest})


@requires(Perm.DRAFT_STR)
@require_POST
def report_request(request: HttpRequest, pk: int) -> HttpResponse:
    subject = _report_of(request.user, pk)
    form = SubmissionRequestForm(request.POST)
    if not form.is_valid():
        return _page(request, subject, status=400, request_form=form)
    try:
        reports.request_submission(subject, reason=form.cleaned_data["reason"], acting_user=request.user)  # type: ignore[arg-type]
    except (ValidationError, PermissionDenied) as error:
        return _page(request, subject, status=409, errors=getattr(error, "messages", [str(error)]))
    messages.success(request, f"{subject.reference} waits for a lead's approval.")
    return _back(subject)


@requires(Perm.APPROVE_STR, step_up=True)
@require_POST
def report_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """A lead's decision on submitting the file as generated (bound to the request's hash)."""
    subject = _report_of(request.user, pk)
    pending = reports.pending_request(subject)
    if pending is None:
        return _page(request, subject, status=409, errors=["Nothing about this report waits for a decision."])
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _page(request, subject, status=400, decision_form=form)
    data = form.cleaned_data
    try:
        if data["decision"] == "approve":
            approvals.approve(pending.pk, acting_user=request.user, seen_hash=data["seen_hash"], reason=data["reason"])  # type: ignore[arg-type]
        else:
            approvals.reject(pending.pk, acting_user=request.user, reason=data["reason"])  # type: ignore[arg-type]
    except approvals.ApprovalRefusedError as error:
        form.add_error(None, str(error))
        return _page(request, _report_of(request.user, pk), status=409, decision_form=form)
    verb = "approved: it may be submitted" if data["decision"] == "approve" else "rejected: it is a draft again"
    messages.success(request, f"{subject.reference} is {verb}.")
    return _back(subject)


@requires(any_of=READERS)
@require_safe
def report_download(request: HttpRequest, pk: int, file: str) -> HttpResponseBase:
    subject = _report_of(request.user, pk)
    try:
        made, chunks = reports.download(subject, file, acting_user=request.user)  # type: ignore[arg-type]
    except (ReportFile.DoesNotExist, ValidationError) as error:
        if isinstance(error, ReportFile.DoesNotExist):
            raise Http404("no such file") from None
        return _page(request, subject, status=409, errors=error.messages)
    return attachment(
        chunks, content_type="application/xml", filename=made.filename, size=made.size, sha256=made.sha256
    )


@requires(Perm.DRAFT_STR)
@require_POST
def report_abandon(request: HttpRequest, pk: int) -> HttpResponse:
    """Give up a report not yet submitted, with the reason."""
    return _tracked(
        request,
        pk,
        AbandonForm(request.POST),
        "abandon_form",
        lambda subject, data: reports.abandon(subject, reason=data["reason"], acting_user=request.user),  # type: ignore[arg-type]
        "{reference} is abandoned: its case may leave reporting.",
    )


def _tracked(
    request: HttpRequest, pk: int, form: SubmittedForm | AnswerForm | AbandonForm, name: str, act: Any, done: str
) -> HttpResponse:
    """A tracking form posted: the action done, or the page again with the form saying why not."""
    subject = _report_of(request.user, pk)
    status = 400
    if form.is_valid():
        try:
            act(subject, form.cleaned_data)
        except (ValidationError, PermissionDenied) as error:
            form.add_error(None, "; ".join(getattr(error, "messages", [str(error)])))
            status = 409
        else:
            messages.success(request, done.format(reference=subject.reference))
            return _back(subject)
    # Said at the top too: the form's own panel is shown only in the status it belongs to.
    said = [
        f"{form.fields[field].label}: {error}" if field != "__all__" else str(error)
        for field, errors in form.errors.items()
        for error in errors
    ]
    shown: dict[str, Any] = {name: form, "errors": said}
    return _page(request, subject, status=status, **shown)


@requires(Perm.DRAFT_STR)
@require_POST
def report_submitted(request: HttpRequest, pk: int) -> HttpResponse:
    """The approved file went to the FIU: its reference, the day and the channel."""
    return _tracked(
        request,
        pk,
        SubmittedForm(request.POST),
        "submitted_form",
        lambda subject, data: reports.mark_submitted(
            subject,
            fiu_ref_number=data["fiu_ref_number"],
            submitted_on=data["submitted_on"],
            channel=data["channel"],
            acting_user=request.user,  # type: ignore[arg-type]
        ),
        "{reference} is recorded as submitted.",
    )


@requires(Perm.DRAFT_STR)
@require_POST
def report_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """The FIU acknowledged the report, or rejected it (back to draft with its reason)."""
    return _tracked(
        request,
        pk,
        AnswerForm(request.POST),
        "answer_form",
        lambda subject, data: reports.record_answer(
            subject,
            accepted=data["outcome"] == "acknowledged",
            answered_on=data["answered_on"],
            feedback=data["feedback"],
            acting_user=request.user,  # type: ignore[arg-type]
        ),
        "The FIU's answer on {reference} is recorded.",
    )
