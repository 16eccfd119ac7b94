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
import gzip
import hashlib
import io
import json
import logging
import tempfile
import zoneinfo
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

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
from cases.intake import sla_due
from cases.models import Action, Case, Transaction
from cases.workflow import decidable_by
from reporting import deadlines, drafting
from reporting.goaml import xml
from reporting.goaml.validate import Fault, gate_for
from reporting.models import FiuProfile, Report, ReportApproval, ReportFile, ReportFileContent

logger = logging.getLogger(__name__)

SUBMISSION = "report_submission"
OPEN = (Report.Status.DRAFT, Report.Status.PENDING_APPROVAL, Report.Status.APPROVED)
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
    if suspicion_on > deadlines.today(profile):
        raise ValidationError("suspicion cannot have been formed in the future")
    with transaction.atomic(durable=True):
        locked = lock_to_work(case, acting_user)
        if locked.status != Case.Status.STR:
            raise ValidationError(f"{locked.reference} is not in reporting: send it to reporting first")
        if Report.objects.filter(case=locked, status__in=OPEN).exists():
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
            editors=[acting_user.pk],
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
    with transaction.atomic(durable=True):
        locked = _draft(report, acting_user)
        if suspicion_on is not None and suspicion_on > deadlines.today(locked.profile):
            raise ValidationError("suspicion cannot have been formed in the future")
        if locked.revision != revision:
            raise ValidationError(
                f"{locked.reference} was saved by someone else meanwhile (revision {locked.revision}): "
                "reload it and make your change again"
            )
        before = drafting.loads(locked)
        changed = sorted(key for key in set(before) | set(content) if before.get(key) != content.get(key))
        locked.content = drafting.dumps(content)
        dates: dict[str, Any] = {}
        if suspicion_on is not None and suspicion_on != locked.suspicion_on:
            changed.append("suspicion_on")
            dates["before"] = {"suspicion_on": locked.suspicion_on.isoformat(), "due_on": locked.due_on.isoformat()}
            locked.suspicion_on = suspicion_on
            redate(locked)
        locked.revision += 1
        locked.updated_at = timezone.now()
        _edited_by(locked, acting_user)
        locked.save(
            update_fields=[
                "content",
                "suspicion_on",
                "due_on",
                "deadline_escalated_at",
                "revision",
                "updated_at",
                "editors",
            ]
        )
        record(
            EventType.REPORT_SAVED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            before=dates.get("before"),
            after={
                "revision": locked.revision,
                "changed": changed,
                "suspicion_on": locked.suspicion_on.isoformat(),
                "due_on": locked.due_on.isoformat(),
            },
        )
    return locked


def _edited_by(report: Report, user: User) -> None:
    if user.pk not in report.editors:
        report.editors = [*report.editors, user.pk]


def redate(report: Report) -> None:
    """The deadline from the suspicion date and the FIU's calendar; a report whose deadline moves
    later may be escalated again when it comes close."""
    due = deadlines.due_on(report.profile, report.suspicion_on)
    if due > report.due_on:
        report.deadline_escalated_at = None
    report.due_on = due


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
        _edited_by(locked, acting_user)
        locked.save(update_fields=["editors"])
        record(
            EventType.REPORT_GENERATION_REQUESTED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            after={"file": str(made.pk), "revision": locked.revision, "schema": schema.sha256, "transactions": total},
        )
        # robust: a broker that is down leaves the file queued (generate again), not a failed page
        transaction.on_commit(lambda: generate_report.delay(str(made.pk)), robust=True)
    return made


def generate(file_id: str) -> ReportFile | None:
    """Write the file of a queued generation and put it through the gate (the worker's part).

    Idempotent: a file no longer queued (done, or taken by a live worker) is left alone; one a
    worker started longer ago than a task may run (the worker died; the broker delivers the task
    again) is taken again, and only the run that holds the file finishes it. The file is kept,
    encrypted, only when the gate passes it; otherwise its faults are kept, each told in the
    form's words.
    """
    abandoned = timezone.now() - datetime.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    with transaction.atomic(durable=True):
        made: ReportFile | None = (
            ReportFile.objects.select_for_update(skip_locked=True)
            .select_related("report__profile", "report__case", "schema")
            .filter(pk=file_id)
            .filter(Q(status=ReportFile.Status.QUEUED) | Q(status=ReportFile.Status.RUNNING, started_at__lt=abandoned))
            .first()
        )
        if made is None:
            return None
        made.status, made.started_at = ReportFile.Status.RUNNING, timezone.now()
        made.save(update_fields=["status", "started_at"])
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
    # Alerts that joined the case since the draft was saved: their new parts are blank in it,
    # and the rules below refuse the file until the analyst completes them.
    drafting.refresh(content, report.case, report.profile, schema)
    builder = drafting.Builder(report, content, schema)
    submission = timezone.now()
    made.submission_date = submission

    def progress(done: int) -> None:
        ReportFile.objects.filter(pk=made.pk, started_at=made.started_at).update(done=done)

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
                data, made.sha256, made.size = _packed(out)  # kept only when the gate passed it
    made.done = len(builder.locator.rows)
    excluded = content["transactions"].get("excluded", [])
    last = (
        Transaction.objects.filter(alert__case=report.case_id)
        .exclude(pk__in=excluded)
        .aggregate(last=Max("occurred_at"))["last"]
    )
    last_local = last.astimezone(builder.zone) if last is not None else None
    business = drafting.business_faults(report, content, schema, submission.astimezone(builder.zone).date(), last_local)
    business += list(builder.problems.values())
    business += [
        drafting.Issue("names", "names", drafting.LABELS["names"], f"Confirm how “{name}” is written for the FIU.")
        for name in builder.spell.unconfirmed
        if not any(issue.section == "names" and name in issue.message for issue in business)
    ]
    return _unique(business + issues), data


def _packed(out: BinaryIO) -> tuple[bytes, str, int]:
    """The file gzip-compressed as it is read, with the SHA-256 and the size of the file itself:
    a report of 50,000 transactions is 76 MB of XML, and about 3 MB to encrypt and store."""
    digest, size = hashlib.sha256(), 0
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed:
        while chunk := out.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            packed.write(chunk)
    return buffer.getvalue(), digest.hexdigest(), size


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
    """Record the verdict, if this run still holds the file (another may have taken it over)."""
    with transaction.atomic(durable=True):
        held = (
            ReportFile.objects.select_for_update()
            .filter(pk=made.pk, status=ReportFile.Status.RUNNING, started_at=made.started_at)
            .exists()
        )
        if not held:
            return
        made.status = status
        made.sealed_faults = json.dumps([issue.as_dict() for issue in issues[:MAX_ISSUES]], ensure_ascii=False)
        made.finished_at = timezone.now()
        if data is not None:  # sha256 and size were taken as the file was packed
            ReportFileContent.objects.create(file=made, data=data)
        else:
            made.sha256, made.size = "", 0
        made.save(update_fields=["status", "sealed_faults", "finished_at", "sha256", "size", "submission_date", "done"])
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
        _in_reporting(locked)
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
        _edited_by(locked, acting_user)
        locked.save(update_fields=["status", "editors"])
        record(
            EventType.REPORT_SUBMISSION_REQUESTED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            after={"approval": request.pk, "file": str(made.pk), "sha256": made.sha256},
        )
    return request


def _in_reporting(report: Report) -> None:
    case = Case.objects.get(pk=report.case_id)
    if case.status != Case.Status.STR:
        raise ValidationError(f"{case.reference} is no longer in reporting: its report is not submitted")


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
    report = Report.objects.restrict(maker, Action.WORK).filter(pk=payload["report"]).first()
    if report is None:
        raise ValidationError("the person who asked no longer works the report's case")
    _in_reporting(report)


def _may_decide(payload: Mapping[str, Any], approver: User) -> bool:
    """A lead of the team that owns the case who has not worked on the report: not whoever
    drafted it, saved it, generated a file of it or asked for the approval."""
    report = payload.get("report")
    if not isinstance(report, int) or not decidable_by(approver).filter(reports__pk=report).exists():
        return False
    editors = Report.objects.filter(pk=report).values_list("editors", flat=True).first() or []
    return approver.pk not in editors


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
    if hashlib.sha256(made.xml()).hexdigest() != request.payload["sha256"]:
        raise ValidationError("the stored file no longer matches its SHA-256: report it to security")
    report.status = Report.Status.APPROVED
    report.approved_file_id, report.approved_at = made.file_id, timezone.now()
    report.save(update_fields=["status", "approved_file", "approved_at"])
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
    report.revision += 1  # the declined file is never sent for approval again, to another lead
    report.save(update_fields=["status", "revision"])
    record(
        EventType.REPORT_APPROVAL_DECLINED,
        actor=actor_of(decider) if decider is not None else Actor.system("approval expiry"),
        object_type="report",
        object_id=report.pk,
        reason=request.status,  # rejected, withdrawn or expired
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


def downloadable(report: Report) -> ReportFile | None:
    """The one file of a report that may be read: the approved one once a lead approved it, the
    one waiting for approval while it waits, else the draft's latest file the gate passed."""
    if report.status in (Report.Status.APPROVED, Report.Status.SUBMITTED, Report.Status.ACKNOWLEDGED):
        return report.approved_file
    if report.status == Report.Status.PENDING_APPROVAL:
        link = ReportApproval.objects.filter(report=report, request__status=ApprovalRequest.Status.PENDING).first()
        return link.file if link is not None else None
    latest = latest_file(report)
    if latest is None or latest.status != ReportFile.Status.VALID or latest.revision != report.revision:
        return None
    return latest


def download(report: Report, file_id: str, *, acting_user: User) -> tuple[ReportFile, Iterator[bytes]]:
    """The report's file (:func:`downloadable`), checked against its SHA-256 as it is unpacked,
    then given a megabyte at a time; each download is recorded. Only those who may work the
    report's case read it."""
    if not (acting_user.has_perm(Perm.DRAFT_STR) or acting_user.has_perm(Perm.APPROVE_STR)):
        raise PermissionDenied("only those who draft or approve reports download them")
    reached = Report.objects.restrict(acting_user, Action.WORK).filter(pk=report.pk).first()
    offered = downloadable(reached) if reached is not None else None
    if offered is None or str(offered.pk) != str(file_id):
        raise ReportFile.DoesNotExist("there is no such file of this report to read")
    content = ReportFileContent.objects.get(file=offered)
    digest = hashlib.sha256()
    for chunk in content.xml_chunks():
        digest.update(chunk)
    if digest.hexdigest() != offered.sha256:
        raise ValidationError("the file no longer matches its SHA-256: it is withheld, report it to security")
    with transaction.atomic(durable=True):
        record(
            EventType.REPORT_DOWNLOADED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=report.pk,
            after={"file": str(offered.pk), "sha256": offered.sha256, "status": reached.status if reached else ""},
        )
    return offered, content.xml_chunks()


def mark_submitted(
    report: Report, *, fiu_ref_number: str, submitted_on: datetime.date, channel: str, acting_user: User
) -> Report:
    """The approved file went to the FIU: by which channel, on which day, under which reference."""
    require(acting_user, Perm.DRAFT_STR)
    if channel not in Report.Channel.values:
        raise ValidationError(f"unknown channel {channel!r}")
    if not fiu_ref_number.strip():
        raise ValidationError("the FIU's reference of the submission is required")
    with transaction.atomic(durable=True):
        locked = _lock(report, acting_user)
        if locked.status != Report.Status.APPROVED or locked.approved_file is None or locked.approved_at is None:
            raise ValidationError(
                f"{locked.reference} is {locked.get_status_display().lower()}: only an approved report is submitted"
            )
        zone = zoneinfo.ZoneInfo(locked.profile.time_zone)
        if submitted_on > deadlines.today(locked.profile):
            raise ValidationError("a report cannot have been submitted in the future")
        if submitted_on < locked.approved_at.astimezone(zone).date():
            raise ValidationError("a report cannot have been submitted before it was approved")
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
                "file": str(locked.approved_file.pk),
                "sha256": locked.approved_file.sha256,
            },
        )
    return locked


def record_answer(
    report: Report, *, accepted: bool, answered_on: datetime.date, feedback: str, acting_user: User
) -> Report:
    """The FIU's answer: acknowledged, or rejected with its reason (the report is a draft again)."""
    require(acting_user, Perm.DRAFT_STR)
    if not accepted and not feedback.strip():
        raise ValidationError("a rejection states the FIU's reason")
    with transaction.atomic(durable=True):
        locked = _lock(report, acting_user)
        if answered_on > deadlines.today(locked.profile):
            raise ValidationError("the FIU cannot have answered in the future")
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
            locked.approved_file, locked.approved_at = None, None
            fields += ["revision", "approved_file", "approved_at"]
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


def abandon(report: Report, *, reason: str, acting_user: User) -> Report:
    """Give up a report not yet submitted (a draft, or an approved file not sent), with the
    reason: the case may then leave reporting. A report waiting for approval is decided first."""
    require(acting_user, Perm.DRAFT_STR)
    if not reason.strip():
        raise ValidationError("say why the report is abandoned")
    with transaction.atomic(durable=True):
        locked = _lock(report, acting_user)
        if locked.status not in (Report.Status.DRAFT, Report.Status.APPROVED):
            raise ValidationError(
                f"{locked.reference} is {locked.get_status_display().lower()}: only a draft or an approved report "
                "not yet submitted is abandoned"
            )
        before = locked.status
        locked.status = Report.Status.ABANDONED
        locked.save(update_fields=["status"])
        record(
            EventType.REPORT_ABANDONED,
            actor=actor_of(acting_user),
            object_type="report",
            object_id=locked.pk,
            reason=reason.strip(),
            before={"status": before},
            after={"status": locked.status},
        )
    return locked


def open_report_of(case: Case) -> str | None:
    """Why ``case`` may not leave reporting: a report of it still in progress (or None)."""
    found = Report.objects.filter(case_id=case.pk, status__in=OPEN).first()
    if found is None:
        return None
    return (
        f"{found.reference} is {found.get_status_display().lower()}: submit it or abandon it before "
        f"{case.reference} leaves reporting"
    )


# --- deadlines --------------------------------------------------------------------------------------------


def escalate_deadlines(today: datetime.date | None = None) -> int:
    """Raise the case of every report due soon or overdue to critical priority, once, with a
    ledger event: it goes to the top of its queue (its SLA follows, as for any change of
    priority). ``today`` is each FIU's own unless given. Returns how many were escalated."""
    escalated = 0
    candidates = Report.objects.filter(status__in=OPEN, deadline_escalated_at__isnull=True).select_related("profile")
    calendars: deadlines.Calendars = {}
    for report in candidates.iterator():
        day = today or deadlines.today(report.profile)
        state, left = deadlines.standing(report.profile, report.due_on, day, calendars)
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
            if case.priority < Case.Priority.CRITICAL and case.status != Case.Status.CLOSED:
                sla_before = case.sla_due_at.isoformat() if case.sla_due_at else None
                case.priority = Case.Priority.CRITICAL
                case.sla_due_at = sla_due(case.priority, case.opened_at)
                case.save(update_fields=["priority", "sla_due_at"])
                record(
                    EventType.CASE_PRIORITY_CHANGED,
                    actor=Actor.system("report deadlines"),
                    object_type="case",
                    object_id=case.pk,
                    reason=f"{locked.reference} {str(state).replace('_', ' ')}",
                    before={"priority": Case.Priority(before).label, "sla_due_at": sla_before},
                    after={"priority": case.get_priority_display(), "sla_due_at": case.sla_due_at.isoformat()},
                )
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
