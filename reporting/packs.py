"""What goes into an evidence pack or a regulatory export, and how the ZIP is written.

The format is :mod:`caspix_verify`'s (its docstring and ``docs/AUDITORS.md``): a manifest that
hashes every file, signed with the ledger's key through the key service; the ledger events with
their RFC 9162 inclusion proofs; the signed checkpoint they are proven against. Every row is
read through ``restrict(requester, "export")``: the worker builds what the auditor who asked may
export at the time it builds, so a permission withdrawn meanwhile leaves the build empty-handed.

Each kind:

* ``case_pack``: the case's records (alerts, parties, accounts, transactions, notes with every
  version, attachments, links, reports and approvals) as JSON, its attachments, every event
  about the case, its alerts, its reports and its approvals, and an HTML summary;
* ``period_pack``: every event of the period, the register of the cases opened or closed in it,
  and the attachments added in it;
* ``ledger_extract``: every event of the period, as JSON lines with proofs and as CSV;
* ``str_register``: the reports to the FIU drafted in the period; ``case_register``: the cases
  opened in it. Registers name cases by reference, never a customer.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import ApprovalRequest, User
from audit import merkle
from audit.events import EventType
from audit.ledger import integrate_all, key_id, origin, seal, stored_nodes
from audit.models import Checkpoint, Event
from cases.models import Action, Alert, Case, CaseLink, Evidence, Note, Transaction, reference_of
from caspix.crypto.keys import KeyName, key_service
from caspix.downloads import csv_cell
from caspix_verify import CHECKPOINT, EVENTS, FORMAT, MANIFEST, RECORDS, SIGNATURE, SIGNING_CONTEXT
from reporting.models import Export, Report

EXPORT = Action.EXPORT
BATCH = 1000  # events proven per round of stored-node reads
CHUNK = 1 << 20
Progress = Callable[[int], None]  # steps done so far


class PackError(RuntimeError):
    """The pack cannot be built; the message says why in an auditor's words, naming no record."""


# --- the archive ------------------------------------------------------------------------------------


class _Hashing:
    """A writable member of the archive that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._raw.write(data)


class PackWriter:
    """A ZIP whose every member is hashed as it is written, closed by a signed manifest."""

    def __init__(self, out: IO[bytes], built_at: datetime.datetime) -> None:
        self._zip = zipfile.ZipFile(out, "w", allowZip64=True)
        self._time = built_at.astimezone(datetime.UTC).timetuple()[:6]
        self.files: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def member(self, path: str, *, compress: bool = True) -> Iterator[_Hashing]:
        info = zipfile.ZipInfo(path, date_time=self._time)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        with self._zip.open(info, "w", force_zip64=True) as raw:
            sink = _Hashing(raw)
            yield sink
        self.files.append({"path": path, "size": sink.size, "sha256": sink.digest.hexdigest()})

    def add(self, path: str, data: bytes, *, compress: bool = True) -> None:
        with self.member(path, compress=compress) as sink:
            sink.write(data)

    def add_json(self, path: str, value: Any) -> None:
        self.add(path, dumps(value))

    def discard(self) -> None:
        """Close the archive of a build that failed (the caller throws the file away)."""
        with contextlib.suppress(Exception):
            self._zip.close()

    def close(self, manifest: dict[str, Any]) -> str:
        """Write the manifest and its signature, close the archive; the manifest's SHA-256."""
        document = {**manifest, "format": FORMAT, "files": sorted(self.files, key=lambda entry: entry["path"])}
        data = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
        for path, content in ((MANIFEST, data), (SIGNATURE, sign_manifest(data))):
            info = zipfile.ZipInfo(path, date_time=self._time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            self._zip.writestr(info, content)
        self._zip.close()
        return hashlib.sha256(data).hexdigest()


def dumps(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n"


def write_table(
    pack: PackWriter, name: str, columns: Sequence[str], rows: Iterable[dict[str, Any]], tick: Progress
) -> int:
    """``records/<name>.json`` (an array) and ``records/<name>.csv`` of ``rows``, streamed: a
    register of a year may hold a million rows, never all in memory. ``tick`` hears the count as
    rows and chunks go by (the build's heartbeat). Returns how many."""
    count = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
        table = csv.writer(spool)
        table.writerow(columns)
        with pack.member(f"records/{name}.json") as sink:
            sink.write(b"[")
            for row in rows:
                sink.write((b",\n" if count else b"\n") + json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
                table.writerow([csv_cell(row[column]) for column in columns])
                count += 1
                tick(count)
            sink.write(b"\n]\n")
        spool.seek(0)
        with pack.member(f"records/{name}.csv") as sink:
            while text := spool.read(CHUNK):
                sink.write(text.encode())
                tick(count)
    return count


def sign_manifest(data: bytes) -> bytes:
    """``manifest.sig``: the ledger key's Ed25519 signature of the context line and the manifest."""
    service = key_service()
    signature = service.sign(KeyName.LEDGER, SIGNING_CONTEXT + data)
    public = service.public_keys(KeyName.LEDGER)[signature.version]
    return dumps(
        {
            "algorithm": "Ed25519",
            "key_id": key_id(origin(), public).hex(),
            "key_version": signature.version,
            "signature": base64.b64encode(signature.signature).decode(),
        }
    )


# --- the ledger's part ----------------------------------------------------------------------------


def sealed_checkpoint(user: User) -> Checkpoint:
    """A signed checkpoint covering every event recorded so far (one is signed if none does)."""
    integrate_all(seal_when_idle=False)
    latest = Event.objects.restrict(user, "export").order_by("-seq").values_list("seq", flat=True).first() or 0
    checkpoint = Checkpoint.objects.restrict(user, "export").order_by("-size").first()
    if checkpoint is None or checkpoint.size < latest:
        seal(force=True)
        checkpoint = Checkpoint.objects.restrict(user, "export").order_by("-size").first()
    if not isinstance(checkpoint, Checkpoint):
        raise PackError("the ledger has no signed checkpoint to prove events against")
    return checkpoint


@dataclass
class LedgerPart:
    count: int = 0
    first: int | None = None
    last: int | None = None
    types: dict[str, int] = field(default_factory=dict)
    rows: list[list[Any]] = field(default_factory=list)  # for the summary and the CSV


class RowSink(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...


def write_events(
    pack: PackWriter,
    events: QuerySet[Event],
    checkpoint: Checkpoint,
    progress: Progress,
    *,
    keep_rows: bool,
    rows_to: RowSink | None = None,
) -> LedgerPart:
    """Every event of ``events`` up to the checkpoint, with its inclusion proof, and the checkpoint;
    each event's row is kept for the summary (``keep_rows``: a case's) or written to ``rows_to``."""
    part = LedgerPart()
    size, root = checkpoint.size, bytes(checkpoint.root)
    pack.add(CHECKPOINT, checkpoint.note.encode())
    rows = events.filter(seq__lte=size).order_by("seq").values_list("seq", "body")
    with pack.member(EVENTS) as sink:
        batch: list[tuple[int, bytes]] = []
        for seq, body in rows.iterator(chunk_size=BATCH):
            batch.append((seq, bytes(body)))
            if len(batch) == BATCH:
                _prove(sink, batch, size, root, part, keep_rows, rows_to)
                progress(part.count)
                batch = []
        if batch:
            _prove(sink, batch, size, root, part, keep_rows, rows_to)
            progress(part.count)
    return part


def _prove(
    sink: _Hashing,
    batch: list[tuple[int, bytes]],
    size: int,
    root: bytes,
    part: LedgerPart,
    keep_rows: bool,
    rows_to: RowSink | None,
) -> None:
    needed: set[merkle.Node] = set()
    for seq, _ in batch:
        needed |= merkle.nodes_needed_for_inclusion(seq - 1, size)
    nodes = stored_nodes(needed)
    lines = []
    for seq, body in batch:
        proof = merkle.inclusion_proof(lambda level, index: nodes[(level, index)], seq - 1, size)
        merkle.verify_inclusion(merkle.leaf_hash(body), seq - 1, size, proof, root)  # never ship a bad proof
        lines.append(
            json.dumps(
                {
                    "seq": seq,
                    "body": base64.b64encode(body).decode(),
                    "proof": [base64.b64encode(h).decode() for h in proof],
                },
                separators=(",", ":"),
            )
        )
        document = json.loads(body)
        name = str(document.get("name", document.get("type")))
        part.types[name] = part.types.get(name, 0) + 1
        part.first = seq if part.first is None else part.first
        part.last = seq
        part.count += 1
        if keep_rows or rows_to is not None:
            actor, thing = document.get("actor") or {}, document.get("object") or {}
            row = [seq, document.get("time"), name, actor.get("name"), actor.get("role"), thing.get("type"),
                   thing.get("id"), document.get("reason")]  # fmt: skip
            if keep_rows:
                part.rows.append(row)
            if rows_to is not None:
                rows_to.writerow([csv_cell(value) for value in row])
    sink.write(("\n".join(lines) + "\n").encode())


EVENT_COLUMNS = ("seq", "time", "event", "actor", "role", "object type", "object id", "reason")


# --- records ------------------------------------------------------------------------------------------


def _user(user: User | None) -> str | None:
    return None if user is None else user.get_username()


def _time(value: datetime.datetime | datetime.date | None) -> str | None:
    return None if value is None else value.isoformat()


def case_row(case: Case) -> dict[str, Any]:
    """A case as a register shows it: no customer, only the case's own facts."""
    return {
        "reference": reference_of(case.pk),
        "title": case.title,
        "queue": case.queue.name,
        "team": case.queue.team.name,
        "status": case.status,
        "priority": case.priority,
        "assignee": _user(case.assignee),
        "opened_at": _time(case.opened_at),
        "sla_due_at": _time(case.sla_due_at),
        "closed_at": _time(case.closed_at),
        "closure_reason": case.closure_reason or None,
    }


CASE_COLUMNS = (
    "reference", "title", "queue", "team", "status", "priority", "assignee", "opened_at", "sla_due_at",
    "closed_at", "closure_reason",
)  # fmt: skip


def case_records(user: User, case: Case, evidence_paths: dict[str, str], added: dict[str, Added]) -> dict[str, Any]:
    """Everything Caspix holds about one case, decrypted for the pack (which is stored encrypted)."""
    alerts = list(
        Alert.objects.restrict(user, EXPORT).filter(case=case).select_related("client", "party").order_by("received_at")
    )
    transactions = Transaction.objects.restrict(user, EXPORT).filter(alert__case=case).select_related("account")
    by_alert: dict[object, list[dict[str, Any]]] = {}
    for item in transactions.order_by("occurred_at", "id"):
        by_alert.setdefault(item.alert_id, []).append(
            {
                "external_id": item.external_id,
                "occurred_at": _time(item.occurred_at),
                "amount": str(item.amount),
                "currency": item.currency,
                "direction": item.direction,
                "channel": item.channel,
                "account": item.account.number if item.account is not None else None,
                "counterparty_name": item.counterparty_name or None,
                "counterparty_account": item.counterparty_account or None,
                "counterparty_country": item.counterparty_country or None,
                "card_last_four": item.card_last_four or None,
            }
        )
    parties = {alert.party.pk: alert.party for alert in alerts}
    if case.party is not None:
        parties.setdefault(case.party.pk, case.party)
    notes = Note.objects.restrict(user, EXPORT).filter(case=case).select_related("author").order_by("thread", "version")
    evidence = Evidence.objects.restrict(user, EXPORT).filter(case=case).select_related("added_by")
    links = CaseLink.objects.restrict(user, EXPORT).filter(Q(first=case) | Q(second=case))
    reports = Report.objects.restrict(user, EXPORT).filter(case=case).select_related("profile", "approved_file")
    return {
        "case": case_row(case),
        "parties": [
            {
                "customer_id": party.customer_id,
                "name": party.name,
                "national_id": party.national_id or None,
                "date_of_birth": _time(party.date_of_birth),
                "country": party.country or None,
                "accounts": [{"number": a.number, "currency": a.currency} for a in party.accounts.order_by("pk")],
            }
            for party in parties.values()
        ],
        "alerts": [
            {
                "id": str(alert.pk),
                "source": alert.client.source,
                "external_id": alert.external_id,
                "scenario": alert.scenario,
                "score": str(alert.score) if alert.score is not None else None,
                "occurred_at": _time(alert.occurred_at),
                "received_at": _time(alert.received_at),
                "amount": str(alert.amount) if alert.amount is not None else None,
                "currency": alert.currency or None,
                "transactions": by_alert.get(alert.pk, []),
            }
            for alert in alerts
        ],
        "notes": [
            {
                "thread": str(note.thread),
                "version": note.version,
                "author": _user(note.author),
                "written_at": _time(note.created_at),
                "body": note.body,
            }
            for note in notes
        ],
        "attachments": [
            {
                "path": evidence_paths[str(item.pk)],
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "sha256": item.sha256,
                "description": item.description or None,
                "added_by": _user(item.added_by),
                "added_at": _time(item.added_at),
                "evidence": str(item.pk),
                "seq": added[str(item.pk)].seq,
            }
            for item in evidence
            if str(item.pk) in evidence_paths
        ],
        "links": [
            {
                "case": reference_of(link.second_id if link.first_id == case.pk else link.first_id),
                "reason": link.reason,
                "linked_at": _time(link.linked_at),
            }
            for link in links
        ],
        "reports": [
            {
                "reference": report.reference,
                "fiu": report.profile.name,
                "report_code": report.report_code,
                "status": report.status,
                "revision": report.revision,
                "drafted_at": _time(report.created_at),
                "approved_at": _time(report.approved_at),
                "approved_file_sha256": report.approved_file.sha256 if report.approved_file else None,
                "fiu_reference": report.fiu_ref_number or None,
                "submitted_on": _time(report.submitted_on),
                "answered_on": _time(report.answered_on),
            }
            for report in reports
        ],
    }


@dataclass(frozen=True)
class Added:
    """The ledger's record of a file being added: its event and the SHA-256 it recorded."""

    seq: int
    sha256: str


def ledger_of_files(user: User, evidence: QuerySet[Evidence], checkpoint: Checkpoint) -> dict[str, Added]:
    """The ``EVIDENCE_ADDED`` event of each file of ``evidence`` that the checkpoint covers, by the
    file's id. A file added after the checkpoint is left out of the pack (it is newer than the
    pack's cut-off); a file the ledger never saw added is an integrity failure, never shipped."""
    wanted = {str(pk): case_id for pk, case_id in evidence.values_list("pk", "case_id")}
    found: dict[str, Added] = {}
    later: set[str] = set()
    events = Event.objects.restrict(user, "export").filter(
        event_type=EventType.EVIDENCE_ADDED, object_type="case", object_id__in={str(c) for c in wanted.values()}
    )
    for seq, body in events.values_list("seq", "body").iterator(chunk_size=BATCH):
        after = json.loads(bytes(body)).get("after") or {}
        added = after.get("evidence")
        if added in wanted:
            if seq > checkpoint.size:
                later.add(added)
            else:
                found[added] = Added(seq, str(after.get("sha256")))
    unseen = set(wanted) - set(found) - later
    if unseen:
        case = reference_of(wanted[min(unseen)])
        raise PackError(f"an attachment of case {case} has no EVIDENCE_ADDED event in the ledger: it is not shipped")
    return found


def write_attachments(
    pack: PackWriter, evidence: QuerySet[Evidence], added: dict[str, Added], progress: Progress
) -> dict[str, str]:
    """Each file the ledger saw added (``added``), as it was added: its bytes must have the SHA-256
    the ledger recorded then (and the one beside the file). Evidence id -> path in the pack."""
    paths: dict[str, str] = {}
    shipped = evidence.filter(pk__in=list(added)).select_related("content").order_by("added_at", "id")
    for done, item in enumerate(shipped, start=1):
        data = bytes(item.content.data)
        digest = hashlib.sha256(data).hexdigest()
        if digest != added[str(item.pk)].sha256 or digest != item.sha256:
            raise PackError(f"an attachment of case {reference_of(item.case_id)} does not match its SHA-256")
        path = f"attachments/{item.pk}/{_safe_name(item.filename)}"
        pack.add(path, data, compress=False)
        paths[str(item.pk)] = path
        progress(done)
    return paths


def _safe_name(filename: str) -> str:
    """A file name that is one plain path segment inside the archive."""
    kept = "".join(c if c.isalnum() or c in "._- " else "_" for c in filename).strip(" .")
    return kept[:120] or "file"


# --- each kind ----------------------------------------------------------------------------------------


@dataclass
class Built:
    manifest_sha256: str
    checkpoint_size: int | None


def build(export: Export, out: IO[bytes], progress: Callable[[int, int], None]) -> Built:
    """Write ``export``'s pack into ``out`` for the auditor who asked, as they may export now."""
    user = export.requested_by
    now = timezone.now()
    pack = PackWriter(out, now)
    manifest: dict[str, Any] = {
        "kind": export.kind,
        "title": export.get_kind_display(),
        "export": str(export.pk),
        "origin": origin(),
        "built_at": now.isoformat(),
        "requested_by": user.get_username(),
        "requested_at": export.requested_at.isoformat(),
        "scope": scope_of(export),
    }
    builders = {
        Export.Kind.CASE_PACK: _case_pack,
        Export.Kind.PERIOD_PACK: _period_pack,
        Export.Kind.LEDGER_EXTRACT: _ledger_extract,
        Export.Kind.STR_REGISTER: _str_register,
        Export.Kind.CASE_REGISTER: _case_register,
    }
    try:
        summary, checkpoint = builders[Export.Kind(export.kind)](export, user, pack, progress)
        if checkpoint is not None:
            manifest["checkpoint"] = {"path": CHECKPOINT, "size": checkpoint.size, "events": EVENTS}
        context = {"records": None, "events": (), "ledger": None, "attachments": (), "case_count": 0, "report_count": 0}
        page = render_to_string("reporting/pack_summary.html", {**context, **summary, "manifest": manifest})
        pack.add("summary.html", page.encode())
    except BaseException:
        pack.discard()
        raise
    return Built(pack.close(manifest), checkpoint.size if checkpoint else None)


def scope_of(export: Export) -> dict[str, Any]:
    if export.case_id is not None:
        return {"case": reference_of(export.case_id)}
    if export.period_start is None or export.period_end is None:  # the table's constraint forbids it
        raise PackError("the export names neither a case nor a period")
    return {"from": export.period_start.isoformat(), "until": export.period_end.isoformat()}


Summary = tuple[dict[str, Any], Checkpoint | None]


def _case_pack(export: Export, user: User, pack: PackWriter, progress: Callable[[int, int], None]) -> Summary:
    case = (
        Case.objects.restrict(user, EXPORT)
        .select_related("queue__team", "assignee", "party")
        .filter(pk=export.case_id or 0)
        .first()
    )
    if case is None:
        raise PackError("the case is not open to the requester for export")
    cases = Case.objects.restrict(user, EXPORT).filter(pk=case.pk)
    alerts = Alert.objects.restrict(user, EXPORT).filter(case=case)
    reports = Report.objects.restrict(user, EXPORT).filter(case=case)
    approvals = ApprovalRequest.objects.restrict(user, "export").filter(
        Q(case_link__case=case) | Q(report_link__report__case=case)
    )
    ledger = Event.objects.restrict(user, "export")
    events = (
        ledger.about("case", cases)
        | ledger.about("alert", alerts)
        | ledger.about("report", reports)
        | ledger.about("approval", approvals)
    )
    evidence = Evidence.objects.restrict(user, EXPORT).filter(case=case)
    checkpoint = sealed_checkpoint(user)
    added = ledger_of_files(user, evidence, checkpoint)  # their events are the case's: in the pack
    total = events.filter(seq__lte=checkpoint.size).count() + len(added)
    progress(0, total)
    part = write_events(pack, events, checkpoint, lambda done: progress(done, total), keep_rows=True)
    paths = write_attachments(pack, evidence, added, lambda done: progress(part.count + done, total))
    records = case_records(user, case, paths, added)
    pack.add_json(RECORDS, records)
    return {"records": records, "events": part.rows, "ledger": part}, checkpoint


def _period_events(export: Export, user: User) -> QuerySet[Event]:
    return Event.objects.restrict(user, "export").filter(
        occurred_at__gte=export.period_start, occurred_at__lt=export.period_end
    )


def _touched(export: Export, user: User) -> QuerySet[Case]:
    start, end = export.period_start, export.period_end
    return (
        Case.objects.restrict(user, EXPORT)
        .filter(Q(opened_at__gte=start, opened_at__lt=end) | Q(closed_at__gte=start, closed_at__lt=end))
        .select_related("queue__team", "assignee")
        .order_by("pk")
    )


def _period_pack(export: Export, user: User, pack: PackWriter, progress: Callable[[int, int], None]) -> Summary:
    events = _period_events(export, user)
    evidence = Evidence.objects.restrict(user, EXPORT).filter(
        added_at__gte=export.period_start, added_at__lt=export.period_end
    )
    checkpoint = sealed_checkpoint(user)
    added = ledger_of_files(user, evidence, checkpoint)
    # each file's EVIDENCE_ADDED event comes with it, even from outside the period (clocks differ)
    events = events | Event.objects.restrict(user, "export").filter(seq__in=[a.seq for a in added.values()])
    total = events.filter(seq__lte=checkpoint.size).count() + len(added)
    progress(0, total)
    part = write_events(pack, events, checkpoint, lambda done: progress(done, total), keep_rows=False)
    paths = write_attachments(pack, evidence, added, lambda done: progress(part.count + done, total))
    attachments = [
        {
            "path": paths[str(item.pk)],
            "case": reference_of(item.case_id),
            "filename": item.filename,
            "content_type": item.content_type,
            "size": item.size,
            "sha256": item.sha256,
            "added_by": _user(item.added_by),
            "added_at": _time(item.added_at),
            "evidence": str(item.pk),
            "seq": added[str(item.pk)].seq,
        }
        for item in evidence.filter(pk__in=list(added)).select_related("added_by").order_by("added_at", "id")
    ]
    pack.add_json(RECORDS, {"attachments": attachments})
    touched = _touched(export, user)
    cases = write_table(
        pack,
        "cases",
        CASE_COLUMNS,
        (case_row(case) for case in touched.iterator(2000)),
        lambda _: progress(total, total),
    )
    return {"case_count": cases, "ledger": part, "attachments": attachments}, checkpoint


def _ledger_extract(export: Export, user: User, pack: PackWriter, progress: Callable[[int, int], None]) -> Summary:
    events = _period_events(export, user)
    checkpoint = sealed_checkpoint(user)
    total = events.filter(seq__lte=checkpoint.size).count()
    progress(0, total)
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:  # a year is millions of rows
        rows = csv.writer(spool)
        rows.writerow(EVENT_COLUMNS)
        part = write_events(pack, events, checkpoint, lambda done: progress(done, total), keep_rows=False, rows_to=rows)
        spool.seek(0)
        with pack.member("ledger/events.csv") as sink:
            while text := spool.read(CHUNK):
                sink.write(text.encode())
                progress(total, total)  # the heartbeat, while a year of rows is copied
    return {"ledger": part}, checkpoint


REPORT_COLUMNS = (
    "reference", "case", "fiu", "report_code", "status", "revision", "drafted_at", "due_on", "approved_at",
    "approved_file_sha256", "submitted_on", "channel", "fiu_reference", "answered_on",
)  # fmt: skip


def _str_register(export: Export, user: User, pack: PackWriter, progress: Callable[[int, int], None]) -> Summary:
    reports = (
        Report.objects.restrict(user, EXPORT)
        .filter(created_at__gte=export.period_start, created_at__lt=export.period_end)
        .select_related("profile", "approved_file")
        .order_by("created_at", "pk")
    )
    rows = (
        {
            "reference": report.reference,
            "case": reference_of(report.case_id),
            "fiu": report.profile.name,
            "report_code": report.report_code,
            "status": report.status,
            "revision": report.revision,
            "drafted_at": _time(report.created_at),
            "due_on": _time(report.due_on),
            "approved_at": _time(report.approved_at),
            "approved_file_sha256": report.approved_file.sha256 if report.approved_file else None,
            "submitted_on": _time(report.submitted_on),
            "channel": report.channel or None,
            "fiu_reference": report.fiu_ref_number or None,
            "answered_on": _time(report.answered_on),
        }
        for report in reports.iterator(chunk_size=2000)
    )
    total = reports.count()
    count = write_table(pack, "reports", REPORT_COLUMNS, rows, lambda done: progress(done, total))
    return {"report_count": count}, None


def _case_register(export: Export, user: User, pack: PackWriter, progress: Callable[[int, int], None]) -> Summary:
    cases = (
        Case.objects.restrict(user, EXPORT)
        .filter(opened_at__gte=export.period_start, opened_at__lt=export.period_end)
        .select_related("queue__team", "assignee")
        .order_by("pk")
    )
    total = cases.count()
    rows = (case_row(case) for case in cases.iterator(chunk_size=2000))
    count = write_table(pack, "cases", CASE_COLUMNS, rows, lambda done: progress(done, total))
    return {"case_count": count}, None
