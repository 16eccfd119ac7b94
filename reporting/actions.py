"""Changes to FIU profiles: one transaction and one ledger event each (MANAGE_SETTINGS)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.actions import actor_of, require
from accounts.models import User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import record
from reporting.goaml import schema
from reporting.models import FiuProfile, FiuSchema


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
