"""FIU profiles: who the reports go to, and the goAML schema versions they accept.

A profile names the FIU and how the bank is known there (reporting entity id, branch, local
currency). Each uploaded XSD is kept as it was received, with its SHA-256, the code lists and
``supportedIn`` annotations extracted from it (``reporting/goaml/schema.py``), and the patterns
that would refuse every real value; one schema per profile is current.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import REVIEWERS
from accounts.permissions import Perm
from cases.models import WHOLE_BANK, Action, ThroughCaseQuerySet
from caspix.crypto.fields import EncryptedBinaryField, EncryptedTextField
from caspix.gates import GatedQuerySet

if TYPE_CHECKING:
    from accounts.models import User


def default_weekend() -> list[int]:
    return [5, 6]  # Saturday and Sunday


class FiuProfileQuerySet(GatedQuerySet["FiuProfile"]):
    # Those who draft or approve reports read the profiles; administrators keep them.
    gates = {"view": (Perm.MANAGE_SETTINGS, Perm.DRAFT_STR, Perm.APPROVE_STR), "manage": (Perm.MANAGE_SETTINGS,)}


class FiuProfile(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200, unique=True)  # the FIU, as reports name it
    rentity_id = models.PositiveIntegerField(help_text="The bank's reporting entity id at this FIU.")
    rentity_branch = models.CharField(max_length=255, blank=True)
    currency_code_local = models.CharField(max_length=3)
    # The bank's goAML user at this FIU, where its reports name one instead of a reporting person.
    reporting_user_code = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The deadline of a suspicious transaction report: business days after suspicion was formed,
    # skipping the weekend days (Monday is 0) and the profile's holidays.
    report_due_days = models.PositiveSmallIntegerField(default=10)
    weekend = models.JSONField(default=default_weekend)  # Monday is 0; [] counts every day
    warn_days = models.PositiveSmallIntegerField(default=2)  # business days before the deadline
    # The FIU's wall clock: goAML dates carry no offset, so they are written in this zone.
    time_zone = models.CharField(max_length=64, default="UTC")

    objects = FiuProfileQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(rentity_id__gte=1), name="fiu_rentity_id_positive")]

    def __str__(self) -> str:
        return self.name

    def current_schema(self) -> FiuSchema | None:
        return self.schemas.filter(is_current=True).first()


class FiuSchemaQuerySet(GatedQuerySet["FiuSchema"]):
    gates = FiuProfileQuerySet.gates


class FiuSchema(models.Model):
    """One goAML XSD of a profile, as uploaded, and what was extracted from it."""

    profile = models.ForeignKey(FiuProfile, on_delete=models.PROTECT, related_name="schemas")
    version = models.CharField(max_length=20)  # goaml:schemaVersion, or as the administrator named it
    filename = models.CharField(max_length=200)
    xsd = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    code_lists = models.JSONField()  # {simple type name: [[code, label], ...]}
    supported_in = models.JSONField()  # {element path: goAML version}
    anchored_patterns = models.JSONField(default=list)
    is_current = models.BooleanField(default=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)

    objects = FiuSchemaQuerySet.as_manager()

    class Meta:
        ordering = ["profile", "-uploaded_at"]
        constraints = [
            models.UniqueConstraint(fields=["profile", "sha256"], name="fiu_schema_once"),
            models.UniqueConstraint(fields=["profile"], condition=Q(is_current=True), name="fiu_one_current_schema"),
        ]

    def __str__(self) -> str:
        return f"{self.profile} goAML {self.version}"

    def codes(self, name: str) -> list[tuple[str, str]]:
        entries: list[Any] = self.code_lists.get(name, [])
        return [(str(code), str(label)) for code, label in entries]


# --- the FIU's calendar ----------------------------------------------------------------------------


class HolidayQuerySet(GatedQuerySet["Holiday"]):
    gates = FiuProfileQuerySet.gates


class Holiday(models.Model):
    """A day the FIU's deadlines do not count (besides the profile's weekend)."""

    profile = models.ForeignKey(FiuProfile, on_delete=models.PROTECT, related_name="holidays")
    day = models.DateField()
    name = models.CharField(max_length=100)

    objects = HolidayQuerySet.as_manager()

    class Meta:
        ordering = ["profile", "day"]
        constraints = [models.UniqueConstraint(fields=["profile", "day"], name="fiu_holiday_once")]

    def __str__(self) -> str:
        return f"{self.day} {self.name}"


# --- suspicious transaction reports ----------------------------------------------------------------


class ReportQuerySet(ThroughCaseQuerySet):
    """Reports are open exactly as far as their case is, to those who draft or approve them."""

    def restrict(self, user: User | Any, action: Action | str) -> Any:
        if Action(action) in WHOLE_BANK:  # counted or exported as far as the case door allows
            return super().restrict(user, action)
        if not (user.has_perm(Perm.DRAFT_STR) or user.has_perm(Perm.APPROVE_STR)):
            return self.none()
        return super().restrict(user, action)


class Report(models.Model):
    """A report to an FIU about one case, from its draft to the FIU's answer.

    The draft's content (the parties' identifiers, the narratives) is encrypted as one JSON
    document; every save raises ``revision``, and a file generated from one revision is never
    taken for another.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING_APPROVAL = "pending_approval", "Waiting for approval"
        APPROVED = "approved", "Approved, to submit"
        SUBMITTED = "submitted", "Submitted to the FIU"
        ACKNOWLEDGED = "acknowledged", "Acknowledged by the FIU"
        ABANDONED = "abandoned", "Abandoned"

    class Channel(models.TextChoices):
        WEB_UPLOAD = "web_upload", "goAML web: XML upload"
        WEB_FORM = "web_form", "goAML web: form entry"
        API = "api", "FIU interface (API)"
        OTHER = "other", "Other (named in the note)"

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # binds the ciphertexts
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="reports")
    profile = models.ForeignKey(FiuProfile, on_delete=models.PROTECT, related_name="reports")
    report_code = models.CharField(max_length=10)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    suspicion_on = models.DateField(help_text="The day suspicion was formed: the deadline counts from it.")
    due_on = models.DateField()
    content = EncryptedTextField(bind="key")  # the draft, as JSON (reporting/drafting.py)
    revision = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    fiu_ref_number = models.CharField(max_length=255, blank=True)
    submitted_on = models.DateField(null=True, blank=True)
    channel = models.CharField(max_length=20, choices=Channel.choices, blank=True)
    answered_on = models.DateField(null=True, blank=True)
    fiu_feedback = EncryptedTextField(blank=True, bind="key")  # the FIU's reason when it rejected the report
    deadline_escalated_at = models.DateTimeField(null=True, blank=True)
    # Who drafted, saved, generated or sent the report: none of them is its four-eyes approver.
    editors = models.JSONField(default=list)
    approved_file = models.ForeignKey(
        "ReportFile", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )  # the file a lead approved: the only one offered once approved
    approved_at = models.DateTimeField(null=True, blank=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["due_on", "pk"]
        indexes = [models.Index(fields=["status", "due_on"], name="report_open_by_due")]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        """The report's ``entity_reference``: how the FIU and the bank name it."""
        return f"CPX-{self.report_code}-{self.pk:06d}"

    @property
    def editable(self) -> bool:
        return self.status == self.Status.DRAFT


class ReportFileQuerySet(ThroughCaseQuerySet):
    case_path = "report__case"

    def restrict(self, user: User | Any, action: Action | str) -> Any:
        return self.filter(report__in=Report.objects.restrict(user, action))


class ReportFile(models.Model):
    """One generation of a report's goAML XML from one revision of its draft, with the gate's
    verdict; the bytes are encrypted in :class:`ReportFileContent`."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        RUNNING = "running", "Being written and checked"
        VALID = "valid", "Valid"
        INVALID = "invalid", "Refused by the gate"
        FAILED = "failed", "Could not be written"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="files")
    revision = models.PositiveIntegerField()
    schema = models.ForeignKey(FiuSchema, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)  # transactions written so far
    total = models.PositiveIntegerField(default=0)
    # The gate's faults told in the form's words (they may quote a name): encrypted, as JSON.
    sealed_faults = EncryptedTextField(default="[]")
    submission_date = models.DateTimeField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)  # by the worker that runs it
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ReportFileQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]
        get_latest_by = "requested_at"

    def __str__(self) -> str:
        return f"file {self.pk} of {self.report}"

    @property
    def faults(self) -> list[dict[str, str]]:
        """``[{"section", "field", "label", "message", "path"}]``."""
        found: list[dict[str, str]] = json.loads(str(self.sealed_faults or "[]"))
        return found

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.VALID, self.Status.INVALID, self.Status.FAILED)

    @property
    def filename(self) -> str:
        return f"{self.report.reference}-r{self.revision}.xml"


class ReportFileContent(models.Model):
    """The bytes of one generated file, gzip-compressed (goAML XML shrinks twentyfold) and then
    encrypted (AES-256-GCM, bound to its row)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.OneToOneField(ReportFile, on_delete=models.PROTECT, related_name="content")
    data = EncryptedBinaryField()

    def __str__(self) -> str:
        return f"content of {self.file_id}"

    def xml(self) -> bytes:
        """The file as it was generated."""
        return gzip.decompress(bytes(self.data))

    def xml_chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The file as it was generated, a megabyte at a time (never whole in memory)."""
        with gzip.GzipFile(fileobj=io.BytesIO(bytes(self.data)), mode="rb") as unpacked:
            while chunk := unpacked.read(size):
                yield chunk


class ReportApproval(models.Model):
    """The four-eyes request that a report's file be submitted, bound to the file's SHA-256."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="approvals")
    file = models.ForeignKey(ReportFile, on_delete=models.PROTECT, related_name="+")
    request = models.OneToOneField("accounts.ApprovalRequest", on_delete=models.PROTECT, related_name="report_link")

    def __str__(self) -> str:
        return f"approval {self.request_id} of {self.report}"


# --- evidence packs and regulatory exports ----------------------------------------------------------


class ExportQuerySet(models.QuerySet["Export"]):
    """An auditor's export jobs are their own: others' are neither listed nor downloadable."""

    def restrict(self, user: User | Any, action: str) -> ExportQuerySet:
        if action not in ("view", "download"):
            raise ValueError(f"Export has no action {action!r}: download, view")
        if not (user.is_authenticated and user.is_active and user.has_perm(Perm.EXPORT_EVIDENCE)):
            return self.none()
        return self.filter(requested_by=user)


class Export(models.Model):
    """One evidence pack or regulatory export: asked for by an auditor, built by a worker as a
    ZIP whose manifest hashes every file and is signed through the key service.

    The ZIP is stored encrypted in :class:`ExportPart` rows, written in the same transaction that
    makes the export ready, so a worker that dies mid-build leaves nothing visible; the parts are
    erased when the export expires (the row and its hashes stay, for the record).
    """

    class Kind(models.TextChoices):
        CASE_PACK = "case_pack", "Evidence pack of a case"
        PERIOD_PACK = "period_pack", "Evidence pack of a period"
        LEDGER_EXTRACT = "ledger_extract", "Ledger extract"
        STR_REGISTER = "str_register", "Register of reports to the FIU"
        CASE_REGISTER = "case_register", "Register of cases"

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        RUNNING = "running", "Being built"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)  # exclusive
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)  # steps of the build done so far
    total = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)  # by the worker that builds it
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # its last sign of life
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)  # of the ZIP
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    checkpoint_size = models.BigIntegerField(null=True, blank=True)  # the events are proven against it
    failure = models.CharField(max_length=300, blank=True)  # why, never a record's content

    objects = ExportQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="case_pack") | Q(case__isnull=False), name="export_case_pack_has_case"
            ),
            models.CheckConstraint(
                condition=Q(kind="case_pack") | Q(period_start__isnull=False, period_end__isnull=False),
                name="export_period_given",
            ),
        ]
        indexes = [models.Index(fields=["requested_by", "-requested_at"], name="export_by_requester")]

    def __str__(self) -> str:
        return f"export {self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED, self.Status.EXPIRED)

    @property
    def filename(self) -> str:
        stamp = self.requested_at.strftime("%Y%m%dT%H%M%SZ")
        return f"caspix-{self.kind.replace('_', '-')}-{stamp}-{str(self.pk)[:8]}.zip"


class ExportPart(models.Model):
    """A run of the ZIP's bytes (:data:`PART_SIZE` at most), encrypted (AES-256-GCM, bound to its
    row): a pack of hundreds of megabytes is never one value in memory."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    data = EncryptedBinaryField()

    class Meta:
        ordering = ["export", "number"]
        constraints = [models.UniqueConstraint(fields=["export", "number"], name="export_part_once")]

    def __str__(self) -> str:
        return f"part {self.number} of {self.export_id}"


# --- access reviews --------------------------------------------------------------------------------


SIGN_OFF_COMMENT_MAX = 2000  # characters


class SnapshotAlteredError(Exception):
    """A snapshot whose content no longer has the SHA-256 recorded when it was taken."""


class AccessReviewQuerySet(GatedQuerySet["AccessReview"]):
    # Access reviewers read every snapshot and take new ones; only a manager signs one off.
    gates = {"view": REVIEWERS, "sign_off": (Perm.SIGN_OFF_ACCESS_REVIEW,)}


class AccessReview(models.Model):
    """A frozen snapshot of the access review (``reporting/access_review.py``) and its sign-off.

    ``content`` is the snapshot document's canonical JSON, gzip-compressed; ``sha256`` is the hash
    of the uncompressed bytes, the one the manager is shown and signs off. The content is encrypted
    (AES-256-GCM, bound to the row) as every stored document of Caspix is, although it holds no
    customer data: it maps who holds which privilege and which accounts lie dormant, a list of
    targets for whoever gets a copy of the database or of a backup. The sign-off comment is plain
    text: the ledger records it as the sign-off's reason, as it records every reason.

    Taken once and never changed; signed off once and never again. The action locks the row and
    signs off with an UPDATE conditional on ``signed_off_at IS NULL``; a trigger (this model's
    migration) refuses every DELETE and any UPDATE of a signed-off row or of the snapshot's own
    columns, whoever asks.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    taken_at = models.DateTimeField(default=timezone.now)
    taken_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    content = EncryptedBinaryField()
    sha256 = models.CharField(max_length=64)
    # Counted from the content as it was taken, for the list, which opens no snapshot.
    users = models.PositiveIntegerField(default=0)
    dormant = models.PositiveIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    sign_off_comment = models.TextField(max_length=SIGN_OFF_COMMENT_MAX, blank=True)

    objects = AccessReviewQuerySet.as_manager()

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(signed_off_by__isnull=True, signed_off_at__isnull=True, sign_off_comment="")
                | Q(signed_off_by__isnull=False, signed_off_at__isnull=False),
                name="access_review_signed_off_whole",
            ),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="access_review_sha256_hex"),
        ]

    def __str__(self) -> str:
        return f"access review {self.pk}"

    @property
    def signed_off(self) -> bool:
        return self.signed_off_at is not None

    @property
    def filename(self) -> str:
        """The downloads' name without its extension."""
        return f"caspix-access-review-{self.taken_at.strftime('%Y%m%dT%H%M%SZ')}-{str(self.pk)[:8]}"

    def canonical(self) -> bytes:
        """The snapshot's canonical bytes, refused when they no longer have the recorded SHA-256."""
        data = gzip.decompress(bytes(self.content))
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise SnapshotAlteredError(
                "the snapshot no longer matches its SHA-256: it is withheld, report it to security"
            )
        return data

    def document(self) -> dict[str, Any]:
        """The snapshot as taken (``reporting.access_review.document``)."""
        found: dict[str, Any] = json.loads(self.canonical())
        return found
