"""Sealed segments: every checkpoint, with its events and proofs, written once to storage that keeps it.

A segment covers the events after the previous checkpoint up to and including checkpoint C (tree
sizes ``(previous, C]``). It is one canonical JSON document (:func:`audit.canonical.canonical`:
sorted keys, no whitespace, UTF-8) named ``segment-<first seq>-<last seq>.json`` (12 digits each),
built only from what is stored and immutable (the signed note, the events, the tree nodes), so
building it again gives the same bytes. docs/LEDGER.md, "Sealed segments", says how to verify one.

Targets come from ``settings.SEGMENTS``: a directory (``DIRECTORY``) and an S3 bucket with Object
Lock (``S3_BUCKET``). Each has a :class:`~audit.models.DeliveryCursor` (``segments:dir``,
``segments:s3``) holding the size of the last checkpoint sealed there. For each segment, in one
transaction that holds the cursor's row lock: write it, record ``SEGMENT_SEALED``, advance the
cursor. A crash after the write and before the commit leaves the segment written and the cursor
behind; the next run finds the same bytes there, accepts them, and records the event then. So
there is exactly one ``SEGMENT_SEALED`` event per segment and target.

Nothing is overwritten. The directory target writes a temporary file (``O_CREAT | O_EXCL``, mode
0444), fsyncs it and hard-links it to the final name, which fails if that name exists; a crash
leaves at most a stray ``.segment-*.tmp`` file, never a half-written segment. The S3 target
writes with ``If-None-Match: *`` (S3 refuses to replace an object) in compliance mode until
``S3_RETENTION_DAYS`` from now. Finding other bytes under a segment's name is an integrity
incident.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.exceptions import ClientError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import merkle
from audit.canonical import canonical
from audit.events import EventType
from audit.ledger import ZERO_CHAIN, Actor, note_body, record, stored_nodes
from audit.models import Checkpoint, DeliveryCursor, Event
from audit.verify import CompactRange
from caspix.crypto import incidents
from caspix.crypto.models import IntegrityIncident
from caspix.durable import fsync_directory

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FORMAT = "caspix-segment/1"
ACTOR = Actor.system("segment sealer")

logger = logging.getLogger(__name__)


class SegmentError(RuntimeError):
    """A segment cannot be sealed; the message says why (a name holding other bytes, a bucket
    without Object Lock, stored events that do not rebuild the signed root)."""


@dataclass(frozen=True)
class Segment:
    name: str
    content: bytes
    first_seq: int
    last_seq: int
    checkpoint_size: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def segment_name(first_seq: int, last_seq: int) -> str:
    return f"segment-{first_seq:012d}-{last_seq:012d}.json"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# --- building ----------------------------------------------------------------------------------


def build(checkpoint: Checkpoint, previous: Checkpoint | None) -> Segment:
    """The segment of ``checkpoint``: the events after ``previous`` (None: from the first event).

    Refuses (an integrity incident and :class:`SegmentError`) to seal events that do not hash to
    their leaves and chain, or that do not rebuild both checkpoints' roots: a segment is written
    once and kept for years, so it must hold what the checkpoint signed.
    """
    old_size = previous.size if previous is not None else 0
    old_root = bytes(previous.root) if previous is not None else merkle.EMPTY_ROOT
    size, root, note = checkpoint.size, bytes(checkpoint.root), checkpoint.note
    origin = note.split("\n", 1)[0]
    if not note.startswith(note_body(origin, size, root) + "\n"):
        raise _damaged(size, f"the note of checkpoint {size} does not name its size and root")
    try:
        needed = merkle.nodes_needed_for_subtree(0, old_size)
        nodes = stored_nodes(needed)
        tree = CompactRange(old_size, [nodes[key] for key in sorted(needed, key=lambda key: key[1] << key[0])])
        proof_nodes = stored_nodes(merkle.nodes_needed_for_consistency(old_size, size))
    except LookupError as error:
        raise _damaged(size, str(error)) from error
    if tree.root() != old_root:
        raise _damaged(size, f"the stored tree at size {old_size} no longer has its checkpoint's root")
    chain_before = ZERO_CHAIN
    if old_size:
        stored_chain = Event.objects.filter(seq=old_size).values_list("chain", flat=True).first()
        if stored_chain is None:
            raise _damaged(size, f"event {old_size} of the previous checkpoint is missing")
        chain_before = bytes(stored_chain)
    chain = chain_before
    events: list[dict[str, Any]] = []
    rows = Event.objects.filter(seq__gt=old_size, seq__lte=size).order_by("seq")
    for expected, (seq, body, leaf, link) in enumerate(rows.values_list("seq", "body", "leaf", "chain"), old_size + 1):
        body, leaf, link = bytes(body), bytes(leaf), bytes(link)
        chain = hashlib.sha256(chain + leaf).digest()
        if seq != expected or merkle.leaf_hash(body) != leaf or chain != link:
            raise _damaged(size, f"event {expected} is missing, altered or out of its chain")
        tree.append(leaf)
        events.append({"seq": seq, "body": _b64(body), "leaf": _b64(leaf), "chain": _b64(link)})
    if tree.size != size or tree.root() != root:
        raise _damaged(size, f"the stored events do not rebuild the root of checkpoint {size}")
    proof = merkle.consistency_proof(merkle.node_getter(proof_nodes), old_size, size)
    try:
        merkle.verify_consistency(old_size, size, old_root, root, proof)
    except merkle.ProofError as error:
        raise _damaged(size, str(error)) from error
    document = {
        "format": FORMAT,
        "origin": origin,
        "checkpoint": note,
        "previous_size": old_size,
        "previous_root": _b64(old_root),
        "previous_chain": _b64(chain_before),
        "events": events,
        "consistency_proof": [_b64(value) for value in proof],
    }
    return Segment(segment_name(old_size + 1, size), canonical(document), old_size + 1, size, size)


def _damaged(size: int, detail: str) -> SegmentError:
    incidents.record(
        IntegrityIncident.Kind.LEDGER, table="audit_event", row=str(size), detail=f"segment not sealed: {detail}"
    )
    return SegmentError(f"checkpoint {size} cannot be sealed into a segment: {detail}")


def _same_or_incident(stored: bytes, segment: Segment, target: str, where: str) -> None:
    """Accept a segment found already written with the same bytes; anything else is an incident."""
    if stored == segment.content:
        logger.warning("segment %s was already written to %s; accepted (same bytes)", segment.name, where)
        return
    found = hashlib.sha256(stored).hexdigest()
    incidents.record(
        IntegrityIncident.Kind.LEDGER,
        table=f"segments:{target}",
        row=segment.name,
        detail=f"{segment.name} holds other bytes: sha256 {found[:16]}…, expected {segment.sha256[:16]}…",
    )
    raise SegmentError(
        f"{where} already exists with other bytes (sha256 {found}, expected {segment.sha256}): "
        "a sealed segment was altered or another ledger writes there; nothing was overwritten"
    )


# --- targets -----------------------------------------------------------------------------------


class Target(Protocol):
    label: str

    def check(self) -> None:
        """Refuse (:class:`SegmentError`) a target that cannot keep segments as promised."""

    def write(self, segment: Segment) -> bool:
        """Write ``segment`` once; False when the same bytes were already there."""


class DirectoryTarget:
    """A local directory (a WORM mount, a volume shipped to tape). Needs hard links (POSIX)."""

    label = "dir"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def check(self) -> None:
        if not self.path.is_dir():
            raise SegmentError(f"the segment directory {self.path} does not exist (CASPIX_SEGMENT_DIR)")

    def write(self, segment: Segment) -> bool:
        final = self.path / segment.name
        # A complete, fsynced file appears under the final name or nothing does: O_EXCL on the final
        # name would leave a truncated segment after a crash, which the next run must call an
        # incident; rename() would replace an existing segment. link() never replaces.
        temporary = self.path / f".{segment.name}.{secrets.token_hex(8)}.tmp"
        descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444)
        try:
            try:
                os.fchmod(descriptor, 0o444)  # whatever the umask
                view = memoryview(segment.content)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            try:
                os.link(temporary, final)
            except FileExistsError:
                _same_or_incident(final.read_bytes(), segment, self.label, str(final))
                return False
            fsync_directory(self.path)
            return True
        finally:
            temporary.unlink(missing_ok=True)


class S3Target:
    """An S3 bucket created with Object Lock; each segment is locked in compliance mode."""

    label = "s3"

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.bucket: str = config["S3_BUCKET"]
        self.prefix: str = config["S3_PREFIX"]
        self.retention = timedelta(days=config["S3_RETENTION_DAYS"])
        # None for any of these: boto3's default (AWS endpoint, environment, instance role...).
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=config["S3_ENDPOINT"],
            region_name=config["S3_REGION"],
            aws_access_key_id=config["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=config["S3_SECRET_ACCESS_KEY"],
        )

    def check(self) -> None:
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ObjectLockConfigurationNotFoundError":
                raise
            enabled = False
        if not enabled:
            raise SegmentError(
                f"the S3 bucket {self.bucket!r} does not have Object Lock enabled: segments are written only to a "
                "bucket created with Object Lock, where compliance mode keeps them from deletion and overwriting"
            )

    def write(self, segment: Segment) -> bool:
        key = f"{self.prefix}{segment.name}"
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=segment.content,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(hashlib.sha256(segment.content).digest()),
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=timezone.now() + self.retention,
                IfNoneMatch="*",  # S3 answers 412 rather than put a new version over an existing object
            )
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 412:
                raise
            stored = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            _same_or_incident(stored, segment, self.label, f"s3://{self.bucket}/{key}")
            return False
        return True


def configured_targets() -> list[Target]:
    config = settings.SEGMENTS
    targets: list[Target] = []
    if config["DIRECTORY"]:
        targets.append(DirectoryTarget(config["DIRECTORY"]))
    if config["S3_BUCKET"]:
        targets.append(S3Target(config))
    return targets


# --- sealing -----------------------------------------------------------------------------------


def seal_segments() -> int:
    """Write every checkpoint after each target's cursor to that target, in order.

    Returns the number of segment writes (a segment found already written with the same bytes
    counts: its cursor advances and its event is recorded then). Every target is checked before
    anything is written; a target that fails stops the run, and the next run resumes at its cursor.
    """
    targets = configured_targets()
    for target in targets:
        target.check()
    return sum(_seal_to(target) for target in targets)


def _seal_to(target: Target) -> int:
    name = f"segments:{target.label}"
    DeliveryCursor.objects.get_or_create(target=name)
    written = 0
    while True:
        # The cursor's row lock makes a concurrent run wait here, then see the advanced cursor.
        with transaction.atomic(durable=True):
            cursor = DeliveryCursor.objects.select_for_update().get(target=name)
            checkpoint = Checkpoint.objects.filter(size__gt=cursor.position).order_by("size").first()
            if checkpoint is None:
                return written
            previous = None
            if cursor.position:
                previous = Checkpoint.objects.filter(size=cursor.position).first()
                if previous is None:
                    raise SegmentError(f"the cursor {name} is at size {cursor.position}, which no checkpoint has")
            segment = build(checkpoint, previous)
            target.write(segment)
            record(
                EventType.SEGMENT_SEALED,
                actor=ACTOR,
                object_type="segment",
                object_id=segment.name,
                after={
                    "sha256": segment.sha256,
                    "first_seq": segment.first_seq,
                    "last_seq": segment.last_seq,
                    "checkpoint_size": segment.checkpoint_size,
                    "target": target.label,
                },
            )
            cursor.position = checkpoint.size
            cursor.save(update_fields=["position", "updated_at"])
        written += 1
        logger.info("sealed %s to %s", segment.name, target.label)
