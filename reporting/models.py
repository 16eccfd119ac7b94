"""FIU profiles: who the reports go to, and the goAML schema versions they accept.

A profile names the FIU and how the bank is known there (reporting entity id, branch, local
currency). Each uploaded XSD is kept as it was received, with its SHA-256, the code lists and
``supportedIn`` annotations extracted from it (``reporting/goaml/schema.py``), and the patterns
that would refuse every real value; one schema per profile is current.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.permissions import Perm
from caspix.gates import GatedQuerySet


class FiuProfileQuerySet(GatedQuerySet["FiuProfile"]):
    # Those who draft or approve reports read the profiles; administrators keep them.
    gates = {"view": (Perm.MANAGE_SETTINGS, Perm.DRAFT_STR, Perm.APPROVE_STR), "manage": (Perm.MANAGE_SETTINGS,)}


class FiuProfile(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200, unique=True)  # the FIU, as reports name it
    rentity_id = models.PositiveIntegerField(help_text="The bank's reporting entity id at this FIU.")
    rentity_branch = models.CharField(max_length=255, blank=True)
    currency_code_local = models.CharField(max_length=3)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

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
