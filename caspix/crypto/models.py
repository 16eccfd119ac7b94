"""Wrapped data keys and integrity incidents.

A data key is a random 256-bit key that encrypts field values (``data``), keys blind indexes
(``index``) or tokenises card numbers (``card``). Only its wrapped form is stored here, wrapped by
the matching key-encryption key of the key service; the plaintext lives in process memory only.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from caspix.crypto.keys import KeyName
from caspix.gates import GatedQuerySet


class Purpose(models.TextChoices):
    DATA = "data", "field encryption"
    INDEX = "index", "blind indexes"
    CARD = "card", "card tokenisation"


#: The key-encryption key that wraps each purpose's data keys.
KEK_FOR: dict[str, KeyName] = {
    Purpose.DATA: KeyName.DATA,
    Purpose.INDEX: KeyName.INDEX,
    Purpose.CARD: KeyName.INDEX,
}


class DataKeyQuerySet(models.QuerySet["DataKeyRecord"]):
    def live(self) -> DataKeyQuerySet:
        return self.filter(retired_at__isnull=True)

    def of(self, purpose: str) -> DataKeyQuerySet:
        return self.filter(purpose=purpose)


class DataKeyRecord(models.Model):
    """One data key, wrapped. The newest live key of a purpose serves new writes."""

    purpose = models.CharField(max_length=8, choices=Purpose.choices)
    wrapped = models.TextField()
    kek_version = models.PositiveIntegerField(help_text="version of the key-encryption key that wraps it")
    created_at = models.DateTimeField(default=timezone.now)
    rewrapped_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = DataKeyQuerySet.as_manager()

    class Meta:
        db_table = "crypto_data_key"
        ordering = ["id"]
        indexes = [models.Index(fields=["purpose", "kek_version"], name="crypto_dk_purpose_version")]
        constraints = [
            models.CheckConstraint(condition=models.Q(purpose__in=Purpose.values), name="crypto_dk_purpose_known"),
            models.CheckConstraint(condition=models.Q(kek_version__gte=1), name="crypto_dk_version_positive"),
            # Tokens must stay stable, so an installation has exactly one card key.
            models.UniqueConstraint(
                fields=["purpose"], condition=models.Q(purpose="card"), name="crypto_dk_one_card_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} data key {self.pk} (wrapped by v{self.kek_version})"

    def __repr__(self) -> str:
        return f"<DataKeyRecord {self.pk} {self.purpose} v{self.kek_version}>"

    @property
    def kek(self) -> KeyName:
        return KEK_FOR[self.purpose]


class IntegrityIncidentQuerySet(GatedQuerySet["IntegrityIncident"]):
    # By name: caspix imports no app. Auditors read them on the integrity status page.
    gates = {"view": ("audit.view_ledger",)}


class IntegrityIncident(models.Model):
    """A ciphertext that failed authentication: tampered, moved to another row, or keyless.

    Written on its own database connection so it survives the rollback of the request that
    found it. It names where the failure was, never a value.
    """

    class Kind(models.TextChoices):
        FIELD = "field", "encrypted field failed authentication"
        KEY = "key", "data key missing or failed to unwrap"
        BACKUP = "backup", "backup failed verification"
        LEDGER = "ledger", "audit ledger failed verification"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    table = models.CharField(max_length=128, blank=True)
    column = models.CharField(max_length=128, blank=True)
    row = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=36, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    objects = IntegrityIncidentQuerySet.as_manager()

    class Meta:
        db_table = "crypto_integrity_incident"
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"integrity incident {self.pk}: {self.kind} {self.table}.{self.column}"
