"""Bulk actions on cases: assign, re-route, change priority.

Each case is decided on its own, in its own transaction with its own ledger event: a case the
actor may not work, or one the action does not fit (closed, pending approval, the assignee cannot
work it), is refused with its reason, and the others are still done. The summary says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.actions import actor_of, require
from accounts.models import User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import record
from cases import outbox
from cases.intake import sla_due
from cases.models import Action, Case, Queue, reference_of

LIMIT = 200  # cases in one bulk action
FINISHED = frozenset({Case.Status.CLOSED, Case.Status.PENDING_APPROVAL})


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)  # case references
    refused: list[tuple[str, str]] = field(default_factory=list)  # (reference, why)


class Refused(Exception):  # noqa: N818 (a refusal of one case, not an error of the action)
    pass


def _each(case_ids: Iterable[int], user: User, change: Callable[[Case], None]) -> Summary:
    require(user, Perm.WORK_CASES)
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        raise ValidationError("choose at least one case")
    if len(ids) > LIMIT:
        raise ValidationError(f"a bulk action takes at most {LIMIT} cases")
    summary = Summary()
    for pk in ids:
        try:
            with transaction.atomic(durable=True):
                case = (
                    Case.objects.restrict(user, Action.WORK)
                    .select_for_update(of=("self",))
                    .select_related("queue")
                    .filter(pk=pk)
                    .first()
                )
                if case is None:
                    raise Refused("you may not work this case, or it does not exist")
                change(case)
        except Refused as why:
            summary.refused.append((reference_of(pk), str(why)))
        else:
            summary.done.append(reference_of(pk))
    return summary


def assign(case_ids: Iterable[int], assignee: User, *, acting_user: User, reason: str) -> Summary:
    """Assign each case to ``assignee``, who must be able to work it."""
    if not reason.strip():
        raise ValidationError("state the reason for the assignment")

    def change(case: Case) -> None:
        if case.status in FINISHED:
            raise Refused(f"it is {case.get_status_display().lower()}")
        if case.assignee_id == assignee.pk:
            raise Refused(f"it is assigned to {assignee.username} already")
        if not (
            assignee.is_active
            and assignee.has_perm(Perm.WORK_CASES)
            and Case.objects.restrict(assignee, Action.WORK).filter(pk=case.pk).exists()
        ):
            raise Refused(f"{assignee.username} may not work it")
        before = {"status": case.status, "assignee": case.assignee_id}
        case.assignee = assignee
        if case.status == Case.Status.NEW:
            case.status = Case.Status.IN_PROGRESS
        case.save(update_fields=["assignee", "status"])
        record(
            EventType.CASE_ASSIGNED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=case.pk,
            reason=reason,
            before=before,
            after={"status": case.status, "assignee": assignee.pk},
        )
        outbox.status_changed(case, before["status"])

    return _each(case_ids, acting_user, change)


def reroute(case_ids: Iterable[int], queue: Queue, *, acting_user: User, reason: str) -> Summary:
    """Move each case to another queue, unassigned and new again, for its team to take."""
    if not reason.strip():
        raise ValidationError("state the reason for the re-routing")

    def change(case: Case) -> None:
        if case.status in FINISHED or case.status == Case.Status.STR:
            raise Refused(f"it is {case.get_status_display().lower()}")
        if case.queue_id == queue.pk:
            raise Refused(f"it is in {queue.name} already")
        before = {"queue": case.queue.slug, "status": case.status, "assignee": case.assignee_id}
        case.queue, case.assignee, case.status = queue, None, Case.Status.NEW
        case.save(update_fields=["queue", "assignee", "status"])
        record(
            EventType.CASE_REROUTED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=case.pk,
            reason=reason,
            before=before,
            after={"queue": queue.slug, "status": case.status, "assignee": None},
        )
        outbox.status_changed(case, before["status"])

    return _each(case_ids, acting_user, change)


def set_priority(case_ids: Iterable[int], priority: int, *, acting_user: User, reason: str) -> Summary:
    """Change each case's priority; its SLA due time follows, counted from when it opened."""
    if not reason.strip():
        raise ValidationError("state the reason for the new priority")
    level = Case.Priority(priority)

    def change(case: Case) -> None:
        if case.status == Case.Status.CLOSED:
            raise Refused("it is closed")
        if case.priority == level:
            raise Refused(f"its priority is {level.label.lower()} already")
        before = {"priority": Case.Priority(case.priority).label, "sla_due_at": _iso(case)}
        case.priority = level
        case.sla_due_at = sla_due(level, case.opened_at)
        case.save(update_fields=["priority", "sla_due_at"])
        record(
            EventType.CASE_PRIORITY_CHANGED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=case.pk,
            reason=reason,
            before=before,
            after={"priority": level.label, "sla_due_at": _iso(case)},
        )

    return _each(case_ids, acting_user, change)


def _iso(case: Case) -> str | None:
    return case.sla_due_at.isoformat() if case.sla_due_at else None
