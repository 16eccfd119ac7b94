"""The life of a case: where it may go from where it is, why, and when a second person must agree.

::

    new ──take──▶ in progress ──escalate──▶ escalated ──return──▶ in progress
                  in progress, escalated ──report──▶ reporting (STR) ──withdraw──▶ in progress
                  in progress, escalated, reporting ──close──▶ closed
                                                     └──────▶ pending approval ──approved──▶ closed
                                                              (rejected or expired: back where it was)
                  closed ──reopen, once approved──▶ in progress

Every move is an action with a reason code (and a note when the code is "other"), one
transaction and one ledger event on the case. Closing as confirmed fraud, or a case whose
transactions reach ``CASES["CLOSURE_APPROVAL_AT"]`` in their currency (or are in a currency with
no threshold), goes through the four-eyes approvals of :mod:`accounts.approvals`; so does every
reopening. The approver holds ``cases.approve_closure``, may work the case, and is not the maker.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts import approvals
from accounts.actions import actor_of, require
from accounts.models import ApprovalRequest, User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import Actor, record
from cases import outbox
from cases.casework import lock_to_work, write_note
from cases.intake import sla_due
from cases.models import Action, Alert, Case, CaseApproval, Transaction

Status = Case.Status

OTHER = ("other", "Other (explained in the note)")


class Move(models.TextChoices):
    ESCALATE = "escalate", "Escalate"
    RETURN = "return", "Return from escalation"
    REPORT = "report", "Prepare a suspicious transaction report"
    WITHDRAW = "withdraw", "Withdraw from reporting"


@dataclass(frozen=True)
class Rule:
    sources: frozenset[str]
    target: str
    reasons: tuple[tuple[str, str], ...]


MOVES: dict[Move, Rule] = {
    Move.ESCALATE: Rule(
        frozenset({Status.IN_PROGRESS}),
        Status.ESCALATED,
        (
            ("specialist", "Needs a specialist"),
            ("high_risk", "High value or high risk"),
            ("law_enforcement", "Law enforcement involved"),
            ("customer_complaint", "Customer complaint"),
            OTHER,
        ),
    ),
    Move.RETURN: Rule(
        frozenset({Status.ESCALATED}),
        Status.IN_PROGRESS,
        (("answered", "Escalation answered"), ("not_needed", "Escalation not needed"), OTHER),
    ),
    Move.REPORT: Rule(
        frozenset({Status.IN_PROGRESS, Status.ESCALATED}),
        Status.STR,
        (
            ("suspicion", "Grounds for suspicion"),
            ("threshold", "Reporting threshold met"),
            ("compliance", "Asked by compliance"),
            OTHER,
        ),
    ),
    Move.WITHDRAW: Rule(
        frozenset({Status.STR}),
        Status.IN_PROGRESS,
        (
            ("no_suspicion", "No grounds for suspicion after all"),
            ("reported_elsewhere", "Reported with another case"),
            OTHER,
        ),
    ),
}

CLOSABLE = frozenset({Status.IN_PROGRESS, Status.ESCALATED, Status.STR})

REOPEN_REASONS: tuple[tuple[str, str], ...] = (
    ("new_information", "New information"),
    ("closed_in_error", "Closed in error"),
    ("customer_dispute", "Customer dispute"),
    ("regulator", "Asked by a regulator or an auditor"),
    OTHER,
)

CLOSURE = "case_closure"
REOPENING = "case_reopen"

# What may keep a case in reporting: each guard says why the case may not leave it now (a report
# still in progress), or None. The reporting app registers its own (apps above this one register;
# this one never imports them).
LEAVING_REPORTING: list[Callable[[Case], str | None]] = []


def _may_leave_reporting(case: Case) -> None:
    if case.status == Status.STR:
        for guard in LEAVING_REPORTING:
            why = guard(case)
            if why:
                raise ValidationError(why)


def moves_from(status: str) -> list[Move]:
    return [move for move, rule in MOVES.items() if status in rule.sources]


def _reason_of(choices: tuple[tuple[str, str], ...], code: str, note: str) -> str:
    codes = dict(choices)
    if code not in codes:
        raise ValidationError(f"unknown reason {code!r}: one of {', '.join(codes)}")
    if code == "other" and not note.strip():
        raise ValidationError("explain the reason in the note")
    return code


def move(case: Case, to: Move | str, reason: str, *, note: str = "", acting_user: User) -> Case:
    """Escalate a case, return it, send it to reporting or withdraw it from there."""
    require(acting_user, Perm.WORK_CASES)
    chosen = Move(to)
    rule = MOVES[chosen]
    _reason_of(rule.reasons, reason, note)
    with transaction.atomic(durable=True):
        locked = lock_to_work(case, acting_user)
        if locked.status not in rule.sources:
            raise ValidationError(
                f"{locked.reference} is {locked.get_status_display().lower()}: it cannot be moved to "
                f"{Status(rule.target).label.lower()} from there"
            )
        _may_leave_reporting(locked)
        before = locked.status
        written = write_note(locked, acting_user, note) if note.strip() else None
        locked.status = rule.target
        locked.save(update_fields=["status"])
        record(
            EventType.CASE_STATUS_CHANGED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=locked.pk,
            reason=reason,
            before={"status": before},
            after={"status": locked.status, "move": chosen.value, "note": str(written.pk) if written else None},
        )
        outbox.status_changed(locked, before)
    return locked


# --- closure -------------------------------------------------------------------------------------


def amounts_at_stake(case: Case) -> dict[str, Decimal]:
    """What a case is about, by currency: its transactions, and the amount of each alert that
    names no transaction (two queries)."""
    totals: dict[str, Decimal] = {}
    for currency, amount in (
        Transaction.objects.filter(alert__case=case).values_list("currency").annotate(Sum("amount")).order_by()
    ):
        totals[currency] = totals.get(currency, Decimal(0)) + amount
    alone = (
        Alert.objects.filter(case=case, transactions=None)
        .exclude(amount=None)
        .values_list("currency")
        .annotate(Sum("amount"))
        .order_by()
    )
    for currency, amount in alone:
        totals[currency] = totals.get(currency, Decimal(0)) + amount
    return totals


def approval_grounds(case: Case, reason: str) -> list[str]:
    """Why closing ``case`` with ``reason`` needs a second person's approval (none: it does not)."""
    grounds = []
    if reason == Case.ClosureReason.CONFIRMED_FRAUD:
        grounds.append("closed as confirmed fraud")
    thresholds: Mapping[str, Decimal] = settings.CASES["CLOSURE_APPROVAL_AT"]
    for currency, amount in sorted(amounts_at_stake(case).items()):
        limit = thresholds.get(currency)
        if limit is None:
            grounds.append(f"amounts in {currency or 'an unstated currency'}, which has no threshold")
        elif amount >= limit:
            grounds.append(f"{currency} {amount:,.2f} at stake, at or above {currency} {limit:,.2f}")
    return grounds


def close(case: Case, reason: str, note: str, *, acting_user: User) -> ApprovalRequest | None:
    """Close a case with a closure reason and a closing note, or, where four-eyes applies,
    propose the closure (the case waits, pending approval) and return the request."""
    require(acting_user, Perm.WORK_CASES)
    if reason not in Case.ClosureReason.values:
        raise ValidationError(f"unknown closure reason {reason!r}: one of {', '.join(Case.ClosureReason.values)}")
    if not note.strip():
        raise ValidationError("a closure states its grounds in a note")
    with transaction.atomic(durable=True):
        locked = lock_to_work(case, acting_user)
        if locked.status not in CLOSABLE:
            raise ValidationError(
                f"{locked.reference} is {locked.get_status_display().lower()}: it cannot be closed now"
            )
        _may_leave_reporting(locked)
        before = locked.status
        written = write_note(locked, acting_user, note)
        grounds = approval_grounds(locked, reason)
        if not grounds:
            _close(locked, reason, acting_user, {"note": str(written.pk)})
            outbox.status_changed(locked, before)
            return None
        payload = {"case": locked.pk, "reason": reason, "note": str(written.pk), "from": before}
        label = Case.ClosureReason(reason).label
        request = approvals.file_request(
            CLOSURE,
            payload,
            acting_user=acting_user,
            reason=f"Close {locked.reference} as {label.lower()}: {'; '.join(grounds)}",
            ttl=datetime.timedelta(hours=settings.CASES["APPROVAL_HOURS"]),
        )
        CaseApproval.objects.create(case=locked, request=request)
        locked.status = Status.PENDING_APPROVAL
        locked.save(update_fields=["status"])
        record(
            EventType.CASE_CLOSURE_PROPOSED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=locked.pk,
            reason=reason,
            before={"status": before},
            after={"status": locked.status, "approval": request.pk, "note": str(written.pk), "grounds": grounds},
        )
        outbox.status_changed(locked, before)
    return request


def _close(case: Case, reason: str, actor: User, details: dict[str, Any]) -> None:
    before = case.status
    case.status, case.closure_reason, case.closed_at = Status.CLOSED, reason, timezone.now()
    case.save(update_fields=["status", "closure_reason", "closed_at"])
    record(
        EventType.CASE_CLOSED,
        actor=actor_of(actor),
        object_type="case",
        object_id=case.pk,
        reason=reason,
        before={"status": before},
        after={"status": case.status, **details},
    )


def request_reopening(case: Case, reason: str, note: str, *, acting_user: User) -> ApprovalRequest:
    """Ask to reopen a closed case: it stays closed until a second person approves."""
    require(acting_user, Perm.WORK_CASES)
    _reason_of(REOPEN_REASONS, reason, note)
    if not note.strip():
        raise ValidationError("a reopening states its grounds in a note")
    with transaction.atomic(durable=True):
        locked = lock_to_work(case, acting_user)
        if locked.status != Status.CLOSED:
            raise ValidationError(f"{locked.reference} is not closed")
        if pending_request(locked) is not None:
            raise ValidationError(f"a request about {locked.reference} is waiting for approval already")
        written = write_note(locked, acting_user, note)
        payload = {"case": locked.pk, "reason": reason, "note": str(written.pk)}
        request = approvals.file_request(
            REOPENING,
            payload,
            acting_user=acting_user,
            reason=f"Reopen {locked.reference}: {dict(REOPEN_REASONS)[reason].lower()}",
            ttl=datetime.timedelta(hours=settings.CASES["APPROVAL_HOURS"]),
        )
        CaseApproval.objects.create(case=locked, request=request)
        record(
            EventType.CASE_REOPEN_REQUESTED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=locked.pk,
            reason=reason,
            after={"approval": request.pk, "note": str(written.pk)},
        )
    return request


def pending_request(case: Case) -> ApprovalRequest | None:
    link = (
        CaseApproval.objects.filter(case=case, request__status=ApprovalRequest.Status.PENDING)
        .select_related("request", "request__maker")
        .first()
    )
    return link.request if link else None


# --- the kinds of four-eyes request --------------------------------------------------------------


def _validate(payload: Mapping[str, Any], maker: User, keys: set[str], reasons: tuple[str, ...]) -> None:
    if set(payload) != keys or not isinstance(payload.get("case"), int):
        raise ValidationError(f"a request about a case names exactly: {', '.join(sorted(keys))}")
    if payload["reason"] not in reasons:
        raise ValidationError(f"unknown reason {payload['reason']!r}")
    if "from" in payload and payload["from"] not in CLOSABLE:
        raise ValidationError(f"a case is not closed from {payload['from']!r}")
    if not Case.objects.restrict(maker, Action.WORK).filter(pk=payload["case"]).exists():
        raise ValidationError("the person who asked no longer works the case")


def decidable_by(approver: User) -> Any:
    """The cases whose closures and reopenings ``approver`` may decide: cases they may work, in
    the queues of their own teams. A grant or an assignment opens a case to someone, but never
    makes them its four-eyes approver."""
    return Case.objects.restrict(approver, Action.WORK).filter(queue__team__memberships__user=approver)


def _may_decide(payload: Mapping[str, Any], approver: User) -> bool:
    case = payload.get("case")
    return isinstance(case, int) and decidable_by(approver).filter(pk=case).exists()


def _own_request(request: ApprovalRequest) -> Case:
    case = Case.objects.select_for_update(of=("self",)).select_related("queue").get(pk=request.payload["case"])
    if not CaseApproval.objects.filter(case=case, request=request).exists():
        raise ValidationError("the request is not linked to its case")
    return case


def _execute_closure(request: ApprovalRequest, approver: User) -> None:
    case = _own_request(request)
    if case.status != Status.PENDING_APPROVAL:
        raise ValidationError(f"{case.reference} is no longer pending approval")
    reason = request.payload["reason"]
    details = {
        "note": request.payload["note"],
        "maker": request.maker_id,
        "approver": approver.pk,
        "approval": request.pk,
    }
    _close(case, reason, approver, details)
    outbox.status_changed(case, Status.PENDING_APPROVAL)


def _decline_closure(request: ApprovalRequest, decider: User | None) -> None:
    case = _own_request(request)
    if case.status != Status.PENDING_APPROVAL:
        return
    case.status = request.payload["from"]
    case.save(update_fields=["status"])
    record(
        EventType.CASE_CLOSURE_DECLINED,
        actor=actor_of(decider) if decider is not None else Actor.system("approval expiry"),
        object_type="case",
        object_id=case.pk,
        reason=request.status,  # rejected, withdrawn or expired
        before={"status": Status.PENDING_APPROVAL},
        after={"status": case.status, "approval": request.pk},
    )
    outbox.status_changed(case, Status.PENDING_APPROVAL)


def _execute_reopening(request: ApprovalRequest, approver: User) -> None:
    case = _own_request(request)
    if case.status != Status.CLOSED:
        raise ValidationError(f"{case.reference} is not closed any more")
    before = {"status": case.status, "closure_reason": case.closure_reason}
    now = timezone.now()
    case.status, case.closure_reason, case.closed_at = Status.IN_PROGRESS, "", None
    case.sla_due_at = sla_due(case.priority, now)
    case.save(update_fields=["status", "closure_reason", "closed_at", "sla_due_at"])
    record(
        EventType.CASE_REOPENED,
        actor=actor_of(approver),
        object_type="case",
        object_id=case.pk,
        reason=request.payload["reason"],
        before=before,
        after={
            "status": case.status,
            "sla_due_at": case.sla_due_at.isoformat(),
            "note": request.payload["note"],
            "maker": request.maker_id,
            "approver": approver.pk,
            "approval": request.pk,
        },
    )
    outbox.status_changed(case, Status.CLOSED)


def _decline_reopening(request: ApprovalRequest, decider: User | None) -> None:
    case = _own_request(request)
    record(
        EventType.CASE_REOPEN_DECLINED,
        actor=actor_of(decider) if decider is not None else Actor.system("approval expiry"),
        object_type="case",
        object_id=case.pk,
        reason=request.status,  # rejected, withdrawn or expired
        after={"approval": request.pk},
    )


approvals.register(
    approvals.Kind(
        CLOSURE,
        Perm.WORK_CASES,
        Perm.APPROVE_CASE_CLOSURE,
        lambda payload, maker: _validate(
            payload, maker, {"case", "reason", "note", "from"}, tuple(Case.ClosureReason.values)
        ),
        _execute_closure,
        may_decide=_may_decide,
        declined=_decline_closure,
    )
)
approvals.register(
    approvals.Kind(
        REOPENING,
        Perm.WORK_CASES,
        Perm.APPROVE_CASE_CLOSURE,
        lambda payload, maker: _validate(
            payload, maker, {"case", "reason", "note"}, tuple(code for code, _ in REOPEN_REASONS)
        ),
        _execute_reopening,
        may_decide=_may_decide,
        declined=_decline_reopening,
    )
)
