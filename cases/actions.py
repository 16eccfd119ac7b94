"""Changes to queues and to who may reach a case: one transaction and one ledger event each."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from guardian.shortcuts import assign_perm, remove_perm

from accounts.actions import actor_of, require
from accounts.models import Team, User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import record
from cases.models import CODENAME, Action, Case, CaseUserObjectPermission, Queue


def create_queue(*, slug: str, name: str, team: Team, description: str = "", acting_user: User) -> Queue:
    require(acting_user, Perm.MANAGE_TEAMS)
    if Queue.objects.filter(slug=slug).exists() or Queue.objects.filter(name__iexact=name).exists():
        raise ValidationError(f"a queue named {name!r} or {slug!r} exists already")
    try:
        with transaction.atomic(durable=True):
            queue = Queue.objects.create(slug=slug, name=name, team=team, description=description)
            record(
                EventType.QUEUE_CREATED,
                actor=actor_of(acting_user),
                object_type="queue",
                object_id=queue.pk,
                after={"slug": slug, "name": name, "team": team.slug},
            )
    except IntegrityError as error:  # created concurrently since the check above
        raise ValidationError(f"a queue named {name!r} or {slug!r} exists already") from error
    return queue


def move_queue(queue: Queue, team: Team, *, acting_user: User) -> None:
    """Hand a queue, and so its cases, to another team: the old one loses them at once."""
    require(acting_user, Perm.MANAGE_TEAMS)
    with transaction.atomic(durable=True):
        queue = Queue.objects.select_for_update(of=("self",)).select_related("team").get(pk=queue.pk)
        if queue.team_id == team.pk:
            raise ValidationError(f"{queue.name} already belongs to {team.name}")
        before = queue.team.slug
        queue.team = team
        queue.save(update_fields=["team"])
        record(
            EventType.QUEUE_CHANGED,
            actor=actor_of(acting_user),
            object_type="queue",
            object_id=queue.pk,
            before={"team": before},
            after={"team": team.slug},
        )


def grant_case(case: Case, user: User, action: Action | str, *, acting_user: User, reason: str) -> None:
    """Open one case to one more user (a specialist from another team, say).

    Only someone who may work the case grants it, and only to a user who works cases at all: an
    explicit grant never reaches an administrator, a manager or an auditor.
    """
    action = Action(action)
    if not reason.strip():
        raise ValidationError("state the reason for the grant")
    if not Case.objects.restrict(acting_user, Action.WORK).filter(pk=case.pk).exists():
        raise PermissionDenied("only someone who works the case may open it to another user")
    if not (user.is_active and user.has_perm(Perm.WORK_CASES)):
        raise ValidationError(f"{user.username} does not work cases: a case cannot be opened to them")
    codename = CODENAME[action]
    with transaction.atomic(durable=True):
        if CaseUserObjectPermission.objects.filter(
            user=user, content_object=case, permission__codename=codename
        ).exists():
            raise ValidationError(f"{user.username} already holds {action.value} on {case.reference}")
        assign_perm(f"cases.{codename}", user, case)
        record(
            EventType.CASE_ACCESS_GRANTED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=case.pk,
            reason=reason,
            after={"user": user.pk, "access": action.value},
        )


def revoke_case(case: Case, user: User, *, acting_user: User, reason: str) -> None:
    """Withdraw every explicit grant of ``case`` to ``user``."""
    if not reason.strip():
        raise ValidationError("state the reason for withdrawing the grant")
    if not Case.objects.restrict(acting_user, Action.WORK).filter(pk=case.pk).exists():
        raise PermissionDenied("only someone who works the case may withdraw a grant")
    with transaction.atomic(durable=True):
        held = list(
            CaseUserObjectPermission.objects.filter(user=user, content_object=case).values_list(
                "permission__codename", flat=True
            )
        )
        if not held:
            raise ValidationError(f"{user.username} holds no grant on {case.reference}")
        for codename in held:
            remove_perm(f"cases.{codename}", user, case)
        record(
            EventType.CASE_ACCESS_REVOKED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=case.pk,
            reason=reason,
            after={"user": user.pk, "access": sorted(held)},
        )
