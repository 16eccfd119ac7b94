"""Every change to users, roles and teams: one function each, one transaction, one ledger event.

Views and tasks call these; none of them saves an account object itself. Each action checks the
acting user's business permission again (a view that forgot would still not let a change
through) and refuses, with a message naming what is wrong, anything that would break
segregation of duties. Granting or revoking a privileged role, and creating or editing a role
template, are not here: they go through :mod:`accounts.approvals` (four-eyes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Membership, Role, RoleAssignment, Team, User
from accounts.permissions import Perm, segregation_conflict
from audit.events import EventType
from audit.ledger import Actor, record

_ROLES_ATTRIBUTE = "_caspix_role_slugs"


def actor_of(user: User) -> Actor:
    """The ledger's copy of who acted: id, username and role slugs at the time. The slugs are read
    once per user object, as its permissions are (accounts.backends): a request loads its user
    afresh, and nobody changes their own roles."""
    roles: str | None = getattr(user, _ROLES_ATTRIBUTE, None)
    if roles is None:
        roles = ",".join(sorted(user.roles.values_list("slug", flat=True)))
        setattr(user, _ROLES_ATTRIBUTE, roles)
    return Actor(user.pk, user.get_username(), roles)


def require(user: User, perm: Perm) -> None:
    if not user.has_perm(perm):
        raise PermissionDenied(f"this needs the permission {perm.value}")


def held_permissions(user: User, *, adding: Role | None = None, removing: Role | None = None) -> set[str]:
    """The business permissions ``user`` would hold with one role added or removed."""
    roles = set(user.roles.all())
    if adding is not None:
        roles.add(adding)
    if removing is not None:
        roles.discard(removing)
    return {p for role in roles for p in role.permissions()}


def check_role_change(user: User, role: Role, change: str, maker: User) -> None:
    """Refuse, naming why, a role change that is no change, is the maker's own, or breaks
    segregation of duties."""
    if user.pk == maker.pk:
        raise ValidationError("nobody changes their own roles: another administrator must")
    holds = user.roles.filter(pk=role.pk).exists()
    if change == "grant":
        if holds:
            raise ValidationError(f"{user.username} already holds the role {role.slug}")
        conflict = segregation_conflict(held_permissions(user, adding=role))
        if conflict:
            raise ValidationError(f"{user.username} cannot also hold {role.slug}: {conflict}")
    elif not holds:
        raise ValidationError(f"{user.username} does not hold the role {role.slug}")


def apply_role_change(user: User, role: Role, change: str, *, actor: User, details: Mapping[str, object]) -> None:
    """Carry a role change out and record it (inside the caller's transaction)."""
    if change == "grant":
        RoleAssignment.objects.create(user=user, role=role)
        event = EventType.ROLE_GRANTED
    else:
        RoleAssignment.objects.filter(user=user, role=role).delete()
        event = EventType.ROLE_REVOKED
    record(
        event,
        actor=actor_of(actor),
        object_type="user",
        object_id=user.pk,
        reason="four-eyes" if "approval" in details else "direct",
        after={"role": role.slug, **details},
    )


def change_role(user: User, role: Role, change: str, *, acting_user: User) -> None:
    """Grant or revoke a role that is not privileged (a privileged one needs an approval)."""
    require(acting_user, Perm.MANAGE_USERS)
    if change not in ("grant", "revoke"):
        raise ValidationError(f"unknown role change {change!r}: grant or revoke")
    if role.is_privileged():
        raise ValidationError(f"the role {role.slug} is privileged: a second administrator must approve the change")
    with transaction.atomic(durable=True):
        user = User.objects.select_for_update().get(pk=user.pk)
        check_role_change(user, role, change, acting_user)
        apply_role_change(user, role, change, actor=acting_user, details={"maker": acting_user.pk})


def create_user(
    *, username: str, first_name: str, last_name: str, email: str, password: str, acting_user: User
) -> User:
    """Create a user holding no role; roles are granted afterwards, each its own event."""
    require(acting_user, Perm.MANAGE_USERS)
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError(f"the username {username!r} is taken")
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    validate_password(password, user)
    user.set_password(password)
    with transaction.atomic(durable=True):
        user.save()
        record(
            EventType.USER_CREATED,
            actor=actor_of(acting_user),
            object_type="user",
            object_id=user.pk,
            after={"username": username},
        )
    return user


def set_active(user: User, active: bool, *, acting_user: User, reason: str) -> None:
    """Deactivate a user, ending every session they have open, or reactivate one."""
    require(acting_user, Perm.MANAGE_USERS)
    if user.pk == acting_user.pk:
        raise ValidationError("nobody deactivates or reactivates themselves")
    if not reason.strip():
        raise ValidationError("state the reason")
    with transaction.atomic(durable=True):
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_active == active:
            raise ValidationError(f"{user.username} is already {'active' if active else 'inactive'}")
        user.is_active = active
        if not active:
            user.session_epoch = F("session_epoch") + 1
        user.save(update_fields=["is_active", "session_epoch"])
        record(
            EventType.USER_REACTIVATED if active else EventType.USER_DEACTIVATED,
            actor=actor_of(acting_user),
            object_type="user",
            object_id=user.pk,
            reason=reason,
        )


def create_team(*, slug: str, name: str, description: str = "", acting_user: User) -> Team:
    require(acting_user, Perm.MANAGE_TEAMS)
    if Team.objects.filter(slug=slug).exists() or Team.objects.filter(name__iexact=name).exists():
        raise ValidationError(f"a team named {name!r} or {slug!r} exists already")
    try:
        with transaction.atomic(durable=True):
            team = Team.objects.create(slug=slug, name=name, description=description)
            record(
                EventType.TEAM_CREATED,
                actor=actor_of(acting_user),
                object_type="team",
                object_id=team.pk,
                after={"slug": slug, "name": name},
            )
    except IntegrityError as error:  # created concurrently since the check above
        raise ValidationError(f"a team named {name!r} or {slug!r} exists already") from error
    return team


def add_members(team: Team, users: Iterable[User], *, acting_user: User) -> None:
    """Add users to a team; they reach its queues' cases on their next request."""
    require(acting_user, Perm.MANAGE_TEAMS)
    with transaction.atomic(durable=True):
        for user in users:
            if user.pk == acting_user.pk:
                raise ValidationError("nobody changes their own team membership")
            if Membership.objects.filter(team=team, user=user).exists():
                raise ValidationError(f"{user.username} is already a member of {team.name}")
            Membership.objects.create(team=team, user=user)
            record(
                EventType.TEAM_MEMBER_ADDED,
                actor=actor_of(acting_user),
                object_type="team",
                object_id=team.pk,
                after={"user": user.pk},
            )


def remove_member(team: Team, user: User, *, acting_user: User) -> None:
    """Take a user off a team; its cases drop out of their reach on their next request."""
    require(acting_user, Perm.MANAGE_TEAMS)
    if user.pk == acting_user.pk:
        raise ValidationError("nobody changes their own team membership")
    with transaction.atomic(durable=True):
        deleted, _ = Membership.objects.filter(team=team, user=user).delete()
        if not deleted:
            raise ValidationError(f"{user.username} is not a member of {team.name}")
        record(
            EventType.TEAM_MEMBER_REMOVED,
            actor=actor_of(acting_user),
            object_type="team",
            object_id=team.pk,
            after={"user": user.pk},
        )


def note_activity(user: User, *, every_seconds: int = 60) -> None:
    """Keep ``last_activity`` to the minute for access reviews: at most one write a minute."""
    now = timezone.now()
    if user.last_activity is None or (now - user.last_activity).total_seconds() >= every_seconds:
        User.objects.filter(pk=user.pk).update(last_activity=now)
        user.last_activity = now
