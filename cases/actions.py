"""Changes to queues and to who may reach a case: one transaction and one ledger event each."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from accounts.actions import actor_of, require
from accounts.models import Team, User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import record
from cases import outbox
from cases.models import (
    CODENAME,
    Action,
    ApiClient,
    ApiKey,
    Case,
    CaseUserObjectPermission,
    Queue,
    RoutingRule,
    Scope,
    Webhook,
    new_secret,
)
from cases.outbox import EVENT_TYPES
from cases.queue import by_urgency


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
        locked = Case.objects.select_for_update(of=("self",)).select_related("queue").get(pk=case.pk)
        held = list(
            CaseUserObjectPermission.objects.filter(user=user, content_object=case).values_list(
                "permission__codename", flat=True
            )
        )
        if not held:
            raise ValidationError(f"{user.username} holds no grant on {case.reference}")
        if locked.assignee_id == user.pk and not locked.queue.team.memberships.filter(user=user).exists():
            # As the assignee they would keep the case the grant let them take.
            raise ValidationError(
                f"{user.username} is assigned {case.reference}: assign it to a member of its team first"
            )
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


# --- Intake: API clients, their keys, routing rules (MANAGE_API_CLIENTS, MANAGE_SETTINGS) ---------


def create_api_client(
    *, name: str, source: str, scopes: list[str], networks: list[str], rate_limit: int, acting_user: User
) -> ApiClient:
    """Register an upstream system; it can call only once a key is issued to it."""
    require(acting_user, Perm.MANAGE_API_CLIENTS)
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise ValidationError(f"scopes must be among {', '.join(Scope.values)}")
    try:
        blocks = [str(ipaddress.ip_network(block, strict=True)) for block in networks]
    except ValueError as error:
        raise ValidationError(f"not a network in CIDR notation: {error}") from None
    try:
        with transaction.atomic(durable=True):
            client = ApiClient.objects.create(
                name=name, source=source, scopes=sorted(scopes), networks=blocks, rate_limit=rate_limit
            )
            record(
                EventType.API_CLIENT_CREATED,
                actor=actor_of(acting_user),
                object_type="api-client",
                object_id=client.pk,
                after={
                    "name": name,
                    "source": source,
                    "scopes": client.scopes,
                    "networks": blocks,
                    "rate_limit": rate_limit,
                },
            )
    except IntegrityError as error:
        raise ValidationError(f"an API client named {name!r} or with source {source!r} exists already") from error
    return client


def issue_api_key(client: ApiClient, *, acting_user: User) -> tuple[ApiKey, str]:
    """A new key for ``client``, and its secret, shown this once (base64url of 32 random bytes).

    At most two keys are active at a time: the one in use and its successor during a rotation.
    """
    require(acting_user, Perm.MANAGE_API_CLIENTS)
    secret = new_secret()
    with transaction.atomic(durable=True):
        client = ApiClient.objects.select_for_update().get(pk=client.pk)
        if ApiKey.objects.filter(client=client, revoked_at__isnull=True).count() >= ApiKey.MAX_ACTIVE:
            raise ValidationError(f"{client.name} has {ApiKey.MAX_ACTIVE} active keys: revoke one first")
        key = ApiKey(client=client, key_id=f"{client.source}-{secrets.token_hex(6)}")
        key.secret = secret
        key.save(force_insert=True)
        record(
            EventType.API_KEY_ISSUED,
            actor=actor_of(acting_user),
            object_type="api-key",
            object_id=key.key_id,
            after={"client": client.source},
        )
    return key, secret


def revoke_api_key(key: ApiKey, *, acting_user: User, reason: str) -> None:
    """Stop accepting ``key`` at once (the next request signed with it is refused)."""
    require(acting_user, Perm.MANAGE_API_CLIENTS)
    if not reason.strip():
        raise ValidationError("state the reason for revoking the key")
    with transaction.atomic(durable=True):
        key = ApiKey.objects.select_for_update().select_related("client").get(pk=key.pk)
        if key.revoked_at is not None:
            raise ValidationError(f"{key.key_id} is revoked already")
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        record(
            EventType.API_KEY_REVOKED,
            actor=actor_of(acting_user),
            object_type="api-key",
            object_id=key.key_id,
            reason=reason,
            after={"client": key.client.source},
        )


def create_routing_rule(*, acting_user: User, **fields: Any) -> RoutingRule:
    """Add a routing rule (``RoutingRule``'s fields); rules are tried by position."""
    require(acting_user, Perm.MANAGE_SETTINGS)
    rule = RoutingRule(**fields)
    rule.full_clean()
    with transaction.atomic(durable=True):
        rule.save(force_insert=True)
        record(
            EventType.ROUTING_RULE_CREATED,
            actor=actor_of(acting_user),
            object_type="routing-rule",
            object_id=rule.pk,
            after=_rule_state(rule),
        )
    return rule


def change_routing_rule(rule: RoutingRule, *, acting_user: User, **fields: Any) -> RoutingRule:
    """Change a routing rule's conditions, decision, position or whether it is active.

    Cases already opened stay where they are: a rule decides where new cases go.
    """
    require(acting_user, Perm.MANAGE_SETTINGS)
    unknown = set(fields) - {*_RULE_FIELDS, "is_active"}
    if unknown:
        raise ValidationError(f"not a routing rule's field: {', '.join(sorted(unknown))}")
    with transaction.atomic(durable=True):
        locked = RoutingRule.objects.select_for_update().select_related("queue").get(pk=rule.pk)
        before = _rule_state(locked)
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.full_clean()
        after = _rule_state(locked)
        if after == before:
            return locked
        locked.save(update_fields=list(fields))
        record(
            EventType.ROUTING_RULE_CHANGED,
            actor=actor_of(acting_user),
            object_type="routing-rule",
            object_id=locked.pk,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
        )
    return locked


_RULE_FIELDS = ("position", "name", "scenario", "source", "currency", "min_amount", "max_amount", "queue", "priority")


def _rule_state(rule: RoutingRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "position": rule.position,
        "scenario": rule.scenario,
        "source": rule.source,
        "currency": rule.currency,
        "min_amount": None if rule.min_amount is None else str(rule.min_amount),
        "max_amount": None if rule.max_amount is None else str(rule.max_amount),
        "queue": rule.queue.slug,
        "priority": rule.get_priority_display(),
        "active": rule.is_active,
    }


def create_webhook(*, name: str, url: str, event_types: list[str], acting_user: User) -> tuple[Webhook, str]:
    """A receiver of the outbound events, and its signing secret, shown this once."""
    require(acting_user, Perm.MANAGE_API_CLIENTS)
    scheme = urlsplit(url).scheme
    if scheme not in ("https", "http") or (scheme == "http" and settings.PRODUCTION):
        raise ValidationError("a webhook is delivered over https")
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(f"unknown event types: {', '.join(unknown)}")
    secret = new_secret()
    webhook = Webhook(name=name, url=url, event_types=sorted(event_types))
    webhook.secret = secret
    webhook.full_clean(exclude=["secret"])
    with transaction.atomic(durable=True):
        webhook.save(force_insert=True)
        record(
            EventType.WEBHOOK_CREATED,
            actor=actor_of(acting_user),
            object_type="webhook",
            object_id=str(webhook.pk),
            after={"name": name, "url": url, "event_types": webhook.event_types},
        )
    return webhook, secret


def replay_webhook(webhook: Webhook, *, after: int, acting_user: User, reason: str) -> None:
    """Deliver to ``webhook`` again every event after sequence number ``after`` (its receiver
    lost them). The cursor only moves back: skipping events is not a replay."""
    require(acting_user, Perm.MANAGE_API_CLIENTS)
    if not reason.strip():
        raise ValidationError("state the reason for the replay")
    if after < 0:
        raise ValidationError("replay from a sequence number, 0 for the first")
    with transaction.atomic(durable=True):
        locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
        before = locked.delivered_through
        if after > before:
            raise ValidationError(f"the receiver has events through {before} only: a replay starts at or before it")
        outbox.replay(locked, after)
        record(
            EventType.WEBHOOK_REPLAYED,
            actor=actor_of(acting_user),
            object_type="webhook",
            object_id=str(webhook.pk),
            reason=reason,
            before={"delivered_through": before},
            after={"delivered_through": after},
        )


def set_webhook_active(webhook: Webhook, *, active: bool, acting_user: User, reason: str) -> Webhook:
    """Stop delivering to a receiver, or start again where its cursor stands (nothing is lost
    while it is inactive: the events wait in the outbox)."""
    require(acting_user, Perm.MANAGE_API_CLIENTS)
    if not reason.strip():
        raise ValidationError("state the reason for the change")
    with transaction.atomic(durable=True):
        locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
        if locked.is_active == active:
            return locked
        locked.is_active = active
        locked.failures = 0
        locked.next_attempt_at = timezone.now()
        locked.save(update_fields=["is_active", "failures", "next_attempt_at"])
        record(
            EventType.WEBHOOK_CHANGED,
            actor=actor_of(acting_user),
            object_type="webhook",
            object_id=str(locked.pk),
            reason=reason,
            before={"active": not active},
            after={"active": active},
        )
    return locked


def take_next_case(*, acting_user: User) -> Case | None:
    """Assign to ``acting_user`` the most urgent unassigned new case they may work, and start it.

    Most urgent: the queue's order (``cases.queue.by_urgency``): the earliest SLA due time, then
    the highest priority, then the oldest. The case is locked as it is chosen and locked cases
    are skipped, so two analysts asking at once never get the same one and neither waits for the
    other. None when no case waits.
    """
    require(acting_user, Perm.WORK_CASES)
    with transaction.atomic(durable=True):
        waiting = Case.objects.restrict(acting_user, Action.WORK).filter(assignee__isnull=True, status=Case.Status.NEW)
        case = by_urgency(waiting).select_for_update(skip_locked=True, of=("self",)).select_related("queue").first()
        if case is None:
            return None
        _take(case, acting_user)
    return case


def take_case(case: Case, *, acting_user: User) -> Case:
    """Assign one case to ``acting_user`` ("assign to me"): an unassigned case they may work, not
    closed. A new case is started; a case someone holds is theirs until a lead moves it."""
    require(acting_user, Perm.WORK_CASES)
    with transaction.atomic(durable=True):
        locked = (
            Case.objects.restrict(acting_user, Action.WORK)
            .select_for_update(of=("self",))
            .select_related("queue")
            .filter(pk=case.pk)
            .first()
        )
        if locked is None:
            raise PermissionDenied("only someone who works the case may take it")
        if locked.status == Case.Status.CLOSED:
            raise ValidationError(f"{locked.reference} is closed")
        if locked.assignee_id == acting_user.pk:
            return locked
        if locked.assignee_id is not None:
            raise ValidationError(f"{locked.reference} is assigned to someone else already")
        _take(locked, acting_user)
    return locked


def _take(case: Case, user: User) -> None:
    """Assign a locked, unassigned case to ``user``, starting it if new: ``CASE_TAKEN`` and, when
    the status changes, ``case.status-changed``."""
    before = {"status": case.status, "assignee": None}
    case.assignee = user
    if case.status == Case.Status.NEW:
        case.status = Case.Status.IN_PROGRESS
    case.save(update_fields=["assignee", "status"])
    record(
        EventType.CASE_TAKEN,
        actor=actor_of(user),
        object_type="case",
        object_id=case.pk,
        before=before,
        after={"status": case.status, "assignee": user.pk},
    )
    outbox.status_changed(case, before["status"])
