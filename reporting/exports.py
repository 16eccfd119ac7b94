"""Evidence packs and regulatory exports: asked for, built by a worker, downloaded, expired.

Each step is an action that writes its ledger event in its own transaction:

* :func:`request_export` (an auditor, ``EXPORT_REQUESTED``) queues the build in a Celery worker;
* :func:`build_export` (the worker, ``EXPORT_BUILT`` or ``EXPORT_FAILED``) writes the ZIP to an
  anonymous temporary file (nothing is left on disk if the worker dies), then, in one
  transaction, stores it encrypted in parts and makes the export ready: a worker killed
  mid-build leaves no part visible, and the broker's redelivery (acks late) builds it again;
* :func:`download` (its requester, ``EXPORT_DOWNLOADED``) checks the SHA-256 before giving a byte;
* :func:`expire_exports` (the beat, ``EXPORT_EXPIRED``) erases the content of packs past their time.

Which rows a pack holds is :mod:`reporting.packs`'s affair; the format is :mod:`caspix_verify`'s.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator
from typing import IO

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.actions import actor_of, require
from accounts.models import User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import Actor, record
from cases.models import Action, Case, reference_of
from caspix.snapshots import one_moment
from reporting import packs
from reporting.models import Export, ExportPart

logger = logging.getLogger(__name__)

PART_SIZE = 8 << 20  # bytes of the ZIP per encrypted part
MAX_ATTEMPTS = 3  # builds of one export before it is failed for good
HEARTBEAT_SECONDS = 1.0  # at most one progress write a second


def _buildable(now: datetime.datetime) -> Q:
    """Queued, or being built by a worker that gave no sign of life for too long (it died)."""
    stale = now - datetime.timedelta(seconds=settings.CASPIX_EXPORT_STALE_SECONDS)
    return Q(status=Export.Status.QUEUED) | Q(status=Export.Status.RUNNING, heartbeat_at__lt=stale)


def resume_exports() -> int:
    """Ask again for every build that is waiting or stalled (the beat's backstop to the broker's
    redelivery, which a lost message or a broker restart would defeat); returns how many."""
    from reporting.tasks import build_export as task

    waiting = timezone.now() - datetime.timedelta(seconds=settings.CASPIX_EXPORT_STALE_SECONDS)
    pending = Export.objects.filter(
        _buildable(timezone.now()) & (Q(status=Export.Status.RUNNING) | Q(requested_at__lt=waiting))
    ).values_list("pk", flat=True)
    ids = [str(pk) for pk in pending]
    for pk in ids:
        task.delay(pk)
    return len(ids)


def request_export(
    kind: str,
    *,
    acting_user: User,
    case: Case | None = None,
    period_start: datetime.datetime | None = None,
    period_end: datetime.datetime | None = None,
) -> Export:
    """Queue the build of an evidence pack (of a case or a period) or a regulatory export."""
    require(acting_user, Perm.EXPORT_EVIDENCE)
    if kind not in Export.Kind.values:
        raise ValidationError(f"unknown kind of export {kind!r}")
    if kind == Export.Kind.CASE_PACK:
        if case is None or not Case.objects.restrict(acting_user, Action.EXPORT).filter(pk=case.pk).exists():
            raise ValidationError("an evidence pack of a case names a case")
        period_start = period_end = None
    else:
        case = None
        _check_period(period_start, period_end)
    from reporting.tasks import build_export

    with transaction.atomic(durable=True):
        export = Export.objects.create(
            kind=kind, case=case, period_start=period_start, period_end=period_end, requested_by=acting_user
        )
        record(
            EventType.EXPORT_REQUESTED,
            actor=actor_of(acting_user),
            object_type="export",
            object_id=str(export.pk),
            reason=kind,
            after={"kind": kind, **packs.scope_of(export)},
        )
        # robust: a broker that is down leaves the export queued (the page says so), not a failed page
        transaction.on_commit(lambda: build_export.delay(str(export.pk)), robust=True)
    return export


def _check_period(start: datetime.datetime | None, end: datetime.datetime | None) -> None:
    if start is None or end is None:
        raise ValidationError("a period has a start and an end")
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValidationError("a period's start and end carry their time zone")
    if end <= start:
        raise ValidationError("the period ends before it starts")
    if end - start > datetime.timedelta(days=settings.CASPIX_EXPORT_MAX_DAYS):
        raise ValidationError(f"a period covers at most {settings.CASPIX_EXPORT_MAX_DAYS} days")


def build_export(export_id: str) -> Export | None:
    """Build a queued export (the worker's part); idempotent.

    An export no longer queued (ready, failed, or being built by a live worker) is left alone;
    one a worker started longer ago than a task may run (it died; the broker delivered the task
    again) is taken over, and only the run that holds it finishes it.
    """
    with transaction.atomic(durable=True):
        export: Export | None = (
            Export.objects.select_for_update(skip_locked=True)
            .select_related("requested_by")
            .filter(_buildable(timezone.now()), pk=export_id)
            .first()
        )
        if export is None:
            return None
        now = timezone.now()
        export.status, export.started_at, export.heartbeat_at = Export.Status.RUNNING, now, now
        export.attempts += 1
        export.done = export.total = 0
        export.save(update_fields=["status", "started_at", "heartbeat_at", "attempts", "done", "total"])
    if export.attempts > MAX_ATTEMPTS:
        _fail(export, f"gave up after {MAX_ATTEMPTS} attempts: the worker stopped each time")
        return export
    last: list[float | None] = [None]

    def progress(done: int, total: int) -> None:
        """Progress for the page's bar, and the heartbeat that keeps another worker off: the build
        calls it often (every batch, file, row or chunk), and it writes at most once a second."""
        now = time.monotonic()
        if last[0] is None or now - last[0] >= HEARTBEAT_SECONDS:
            last[0] = now
            Export.objects.filter(pk=export.pk, started_at=export.started_at).update(
                done=done, total=total, heartbeat_at=timezone.now()
            )

    with tempfile.TemporaryFile() as out:  # unlinked at once: a killed worker leaves nothing behind
        try:
            built = packs.build(export, out, progress)
        except packs.PackError as error:
            _fail(export, str(error))
            return export
        except Exception:
            logger.exception("an export could not be built", extra={"export": str(export.pk)})
            _fail(export, "an internal error stopped the build; the security team has the log")
            raise
        refused = _store(export, out, built)
    if refused:
        _fail(export, refused)
    return export


def _held(export: Export) -> bool:
    return (
        Export.objects.select_for_update()
        .filter(pk=export.pk, status=Export.Status.RUNNING, started_at=export.started_at)
        .exists()
    )


def _still_allowed(export: Export) -> bool:
    """Whether the requester, read afresh, may still export what the pack holds: a role withdrawn
    or an account deactivated while the worker built it leaves the pack unshipped."""
    requester = User.objects.filter(pk=export.requested_by_id, is_active=True).first()
    if requester is None or not requester.has_perm(Perm.EXPORT_EVIDENCE):
        return False
    return export.case_id is None or Case.objects.restrict(requester, Action.EXPORT).filter(pk=export.case_id).exists()


def _store(export: Export, out: IO[bytes], built: packs.Built) -> str | None:
    """Keep the ZIP encrypted and make the export ready, in one transaction, if this run holds it
    and its requester may still have it; otherwise why it was not kept (or None: another run holds it)."""
    out.seek(0)
    digest, size = hashlib.sha256(), 0
    with transaction.atomic(durable=True):
        if not _held(export):
            return None
        if not _still_allowed(export):
            return "the requester may no longer export this: the pack was discarded"
        number = 0
        while part := out.read(PART_SIZE):
            digest.update(part)
            size += len(part)
            ExportPart.objects.create(export=export, number=number, data=part)
            number += 1
        now = timezone.now()
        export.status = Export.Status.READY
        export.done = export.total
        export.sha256, export.size, export.manifest_sha256 = digest.hexdigest(), size, built.manifest_sha256
        export.checkpoint_size = built.checkpoint_size
        export.finished_at = now
        export.expires_at = now + datetime.timedelta(hours=settings.CASPIX_EXPORT_HOURS)
        export.save(
            update_fields=[
                "status", "done", "sha256", "size", "manifest_sha256", "checkpoint_size", "finished_at",
                "expires_at",
            ]
        )  # fmt: skip
        record(
            EventType.EXPORT_BUILT,
            actor=Actor.system("export builder"),
            object_type="export",
            object_id=str(export.pk),
            reason=export.kind,
            after={
                "sha256": export.sha256,
                "manifest_sha256": export.manifest_sha256,
                "size": size,
                "checkpoint": built.checkpoint_size,
                "requested_by": export.requested_by_id,
            },
        )
    return None


def _fail(export: Export, reason: str) -> None:
    with transaction.atomic(durable=True):
        if not _held(export):
            return
        export.status, export.failure, export.finished_at = Export.Status.FAILED, reason[:300], timezone.now()
        export.save(update_fields=["status", "failure", "finished_at"])
        record(
            EventType.EXPORT_FAILED,
            actor=Actor.system("export builder"),
            object_type="export",
            object_id=str(export.pk),
            reason=export.kind,
            after={"failure": export.failure, "attempts": export.attempts},
        )


def download(export_id: str, *, acting_user: User) -> tuple[Export, Iterator[bytes]]:
    """A ready export of the acting auditor's, checked against its SHA-256 before anything is
    given, then a part at a time; each download is recorded."""
    if not acting_user.has_perm(Perm.EXPORT_EVIDENCE):
        raise PermissionDenied("only those who export evidence download it")
    export = Export.objects.restrict(acting_user, "download").filter(pk=export_id).first()
    if export is None:
        raise Export.DoesNotExist("there is no such export of yours")
    if export.status != Export.Status.READY:
        raise ValidationError(f"this export is {export.get_status_display().lower()}: there is nothing to download")
    digest = hashlib.sha256()
    for chunk in _parts(export):
        digest.update(chunk)
    if digest.hexdigest() != export.sha256:
        raise ValidationError("the pack no longer matches its SHA-256: it is withheld, report it to security")
    with transaction.atomic(durable=True):
        record(
            EventType.EXPORT_DOWNLOADED,
            actor=actor_of(acting_user),
            object_type="export",
            object_id=str(export.pk),
            reason=export.kind,
            after={"sha256": export.sha256},
        )
    return export, _streamed(export)


def _parts(export: Export) -> Iterator[bytes]:
    numbers = list(ExportPart.objects.filter(export=export).order_by("number").values_list("pk", flat=True))
    if not numbers:
        raise ExportWithdrawnError("the pack expired while it was being read")
    for pk in numbers:  # one part in memory at a time
        part = ExportPart.objects.filter(pk=pk).first()
        if part is None:
            raise ExportWithdrawnError("the pack expired while it was being read")
        yield bytes(part.data)


class ExportWithdrawnError(RuntimeError):
    """The pack's content went (it expired) or changed while it was being given: the download is
    cut short rather than completed with other bytes."""


def _streamed(export: Export) -> Iterator[bytes]:
    """The pack a part at a time, read in one snapshot of the database (an expiry committing
    meanwhile does not reach it) and hashed again as it goes: a download ends either with the
    bytes that were checked or cut short, never with others."""
    digest = hashlib.sha256()
    with one_moment(), transaction.atomic():
        for chunk in _parts(export):
            digest.update(chunk)
            yield chunk
    if digest.hexdigest() != export.sha256:
        raise ExportWithdrawnError("the pack changed while it was being read")


def expire_exports(now: datetime.datetime | None = None) -> int:
    """Erase the content of the ready exports past their time; the rows and hashes stay."""
    now = now or timezone.now()
    expired = 0
    for pk in Export.objects.filter(status=Export.Status.READY, expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic(durable=True):
            export = (
                Export.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status=Export.Status.READY, expires_at__lte=now)
                .first()
            )
            if export is None:
                continue
            ExportPart.objects.filter(export=export).delete()
            export.status = Export.Status.EXPIRED
            export.save(update_fields=["status"])
            record(
                EventType.EXPORT_EXPIRED,
                actor=Actor.system("export expiry"),
                object_type="export",
                object_id=str(export.pk),
                reason=export.kind,
                after={"sha256": export.sha256},
            )
            expired += 1
    return expired


def label(export: Export) -> str:
    """What an export covers, in an auditor's words."""
    if export.case_id is not None:
        return f"{export.get_kind_display()} {reference_of(export.case_id)}"
    if export.period_start is None or export.period_end is None:  # the table's constraint forbids it
        return export.get_kind_display()
    return (
        f"{export.get_kind_display()}, {export.period_start:%Y-%m-%d %H:%M} to {export.period_end:%Y-%m-%d %H:%M} UTC"
    )
