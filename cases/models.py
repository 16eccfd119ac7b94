"""Queues and cases, and the one door to them: ``Case.objects.restrict(user, action)``.

A case is visible and workable by the members of the team owning its queue, by its assignee and
by users granted it explicitly (a django-guardian object permission stored in a direct
foreign-key table). Only a user holding the ``cases.work_cases`` business permission passes the
door at all: administrators, managers and auditors reach no case, whatever else they hold, and
Django's superuser flag adds nothing.
"""

from __future__ import annotations

import base64
import datetime
import secrets
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from guardian.managers import UserObjectPermissionManager
from guardian.models import UserObjectPermissionBase
from guardian.shortcuts import get_objects_for_user

from accounts.models import REVIEWERS, Team
from accounts.permissions import Perm
from caspix.crypto.fields import (
    BlindIndexField,
    EncryptedBinaryField,
    EncryptedDateField,
    EncryptedTextField,
    ProtectedModel,
)
from caspix.expressions import AnyOf
from caspix.gates import GatedQuerySet

if TYPE_CHECKING:
    from accounts.models import User


_Rows = TypeVar("_Rows", bound=models.QuerySet[Any])

# The SLA due time that sorts a case without one last (cases.queue.by_urgency, and an index).
NO_DUE = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)


class Action(StrEnum):
    """What a user wants to do with a case; each explicit grant names the widest it allows."""

    VIEW = "view"
    WORK = "work"
    AGGREGATE = "aggregate"  # counted in a manager's dashboard: never loaded for its content
    EXPORT = "export"  # put in an auditor's evidence pack or register


#: The actions that open every case, whatever its team, to the holders of one business permission.
#: Neither opens a page of the workspace: a dashboard counts cases, and an export puts a case in a
#: pack that is itself recorded in the ledger when it is asked for and when it is downloaded.
WHOLE_BANK: dict[Action, Perm] = {Action.AGGREGATE: Perm.VIEW_DASHBOARD, Action.EXPORT: Perm.EXPORT_EVIDENCE}


# The object permission (codename) an explicit grant of each action stores...
CODENAME: dict[Action, str] = {Action.VIEW: "view_case", Action.WORK: "work_case"}
# ...and those that open a case for each action (a work grant includes viewing).
GRANTS_FOR: dict[Action, tuple[str, ...]] = {
    Action.VIEW: ("view_case", "work_case"),
    Action.WORK: ("work_case",),
}


class QueueQuerySet(GatedQuerySet["Queue"]):
    # "route": the queues a case worker may send a case to (names only; the cases stay behind
    # their own door). "aggregate": the queues a manager's dashboard counts cases by.
    gates = {
        "view": (Perm.MANAGE_TEAMS,),
        "manage": (Perm.MANAGE_TEAMS,),
        "route": (Perm.WORK_CASES,),
        "aggregate": (Perm.VIEW_DASHBOARD,),
    }


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
    # (user id, action) of the door this queryset came through: the cases it loads remember it
    # (see :func:`reached`), so that the rows of one of them need not pass the door again.
    _door: tuple[int, Action] | None = None

    def restrict(self, user: User | Any, action: Action | str) -> CaseQuerySet:
        """The cases ``user`` may reach for ``action``: to view or work, those of their teams, their
        own and those granted to them, and none for anyone who does not work cases; to aggregate
        or export, every case for the holders of that permission (:data:`WHOLE_BANK`)."""
        action = Action(action)
        signed_in = user.is_authenticated and user.is_active
        if action in WHOLE_BANK:
            if not (signed_in and user.has_perm(WHOLE_BANK[action])):
                return self.none()
            through = self.all()
            through._door = (user.pk, action)
            return through
        if not (signed_in and user.has_perm(Perm.WORK_CASES)):
            return self.none()
        through = self.filter(_door(user, action))
        through._door = (user.pk, action)
        return through

    def _clone(self) -> CaseQuerySet:
        clone = super()._clone()  # type: ignore[misc]
        clone._door = self._door
        return clone  # type: ignore[no-any-return]

    # A combination with another queryset is not the door's alone: its cases are not marked.
    def __or__(self, other: Any) -> Any:
        combined = super().__or__(other)
        combined._door = None
        return combined

    def __xor__(self, other: Any) -> Any:
        combined = super().__xor__(other)  # type: ignore[misc]
        combined._door = None
        return combined

    def _combinator_query(self, *args: Any, **kwargs: Any) -> Any:
        combined = super()._combinator_query(*args, **kwargs)  # type: ignore[misc]
        combined._door = None
        return combined

    def _fetch_all(self) -> None:
        super()._fetch_all()
        if self._door is not None and self._result_cache:
            for row in self._result_cache:
                if isinstance(row, Case):
                    row.__dict__["_reached"] = self._door


def reached(case: Case, user: User | Any, action: Action | str) -> bool:
    """Whether this case object was loaded through ``restrict(user, action)`` (or through the
    door for work, which includes viewing): its rows are then reached by its id alone."""
    mark = case.__dict__.get("_reached")
    action = Action(action)
    if mark is None or mark[0] != user.pk:
        return False
    return mark[1] == action or (mark[1] == Action.WORK and action == Action.VIEW)


def through_door(rows: _Rows, path: str, user: User | Any, action: Action | str) -> _Rows:
    """``rows`` whose case (at ``path``) passes :meth:`CaseQuerySet.restrict` for ``user``.

    When the door opens the whole bank (:data:`WHOLE_BANK`), it adds no condition: every row has
    its case, and ``case IN (every case)`` would have PostgreSQL read the id of every case for
    each count of a dashboard (190 ms at 1,000,000 cases, docs/PERFORMANCE.md).
    """
    cases = Case.objects.restrict(user, action)
    if Action(action) in WHOLE_BANK:
        return rows.none() if cases.query.is_empty() else rows.all()
    return rows.filter(**{f"{path}__in": cases})


def _door(user: User | Any, action: Action) -> Q:
    """The condition of :meth:`CaseQuerySet.restrict`, built once per user object and action.

    It holds subqueries, not their rows: teams and grants are read by every query that uses it,
    so a change of membership or grant counts at the next query all the same. Building it (guardian
    resolves the permissions' content type) costs about a millisecond of Python, and a page asks
    the door six to eight times.
    """
    built: dict[Action, Q] = user.__dict__.setdefault("_case_door", {})
    door = built.get(action)
    if door is None:
        door = built[action] = _build_door(user, action)
    return door


def _build_door(user: User | Any, action: Action) -> Q:
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
    return Q(AnyOf("queue_id", team_queues)) | Q(assignee=user) | Q(AnyOf("pk", granted))


class Case(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In progress"
        ESCALATED = "escalated", "Escalated"
        STR = "str", "Reporting (STR)"
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        CLOSED = "closed", "Closed"

    class ClosureReason(models.TextChoices):
        FALSE_POSITIVE = "false_positive", "False positive"
        CONFIRMED_FRAUD = "confirmed_fraud", "Confirmed fraud"
        CONFIRMED_GENUINE = "confirmed_genuine", "Confirmed genuine by the customer"
        REFERRED = "referred", "Referred elsewhere"
        DUPLICATE = "duplicate", "Duplicate of another case"

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
    party = models.ForeignKey("Party", on_delete=models.PROTECT, null=True, blank=True, related_name="cases")
    sla_due_at = models.DateTimeField(null=True, blank=True)
    closure_reason = models.CharField(max_length=20, choices=ClosureReason.choices, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "opened_at", "pk"]  # pk: a stable order across pages
        default_permissions = ()
        permissions = [("view_case", "View the case"), ("work_case", "Work the case")]
        indexes = [
            models.Index(fields=["queue", "status"], name="case_by_queue_status"),
            models.Index(fields=["party", "status"], name="case_by_party_status"),
            # The queue of open cases, most urgent first (cases.queue.by_urgency: the expression
            # must stay the same), and its counts by status: the queue page and "take the next
            # case" walk these instead of every case of the team (bench/bench_workspace.py).
            models.Index(
                Coalesce("sla_due_at", Value(NO_DUE, output_field=models.DateTimeField())),
                F("priority").desc(),
                F("id"),
                name="case_open_by_urgency",
                condition=~Q(status="closed"),
            ),
            models.Index(fields=["queue", "status"], name="case_open_by_queue", condition=~Q(status="closed")),
            # A manager's dashboard (reporting/dashboard.py) counts the open cases by queue, age and
            # SLA, and the cases closed in a period by week, queue, assignee and reason, from these
            # two alone (index-only scans; bench/bench_dashboard.py); with a team, it finds the ids
            # of its queues' cases (for their alerts and reports) in the third.
            models.Index(
                fields=["queue", "opened_at", "sla_due_at"], name="case_open_ageing", condition=~Q(status="closed")
            ),
            models.Index(
                fields=["closed_at", "queue", "assignee", "closure_reason"],
                name="case_closed_by_time",
                condition=Q(status="closed"),
            ),
            models.Index(fields=["queue", "id"], name="case_ids_by_queue"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return reference_of(self.pk)

    SLA_SOON = datetime.timedelta(hours=24)

    @property
    def sla(self) -> tuple[str, str]:
        """The SLA state (``overdue``, ``soon``: due within 24 hours, ``later``, ``none``, ``done``)
        and how it reads."""
        if self.status == Case.Status.CLOSED:
            return "done", "closed"
        if self.sla_due_at is None:
            return "none", "no SLA"
        left = self.sla_due_at - timezone.now()
        if left <= datetime.timedelta(0):
            return "overdue", f"overdue by {_span(-left)}"
        return ("soon" if left <= self.SLA_SOON else "later"), f"due in {_span(left)}"


def _span(delta: datetime.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes // (24 * 60)} days"


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


class ThroughCaseQuerySet(models.QuerySet[Any]):
    """Rows that belong to a case (its notes, evidence, transactions): open exactly as far as
    their case is, through the case's own door."""

    case_path: ClassVar[str] = "case"

    def restrict(self, user: User | Any, action: Action | str) -> Any:
        return through_door(self, self.case_path, user, action)

    def of(self, case: Case, user: User | Any, action: Action | str) -> Any:
        """The rows of one case ``user`` may reach for ``action``: by the case's id when the case
        object came through the door for them already (:func:`reached`), else through it."""
        if reached(case, user, action):
            return self.filter(**{self.case_path: case.pk})
        return self.restrict(user, action).filter(**{self.case_path: case})


class TransactionQuerySet(ThroughCaseQuerySet):
    case_path = "alert__case"


class CaseUserObjectPermission(UserObjectPermissionBase):
    """An explicit grant of one case to one user (guardian, direct foreign key: no generic rows
    to orphan, and a join instead of a text comparison)."""

    content_object = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="grants")

    objects: ClassVar[GrantManager] = GrantManager()

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "case grant"


class CaseApproval(models.Model):
    """Which case a four-eyes request (``accounts.approvals``) is about: a closure or a reopening.

    The approvals themselves live in ``accounts``, which knows nothing of cases; this link lets
    the workspace list the requests of the cases a lead may work, and the case page show its own.
    """

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="approvals")
    request = models.OneToOneField("accounts.ApprovalRequest", on_delete=models.PROTECT, related_name="case_link")

    def __str__(self) -> str:
        return f"{self.request_id} on case {self.case_id}"


class Note(models.Model):
    """A note on a case, append-only: an edit is a new version of the same ``thread``, and no
    version is ever changed or removed (the database refuses it on PostgreSQL and SQLite).

    The text is encrypted: analysts write customers' details in it. The ledger records each
    version's id and SHA-256, never its text.
    """

    MAX_LENGTH = 20_000

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notes")
    thread = models.UUIDField(default=uuid.uuid4, editable=False)
    version = models.PositiveSmallIntegerField(default=1)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = EncryptedTextField(max_length=MAX_LENGTH)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ThroughCaseQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["thread", "version"], name="note_version_once")]
        indexes = [models.Index(fields=["case", "created_at"], name="note_by_case")]

    def __str__(self) -> str:
        return f"note {self.pk}"


class Evidence(models.Model):
    """A file attached to a case: its name, the type its content was sniffed as, its size and
    SHA-256 (of the plaintext, shown to analysts and put in evidence packs). The bytes live in
    :class:`EvidenceContent`, encrypted, so that listing evidence never loads them. Append-only.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="evidence")
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    description = models.CharField(max_length=500, blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)

    objects = ThroughCaseQuerySet.as_manager()

    class Meta:
        ordering = ["added_at", "id"]
        verbose_name_plural = "evidence"
        indexes = [models.Index(fields=["case", "added_at"], name="evidence_by_case")]

    def __str__(self) -> str:
        return f"evidence {self.pk}"


class EvidenceContent(models.Model):
    """The encrypted bytes of one piece of evidence (AES-256-GCM, bound to its row)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    evidence = models.OneToOneField(Evidence, on_delete=models.PROTECT, related_name="content")
    data = EncryptedBinaryField()

    def __str__(self) -> str:
        return f"content of {self.evidence_id}"


class CaseLinkQuerySet(models.QuerySet["CaseLink"]):
    def restrict(self, user: User | Any, action: Action | str) -> CaseLinkQuerySet:
        """The links between two cases that ``user`` may both reach for ``action``."""
        reachable = Case.objects.restrict(user, action)
        return self.filter(first__in=reachable, second__in=reachable)


class CaseLink(models.Model):
    """Two related cases, linked by an analyst with a reason; stored once, lower id first."""

    class Reason(models.TextChoices):
        SAME_SUBJECT = "same_subject", "Same subject"
        SHARED_ACCOUNT = "shared_account", "Shared account or counterparty"
        SAME_SCHEME = "same_scheme", "Same fraud scheme"
        DUPLICATE = "duplicate", "Duplicate"
        OTHER = "other", "Other"

    first = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    second = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    linked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    linked_at = models.DateTimeField(default=timezone.now)

    objects = CaseLinkQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["first", "second"], name="case_link_once"),
            models.CheckConstraint(condition=Q(first__lt=F("second")), name="case_link_ordered"),
        ]
        indexes = [models.Index(fields=["second"], name="case_link_by_second")]

    def __str__(self) -> str:
        return f"link {self.first_id} and {self.second_id}"


def get_case_for_user(user: User | Any, pk: int | str, action: Action | str = Action.VIEW) -> Case:
    """The case, or 404 alike for one that does not exist and one ``user`` may not reach."""
    from django.shortcuts import get_object_or_404

    return get_object_or_404(Case.objects.restrict(user, action).select_related("queue", "assignee"), pk=pk)


# --- Intake: API clients, subjects, alerts, routing ---------------------------------------------


class ApiClientQuerySet(GatedQuerySet["ApiClient"]):
    # "aggregate": the sources a manager's dashboard counts alerts by (their names only).
    gates = {
        "view": (Perm.MANAGE_API_CLIENTS,),
        "manage": (Perm.MANAGE_API_CLIENTS,),
        "aggregate": (Perm.VIEW_DASHBOARD,),
    }


class Scope(models.TextChoices):
    """What an API client may do; a request outside its scopes is refused (403)."""

    ALERTS_WRITE = "alerts:write", "Deliver alerts"
    ALERTS_READ = "alerts:read", "Read the status of the alerts it delivered"


class ApiClient(models.Model):
    """An upstream system (a card platform, a monitoring engine) that delivers alerts.

    Its ``source`` names it in routing rules and on every alert. Requests are signed with one of
    its keys (two may be active during a rotation), come from one of its networks when any are
    listed, stay within its scopes and its rate limit.
    """

    name = models.CharField(max_length=100, unique=True)
    source = models.SlugField(max_length=50, unique=True)
    scopes = models.JSONField(default=list)
    networks = models.JSONField(default=list, blank=True)  # CIDR blocks; none: any address
    rate_limit = models.PositiveIntegerField(default=600)  # requests a minute
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ApiClientQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def allows(self, scope: Scope | str) -> bool:
        return self.is_active and str(scope) in self.scopes


def new_secret() -> str:
    """A shared HMAC secret as it is issued, shown once and stored: 32 random bytes, base64url."""
    return secret_text(secrets.token_bytes(32))


def secret_text(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def secret_key(text: str) -> bytes:
    """The bytes an issued secret stands for (the HMAC key)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ApiKeyQuerySet(GatedQuerySet["ApiKey"]):
    gates = {"view": (Perm.MANAGE_API_CLIENTS,), "manage": (Perm.MANAGE_API_CLIENTS,)}

    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True, client__is_active=True)


class ApiKey(models.Model):
    """One HMAC-SHA256 secret of a client, named by ``key_id`` in each request's signature.

    The secret is shown once, when the key is made, and kept encrypted: HMAC needs it back.
    """

    MAX_ACTIVE = 2  # the old and the new one, during a rotation

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="keys")
    key_id = models.CharField(max_length=64, unique=True)
    secret = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["client", "created_at"]

    def __str__(self) -> str:
        return self.key_id

    def secret_bytes(self) -> bytes:
        """The HMAC key: the secret as issued is its base64url text."""
        return secret_key(str(self.secret))


class Party(ProtectedModel):
    """A subject of alerts: a customer of the bank, known by the customer id its systems use.

    Every identifier is encrypted and searchable only through its blind index; alerts about the
    same customer id join the same open case.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = EncryptedTextField(max_length=64)
    customer_id_index = BlindIndexField(kind="customer_id", source="customer_id", unique=True)
    name = EncryptedTextField(max_length=200, blank=True)
    name_index = BlindIndexField(kind="name", source="name")
    national_id = EncryptedTextField(max_length=32, blank=True)
    national_id_index = BlindIndexField(kind="national_id", source="national_id")
    date_of_birth = EncryptedDateField(null=True, blank=True)
    date_of_birth_index = BlindIndexField(kind="date", source="date_of_birth")
    country = models.CharField(max_length=2, blank=True)  # ISO 3166-1 alpha-2
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "parties"

    def __str__(self) -> str:
        return f"party {self.pk}"


class Account(ProtectedModel):
    """An account of a party, as an alert named it; the number is encrypted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    party = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="accounts")
    number = EncryptedTextField(max_length=34)
    number_index = BlindIndexField(kind="account_number", source="number")
    currency = models.CharField(max_length=3, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["party", "number_index"], name="account_once_per_party")]

    def __str__(self) -> str:
        return f"account {self.pk}"


class AlertQuerySet(models.QuerySet["Alert"]):
    def restrict(self, principal: Any, action: str) -> AlertQuerySet:
        """For an API client, the alerts it delivered (with ``alerts:read``); for a user, the
        alerts of the cases they may reach for ``action``."""
        if isinstance(principal, ApiClient):
            return (
                self.filter(client=principal)
                if action == "view" and principal.allows(Scope.ALERTS_READ)
                else self.none()
            )
        return through_door(self, "case", principal, action)

    def of(self, case: Case, user: User | Any, action: Action | str) -> AlertQuerySet:
        """The alerts of one case ``user`` may reach (see :meth:`ThroughCaseQuerySet.of`)."""
        if reached(case, user, action):
            return self.filter(case_id=case.pk)
        return self.restrict(user, str(action)).filter(case=case)


class Alert(ProtectedModel):
    """One alert from an upstream system, kept once however often it is delivered."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="alerts")
    external_id = models.CharField(max_length=128)
    scenario = models.CharField(max_length=100)
    score = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    party = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="alerts")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="alerts")
    amount = models.DecimalField(max_digits=24, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    payload = EncryptedTextField()  # the request's alert object as received, card numbers tokenised

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["client", "external_id"], name="alert_once_per_source")]
        # A manager's dashboard counts the alerts received in a period by source and scenario (of
        # a team's cases: by case), from this index alone.
        indexes = [models.Index(fields=["received_at", "client", "scenario", "case"], name="alert_by_arrival")]

    def __str__(self) -> str:
        return f"alert {self.pk}"


class Transaction(ProtectedModel):
    """A transaction an alert names: a Decimal amount in an ISO 4217 currency."""

    class Direction(models.TextChoices):
        DEBIT = "debit", "Debit"
        CREDIT = "credit", "Credit"

    class Channel(models.TextChoices):
        CARD_PRESENT = "card_present", "Card present"
        CARD_NOT_PRESENT = "card_not_present", "Card not present"
        ATM = "atm", "ATM"
        ONLINE_BANKING = "online_banking", "Online banking"
        MOBILE = "mobile", "Mobile app"
        BRANCH = "branch", "Branch"
        TRANSFER = "transfer", "Credit transfer"
        INSTANT = "instant", "Instant payment"
        DIRECT_DEBIT = "direct_debit", "Direct debit"
        OTHER = "other", "Other"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="transactions")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    external_id = models.CharField(max_length=128, blank=True)
    occurred_at = models.DateTimeField()
    amount = models.DecimalField(max_digits=24, decimal_places=4)
    currency = models.CharField(max_length=3)
    minor_units = models.PositiveSmallIntegerField()  # of the currency, when the alert arrived
    direction = models.CharField(max_length=6, choices=Direction.choices)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    counterparty_name = EncryptedTextField(max_length=200, blank=True)
    counterparty_account = EncryptedTextField(max_length=34, blank=True)
    counterparty_account_index = BlindIndexField(kind="account_number", source="counterparty_account")
    counterparty_country = models.CharField(max_length=2, blank=True)
    card_token = EncryptedTextField(blank=True)
    card_token_index = BlindIndexField(kind="card_token", source="card_token")
    card_last_four = models.CharField(max_length=4, blank=True)

    objects = TransactionQuerySet.as_manager()

    class Meta:
        ordering = ["occurred_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="transaction_amount_positive")]

    def __str__(self) -> str:
        return f"transaction {self.pk}"


class RoutingRuleQuerySet(GatedQuerySet["RoutingRule"]):
    gates = {"view": (Perm.MANAGE_SETTINGS,), "manage": (Perm.MANAGE_SETTINGS,)}


class RoutingRule(models.Model):
    """Which queue, at which priority, an alert's new case goes to: the first active rule, by
    position, whose every stated condition the alert meets (a blank condition matches all)."""

    position = models.PositiveIntegerField(unique=True)
    name = models.CharField(max_length=100, unique=True)
    scenario = models.CharField(max_length=100, blank=True)
    source = models.SlugField(max_length=50, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    min_amount = models.DecimalField(max_digits=24, decimal_places=4, null=True, blank=True)
    max_amount = models.DecimalField(max_digits=24, decimal_places=4, null=True, blank=True)  # exclusive
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="routing_rules")
    priority = models.PositiveSmallIntegerField(choices=Case.Priority.choices)
    is_active = models.BooleanField(default=True)

    objects = RoutingRuleQuerySet.as_manager()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_amount__isnull=True) | Q(max_amount__isnull=True) | Q(min_amount__lt=F("max_amount")),
                name="routing_amount_band_ordered",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def matches(self, *, scenario: str, source: str, currency: str, amount: Decimal | None) -> bool:
        if (self.scenario and self.scenario != scenario) or (self.source and self.source != source):
            return False
        if self.currency and self.currency != currency:
            return False
        if self.min_amount is None and self.max_amount is None:
            return True
        if amount is None or (self.currency == "" and currency == ""):
            return False
        return (self.min_amount is None or amount >= self.min_amount) and (
            self.max_amount is None or amount < self.max_amount
        )


class IdempotencyRecord(models.Model):
    """The first answer to a client's ``Idempotency-Key``, kept to answer its retries alike.

    ``fingerprint`` is SHA-256 over the method, the path and the body: the same key with another
    request is refused. Kept for ``INTAKE["IDEMPOTENCY_HOURS"]``.
    """

    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_once_per_client")]

    def __str__(self) -> str:
        return f"idempotency record {self.pk}"


# --- Outbound business events: a transactional outbox, relayed as signed webhooks ---------------


class OutboxEvent(models.Model):
    """A business event, written in the transaction of the change it reports. Carries ids,
    references and states, never customer data.

    ``sequence`` is the order receivers get events in and replay from. The relay gives it once
    the event has committed (``cases.outbox.release``): ids are drawn when events are written,
    so a transaction committing later can hold lower ids than events already delivered.
    """

    id = models.BigAutoField(primary_key=True)
    sequence = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    event_type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["id"], condition=Q(sequence__isnull=True), name="outbox_unreleased")]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"


class WebhookQuerySet(GatedQuerySet["Webhook"]):
    gates = {"view": (Perm.MANAGE_API_CLIENTS,), "manage": (Perm.MANAGE_API_CLIENTS,)}


class Webhook(models.Model):
    """A receiver of the outbound events, in order, at least once, signed with its own secret.

    ``delivered_through`` is the sequence number of the last event it acknowledged (2xx): the
    relay moves it only after a delivery, so a relay killed mid-delivery delivers that batch
    again. Receivers deduplicate by event id.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    secret = EncryptedTextField()
    event_types = models.JSONField(default=list, blank=True)  # none: every type
    is_active = models.BooleanField(default=True)
    delivered_through = models.BigIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def secret_bytes(self) -> bytes:
        return secret_key(str(self.secret))
