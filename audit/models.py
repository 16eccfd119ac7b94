"""The ledger's tables. Only :mod:`audit.ledger` writes them; the database refuses edits.

* ``audit_pending``: events recorded by actions, in the actions' own transactions, waiting to be
  sequenced. The only table that is emptied (by the integrator, as it moves rows on).
* ``audit_event``: sequenced events, append-only. ``body`` holds the exact canonical bytes;
  ``leaf`` = SHA-256(0x00 ‖ body); ``chain`` = SHA-256(previous chain ‖ leaf). The other columns
  repeat fields of the body for filtering, and verification checks they agree with it.
* ``audit_tree_node``: the hash of every perfect subtree of 2**level leaves (level ≥ 1) of the
  RFC 9162 Merkle tree over the events, for proofs in O(log² n) reads. Append-only.
* ``audit_checkpoint``: signed notes of tree size and root. Append-only.
* ``audit_verification``: results of ``audit_verify`` runs, for the auditors' status page.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from caspix.expressions import AnyOf, KeyText
from caspix.gates import GatedQuerySet


class LedgerQuerySet(GatedQuerySet[Any]):
    """The ledger's rows open to its readers (a permission named by string: audit imports no app)."""

    # "export": the events, proofs and checkpoints an evidence pack carries.
    gates = {"view": ("audit.view_ledger",), "export": ("reporting.export_evidence",)}

    def about(self, object_type: str, reachable: models.QuerySet[Any]) -> Any:
        """The events about the objects of ``reachable``, a queryset that has passed its own
        model's ``restrict()``: that is the door here. A case's history opens to whoever may see
        the case, without opening the rest of the ledger to them."""
        uuid = isinstance(reachable.model._meta.pk, models.UUIDField)
        ids = reachable.order_by().values(ledger_object_id=KeyText("pk", uuid=uuid)).values("ledger_object_id")
        # object_id = ANY(ARRAY(subquery)): the subquery runs first and the index on the object
        # is probed with its few ids. With IN (subquery), ORDER BY seq DESC LIMIT n may walk the
        # whole ledger backwards, filtering every event (100 ms at 200,000 events).
        return self.filter(AnyOf("object_id", ids), object_type=object_type)


class PendingEvent(models.Model):
    body = models.BinaryField()
    recorded_at = models.DateTimeField(default=timezone.now)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        db_table = "audit_pending"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"pending event {self.pk}"


class Event(models.Model):
    seq = models.BigIntegerField(primary_key=True)
    body = models.BinaryField()
    leaf = models.BinaryField(max_length=32)
    chain = models.BinaryField(max_length=32)
    integrated_at = models.DateTimeField(default=timezone.now)
    # repeated from the body, for filtering
    event_type = models.PositiveIntegerField(db_index=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        db_table = "audit_event"
        ordering = ["seq"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_event_object")]
        constraints = [models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_event_seq_positive")]

    def __str__(self) -> str:
        return f"event {self.seq}"


class TreeNode(models.Model):
    pk = models.CompositePrimaryKey("level", "index")
    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        db_table = "audit_tree_node"

    def __str__(self) -> str:
        return f"tree node ({self.level}, {self.index})"


class Checkpoint(models.Model):
    size = models.BigIntegerField(primary_key=True)
    root = models.BinaryField(max_length=32)
    note = models.TextField(help_text="the signed note, exactly as signed, with its signature line")
    key_version = models.PositiveIntegerField()
    signed_at = models.DateTimeField(default=timezone.now)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        db_table = "audit_checkpoint"
        ordering = ["size"]

    def __str__(self) -> str:
        return f"checkpoint at size {self.size}"


class Verification(models.Model):
    """One run of the verifier: what it covered and what it found."""

    class Scope(models.TextChoices):
        FULL = "full", "full"
        INCREMENTAL = "incremental", "incremental"

    scope = models.CharField(max_length=12, choices=Scope.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True)
    size = models.BigIntegerField(default=0, help_text="events covered")
    checkpoint_size = models.BigIntegerField(null=True, help_text="the last checkpoint verified")
    intact = models.BooleanField(null=True)
    first_bad_seq = models.BigIntegerField(null=True)
    report = models.TextField(blank=True)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        db_table = "audit_verification"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.scope} verification of {self.size} events"


class DeliveryCursor(models.Model):
    """How far a copy of the ledger elsewhere has got: the SIEM (last event sequence number
    forwarded) or a segment store (size of the last checkpoint sealed into a segment there).

    Advanced only after the receiver has the data, so a restart resumes exactly there and a
    delivery may repeat (at least once) but never skip.
    """

    target = models.CharField(max_length=64, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        db_table = "audit_delivery_cursor"

    def __str__(self) -> str:
        return f"{self.target} at {self.position}"
