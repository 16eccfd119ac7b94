"""The data of an access review: who holds what, who uses it, and who changed it.

Per user: roles and the permissions they add up to, teams, explicit case grants, last sign-in and
last activity, sign-ins over the activity windows, whether the account lies dormant, any
segregation-of-duties conflict, and every role change with its maker and approver as the audit
ledger has them; in a fixed number of queries however many users there are.

Activity windows: for each of :data:`WINDOWS` days before the review's moment, the completed
sign-ins (a ``UserSession`` is registered once the password, passkey or identity provider and the
second factor have passed) and the distinct UTC days with at least one. Sessions are kept 400 days
(``accounts/tasks.py``), far past the widest window, and counting them is one join of the users'
query.

Dormant: an active account whose last sign-in (``last_login``, which Django sets whenever a
password, a passkey or an identity provider lets the user in, and which is never purged) is older
than ``CASPIX_ACCESS_REVIEW_DORMANT_DAYS``; one that never signed in is dormant once it was created
longer ago than that.

A manager signs off a frozen snapshot, not the live data (last activity moves with every
request): :func:`document` turns the rows into a plain JSON document whose canonical bytes (the
ledger's serialisation, ``audit/canonical.py``) are hashed with SHA-256, so the same data at the
same moment always gives the same bytes and the same hash.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, FilteredRelation, Prefetch, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Role, Team, User
from accounts.permissions import segregation_conflict
from accounts.review import RoleChange, role_history
from audit.canonical import canonical, rfc3339
from cases.models import CaseUserObjectPermission, reference_of

FORMAT = 1  # of the snapshot document; a change of its fields is a new format
WINDOWS = (30, 90)  # days before the review's moment over which sign-ins are counted


@dataclass(frozen=True)
class Grant:
    case: str  # the case reference, never its content
    access: str  # "view" or "work"


@dataclass(frozen=True)
class ReviewedChange:
    change: RoleChange
    maker: str | None
    approver: str | None  # None: a role that needs no approval


@dataclass(frozen=True)
class Activity:
    days: int  # the window: this many days before the review's moment
    sign_ins: int
    active_days: int  # distinct UTC days with a sign-in


@dataclass(frozen=True)
class UserAccess:
    user_id: int
    username: str
    active: bool
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    teams: tuple[str, ...]
    grants: tuple[Grant, ...]
    last_login: datetime | None
    last_activity: datetime | None
    changes: tuple[ReviewedChange, ...]
    role_names: tuple[str, ...] = ()  # the roles' display names, in the order of ``roles``
    joined: datetime | None = None
    activity: tuple[Activity, ...] = ()  # one per window of WINDOWS
    dormant: bool = False
    conflict: str | None = None  # why the permissions held break segregation of duties


def is_dormant(active: bool, last_login: datetime | None, joined: datetime, now: datetime, days: int) -> bool:
    """An active account with no sign-in for ``days`` (since its creation if it never signed in)."""
    return active and (last_login or joined) < now - timedelta(days=days)


def _activity_counts(now: datetime) -> dict[str, Any]:
    """Per window, the sign-ins and the distinct days with one, over the ``recent`` sessions."""
    counts: dict[str, Any] = {}
    for days in WINDOWS:
        within = Q(recent__started_at__gt=now - timedelta(days=days))
        counts[f"sign_ins_{days}"] = Count("recent", filter=within)
        counts[f"active_days_{days}"] = Count(TruncDate("recent__started_at", tzinfo=UTC), distinct=True, filter=within)
    return counts


def access_review(reviewer: User, *, now: datetime | None = None, dormant_days: int | None = None) -> list[UserAccess]:
    """Every user, inactive ones included (an auditor asks about those too), by username, as of
    ``now``; nothing for a ``reviewer`` who may not read access reviews. ``dormant_days`` defaults
    to ``CASPIX_ACCESS_REVIEW_DORMANT_DAYS``."""
    now = now or timezone.now()
    dormant_after: int = dormant_days or settings.CASPIX_ACCESS_REVIEW_DORMANT_DAYS
    recent = FilteredRelation(
        "signed_in_sessions",
        condition=Q(
            signed_in_sessions__started_at__gt=now - timedelta(days=max(WINDOWS)),
            signed_in_sessions__started_at__lte=now,
        ),
    )
    users = list(
        User.objects.restrict(reviewer, "review")
        .annotate(recent=recent)
        .annotate(**_activity_counts(now))
        .order_by("username")
        .prefetch_related(
            Prefetch(
                "roles", queryset=Role.objects.restrict(reviewer, "review").order_by("slug").prefetch_related("grants")
            )
        )
        .prefetch_related(Prefetch("teams", queryset=Team.objects.restrict(reviewer, "review").order_by("slug")))
    )
    grants: dict[int, list[Grant]] = defaultdict(list)
    rows = CaseUserObjectPermission.objects.restrict(reviewer, "review").order_by(
        "content_object_id", "permission__codename"
    )
    for user_id, case_id, codename in rows.values_list("user_id", "content_object_id", "permission__codename"):
        grants[user_id].append(Grant(reference_of(case_id), codename.removesuffix("_case")))
    history = role_history()
    names = {user.pk: user.username for user in users}
    reviewed = []
    for user in users:
        permissions = tuple(sorted({p for role in user.roles.all() for p in role.permissions()}))
        reviewed.append(
            UserAccess(
                user_id=user.pk,
                username=user.username,
                active=user.is_active,
                roles=tuple(role.slug for role in user.roles.all()),
                permissions=permissions,
                teams=tuple(team.slug for team in user.teams.all()),
                grants=tuple(grants[user.pk]),
                last_login=user.last_login,
                last_activity=user.last_activity,
                changes=tuple(
                    ReviewedChange(
                        change,
                        names.get(change.maker_id) if change.maker_id else None,
                        names.get(change.approver_id) if change.approver_id else None,
                    )
                    for change in history.get(user.pk, [])
                ),
                role_names=tuple(role.name for role in user.roles.all()),
                joined=user.date_joined,
                activity=tuple(
                    Activity(days, getattr(user, f"sign_ins_{days}"), getattr(user, f"active_days_{days}"))
                    for days in WINDOWS
                ),
                dormant=is_dormant(user.is_active, user.last_login, user.date_joined, now, dormant_after),
                conflict=segregation_conflict(permissions),
            )
        )
    return reviewed


# --- the snapshot ------------------------------------------------------------------------------


def _moment(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def _user(row: UserAccess) -> dict[str, Any]:
    return {
        "id": row.user_id,
        "username": row.username,
        "active": row.active,
        "joined": _moment(row.joined),
        "roles": list(row.roles),
        "permissions": list(row.permissions),
        "teams": list(row.teams),
        "grants": [{"case": grant.case, "access": grant.access} for grant in row.grants],
        "last_login": _moment(row.last_login),
        "last_activity": _moment(row.last_activity),
        "activity": [
            {"days": window.days, "sign_ins": window.sign_ins, "active_days": window.active_days}
            for window in row.activity
        ],
        "dormant": row.dormant,
        "conflict": row.conflict,
        "changes": [
            {
                "seq": reviewed.change.seq,
                "at": rfc3339(reviewed.change.at),
                "role": reviewed.change.role,
                "change": reviewed.change.change,
                "maker": reviewed.maker,
                "approver": reviewed.approver,
                "approval": reviewed.change.approval_id,
            }
            for reviewed in row.changes
        ],
    }


def document(
    rows: list[UserAccess], *, review_id: str, taken_at: datetime, taken_by: str, dormant_days: int
) -> dict[str, Any]:
    """The snapshot of ``rows`` as a plain JSON document: what the SHA-256 covers and signs off.

    It names itself (id, moment, who took it) and the rules it was made with, so the hash binds
    the facts a PDF or CSV of it repeats."""
    roles = sorted({(slug, name) for row in rows for slug, name in zip(row.roles, row.role_names, strict=True)})
    return {
        "format": FORMAT,
        "id": review_id,
        "taken_at": rfc3339(taken_at),
        "taken_by": taken_by,
        "rules": {"dormant_after_days": dormant_days, "windows_days": list(WINDOWS)},
        "roles": [{"slug": slug, "name": name} for slug, name in roles],
        "users": [_user(row) for row in rows],
    }


def serialise(snapshot: dict[str, Any]) -> tuple[bytes, str]:
    """The document's canonical bytes and their SHA-256 (hex)."""
    data = canonical(snapshot)
    return data, hashlib.sha256(data).hexdigest()
