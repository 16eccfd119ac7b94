"""Changes to FIU profiles (MANAGE_SETTINGS), access-review snapshots, their downloads and their
sign-off, and the dashboard's CSV exports: one transaction and one ledger event each. (Evidence
packs and exports have their own module, :mod:`reporting.exports`.)"""

from __future__ import annotations

import datetime
import gzip
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.actions import actor_of, require
from accounts.models import REVIEWERS, User
from accounts.permissions import Perm
from audit.canonical import rfc3339
from audit.events import EventType
from audit.ledger import record
from caspix.snapshots import one_moment
from reporting import access_review, access_review_files
from reporting.goaml import schema
from reporting.models import SIGN_OFF_COMMENT_MAX, AccessReview, FiuProfile, FiuSchema


def _extract(data: bytes, version: str) -> tuple[schema.Extracted, str]:
    try:
        extracted = schema.read(data)
    except schema.SchemaError as error:
        raise ValidationError(f"The schema is refused: {error}.") from None
    named = extracted.version or version.strip()
    if not named:
        raise ValidationError("The schema does not state its goAML version (goaml:schemaVersion): name it.")
    if extracted.version and version.strip() and version.strip() != extracted.version:
        raise ValidationError(f"The schema states goAML {extracted.version}, not {version.strip()}.")
    for needed in ("report_type", "currency_type", "country_type"):
        if not extracted.code_lists.get(needed):
            raise ValidationError(f"The schema has no {needed} code list: not a goAML report schema Caspix can fill.")
    return extracted, named


def _check_currency(extracted: schema.Extracted, currency: str) -> None:
    if currency not in extracted.codes("currency_type"):
        raise ValidationError(f"{currency} is not a currency of this schema's currency_type list.")


def _store(
    profile: FiuProfile, filename: str, data: bytes, extracted: schema.Extracted, version: str, user: User
) -> FiuSchema:
    FiuSchema.objects.filter(profile=profile, is_current=True).update(is_current=False)
    return FiuSchema.objects.create(
        profile=profile,
        version=version,
        filename=filename[:200],
        xsd=data,
        sha256=extracted.sha256,
        code_lists={name: [[c.code, c.label] for c in codes] for name, codes in extracted.code_lists.items()},
        supported_in=extracted.supported_in,
        anchored_patterns=extracted.anchored_patterns,
        uploaded_by=user,
    )


def _schema_event(stored: FiuSchema, user: User) -> None:
    record(
        EventType.FIU_SCHEMA_UPLOADED,
        actor=actor_of(user),
        object_type="fiu-profile",
        object_id=stored.profile.slug,
        after={
            "version": stored.version,
            "sha256": stored.sha256,
            "code_lists": len(stored.code_lists),
            "anchored_patterns": len(stored.anchored_patterns),
        },
    )


def create_profile(
    *,
    slug: str,
    name: str,
    rentity_id: int,
    rentity_branch: str,
    currency_code_local: str,
    filename: str,
    data: bytes,
    version: str = "",
    reporting_user_code: str = "",
    acting_user: User,
) -> FiuProfile:
    """A new FIU profile with its first goAML schema."""
    require(acting_user, Perm.MANAGE_SETTINGS)
    extracted, named = _extract(data, version)
    _check_currency(extracted, currency_code_local)
    if FiuProfile.objects.filter(slug=slug).exists() or FiuProfile.objects.filter(name__iexact=name).exists():
        raise ValidationError(f"A profile named {name!r} or {slug!r} exists already.")
    try:
        with transaction.atomic(durable=True):
            profile = FiuProfile.objects.create(
                slug=slug,
                name=name,
                rentity_id=rentity_id,
                rentity_branch=rentity_branch,
                currency_code_local=currency_code_local,
                reporting_user_code=reporting_user_code,
            )
            record(
                EventType.FIU_PROFILE_CREATED,
                actor=actor_of(acting_user),
                object_type="fiu-profile",
                object_id=slug,
                after={
                    "name": name,
                    "rentity_id": rentity_id,
                    "rentity_branch": rentity_branch,
                    "currency_code_local": currency_code_local,
                },
            )
            _schema_event(_store(profile, filename, data, extracted, named, acting_user), acting_user)
    except IntegrityError as error:
        raise ValidationError(f"A profile named {name!r} or {slug!r} exists already.") from error
    return profile


def upload_schema(
    profile: FiuProfile, *, filename: str, data: bytes, version: str = "", acting_user: User
) -> FiuSchema:
    """A new goAML schema version for a profile; it becomes the current one."""
    require(acting_user, Perm.MANAGE_SETTINGS)
    extracted, named = _extract(data, version)
    _check_currency(extracted, profile.currency_code_local)
    with transaction.atomic(durable=True):
        locked = FiuProfile.objects.select_for_update().get(pk=profile.pk)
        if FiuSchema.objects.filter(profile=locked, sha256=extracted.sha256).exists():
            raise ValidationError("This very schema (same SHA-256) was uploaded to the profile before.")
        stored = _store(locked, filename, data, extracted, named, acting_user)
        _schema_event(stored, acting_user)
    return stored


# --- the FIU's calendar: when reports are due ------------------------------------------------------


def _redate_open_reports(profile: FiuProfile) -> int:
    """Put the deadline of every report still in progress in step with the profile's calendar."""
    from reporting.models import Report
    from reporting.reports import OPEN, redate

    moved = 0
    for report in Report.objects.select_for_update().filter(profile=profile, status__in=OPEN):
        before = report.due_on
        report.profile = profile
        redate(report)
        if report.due_on != before:
            report.save(update_fields=["due_on", "deadline_escalated_at"])
            moved += 1
    return moved


def _calendar_changed(
    profile: FiuProfile, user: User, reason: str, after: dict[str, Any], before: dict[str, Any] | None = None
) -> None:
    record(
        EventType.FIU_CALENDAR_CHANGED,
        actor=actor_of(user),
        object_type="fiu-profile",
        object_id=profile.slug,
        reason=reason,
        before=before,
        after=after,
    )


def set_rules(
    profile: FiuProfile,
    *,
    report_due_days: int,
    warn_days: int,
    weekend: list[int],
    time_zone: str,
    reporting_user_code: str,
    acting_user: User,
) -> FiuProfile:
    """How the FIU counts deadlines and dates, and how the bank is known to it."""
    import zoneinfo

    require(acting_user, Perm.MANAGE_SETTINGS)
    if not 1 <= report_due_days <= 365:
        raise ValidationError("A report is due between 1 and 365 business days after suspicion was formed.")
    if not 0 <= warn_days < report_due_days:
        raise ValidationError("The warning comes before the deadline: fewer business days than the deadline.")
    if sorted(set(weekend)) != sorted(weekend) or any(day not in range(7) for day in weekend) or len(weekend) > 3:
        raise ValidationError("A weekend is up to three distinct days of the week.")
    if time_zone not in zoneinfo.available_timezones():
        raise ValidationError(f"{time_zone!r} is not a time zone (e.g. Asia/Dubai).")
    with transaction.atomic(durable=True):
        locked = FiuProfile.objects.select_for_update().get(pk=profile.pk)
        before = {
            "report_due_days": locked.report_due_days,
            "warn_days": locked.warn_days,
            "weekend": locked.weekend,
            "time_zone": locked.time_zone,
            "reporting_user_code": locked.reporting_user_code,
        }
        locked.report_due_days, locked.warn_days, locked.weekend = report_due_days, warn_days, sorted(weekend)
        locked.time_zone, locked.reporting_user_code = time_zone, reporting_user_code.strip()
        locked.save(update_fields=["report_due_days", "warn_days", "weekend", "time_zone", "reporting_user_code"])
        moved = _redate_open_reports(locked)
        _calendar_changed(
            locked,
            acting_user,
            "rules",
            {**{key: getattr(locked, key) for key in before}, "reports_redated": moved},
            before=before,
        )
    return locked


def add_holiday(profile: FiuProfile, *, day: datetime.date, name: str, acting_user: User) -> None:
    from reporting.models import Holiday

    require(acting_user, Perm.MANAGE_SETTINGS)
    if not name.strip():
        raise ValidationError("Name the holiday.")
    with transaction.atomic(durable=True):
        locked = FiuProfile.objects.select_for_update().get(pk=profile.pk)
        if Holiday.objects.filter(profile=locked, day=day).exists():
            raise ValidationError(f"{day.isoformat()} is a holiday of {locked.name} already.")
        Holiday.objects.create(profile=locked, day=day, name=name.strip())
        moved = _redate_open_reports(locked)
        _calendar_changed(
            locked,
            acting_user,
            "holiday added",
            {"day": day.isoformat(), "name": name.strip(), "reports_redated": moved},
        )


def remove_holiday(profile: FiuProfile, *, day: datetime.date, acting_user: User) -> None:
    from reporting.models import Holiday

    require(acting_user, Perm.MANAGE_SETTINGS)
    with transaction.atomic(durable=True):
        locked = FiuProfile.objects.select_for_update().get(pk=profile.pk)
        removed, _ = Holiday.objects.filter(profile=locked, day=day).delete()
        if not removed:
            raise ValidationError(f"{day.isoformat()} is not a holiday of {locked.name}.")
        moved = _redate_open_reports(locked)
        _calendar_changed(locked, acting_user, "holiday removed", {"day": day.isoformat(), "reports_redated": moved})


# --- access reviews: snapshots, their downloads and their sign-off --------------------------------

EXPORT_FORMATS = ("csv", "pdf")


def _require_reviewer(user: User) -> None:
    if not any(user.has_perm(perm) for perm in REVIEWERS):
        raise PermissionDenied("this needs a permission to review access")


def take_access_review(*, acting_user: User) -> AccessReview:
    """Freeze the access review as it stands into a snapshot to sign off; the ledger records
    its SHA-256. Any access reviewer may take one."""
    _require_reviewer(acting_user)
    dormant_days: int = settings.CASPIX_ACCESS_REVIEW_DORMANT_DAYS
    review_id = uuid.uuid4()
    with one_moment(), transaction.atomic(durable=True):
        taken_at = timezone.now()
        rows = access_review.access_review(acting_user, now=taken_at, dormant_days=dormant_days)
        snapshot = access_review.document(
            rows, review_id=str(review_id), taken_at=taken_at, taken_by=acting_user.username, dormant_days=dormant_days
        )
        data, sha256 = access_review.serialise(snapshot)
        review = AccessReview(
            id=review_id,
            taken_at=taken_at,
            taken_by=acting_user,
            content=gzip.compress(data, mtime=0),
            sha256=sha256,
            users=len(rows),
            dormant=sum(1 for row in rows if row.dormant),
            conflicts=sum(1 for row in rows if row.conflict),
        )
        review.save(force_insert=True)
        record(
            EventType.ACCESS_REVIEW_TAKEN,
            actor=actor_of(acting_user),
            object_type="access-review",
            object_id=str(review_id),
            after={
                "sha256": sha256,
                "taken_at": rfc3339(taken_at),
                "users": review.users,
                "dormant": review.dormant,
                "conflicts": review.conflicts,
            },
        )
    return review


def export_access_review(review: AccessReview, file_format: str, *, acting_user: User) -> bytes:
    """A snapshot as CSV or PDF, made from its content once that is checked against its SHA-256;
    each download is recorded with its format."""
    _require_reviewer(acting_user)
    if file_format not in EXPORT_FORMATS:
        raise ValidationError(f"unknown format {file_format!r}: csv or pdf")
    snapshot = review.document()
    make = access_review_files.to_pdf if file_format == "pdf" else access_review_files.to_csv
    made = make(review, snapshot)
    with transaction.atomic(durable=True):
        record(
            EventType.ACCESS_REVIEW_EXPORTED,
            actor=actor_of(acting_user),
            object_type="access-review",
            object_id=str(review.pk),
            after={"format": file_format, "sha256": review.sha256, "signed_off": review.signed_off},
        )
    return made


def sign_off_access_review(review: AccessReview, *, sha256_seen: str, comment: str, acting_user: User) -> AccessReview:
    """A manager signs off the snapshot whose SHA-256 they were shown, once and for good.

    Refused when the hash they saw is not the snapshot's, or the content no longer has it, or
    someone signed it off already (the row is locked, and the write is conditional on no sign-off
    yet: of two managers signing at once, one wins and the other is told)."""
    require(acting_user, Perm.SIGN_OFF_ACCESS_REVIEW)
    comment = comment.strip()
    if len(comment) > SIGN_OFF_COMMENT_MAX:
        raise ValidationError(f"The comment is too long: {SIGN_OFF_COMMENT_MAX} characters at most.")
    with transaction.atomic(durable=True):
        locked = AccessReview.objects.select_for_update(of=("self",)).select_related("signed_off_by").get(pk=review.pk)
        if locked.signed_off:
            raise ValidationError(_already(locked))
        if sha256_seen.strip().lower() != locked.sha256:
            raise ValidationError(
                "The snapshot you were shown is not this one (its SHA-256 differs): read it again before signing off."
            )
        locked.canonical()  # its content still has the hash signed off
        now = timezone.now()
        won = AccessReview.objects.filter(pk=locked.pk, signed_off_at__isnull=True).update(
            signed_off_by=acting_user, signed_off_at=now, sign_off_comment=comment
        )
        if not won:
            raise ValidationError("This snapshot was signed off meanwhile.")
        record(
            EventType.ACCESS_REVIEW_SIGNED_OFF,
            actor=actor_of(acting_user),
            object_type="access-review",
            object_id=str(locked.pk),
            reason=comment,
            after={"sha256": locked.sha256, "taken_at": rfc3339(locked.taken_at)},
        )
    locked.signed_off_by, locked.signed_off_at, locked.sign_off_comment = acting_user, now, comment
    return locked


def _already(review: AccessReview) -> str:
    by = review.signed_off_by.username if review.signed_off_by else "someone"
    at = review.signed_off_at.strftime("%Y-%m-%d %H:%M UTC") if review.signed_off_at else ""
    return f"This snapshot was signed off already, by {by} on {at}: a sign-off is never changed."


# --- the managers' dashboard ------------------------------------------------------------------------


def record_dashboard_export(table: str, filters: dict[str, str], *, acting_user: User) -> None:
    """A table of the dashboard left as CSV: which one and with which filters. Counts only, but
    what leaves the application is recorded all the same."""
    require(acting_user, Perm.VIEW_DASHBOARD)
    with transaction.atomic(durable=True):
        record(
            EventType.DASHBOARD_EXPORTED,
            actor=actor_of(acting_user),
            object_type="dashboard",
            object_id=table,
            after=filters,
        )
