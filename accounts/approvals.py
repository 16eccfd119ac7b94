"""Four-eyes approvals: one mechanism for every change a second person must approve.

A maker requests a change of a registered kind with its exact payload and a reason; a different
person holding the kind's approver permission approves (or rejects) it before it expires. The
approver names the payload hash they saw: the change executes, in the approving transaction, only
if the stored payload still has that hash. Request, approval, rejection, expiry and every refused
approval are ledger events; a refusal is recorded even though the approval fails.

Kinds register a validator (which names an unknown role or user), the permission their approver
needs and the function that carries the change out. Privileged role changes (granting or revoking
admin or lead) are the first kind; case closures and STR submissions will be others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.actions import actor_of, apply_role_change, check_role_change, held_permissions, require
from accounts.models import ApprovalRequest, Role, RolePermission, User
from accounts.permissions import PRIVILEGED, Perm, segregation_conflict, unknown
from audit.canonical import canonical
from audit.events import EventType
from audit.ledger import Actor, record

DEFAULT_TTL = timedelta(hours=24)


class ApprovalRefusedError(Exception):
    """The approval cannot be given; the message says why in plain words."""


@dataclass(frozen=True)
class Kind:
    name: str
    maker_permission: Perm  # to ask, and still when the approval comes
    approver_permission: Perm
    validate: Callable[[Mapping[str, Any], User], None]
    execute: Callable[[ApprovalRequest, User], None]
    # The users whose access the change touches: they may not approve it either.
    subjects: Callable[[Mapping[str, Any]], set[int]] = lambda payload: set()
    # Whether this approver may decide this request, beyond holding the permission (a lead
    # decides the closures of the cases they may work, not of every team's).
    may_decide: Callable[[Mapping[str, Any], User], bool] = lambda payload, approver: True
    # Run in the transaction that rejects, withdraws or expires the request (with who did it, or
    # None for expiry; ``request.status`` says which): puts the change's object back as it was
    # (a case pending approval, say).
    declined: Callable[[ApprovalRequest, User | None], None] | None = None


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def payload_hash(kind: str, payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({"kind": kind, "payload": dict(payload)})).hexdigest()


def _kind(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        raise ValidationError(f"unknown kind of change {name!r}: known kinds are {', '.join(sorted(KINDS))}")
    return kind


def request_change(
    kind: str, payload: Mapping[str, Any], *, acting_user: User, reason: str, ttl: timedelta = DEFAULT_TTL
) -> ApprovalRequest:
    """Ask for a change that another person must approve."""
    with transaction.atomic(durable=True):
        return file_request(kind, payload, acting_user=acting_user, reason=reason, ttl=ttl)


def file_request(
    kind: str, payload: Mapping[str, Any], *, acting_user: User, reason: str, ttl: timedelta = DEFAULT_TTL
) -> ApprovalRequest:
    """:func:`request_change` inside the caller's transaction, for an action that changes its own
    object with the request (a case becomes pending approval) and so must commit both or neither."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("file_request() runs inside the action's transaction (transaction.atomic)")
    definition = _kind(kind)
    require(acting_user, definition.maker_permission)
    if not reason.strip():
        raise ValidationError("a request for approval states its reason")
    definition.validate(payload, acting_user)
    now = timezone.now()
    request = ApprovalRequest.objects.create(
        kind=kind,
        payload=dict(payload),
        payload_hash=payload_hash(kind, payload),
        maker=acting_user,
        reason=reason,
        created_at=now,
        expires_at=now + ttl,
    )
    record(
        EventType.APPROVAL_REQUESTED,
        actor=actor_of(acting_user),
        object_type="approval",
        object_id=request.pk,
        reason=kind,
        after={"payload": dict(payload), "hash": request.payload_hash, "expires": request.expires_at.isoformat()},
    )
    return request


def approve(request_id: int, *, acting_user: User, seen_hash: str, reason: str = "") -> ApprovalRequest:
    """Approve a pending request and carry its change out, in one transaction.

    Refused (:class:`ApprovalRefusedError`, and a ledger event) when the approver is the maker,
    lacks the kind's permission, saw another payload than the stored one, or comes too late.
    """
    refusal: str | None = None
    invalid = ""
    try:
        with transaction.atomic(durable=True):
            request = ApprovalRequest.objects.select_for_update().filter(pk=request_id).first()
            if request is None:
                raise ApprovalRefusedError(f"there is no approval request {request_id}")
            refusal = _refusal(request, acting_user, seen_hash)
            if refusal is None:
                definition = _kind(request.kind)
                # The world may have moved since the request: check it again, then act.
                definition.validate(request.payload, request.maker)
                definition.execute(request, acting_user)
                _decide(request, ApprovalRequest.Status.APPROVED, acting_user, reason, EventType.APPROVAL_GRANTED)
                return request
            if refusal == "expired":
                _decide(request, ApprovalRequest.Status.EXPIRED, None, "", EventType.APPROVAL_EXPIRED)
    except ValidationError as error:
        refusal, invalid = "no longer valid", "; ".join(error.messages)
    # Recorded on its own, after the refused approval has touched nothing.
    with transaction.atomic(durable=True):
        record(
            EventType.APPROVAL_REFUSED,
            actor=actor_of(acting_user),
            object_type="approval",
            object_id=request_id,
            reason=refusal,
            after={"why": invalid} if invalid else None,
        )
    raise ApprovalRefusedError(_MESSAGES[refusal] + (f": {invalid}" if invalid else ""))


_MESSAGES = {
    "own request": "You cannot approve your own request: another authorised person must.",
    "about you": "You cannot approve a change to your own access: another authorised person must.",
    "not allowed": "You are not allowed to approve this kind of change.",
    "altered": "The request changed after you saw it: review it again before approving.",
    "expired": "The request has expired: the maker must ask again.",
    "decided": "The request has already been decided.",
    "maker not allowed": "The person who asked may no longer ask for this change: it cannot be approved.",
    "no longer valid": "The change can no longer be made as requested",
}


def _refusal(request: ApprovalRequest, approver: User, seen_hash: str) -> str | None:
    if request.status != ApprovalRequest.Status.PENDING:
        return "decided"
    if approver.pk == request.maker_id:
        return "own request"
    kind = _kind(request.kind)
    if approver.pk in kind.subjects(request.payload):
        return "about you"
    if not (approver.has_perm(kind.approver_permission) and kind.may_decide(request.payload, approver)):
        return "not allowed"
    if request.expires_at <= timezone.now():
        return "expired"
    maker = request.maker
    if not (maker.is_active and maker.has_perm(kind.maker_permission)):
        return "maker not allowed"
    if not (seen_hash == request.payload_hash == payload_hash(request.kind, request.payload)):
        return "altered"
    return None


def reject(request_id: int, *, acting_user: User, reason: str) -> ApprovalRequest:
    """Turn a pending request down, saying why; an expired one is marked expired instead."""
    if not reason.strip():
        raise ValidationError("state why you reject the request")
    with transaction.atomic(durable=True):
        request = ApprovalRequest.objects.select_for_update().get(pk=request_id)
        refusal = _refusal(request, acting_user, request.payload_hash)
        if refusal in ("decided", "own request", "about you", "not allowed"):
            raise ApprovalRefusedError(_MESSAGES[refusal or "decided"].replace("approve", "reject"))
        if refusal == "expired":
            _decide(request, ApprovalRequest.Status.EXPIRED, None, "", EventType.APPROVAL_EXPIRED)
        else:
            _decide(request, ApprovalRequest.Status.REJECTED, acting_user, reason, EventType.APPROVAL_REJECTED)
    if refusal == "expired":
        raise ApprovalRefusedError(_MESSAGES["expired"])
    return request


def withdraw(request_id: int, *, acting_user: User, reason: str) -> ApprovalRequest:
    """The maker takes back a request nobody has decided yet, saying why (the proposal had an
    error, the situation changed); its object goes back as it was, as when it is rejected."""
    if not reason.strip():
        raise ValidationError("state why you withdraw the request")
    with transaction.atomic(durable=True):
        request = ApprovalRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.maker_id != acting_user.pk:
            raise ApprovalRefusedError("Only the person who asked may withdraw a request.")
        if request.status != ApprovalRequest.Status.PENDING:
            raise ApprovalRefusedError(f"The request is {request.status} already.")
        _decide(request, ApprovalRequest.Status.WITHDRAWN, None, reason, EventType.APPROVAL_WITHDRAWN, acting_user)
    return request


def expire_overdue() -> int:
    """Mark every pending request past its expiry as expired (a beat task runs this)."""
    expired = 0
    with transaction.atomic(durable=True):
        overdue = ApprovalRequest.objects.select_for_update(skip_locked=True).filter(
            status=ApprovalRequest.Status.PENDING, expires_at__lte=timezone.now()
        )
        for request in overdue:
            _decide(request, ApprovalRequest.Status.EXPIRED, None, "", EventType.APPROVAL_EXPIRED)
            expired += 1
    return expired


def _decide(
    request: ApprovalRequest,
    status: str,
    decider: User | None,
    reason: str,
    event: EventType,
    actor: User | None = None,
) -> None:
    """Record a decision: ``decider`` approved or rejected it (never its maker), or it expired
    (no one), or ``actor``, its maker, withdrew it (the decider stays empty)."""
    actor = actor or decider
    request.status = status
    request.decided_by = decider
    request.decided_at = timezone.now()
    request.decision_reason = reason
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    record(
        event,
        actor=actor_of(actor) if actor is not None else Actor.system("approval expiry"),
        object_type="approval",
        object_id=request.pk,
        reason=request.kind,
        after={"maker": request.maker_id, "hash": request.payload_hash, "decision": reason},
    )
    if status != ApprovalRequest.Status.APPROVED:
        declined = _kind(request.kind).declined
        if declined is not None:
            declined(request, actor)


# --- privileged role changes ---------------------------------------------------------------------


def _validate_role_change(payload: Mapping[str, Any], maker: User) -> None:
    if set(payload) != {"user", "role", "change"}:
        raise ValidationError("a role change names exactly a user, a role and the change (grant or revoke)")
    if payload["change"] not in ("grant", "revoke"):
        raise ValidationError(f"unknown role change {payload['change']!r}: grant or revoke")
    role = Role.objects.filter(slug=payload["role"]).first()
    if role is None:
        raise ValidationError(f"unknown role {payload['role']!r}")
    user = User.objects.filter(pk=payload["user"]).first() if isinstance(payload["user"], int) else None
    if user is None:
        raise ValidationError(f"unknown user {payload['user']!r}")
    check_role_change(user, role, payload["change"], maker)


def _execute_role_change(request: ApprovalRequest, approver: User) -> None:
    payload = request.payload
    user = User.objects.select_for_update().get(pk=payload["user"])
    role = Role.objects.get(slug=payload["role"])
    details = {"maker": request.maker_id, "approver": approver.pk, "approval": request.pk}
    apply_role_change(user, role, payload["change"], actor=approver, details=details)


ROLE_CHANGE = register(
    Kind(
        "role_change",
        Perm.MANAGE_USERS,
        Perm.APPROVE_ACCESS_CHANGE,
        _validate_role_change,
        _execute_role_change,
        subjects=lambda payload: {payload["user"]} if isinstance(payload.get("user"), int) else set(),
    )
)


# --- role templates ------------------------------------------------------------------------------

_SLUG = re.compile(r"\A[a-z][a-z0-9-]{1,49}\Z")


def _validate_role_template(payload: Mapping[str, Any], maker: User) -> None:
    if set(payload) != {"change", "slug", "name", "description", "permissions", "mfa_required", "passkey_sign_in"}:
        raise ValidationError(
            "a role template names the change (create or edit), slug, name, description, permissions, "
            "whether its holders need a second factor, and whether they may sign in with a passkey alone"
        )
    change, slug, name = payload["change"], payload["slug"], payload["name"]
    if change not in ("create", "edit"):
        raise ValidationError(f"unknown template change {change!r}: create or edit")
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise ValidationError(f"{slug!r} is not a template slug: lower-case letters, digits and hyphens")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValidationError("a role template has a name of at most 100 characters")
    permissions = payload["permissions"]
    if not isinstance(permissions, list) or not permissions or not all(isinstance(p, str) for p in permissions):
        raise ValidationError("a role template holds at least one permission")
    strangers = unknown(permissions)
    if strangers:
        raise ValidationError(f"unknown permission {', '.join(repr(p) for p in strangers)}: not in the catalog")
    if len(set(permissions)) != len(permissions):
        raise ValidationError("a permission is listed twice")
    conflict = segregation_conflict(permissions)
    if conflict:
        raise ValidationError(f"a role template cannot mix duties: {conflict}")
    if not isinstance(payload["mfa_required"], bool):
        raise ValidationError("whether the holders need a second factor is yes or no")
    if not payload["mfa_required"] and any(p in PRIVILEGED for p in permissions):
        raise ValidationError("a template that administers or approves requires a second factor of its holders")
    if not isinstance(payload["passkey_sign_in"], bool):
        raise ValidationError("whether the holders may sign in with a passkey alone is yes or no")
    if payload["passkey_sign_in"] and any(p in PRIVILEGED for p in permissions):
        raise ValidationError(
            "the holders of a template that administers or approves sign in with a password and a factor"
        )
    existing = Role.objects.filter(slug=slug).first()
    if change == "create":
        if existing is not None or Role.objects.filter(name__iexact=name).exists():
            raise ValidationError(f"a role template {slug!r} or named {name!r} exists already")
        return
    if existing is None:
        raise ValidationError(f"unknown role {slug!r}")
    if existing.builtin:
        raise ValidationError(f"the role {slug!r} ships with Caspix and is not edited: create a custom template")
    if Role.objects.filter(name__iexact=name).exclude(pk=existing.pk).exists():
        raise ValidationError(f"another role template is named {name!r}")
    for holder in existing.users.all():
        conflict = segregation_conflict(held_permissions(holder, removing=existing) | set(permissions))
        if conflict:
            raise ValidationError(f"{holder.username} holds {slug!r}, and would then break {conflict}")


def _execute_role_template(request: ApprovalRequest, approver: User) -> None:
    payload = request.payload
    if payload["change"] == "create":
        role = Role.objects.create(
            slug=payload["slug"],
            name=payload["name"],
            description=payload["description"],
            mfa_required=payload["mfa_required"],
            passkey_sign_in=payload["passkey_sign_in"],
        )
        before: list[str] = []
        event = EventType.ROLE_TEMPLATE_CREATED
    else:
        role = Role.objects.select_for_update().get(slug=payload["slug"])
        before = role.permissions()
        role.name, role.description = payload["name"], payload["description"]
        role.mfa_required, role.passkey_sign_in = payload["mfa_required"], payload["passkey_sign_in"]
        role.save(update_fields=["name", "description", "mfa_required", "passkey_sign_in"])
        role.grants.exclude(permission__in=payload["permissions"]).delete()
        event = EventType.ROLE_TEMPLATE_CHANGED
    RolePermission.objects.bulk_create(
        [RolePermission(role=role, permission=p) for p in payload["permissions"] if p not in before]
    )
    record(
        event,
        actor=actor_of(approver),
        object_type="role",
        object_id=role.slug,
        reason="four-eyes",
        before={"permissions": before} if before else None,
        after={
            "name": role.name,
            "permissions": sorted(payload["permissions"]),
            "mfa_required": role.mfa_required,
            "passkey_sign_in": role.passkey_sign_in,
            "maker": request.maker_id,
            "approver": approver.pk,
            "approval": request.pk,
        },
    )


def _holders(payload: Mapping[str, Any]) -> set[int]:
    """Whoever holds the template now gains or loses what the edit changes."""
    if payload.get("change") != "edit":
        return set()
    return set(User.objects.filter(roles__slug=payload.get("slug")).values_list("pk", flat=True))


ROLE_TEMPLATE = register(
    Kind(
        "role_template",
        Perm.MANAGE_ROLES,
        Perm.APPROVE_ACCESS_CHANGE,
        _validate_role_template,
        _execute_role_template,
        subjects=_holders,
    )
)
