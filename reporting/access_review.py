"""The data of an access review: who holds what, who uses it, and who changed it.

Per user: roles and the permissions they add up to, teams, explicit case grants, last sign-in and
last activity, and every role change with its maker and approver as the audit ledger has them.
Managers sign the report off (the report and its sign-off come with oversight); this module only
gathers, in a fixed number of queries however many users there are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch

from accounts.models import Role, Team, User
from accounts.review import RoleChange, role_history
from cases.models import CaseUserObjectPermission, reference_of


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


def access_review(reviewer: User) -> list[UserAccess]:
    """Every user, inactive ones included (an auditor asks about those too), by username; nothing
    for a ``reviewer`` who may not read access reviews."""
    users = list(
        User.objects.restrict(reviewer, "review")
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
    return [
        UserAccess(
            user_id=user.pk,
            username=user.username,
            active=user.is_active,
            roles=tuple(role.slug for role in user.roles.all()),
            permissions=tuple(sorted({p for role in user.roles.all() for p in role.permissions()})),
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
        )
        for user in users
    ]
