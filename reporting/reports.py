"""What is done with a suspicious transaction report, each in one transaction with its ledger event.

draft ──generate──▶ (a file the gate checked) ──request submission──▶ waiting for approval
   ▲                                                                       │ a lead of the case's
   │ rejected by the lead, or expired ◀────────────────────────────────────┤ team, not the maker,
   │                                                                       ▼ bound to the SHA-256
   └──────── rejected by the FIU ◀── submitted (FIU reference) ◀── approved, to submit
                                          │
                                          ▼ acknowledged by the FIU

A draft is edited only while it is a draft; each save raises its revision, and a file generated
from an earlier revision cannot be sent for approval. Generation runs in a Celery worker
(:func:`generate`), with its progress on the file's row.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import tempfile
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts import approvals
from accounts.actions import actor_of, require
from accounts.models import ApprovalRequest, User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import Actor, record
from cases.casework import lock_to_work
from cases.models import Action, Case, Transaction
from cases.workflow import decidable_by
from reporting import deadlines, drafting
from reporting.goaml import xml
from reporting.goaml.validate import Fault, gate_for
from reporting.models import FiuProfile, Report, ReportApproval, ReportFile, ReportFileContent

logger = logging.getLogger(__name__)

SUBMISSION = "report_submission"
MAX_ISSUES = 200  # a file refused for more reasons shows the first ones (the count is kept)


def _lock(report: Report, user: User, action: Action = Action.WORK) -> Report:
    locked: Report | None = (
        Report.objects.restrict(user, action)
        .select_for_update(of=("self",))
        .select_related("case", "profile")
        .filter(pk=report.pk)
        .first()
    )
    if locked is None:
        raise PermissionDenied("only someone who works the report's case may change it")
    return locked


def _draft(report: Report, user: User) -> Report:
    locked = _lock(report, user)
    if locked.status != Report.Status.DRAFT:
        raise ValidationError(f"{locked.reference} is {locked.get_status_display().lower()}: it is not a draft")
    return locked


# --- the draft -------------------------------------------------------------------------------------


def start(
    case: Case,
    profile: FiuProfile,
    *,
    report_code: str,
    suspicion_on: datetime.date,
    acting_user: User,
) -> Report:
    """A new draft about ``case`` (which is in reporting), prefilled from what the case holds."""
    require(acting_user, Perm.DRAFT_STR)
    schema = profile.current_schema()
    if not profile.is_active or schema is None:
        raise ValidationError(f"{profile.name} takes no reports: it has no current goAML schema")
    if report_code not in {code for code, _ in schema.codes("report_type")}:
        raise ValidationError(f"{report_code!r} is not a kind of report {profile.name} knows")
    if suspicion_on > timezone.localdate():
        raise ValidationError("suspicion cannot have been formed in the future")
    with transaction.atomic(durable=True):
        locked = lock_to_work(case, acting_user)
        if locked.status != Case.Status.STR:
            raise ValidationError(f"{locked.reference} is not in reporting: send it to reporting first")
        if Report.objects.filter(case=locked).exclude(status=Report.Status.ACKNOWLEDGED).exists():
            raise ValidationError(f"{locked.reference} has a report in progress already")
        content = drafting.initial(locked, profile, schema)
        report = Report.objects.create(
            case=locked,
            profile=profile,
            report_code=report_code,
            suspicion_on=suspicion_on,
            due_on=deadlines.due_on(profile, suspicion_on),
            content=drafting.dumps(content),
            created_by=acting_user,
        )
        record(
            EventType.REPORT_DRAFTED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=report.pk,
            after={
                "case": locked.pk,
                "profile": profile.slug,
                "report_code": report_code,
                "suspicion_on": suspicion_on.isoformat(),
                "due_on": report.due_on.isoformat(),
            },
        )
    return report


def save(
    report: Report,
    content: Mapping[str, Any],
    *,
    revision: int,
    suspicion_on: datetime.date | None = None,
    acting_user: User,
) -> Report:
    """Save the draft as the analyst left it; refused when someone saved it since ``revision``."""
    require(acting_user, Perm.DRAFT_STR)
    if suspicion_on is not None and suspicion_on > timezone.localdate():
        raise ValidationError("suspicion cannot have been formed in the future")
    with transaction.atomic(durable=True):
        locked = _draft(report, acting_user)
        if locked.revision != revision:
            raise ValidationError(
                f"{locked.reference} was saved by someone else meanwhile (revision {locked.revision}): "
                "reload it and make your change again"
            )
        before = drafting.loads(locked)
        changed = sorted(key for key in set(before) | set(content) if before.get(key) != content.get(key))
        locked.content = drafting.dumps(content)
        if suspicion_on is not None and suspicion_on != locked.suspicion_on:
            changed.append("suspicion_on")
            locked.suspicion_on = suspicion_on
            locked.due_on = deadlines.due_on(locked.profile, suspicion_on)
        locked.revision += 1
        locked.updated_at = timezone.now()
        locked.save(update_fields=["content", "suspicion_on", "due_on", "revision", "updated_at"])
        record(
            EventType.REPORT_SAVED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            after={"revision": locked.revision, "changed": changed, "due_on": locked.due_on.isoformat()},
        )
    return locked


# --- generation ----------------------------------------------------------------------------------------


def request_generation(report: Report, *, revision: int, acting_user: User) -> ReportFile:
    """Queue the writing and checking of the draft's file (a Celery worker does it)."""
    from reporting.tasks import generate_report

    require(acting_user, Perm.DRAFT_STR)
    with transaction.atomic(durable=True):
        locked = _draft(report, acting_user)
        if locked.revision != revision:
            raise ValidationError(f"{locked.reference} was saved since you saw it: reload it first")
        schema = locked.profile.current_schema()
        if schema is None:
            raise ValidationError(f"{locked.profile.name} has no current goAML schema")
        content = drafting.loads(locked)
        excluded = content["transactions"].get("excluded", [])
        total = Transaction.objects.filter(alert__case=locked.case_id).exclude(pk__in=excluded).count()
        made = ReportFile.objects.create(
            report=locked, revision=locked.revision, schema=schema, total=total, requested_by=acting_user
        )
        record(
            EventType.REPORT_GENERATION_REQUESTED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            after={"file": str(made.pk), "revision": locked.revision, "schema": schema.sha256, "transactions": total},
        )
        transaction.on_commit(lambda: generate_report.delay(str(made.pk)))
    return made


def generate(file_id: str) -> ReportFile | None:
    """Write the file of a queued generation and put it through the gate (the worker's part).

    Idempotent: a file no longer queued (done, or taken by a live worker) is left alone; one
    left running longer than a task may run (its worker died, and the broker delivers the task
    again) is taken again. The file is kept, encrypted, only when the gate passes it; otherwise
    its faults are kept, each told in the form's words.
    """
    abandoned = timezone.now() - datetime.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    with transaction.atomic(durable=True):
        made: ReportFile | None = (
            ReportFile.objects.select_for_update(skip_locked=True)
            .select_related("report__profile", "report__case", "schema")
            .filter(pk=file_id)
            .filter(
                Q(status=ReportFile.Status.QUEUED) | Q(status=ReportFile.Status.RUNNING, requested_at__lt=abandoned)
            )
            .first()
        )
        if made is None:
            return None
        made.status = ReportFile.Status.RUNNING
        made.save(update_fields=["status"])
    report, schema = made.report, made.schema
    try:
        issues, data = _write_and_check(made, report, schema)
    except Exception:
        logger.exception("report generation failed", extra={"file": str(made.pk)})
        _finish(made, ReportFile.Status.FAILED, [], None)
        raise
    status = ReportFile.Status.INVALID if issues else ReportFile.Status.VALID
    _finish(made, status, issues, None if issues else data)
    return made


def _write_and_check(made: ReportFile, report: Report, schema: Any) -> tuple[list[drafting.Issue], bytes]:
    if report.revision != made.revision:
        stale = drafting.Issue("report", "report-reason", "Draft", "The draft was saved since: generate it again.")
        return [stale], b""
    content = drafting.loads(report)
    builder = drafting.Builder(report, content, schema)
    submission = timezone.now()
    made.submission_date = submission

    def progress(done: int) -> None:
        ReportFile.objects.filter(pk=made.pk).update(done=done)

    document = builder.document(submission, progress)
    shape = _shape(bytes(schema.xsd))
    issues: list[drafting.Issue] = []
    data = b""
    with tempfile.TemporaryFile() as out:
        try:
            shape.write_to(out, document)  # the transactions streamed from the database
        except xml.WriteError as error:
            issues.append(builder.locator.issue(Fault(error.path, error.message, "writer")))
        else:
            out.seek(0)
            faults = gate_for(bytes(schema.xsd)).check_file(out)  # read as a stream too
            issues += [builder.locator.issue(fault) for fault in faults]
            if not faults:
                out.seek(0)
                data = out.read()  # kept, encrypted, only when the gate passed it
    ReportFile.objects.filter(pk=made.pk).update(done=len(builder.locator.rows))
    excluded = content["transactions"].get("excluded", [])
    last = (
        Transaction.objects.filter(alert__case=report.case_id)
        .exclude(pk__in=excluded)
        .aggregate(last=Max("occurred_at"))["last"]
    )
    last_local = last.astimezone(builder.zone) if last is not None else None
    business = drafting.business_faults(report, content, schema, submission.astimezone(builder.zone).date(), last_local)
    business += [
        drafting.Issue("names", "names", drafting.LABELS["names"], f"Confirm how “{name}” is written for the FIU.")
        for name in builder.spell.unconfirmed
        if not any(issue.section == "names" and name in issue.message for issue in business)
    ]
    return _unique(business + issues), data


def _unique(issues: list[drafting.Issue]) -> list[drafting.Issue]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for issue in issues:
        key = (issue.field, issue.message)
        if key not in seen:
            seen.add(key)
            kept.append(issue)
    return kept


_SHAPES: dict[bytes, xml.Shape] = {}


def _shape(xsd: bytes) -> xml.Shape:
    key = hashlib.sha256(xsd).digest()
    if key not in _SHAPES:
        _SHAPES.clear()
        _SHAPES[key] = xml.Shape(xsd)
    return _SHAPES[key]


def _finish(made: ReportFile, status: str, issues: list[drafting.Issue], data: bytes | None) -> None:
    with transaction.atomic(durable=True):
        made.status = status
        made.faults = [issue.as_dict() for issue in issues[:MAX_ISSUES]]
        made.finished_at = timezone.now()
        if data is not None:
            made.sha256 = hashlib.sha256(data).hexdigest()
            made.size = len(data)
            ReportFileContent.objects.create(file=made, data=data)
        made.save(update_fields=["status", "faults", "finished_at", "sha256", "size", "submission_date"])
        record(
            EventType.REPORT_GENERATED,
            actor=Actor.system("report generation"),
            object_type="report",
            object_id=made.report_id,
            reason=status,
            after={
                "file": str(made.pk),
                "revision": made.revision,
                "sha256": made.sha256,
                "faults": len(issues),
                "requested_by": made.requested_by_id,
            },
        )


def latest_file(report: Report) -> ReportFile | None:
    latest: ReportFile | None = ReportFile.objects.filter(report=report).order_by("-requested_at").first()
    return latest


# --- four-eyes -----------------------------------------------------------------------------------------


def request_submission(report: Report, *, reason: str, acting_user: User) -> ApprovalRequest:
    """Ask a lead of the case's team to approve the file as it is (bound to its SHA-256)."""
    require(acting_user, Perm.DRAFT_STR)
    with transaction.atomic(durable=True):
        locked = _draft(report, acting_user)
        made = latest_file(locked)
        if made is None or made.status != ReportFile.Status.VALID or made.revision != locked.revision:
            raise ValidationError(
                "only a file the gate passed, generated from the draft as it is now, can be sent for approval"
            )
        payload = {"report": locked.pk, "file": str(made.pk), "sha256": made.sha256}
        request = approvals.file_request(
            SUBMISSION,
            payload,
            acting_user=acting_user,
            reason=reason.strip() or f"Submit {locked.reference} to {locked.profile.name}",
            ttl=datetime.timedelta(hours=settings.CASES["APPROVAL_HOURS"]),
        )
        ReportApproval.objects.create(report=locked, file=made, request=request)
        locked.status = Report.Status.PENDING_APPROVAL
        locked.save(update_fields=["status"])
        record(
            EventType.REPORT_SUBMISSION_REQUESTED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            after={"approval": request.pk, "file": str(made.pk), "sha256": made.sha256},
        )
    return request


def pending_request(report: Report) -> ApprovalRequest | None:
    link = (
        ReportApproval.objects.filter(report=report, request__status=ApprovalRequest.Status.PENDING)
        .select_related("request", "request__maker")
        .first()
    )
    return link.request if link else None


def _validate_submission(payload: Mapping[str, Any], maker: User) -> None:
    if set(payload) != {"report", "file", "sha256"} or not isinstance(payload.get("report"), int):
        raise ValidationError("a request to submit a report names exactly: file, report, sha256")
    made = ReportFile.objects.filter(pk=payload["file"], report_id=payload["report"]).first()
    if made is None or made.status != ReportFile.Status.VALID or made.sha256 != payload["sha256"]:
        raise ValidationError("the file to submit is not the one the request names")
    if not Report.objects.restrict(maker, Action.WORK).filter(pk=payload["report"]).exists():
        raise ValidationError("the person who asked no longer works the report's case")


def _may_decide(payload: Mapping[str, Any], approver: User) -> bool:
    """A lead of the team that owns the case, who neither drafted the report nor generated the
    file: the second pair of eyes has not worked on what it approves."""
    report, made = payload.get("report"), payload.get("file")
    if not isinstance(report, int) or not isinstance(made, str):
        return False
    if not decidable_by(approver).filter(reports__pk=report).exists():
        return False
    involved = Report.objects.filter(pk=report, created_by=approver).exists()
    return not (involved or ReportFile.objects.filter(pk=made, requested_by=approver).exists())


def _own_request(request: ApprovalRequest) -> Report:
    report: Report = Report.objects.select_for_update(of=("self",)).get(pk=request.payload["report"])
    if not ReportApproval.objects.filter(report=report, request=request).exists():
        raise ValidationError("the request is not linked to its report")
    return report


def _execute_submission(request: ApprovalRequest, approver: User) -> None:
    report = _own_request(request)
    if report.status != Report.Status.PENDING_APPROVAL:
        raise ValidationError(f"{report.reference} is no longer waiting for approval")
    made = ReportFileContent.objects.select_related("file").get(file_id=request.payload["file"])
    if hashlib.sha256(bytes(made.data)).hexdigest() != request.payload["sha256"]:
        raise ValidationError("the stored file no longer matches its SHA-256: report it to security")
    report.status = Report.Status.APPROVED
    report.save(update_fields=["status"])
    record(
        EventType.REPORT_APPROVED,
        actor=actor_of(approver),
        object_type="report",
        object_id=report.pk,
        after={
            "file": request.payload["file"],
            "sha256": request.payload["sha256"],
            "maker": request.maker_id,
            "approver": approver.pk,
            "approval": request.pk,
        },
    )


def _decline_submission(request: ApprovalRequest, decider: User | None) -> None:
    report = _own_request(request)
    if report.status != Report.Status.PENDING_APPROVAL:
        return
    report.status = Report.Status.DRAFT
    report.save(update_fields=["status"])
    record(
        EventType.REPORT_APPROVAL_DECLINED,
        actor=actor_of(decider) if decider is not None else Actor.system("approval expiry"),
        object_type="report",
        object_id=report.pk,
        reason="rejected" if decider is not None else "expired",
        after={"approval": request.pk, "status": report.status},
    )


approvals.register(
    approvals.Kind(
        SUBMISSION,
        Perm.DRAFT_STR,
        Perm.APPROVE_STR,
        _validate_submission,
        _execute_submission,
        may_decide=_may_decide,
        declined=_decline_submission,
    )
)


# --- the file, and what the FIU said ----------------------------------------------------------------------


def download(report: Report, file_id: str, *, acting_user: User) -> tuple[ReportFile, bytes]:
    """A generated file's bytes, checked against their SHA-256; each download is recorded."""
    if not (acting_user.has_perm(Perm.DRAFT_STR) or acting_user.has_perm(Perm.APPROVE_STR)):
        raise PermissionDenied("only those who draft or approve reports download them")
    made = (
        ReportFile.objects.restrict(acting_user, Action.VIEW)
        .filter(report=report, pk=file_id, status=ReportFile.Status.VALID)
        .select_related("content", "report")
        .first()
    )
    if made is None:
        raise ReportFile.DoesNotExist("there is no such file of this report")
    data = bytes(made.content.data)
    if hashlib.sha256(data).hexdigest() != made.sha256:
        raise ValidationError("the file no longer matches its SHA-256: it is withheld, report it to security")
    with transaction.atomic(durable=True):
        record(
            EventType.REPORT_DOWNLOADED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=report.pk,
            after={"file": str(made.pk), "sha256": made.sha256},
        )
    return made, data


def mark_submitted(
    report: Report, *, fiu_ref_number: str, submitted_on: datetime.date, channel: str, acting_user: User
) -> Report:
    """The approved file went to the FIU: by which channel, on which day, under which reference."""
    require(acting_user, Perm.DRAFT_STR)
    if channel not in Report.Channel.values:
        raise ValidationError(f"unknown channel {channel!r}")
    if not fiu_ref_number.strip():
        raise ValidationError("the FIU's reference of the submission is required")
    if submitted_on > timezone.localdate():
        raise ValidationError("a report cannot have been submitted in the future")
    with transaction.atomic(durable=True):
        locked = _lock(report, acting_user)
        if locked.status != Report.Status.APPROVED:
            raise ValidationError(
                f"{locked.reference} is {locked.get_status_display().lower()}: only an approved report is submitted"
            )
        locked.status = Report.Status.SUBMITTED
        locked.fiu_ref_number, locked.submitted_on, locked.channel = fiu_ref_number.strip(), submitted_on, channel
        locked.save(update_fields=["status", "fiu_ref_number", "submitted_on", "channel"])
        record(
            EventType.REPORT_SUBMITTED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            after={
                "fiu_ref_number": locked.fiu_ref_number,
                "submitted_on": submitted_on.isoformat(),
                "channel": channel,
                "late": submitted_on > locked.due_on,
            },
        )
    return locked


def record_answer(
    report: Report, *, accepted: bool, answered_on: datetime.date, feedback: str, acting_user: User
) -> Report:
    """The FIU's answer: acknowledged, or rejected with its reason (the report is a draft again)."""
    require(acting_user, Perm.DRAFT_STR)
    if answered_on > timezone.localdate():
        raise ValidationError("the FIU cannot have answered in the future")
    if not accepted and not feedback.strip():
        raise ValidationError("a rejection states the FIU's reason")
    with transaction.atomic(durable=True):
        locked = _lock(report, acting_user)
        if locked.status != Report.Status.SUBMITTED:
            raise ValidationError(f"{locked.reference} is not waiting for the FIU's answer")
        if locked.submitted_on is not None and answered_on < locked.submitted_on:
            raise ValidationError("the FIU cannot have answered before the report was submitted")
        locked.answered_on, locked.fiu_feedback = answered_on, feedback.strip()
        fields = ["status", "answered_on", "fiu_feedback"]
        if accepted:
            locked.status = Report.Status.ACKNOWLEDGED
            event = EventType.REPORT_ACKNOWLEDGED
        else:
            locked.status = Report.Status.DRAFT
            locked.revision += 1  # the file the FIU refused is never sent for approval again
            fields.append("revision")
            event = EventType.REPORT_REJECTED
        locked.save(update_fields=fields)
        record(
            event,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            after={
                "fiu_ref_number": locked.fiu_ref_number,
                "answered_on": answered_on.isoformat(),
                "status": locked.status,
                "feedback_sha256": hashlib.sha256(locked.fiu_feedback.encode()).hexdigest(),
            },
        )
    return locked


# --- deadlines --------------------------------------------------------------------------------------------

OPEN = (Report.Status.DRAFT, Report.Status.PENDING_APPROVAL, Report.Status.APPROVED)


def escalate_deadlines(today: datetime.date | None = None) -> int:
    """Raise the case of every report due soon or overdue to critical priority, once, with a
    ledger event: it goes to the top of its queue. Returns how many were escalated."""
    today = today or timezone.localdate()
    escalated = 0
    candidates = Report.objects.filter(status__in=OPEN, deadline_escalated_at__isnull=True).select_related("profile")
    calendars: deadlines.Calendars = {}
    for report in candidates.iterator():
        state, left = deadlines.standing(report.profile, report.due_on, today, calendars)
        if state == deadlines.Standing.ON_TIME:
            continue
        with transaction.atomic(durable=True):
            locked = (
                Report.objects.select_for_update(of=("self",))
                .filter(pk=report.pk, deadline_escalated_at__isnull=True, status__in=OPEN)
                .first()
            )
            if locked is None:
                continue
            case = Case.objects.select_for_update().get(pk=locked.case_id)
            before = case.priority
            if case.priority < Case.Priority.CRITICAL:
                case.priority = Case.Priority.CRITICAL
                case.save(update_fields=["priority"])
            locked.deadline_escalated_at = timezone.now()
            locked.save(update_fields=["deadline_escalated_at"])
            record(
                EventType.REPORT_DEADLINE_NEAR,
                actor=Actor.system("report deadlines"),
                object_type="report",
                object_id=locked.pk,
                reason=str(state),
                after={
                    "case": case.pk,
                    "due_on": locked.due_on.isoformat(),
                    "business_days_left": left,
                    "priority": {"before": before, "after": case.priority},
                },
            )
            escalated += 1
    return escalated
