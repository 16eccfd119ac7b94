"""What analysts add to a case: notes (append-only, versioned), evidence files, links to
related cases. Each is an action in one transaction with its ledger event; the ledger holds ids
and SHA-256 digests, never a note's text or a file's bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import magic
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.template.defaultfilters import filesizeformat

from accounts.actions import actor_of, require
from accounts.models import User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import record
from cases.models import Action, Case, CaseLink, Evidence, EvidenceContent, Note, Transaction

# --- notes ---------------------------------------------------------------------------------------


def lock_to_work(case: Case, user: User) -> Case:
    """``case`` locked (with its queue) for a change by ``user``, who must be able to work it."""
    locked = (
        Case.objects.restrict(user, Action.WORK)
        .select_for_update(of=("self",))
        .select_related("queue")
        .filter(pk=case.pk)
        .first()
    )
    if locked is None:
        raise PermissionDenied("only someone who works the case may change it")
    return locked


def _locked(case: Case, user: User) -> Case:
    """:func:`lock_to_work`, for a case still open: a closed case takes no note or file until it
    is reopened (with its own approval)."""
    locked = lock_to_work(case, user)
    if locked.status == Case.Status.CLOSED:
        raise ValidationError(f"{locked.reference} is closed: reopen it first")
    return locked


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ValidationError("a note cannot be empty")
    if len(text) > Note.MAX_LENGTH:
        raise ValidationError(f"a note holds at most {Note.MAX_LENGTH} characters")
    if "\x00" in text:
        raise ValidationError("a note cannot hold a NUL character")
    return text


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_note(case: Case, author: User, text: str, *, thread: uuid.UUID | None = None, version: int = 1) -> Note:
    """Add a note (or a version of one) in the caller's transaction, with its ledger event."""
    text = _clean_text(text)
    note = Note(case=case, author=author, thread=thread or uuid.uuid4(), version=version)
    note.body = text
    note.save(force_insert=True)
    record(
        EventType.NOTE_ADDED if version == 1 else EventType.NOTE_REVISED,
        actor=actor_of(author),
        object_type="case",
        object_id=case.pk,
        after={"note": str(note.pk), "thread": str(note.thread), "version": version, "sha256": _digest(text)},
    )
    return note


def add_note(case: Case, text: str, *, acting_user: User) -> Note:
    require(acting_user, Perm.WORK_CASES)
    _clean_text(text)
    with transaction.atomic(durable=True):
        return write_note(_locked(case, acting_user), acting_user, text)


def revise_note(case: Case, thread: uuid.UUID, text: str, *, acting_user: User, seen_version: int) -> Note:
    """Edit a note: its text becomes a new version; every earlier version stays as it was.

    ``seen_version`` is the version the editor started from: if someone revised the note since,
    the edit is refused rather than silently replacing their words.
    """
    require(acting_user, Perm.WORK_CASES)
    text = _clean_text(text)
    try:
        with transaction.atomic(durable=True):
            locked = _locked(case, acting_user)
            versions = Note.objects.of(locked, acting_user, Action.WORK).filter(thread=thread)
            latest = versions.aggregate(version=Max("version"))["version"]
            if latest is None:
                raise ValidationError("there is no such note on this case")
            if latest != seen_version:
                raise ValidationError(
                    f"the note was revised since you opened it (version {latest} now): read it again first"
                )
            current = versions.get(version=latest)
            if str(current.body) == text:
                raise ValidationError("the text is unchanged")
            return write_note(locked, acting_user, text, thread=thread, version=latest + 1)
    except IntegrityError as error:  # another version was written meanwhile
        raise ValidationError("the note was revised at the same time: read it again first") from error


@dataclass(frozen=True)
class NoteThread:
    """A note as it reads now, and the versions before it (oldest first)."""

    current: Note
    earlier: list[Note]

    @property
    def created_at(self) -> Any:
        return (self.earlier[0] if self.earlier else self.current).created_at


def note_threads(case: Case, user: Any) -> list[NoteThread]:
    """The notes of a case ``user`` may see, oldest first, each at its latest version (one query)."""
    by_thread: dict[uuid.UUID, list[Note]] = {}
    notes = Note.objects.of(case, user, Action.VIEW).select_related("author")
    for note in notes.order_by("created_at", "version"):
        by_thread.setdefault(note.thread, []).append(note)
    threads = [NoteThread(current=versions[-1], earlier=versions[:-1]) for versions in by_thread.values()]
    return sorted(threads, key=lambda thread: thread.created_at)


def note_by_id(case: Case, user: Any, note_id: str) -> Note | None:
    """One version of a note of ``case``, if ``user`` may see the case (a proposal's note)."""
    try:
        key = uuid.UUID(str(note_id))
    except ValueError:
        return None
    note: Note | None = (
        Note.objects.restrict(user, Action.VIEW).filter(case=case, pk=key).select_related("author").first()
    )
    return note


# --- evidence ------------------------------------------------------------------------------------

# What may be attached, by the type the content is sniffed as, with the file names each may have.
ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/tiff": (".tif", ".tiff"),
    "text/plain": (".txt", ".csv", ".log"),
    "text/csv": (".csv",),
    "message/rfc822": (".eml",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (".docx",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (".xlsx",),
}
_FILENAME_LIMIT = 200


def sniff(data: bytes) -> str:
    """The type of a file as its content shows it (libmagic), never as its name or browser say."""
    return str(magic.from_buffer(data[:65536] if len(data) > 65536 else data, mime=True))


def _clean_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>|:*?')
    if not base or base in (".", ".."):
        raise ValidationError("the file has no usable name")
    if len(base) > _FILENAME_LIMIT:
        stem, dot, extension = base.rpartition(".")
        base = stem[: _FILENAME_LIMIT - len(extension) - 1] + dot + extension if dot else base[:_FILENAME_LIMIT]
    return base


def max_evidence_bytes() -> int:
    return int(settings.CASES["EVIDENCE_MAX_BYTES"])


def check_evidence(filename: str, data: bytes) -> tuple[str, str]:
    """The cleaned file name and sniffed type of an upload, or a clear refusal."""
    limit = max_evidence_bytes()
    if not data:
        raise ValidationError("the file is empty")
    if len(data) > limit:
        raise ValidationError(f"the file is larger than the limit of {filesizeformat(limit)}")
    name = _clean_filename(filename)
    sniffed = sniff(data)
    extensions = ALLOWED_TYPES.get(sniffed)
    if extensions is None:
        allowed = sorted({ext for exts in ALLOWED_TYPES.values() for ext in exts})
        raise ValidationError(f"files of this type ({sniffed}) are not accepted as evidence: {', '.join(allowed)} are")
    if not name.lower().endswith(extensions):
        raise ValidationError(f"the file's content is {sniffed}, which its name ({name}) does not match")
    return name, sniffed


def add_evidence(case: Case, filename: str, data: bytes, *, description: str = "", acting_user: User) -> Evidence:
    """Attach a file to a case, encrypted, with its SHA-256 in the ledger."""
    require(acting_user, Perm.WORK_CASES)
    name, content_type = check_evidence(filename, data)
    description = description.strip()
    if len(description) > 500:
        raise ValidationError("a description holds at most 500 characters")
    digest = hashlib.sha256(data).hexdigest()
    with transaction.atomic(durable=True):
        locked = _locked(case, acting_user)
        evidence = Evidence.objects.create(
            case=locked,
            filename=name,
            content_type=content_type,
            size=len(data),
            sha256=digest,
            description=description,
            added_by=acting_user,
        )
        content = EvidenceContent(evidence=evidence)
        content.data = data
        content.save(force_insert=True)
        record(
            EventType.EVIDENCE_ADDED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=locked.pk,
            after={"evidence": str(evidence.pk), "type": content_type, "size": len(data), "sha256": digest},
        )
    return evidence


def download_evidence(case: Case, evidence_id: uuid.UUID | str, *, acting_user: User) -> tuple[Evidence, bytes]:
    """The file and its bytes, for someone who may see the case; each download is recorded.

    The bytes are checked against the SHA-256 taken when the file was added before anyone gets
    them.
    """
    require(acting_user, Perm.WORK_CASES)
    if not Case.objects.restrict(acting_user, Action.VIEW).filter(pk=case.pk).exists():
        raise PermissionDenied("only someone who may see the case may download its evidence")
    evidence = (
        Evidence.objects.of(case, acting_user, Action.VIEW).filter(pk=evidence_id).select_related("content").first()
    )
    if evidence is None:
        raise Evidence.DoesNotExist(f"there is no such evidence on {case.reference}")
    data = bytes(evidence.content.data)
    if hashlib.sha256(data).hexdigest() != evidence.sha256:
        raise ValidationError("the file no longer matches its SHA-256: it is withheld, report it to security")
    with transaction.atomic(durable=True):
        record(
            EventType.EVIDENCE_DOWNLOADED,
            actor=actor_of(acting_user),
            object_type="case",
            object_id=case.pk,
            after={"evidence": str(evidence.pk), "sha256": evidence.sha256},
        )
    return evidence, data


# --- links between cases -------------------------------------------------------------------------


def link_cases(case: Case, other: Case, reason: str, *, acting_user: User) -> CaseLink:
    """Link two cases the analyst may both work (a link shows each case on the other's page)."""
    require(acting_user, Perm.WORK_CASES)
    if reason not in CaseLink.Reason.values:
        raise ValidationError(f"unknown reason for a link {reason!r}")
    if case.pk == other.pk:
        raise ValidationError("a case is not linked to itself")
    first, second = sorted((case.pk, other.pk))
    reachable = Case.objects.restrict(acting_user, Action.WORK).filter(pk__in=(first, second))
    try:
        with transaction.atomic(durable=True):
            locked = list(reachable.select_for_update(of=("self",)).order_by("pk"))
            if len(locked) != 2:
                raise PermissionDenied("only someone who works both cases may link them")
            if CaseLink.objects.filter(first_id=first, second_id=second).exists():
                raise ValidationError(f"{locked[0].reference} and {locked[1].reference} are linked already")
            link = CaseLink.objects.create(first_id=first, second_id=second, reason=reason, linked_by=acting_user)
            for this, that in ((locked[0], locked[1]), (locked[1], locked[0])):
                record(
                    EventType.CASES_LINKED,
                    actor=actor_of(acting_user),
                    object_type="case",
                    object_id=this.pk,
                    reason=reason,
                    after={"case": that.reference},
                )
    except IntegrityError as error:
        raise ValidationError("the cases were linked at the same time") from error
    return link


def unlink_cases(case: Case, other: Case, *, acting_user: User, reason: str) -> None:
    require(acting_user, Perm.WORK_CASES)
    if not reason.strip():
        raise ValidationError("state why the cases are not related")
    first, second = sorted((case.pk, other.pk))
    with transaction.atomic(durable=True):
        locked = list(
            Case.objects.restrict(acting_user, Action.WORK)
            .select_for_update(of=("self",))
            .filter(pk__in=(first, second))
            .order_by("pk")
        )
        if len(locked) != 2:
            raise PermissionDenied("only someone who works both cases may unlink them")
        deleted, _ = CaseLink.objects.filter(first_id=first, second_id=second).delete()
        if not deleted:
            raise ValidationError(f"{locked[0].reference} and {locked[1].reference} are not linked")
        for this, that in ((locked[0], locked[1]), (locked[1], locked[0])):
            record(
                EventType.CASES_UNLINKED,
                actor=actor_of(acting_user),
                object_type="case",
                object_id=this.pk,
                reason=reason,
                after={"case": that.reference},
            )


def linked_cases(case: Case, user: User) -> list[tuple[Case, str]]:
    """The cases linked to ``case`` that ``user`` may see, with the link's reason (one query)."""
    links = CaseLink.objects.filter(Q(first=case) | Q(second=case))
    reasons = {
        (link.second_id if link.first_id == case.pk else link.first_id): link.get_reason_display()
        for link in links.only("first_id", "second_id", "reason")
    }
    if not reasons:
        return []
    visible = Case.objects.restrict(user, Action.VIEW).filter(pk__in=list(reasons)).order_by("pk")
    return [(other, reasons[other.pk]) for other in visible]


SUGGESTIONS = 10


def suggested_cases(case: Case, user: User) -> list[tuple[Case, str]]:
    """Other cases ``user`` may see that share the subject, an account or a counterparty account
    with ``case`` (compared by blind index: no identifier is decrypted), not linked yet."""
    indexes = {
        index
        for pair in Transaction.objects.of(case, user, Action.VIEW).values_list(
            "account__number_index", "counterparty_account_index"
        )
        for index in pair
        if index
    }
    shared_account = Q(alerts__transactions__account__number_index__in=indexes) | Q(
        alerts__transactions__counterparty_account_index__in=indexes
    )
    linked = CaseLink.objects.filter(Q(first=case) | Q(second=case)).values_list("first_id", "second_id")
    exclude = {case.pk} | {pk for pair in linked for pk in pair}
    visible = Case.objects.restrict(user, Action.VIEW).exclude(pk__in=exclude)
    found: list[tuple[Case, str]] = []
    if case.party_id is not None:
        found += [
            (other, "Same subject") for other in visible.filter(party_id=case.party_id).order_by("-pk")[:SUGGESTIONS]
        ]
    if indexes and len(found) < SUGGESTIONS:
        seen = [other.pk for other, _ in found]
        more = (
            visible.filter(shared_account).exclude(pk__in=seen).distinct().order_by("-pk")[: SUGGESTIONS - len(found)]
        )
        found += [(other, "Shared account or counterparty") for other in more]
    return found
