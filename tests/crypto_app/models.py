"""A party record with every kind of protected value, as the domain apps will hold them."""

from __future__ import annotations

import uuid

from django.db import models

from caspix.crypto.fields import BlindIndexField, EncryptedDateField, EncryptedTextField, ProtectedModel


class Person(ProtectedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    national_id = EncryptedTextField(max_length=32, blank=True)
    national_id_index = BlindIndexField(kind="national_id", source="national_id")
    born = EncryptedDateField(null=True, blank=True)
    account_number = EncryptedTextField(max_length=34, null=True, blank=True)
    account_number_index = BlindIndexField(kind="account_number", source="account_number")
    card_token = EncryptedTextField(null=True, blank=True)
    card_token_index = BlindIndexField(kind="card_token", source="card_token")
    card_last_four = models.CharField(max_length=4, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Note(models.Model):
    """Bound by a public UUID, not by its integer primary key."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    body = EncryptedTextField(bind="uid")

    def __str__(self) -> str:
        return f"note {self.pk}"
