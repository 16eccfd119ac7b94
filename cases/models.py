"""Queues and cases, and the one door to them: ``Case.objects.restrict(user, action)``.

A case is visible and workable by the members of the team owning its queue, by its assignee and
by users granted it explicitly (a django-guardian object permission stored in a direct
foreign-key table). Only a user holding the ``cases.work_cases`` business permission passes the
door at all: administrators, managers and auditors reach no case, whatever else they hold, and
Django's superuser flag adds nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from guardian.managers import UserObjectPermissionManager
from guardian.models import UserObjectPermissionBase
from guardian.shortcuts import get_objects_for_user

from accounts.models import REVIEWERS, Team
from accounts.permissions import Perm
from caspix.gates import GatedQuerySet

if TYPE_CHECKING:
    from accounts.models import User


class Action(StrEnum):
    """What a user wants to do with a case; each explicit grant names the widest it allows."""

    VIEW = "view"
    WORK = "work"


# The object permission (codename) an explicit grant of each action stores...
CODENAME: dict[Action, str] = {Action.VIEW: "view_case", Action.WORK: "work_case"}
# ...and those that open a case for each action (a work grant includes viewing).
GRANTS_FOR: dict[Action, tuple[str, ...]] = {
    Action.VIEW: ("view_case", "work_case"),
    Action.WORK: ("work_case",),
}


class AnyOf(models.Func):
    """``column = ANY(ARRAY(subquery))``: the subquery runs once, and each branch of an OR of
    these probes its own index (PostgreSQL ORs them as bitmaps). ``column IN (subquery)`` would
    become a join, and an OR of joins scans the whole table. Plain ``IN`` elsewhere (SQLite)."""

    output_field = models.BooleanField()

    def __init__(self, column: str, subquery: models.QuerySet[Any]) -> None:
        super().__init__(models.F(column), models.Subquery(subquery))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        column, subquery = self.get_source_expressions()
        column_sql, column_params = compiler.compile(column)
        subquery_sql, subquery_params = compiler.compile(subquery)
        template = "%s = ANY(ARRAY%s)" if connection.vendor == "postgresql" else "%s IN %s"
        return template % (column_sql, subquery_sql), [*column_params, *subquery_params]


class QueueQuerySet(GatedQuerySet["Queue"]):
    gates = {"view": (Perm.MANAGE_TEAMS,), "manage": (Perm.MANAGE_TEAMS,)}


class Queue(models.Model):
    """A queue of cases, owned by one investigator team."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="queues")
    created_at = models.DateTimeField(default=timezone.now)

    objects = QueueQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CaseQuerySet(models.QuerySet["Case"]):
    def restrict(self, user: User | Any, action: Action | str) -> CaseQuerySet:
        """The cases ``user`` may reach for ``action``; none for anyone who does not work cases."""
        action = Action(action)
        if not (user.is_authenticated and user.is_active and user.has_perm(Perm.WORK_CASES)):
            return self.none()
        team_queues = Queue.objects.filter(team__memberships__user=user).order_by().values("pk")
        granted = (
            get_objects_for_user(
                user,
                list(GRANTS_FOR[action]),
                Case,
                use_groups=False,
                any_perm=True,
                with_superuser=False,
                accept_global_perms=False,
            )
            .order_by()
            .values("pk")
        )
        return self.filter(AnyOf("queue_id", team_queues) | Q(assignee=user) | AnyOf("pk", granted))


class Case(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In progress"
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        CLOSED = "closed", "Closed"

    class Priority(models.IntegerChoices):
        LOW = 1, "Low"
        MEDIUM = 2, "Medium"
        HIGH = 3, "High"
        CRITICAL = 4, "Critical"

    title = models.CharField(max_length=200)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="cases")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="assigned_cases"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.MEDIUM)
    opened_at = models.DateTimeField(default=timezone.now)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "opened_at", "pk"]  # pk: a stable order across pages
        default_permissions = ()
        permissions = [("view_case", "View the case"), ("work_case", "Work the case")]
        indexes = [models.Index(fields=["queue", "status"], name="case_by_queue_status")]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return reference_of(self.pk)


def reference_of(pk: int) -> str:
    """The reference people quote for a case: its number, zero-padded."""
    return f"C-{pk:06d}"


class GrantQuerySet(models.QuerySet["CaseUserObjectPermission"]):
    def restrict(self, user: User | Any, action: Action | str) -> GrantQuerySet:
        """The grants on the cases ``user`` may reach for ``action``, or, with ``review``, every
        grant for the people who review access (the grantee and the case's number, no content)."""
        if action == "review":
            reviewer = user.is_authenticated and user.is_active
            return self if reviewer and any(user.has_perm(p) for p in REVIEWERS) else self.none()
        return self.filter(content_object__in=Case.objects.restrict(user, action))


class GrantManager(UserObjectPermissionManager.from_queryset(GrantQuerySet)):  # type: ignore[misc]
    """guardian's manager (assign_perm and remove_perm use it), with the door added."""


class CaseUserObjectPermission(UserObjectPermissionBase):
    """An explicit grant of one case to one user (guardian, direct foreign key: no generic rows
    to orphan, and a join instead of a text comparison)."""

    content_object = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="grants")

    objects: ClassVar[GrantManager] = GrantManager()

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "case grant"


def get_case_for_user(user: User | Any, pk: int | str, action: Action | str = Action.VIEW) -> Case:
    """The case, or 404 alike for one that does not exist and one ``user`` may not reach."""
    from django.shortcuts import get_object_or_404

    return get_object_or_404(Case.objects.restrict(user, action).select_related("queue", "assignee"), pk=pk)
