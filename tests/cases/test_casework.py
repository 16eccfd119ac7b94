"""Case work: append-only notes, evidence files, links between cases and suggested cases.

Each action checks who acts, refuses by name what would break a rule, writes nothing when it
refuses, and records its ledger event with ids and SHA-256 digests only (never a note's text nor a
file's bytes). The database itself refuses to change or remove a note or a piece of evidence.
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
import zlib
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from guardian.shortcuts import assign_perm
from pytest_django.fixtures import Settings

from cases import casework
from cases.models import (
    Account,
    Action,
    Alert,
    ApiClient,
    Case,
    CaseLink,
    Evidence,
    EvidenceContent,
    Note,
    Party,
    Transaction,
)
from tests.conftest import client_for
from tests.personas import MISSING_PK, World, build_world
from tests.recorded import events

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: None) -> World:
    return build_world()  # leaves no pending event: its one is integrated


# --- helpers ---------------------------------------------------------------------------------------


def named(name: str) -> list[dict[str, object]]:
    """The events of the test recorded under ``name``, oldest first."""
    return [event for event in events() if event["name"] == name]


def raw_column(table: str, column: str, key_column: str, key: uuid.UUID) -> bytes:
    """A column as the database holds it, read past the ORM (and its decryption)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {key_column} = %s", [key])  # noqa: S608 (constants)
        row = cursor.fetchone()
    assert row is not None
    return bytes(row[0])


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def case_url(case: Case) -> str:
    return reverse("cases:case", args=[case.pk])


def related_url(case: Case) -> str:
    return reverse("cases:related", args=[case.pk])


def png_bytes() -> bytes:
    """A real 1x1 grey PNG, chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # width, height, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # one scanline: no filter, one grey pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
PNG = png_bytes()
TEXT = b"Statement of Jane Roe, 3 March: she did not make the card payments to ACME Ltd.\n"
WINDOWS_EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8" + bytes(111) + b"PE\x00\x00"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + bytes(200)


# --- notes -----------------------------------------------------------------------------------------


def test_a_note_is_encrypted_at_rest_and_recorded_by_its_digest_only(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    text = "Jane Roe called from +44 20 7946 0958: she denies the three card payments."
    note = casework.add_note(case, text, acting_user=bob)
    stored = Note.objects.get(pk=note.pk)
    assert (str(stored.body), stored.version, stored.case_id, stored.author_id) == (text, 1, case.pk, bob.pk)
    raw = raw_column("cases_note", "body", "id", note.pk)
    assert text.encode() not in raw
    assert b"Jane Roe" not in raw
    assert b"7946" not in raw
    [event] = events()
    assert event["name"] == "NOTE_ADDED"
    assert event["object"] == {"type": "case", "id": str(case.pk)}
    assert event["actor"] == {"id": bob.pk, "name": "bob", "role": "analyst"}
    assert event["after"] == {"note": str(note.pk), "thread": str(note.thread), "version": 1, "sha256": sha256(text)}
    assert "Jane Roe" not in json.dumps(event)


def test_a_note_is_kept_with_unix_line_ends_and_without_surrounding_blanks(world: World) -> None:
    note = casework.add_note(
        world.cases["analyst"]["team"], "  first line\r\nsecond line \r\n\n", acting_user=world.users["analyst"]
    )
    assert str(Note.objects.get(pk=note.pk).body) == "first line\nsecond line"
    assert named("NOTE_ADDED")[0]["after"]["sha256"] == sha256("first line\nsecond line")  # type: ignore[index]


def test_a_revision_is_a_new_version_and_every_earlier_one_stays_as_written(world: World) -> None:
    bob, charlie = world.users["analyst"], world.users["lead"]
    case = world.cases["analyst"]["team"]
    first = casework.add_note(case, "The card was blocked on 3 March.", acting_user=bob)
    sealed_first = raw_column("cases_note", "body", "id", first.pk)
    second = casework.revise_note(
        case, first.thread, "The card was blocked on 4 March.", acting_user=charlie, seen_version=1
    )
    assert second.pk != first.pk
    assert (second.thread, second.version, second.author_id) == (first.thread, 2, charlie.pk)
    kept = Note.objects.get(pk=first.pk)
    assert (str(kept.body), kept.version, kept.author_id) == ("The card was blocked on 3 March.", 1, bob.pk)
    assert raw_column("cases_note", "body", "id", first.pk) == sealed_first  # not even re-encrypted
    added, revised = events()
    assert (added["name"], revised["name"]) == ("NOTE_ADDED", "NOTE_REVISED")
    assert revised["object"] == {"type": "case", "id": str(case.pk)}
    assert revised["after"] == {
        "note": str(second.pk),
        "thread": str(first.thread),
        "version": 2,
        "sha256": sha256("The card was blocked on 4 March."),
    }
    [thread] = casework.note_threads(case, bob)
    assert thread.current.pk == second.pk
    assert [note.pk for note in thread.earlier] == [first.pk]
    assert thread.created_at == kept.created_at


def test_a_revision_from_a_stale_version_is_refused_and_writes_nothing(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    first = casework.add_note(case, "Version one.", acting_user=bob)
    casework.revise_note(case, first.thread, "Version two.", acting_user=world.users["lead"], seen_version=1)
    recorded = len(events())
    with pytest.raises(ValidationError, match=r"revised since you opened it \(version 2 now\)"):
        casework.revise_note(case, first.thread, "Bob's edit of version one.", acting_user=bob, seen_version=1)
    assert sorted(Note.objects.filter(thread=first.thread).values_list("version", flat=True)) == [1, 2]
    assert len(events()) == recorded


def test_an_unchanged_revision_or_one_of_a_missing_note_is_refused(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    note = casework.add_note(case, "Same words.", acting_user=bob)
    with pytest.raises(ValidationError, match="unchanged"):
        casework.revise_note(case, note.thread, "  Same words.\r\n", acting_user=bob, seen_version=1)
    with pytest.raises(ValidationError, match="no such note"):
        casework.revise_note(case, uuid.uuid4(), "Other words.", acting_user=bob, seen_version=1)
    other_case = world.cases["lead"]["team"]  # bob works it too, but the note is not on it
    with pytest.raises(ValidationError, match="no such note"):
        casework.revise_note(other_case, note.thread, "Other words.", acting_user=bob, seen_version=1)
    assert Note.objects.count() == 1
    assert len(events()) == 1


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("", "cannot be empty"),
        (" \r\n\t ", "cannot be empty"),
        ("x" * (Note.MAX_LENGTH + 1), f"at most {Note.MAX_LENGTH} characters"),
        ("before\x00after", "NUL"),
    ],
    ids=["empty", "blank", "too long", "NUL"],
)
def test_a_note_text_that_cannot_be_kept_is_refused(world: World, text: str, refusal: str) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    with pytest.raises(ValidationError, match=refusal):
        casework.add_note(case, text, acting_user=bob)
    assert not Note.objects.exists()
    note = casework.add_note(case, "A note to revise.", acting_user=bob)
    with pytest.raises(ValidationError, match=refusal):
        casework.revise_note(case, note.thread, text, acting_user=bob, seen_version=1)
    assert list(Note.objects.values_list("pk", flat=True)) == [note.pk]
    assert [event["name"] for event in events()] == ["NOTE_ADDED"]


def test_a_note_of_exactly_the_maximum_length_is_kept(world: World) -> None:
    text = "y" * Note.MAX_LENGTH
    note = casework.add_note(world.cases["analyst"]["team"], text, acting_user=world.users["analyst"])
    assert str(Note.objects.get(pk=note.pk).body) == text


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE cases_note SET version = 7 WHERE id = %s",
        "UPDATE cases_note SET body = body WHERE id = %s",
        "DELETE FROM cases_note WHERE id = %s",
    ],
    ids=["update version", "rewrite body", "delete"],
)
def test_the_database_refuses_to_change_or_remove_a_note(world: World, statement: str) -> None:
    note = casework.add_note(world.cases["analyst"]["team"], "Written once.", acting_user=world.users["analyst"])
    sealed = raw_column("cases_note", "body", "id", note.pk)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [note.pk])
    kept = Note.objects.get(pk=note.pk)
    assert (kept.version, str(kept.body)) == (1, "Written once.")
    assert raw_column("cases_note", "body", "id", note.pk) == sealed


def test_someone_who_cannot_work_the_case_writes_no_note(world: World) -> None:
    bob, oscar, dana = world.users["analyst"], world.users["other_analyst"], world.users["manager"]
    case = world.cases["analyst"]["team"]  # the cards team's: oscar is in the AML team
    note = casework.add_note(case, "Bob's note.", acting_user=bob)
    for outsider in (oscar, dana):  # an analyst of another team; a manager, who works no case
        with pytest.raises(PermissionDenied):
            casework.add_note(case, "An outsider's note.", acting_user=outsider)
        with pytest.raises(PermissionDenied):
            casework.revise_note(case, note.thread, "An outsider's edit.", acting_user=outsider, seen_version=1)
    assert list(Note.objects.values_list("pk", flat=True)) == [note.pk]
    assert [event["name"] for event in events()] == ["NOTE_ADDED"]
    assert casework.note_threads(case, oscar) == []
    assert casework.note_by_id(case, oscar, str(note.pk)) is None
    found = casework.note_by_id(case, bob, str(note.pk))
    assert found is not None
    assert found.pk == note.pk
    assert casework.note_by_id(case, bob, "not-a-uuid") is None


def test_a_view_grant_reads_notes_but_writes_none(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    note = casework.add_note(case, "Readable by a view grant.", acting_user=bob)
    assign_perm("cases.view_case", oscar, case)
    assert [thread.current.pk for thread in casework.note_threads(case, oscar)] == [note.pk]
    with pytest.raises(PermissionDenied):
        casework.add_note(case, "Oscar's note.", acting_user=oscar)
    browser = client_for(oscar)
    url = reverse("cases:note", args=[case.pk, note.thread])
    page = browser.get(url)
    assert page.status_code == 200
    assert "Readable by a view grant." in page.content.decode()
    assert "Write a new version" not in page.content.decode()
    assert browser.post(url, {"text": "Oscar's edit.", "version": "1"}).status_code == 403
    assert Note.objects.count() == 1


# --- notes: the views ------------------------------------------------------------------------------


def test_a_note_added_from_the_case_page_shows_on_it_escaped(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    browser = client_for(bob)
    text = "Merchant says <script>alert(1)</script> was the customer's own order."
    response = browser.post(reverse("cases:note_add", args=[case.pk]), {"text": text})
    assert response.status_code == 302
    assert response["Location"] == case_url(case) + "#notes"
    page = browser.get(case_url(case)).content.decode()
    assert escape(text) in page
    assert "<script>alert(1)</script>" not in page
    assert "The note is added." in page
    [note] = Note.objects.all()
    assert reverse("cases:note", args=[case.pk, note.thread]) in page
    assert [event["after"]["note"] for event in named("NOTE_ADDED")] == [str(note.pk)]  # type: ignore[index]


def test_an_empty_note_is_answered_400_and_an_outsider_404(world: World) -> None:
    case = world.cases["analyst"]["team"]
    url = reverse("cases:note_add", args=[case.pk])
    response = client_for(world.users["analyst"]).post(url, {"text": ""})
    assert response.status_code == 400
    assert response.context["forms"]["note"].errors["text"] == ["This field is required."]
    assert client_for(world.users["other_analyst"]).post(url, {"text": "Oscar's note."}).status_code == 404
    assert not Note.objects.exists()
    assert named("NOTE_ADDED") == []


def test_the_note_page_shows_earlier_versions_and_writes_the_next(world: World) -> None:
    bob, charlie = world.users["analyst"], world.users["lead"]
    case = world.cases["analyst"]["team"]
    note = casework.add_note(case, "First account of the call.", acting_user=bob)
    url = reverse("cases:note", args=[case.pk, note.thread])
    response = client_for(charlie).post(url, {"text": "Corrected account of the call.", "version": "1"})
    assert response.status_code == 302
    assert response["Location"] == case_url(case) + "#notes"
    browser = client_for(bob)
    page = browser.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "As it reads now (version 2)" in html
    assert "Corrected account of the call." in html
    assert "Earlier versions" in html
    assert "Version 1" in html
    assert "First account of the call." in html
    assert "Write a new version" in html
    stale = browser.post(url, {"text": "Bob's edit of the first account.", "version": "1"})
    assert stale.status_code == 400
    assert "revised since you opened it" in stale.content.decode()
    assert sorted(Note.objects.filter(thread=note.thread).values_list("version", flat=True)) == [1, 2]
    assert browser.get(reverse("cases:note", args=[case.pk, uuid.uuid4()])).status_code == 404
    assert client_for(world.users["other_analyst"]).get(url).status_code == 404


# --- evidence --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [(PDF, "application/pdf"), (PNG, "image/png"), (TEXT, "text/plain")],
    ids=["pdf", "png", "text"],
)
def test_it_sniffs_the_type_from_the_content(data: bytes, expected: str) -> None:
    assert casework.sniff(data) == expected


@pytest.mark.parametrize(
    ("filename", "data", "content_type"),
    [("statement.pdf", PDF, "application/pdf"), ("receipt.png", PNG, "image/png"), ("call.txt", TEXT, "text/plain")],
    ids=["pdf", "png", "text"],
)
def test_evidence_is_hashed_encrypted_and_recorded(world: World, filename: str, data: bytes, content_type: str) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    evidence = casework.add_evidence(case, filename, data, description="  From the customer  ", acting_user=bob)
    stored = Evidence.objects.get(pk=evidence.pk)
    assert (stored.case_id, stored.filename, stored.content_type, stored.size, stored.sha256) == (
        case.pk,
        filename,
        content_type,
        len(data),
        sha256(data),
    )
    assert (stored.description, stored.added_by_id) == ("From the customer", bob.pk)
    content = EvidenceContent.objects.get(evidence=evidence)
    assert bytes(content.data) == data
    raw = raw_column("cases_evidencecontent", "data", "evidence_id", evidence.pk)
    assert data not in raw
    assert data[:16] not in raw
    [event] = events()
    assert event["name"] == "EVIDENCE_ADDED"
    assert event["object"] == {"type": "case", "id": str(case.pk)}
    assert event["after"] == {
        "evidence": str(evidence.pk),
        "type": content_type,
        "size": len(data),
        "sha256": sha256(data),
    }
    page = client_for(bob).get(case_url(case)).content.decode()
    assert f'<code class="hash">{sha256(data)}</code>' in page
    assert reverse("cases:evidence", args=[case.pk, evidence.pk]) in page


def test_evidence_uploaded_from_the_case_page_downloads_as_it_was_each_time_recorded(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    browser = client_for(bob)
    upload = SimpleUploadedFile("statement.pdf", PDF, content_type="application/octet-stream")
    response = browser.post(
        reverse("cases:evidence_add", args=[case.pk]), {"file": upload, "description": "Bank statement"}
    )
    assert response.status_code == 302
    assert response["Location"] == case_url(case) + "#evidence"
    [evidence] = Evidence.objects.all()
    assert evidence.content_type == "application/pdf"  # sniffed, whatever the browser said
    page = browser.get(case_url(case)).content.decode()
    assert f'<code class="hash">{sha256(PDF)}</code>' in page
    assert f"statement.pdf is attached (SHA-256 {sha256(PDF)})." in page
    assert "Bank statement" in page
    download_url = reverse("cases:evidence", args=[case.pk, evidence.pk])
    assert download_url in page
    for _ in range(2):
        download = browser.get(download_url)
        assert download.status_code == 200
        assert download.content == PDF
        assert download["Content-Type"] == "application/pdf"
        assert download["Content-Disposition"] == 'attachment; filename="statement.pdf"'
        assert download["Content-Length"] == str(len(PDF))
        assert download["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in download["Content-Security-Policy"]
        assert "default-src 'none'" in download["Content-Security-Policy"]
        assert download["Cache-Control"] == "no-store"
        assert download["Digest"] == f"sha-256={sha256(PDF)}"
    downloads = named("EVIDENCE_DOWNLOADED")
    assert len(downloads) == 2
    for event in downloads:
        assert event["object"] == {"type": "case", "id": str(case.pk)}
        assert event["after"] == {"evidence": str(evidence.pk), "sha256": sha256(PDF)}
        assert event["actor"] == {"id": bob.pk, "name": "bob", "role": "analyst"}


@pytest.mark.parametrize(
    ("filename", "data"),
    [("tool.exe", WINDOWS_EXE), ("report.pdf", ELF), ("notes.txt", WINDOWS_EXE)],
    ids=["windows executable", "ELF named as a PDF", "executable named as text"],
)
def test_an_executable_is_refused_with_a_clear_message(world: World, filename: str, data: bytes) -> None:
    case = world.cases["analyst"]["team"]
    sniffed = casework.sniff(data)
    assert sniffed not in casework.ALLOWED_TYPES
    with pytest.raises(ValidationError, match=f"files of this type \\({sniffed}\\) are not accepted as evidence"):
        casework.add_evidence(case, filename, data, acting_user=world.users["analyst"])
    response = client_for(world.users["analyst"]).post(
        reverse("cases:evidence_add", args=[case.pk]), {"file": SimpleUploadedFile(filename, data)}
    )
    assert response.status_code == 400
    [message] = response.context["forms"]["evidence"].errors["file"]
    assert message.startswith(f"files of this type ({sniffed}) are not accepted as evidence: ")
    assert ".pdf" in message
    assert escape(message) in response.content.decode()
    assert not Evidence.objects.exists()
    assert named("EVIDENCE_ADDED") == []


def test_content_that_does_not_match_its_name_is_refused(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    with pytest.raises(ValidationError, match=r"content is image/png, which its name \(x\.pdf\) does not match"):
        casework.add_evidence(case, "x.pdf", PNG, acting_user=bob)
    with pytest.raises(ValidationError, match=r"content is application/pdf, which its name \(x\.png\) does not match"):
        casework.add_evidence(case, "x.png", PDF, acting_user=bob)
    response = client_for(bob).post(
        reverse("cases:evidence_add", args=[case.pk]), {"file": SimpleUploadedFile("x.pdf", PNG)}
    )
    assert response.status_code == 400
    assert "which its name (x.pdf) does not match" in response.content.decode()
    assert not Evidence.objects.exists()
    assert events() == []


def test_a_file_name_keeps_no_path_nor_unsafe_characters(world: World) -> None:
    evidence = casework.add_evidence(
        world.cases["analyst"]["team"], '..\\..\\etc/"call"<1>|.txt', TEXT, acting_user=world.users["analyst"]
    )
    assert Evidence.objects.get(pk=evidence.pk).filename == "call1.txt"
    long_name = "a" * 300 + ".txt"
    kept = casework.add_evidence(world.cases["analyst"]["team"], long_name, TEXT, acting_user=world.users["analyst"])
    assert kept.filename == "a" * 196 + ".txt"


def test_an_empty_file_is_refused(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    with pytest.raises(ValidationError, match="the file is empty"):
        casework.add_evidence(case, "empty.txt", b"", acting_user=bob)
    response = client_for(bob).post(
        reverse("cases:evidence_add", args=[case.pk]), {"file": SimpleUploadedFile("empty.txt", b"")}
    )
    assert response.status_code == 400
    assert response.context["forms"]["evidence"].errors["file"] == ["The submitted file is empty."]
    assert not Evidence.objects.exists()
    assert named("EVIDENCE_ADDED") == []


def test_a_file_over_the_limit_is_refused(world: World, settings: Settings) -> None:
    settings.CASES = {**settings.CASES, "EVIDENCE_MAX_BYTES": 2048}
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    with pytest.raises(ValidationError, match="larger than the limit"):
        casework.add_evidence(case, "big.txt", b"a" * 2049, acting_user=bob)
    response = client_for(bob).post(
        reverse("cases:evidence_add", args=[case.pk]), {"file": SimpleUploadedFile("big.txt", b"a" * 2049)}
    )
    assert response.status_code == 400
    assert "larger than the limit" in response.content.decode()
    assert not Evidence.objects.exists()
    at_limit = casework.add_evidence(case, "full.txt", b"a" * 2048, acting_user=bob)
    assert Evidence.objects.get().pk == at_limit.pk
    assert [event["name"] for event in events()] == ["EVIDENCE_ADDED"]


def test_evidence_of_another_teams_case_is_out_of_reach(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    case = world.cases["analyst"]["team"]
    evidence = casework.add_evidence(case, "call.txt", TEXT, acting_user=bob)
    url = reverse("cases:evidence", args=[case.pk, evidence.pk])
    response = client_for(oscar).get(url)
    assert response.status_code == 404
    assert TEXT not in response.content
    with pytest.raises(PermissionDenied):
        casework.download_evidence(case, evidence.pk, acting_user=oscar)
    with pytest.raises(PermissionDenied):
        casework.add_evidence(case, "oscar.txt", TEXT, acting_user=oscar)
    bobs = client_for(bob)
    assert bobs.get(reverse("cases:evidence", args=[case.pk, uuid.uuid4()])).status_code == 404
    other_case = world.cases["lead"]["team"]  # bob reaches it, but the file is not on it
    assert bobs.get(reverse("cases:evidence", args=[other_case.pk, evidence.pk])).status_code == 404
    assert named("EVIDENCE_DOWNLOADED") == []
    assert Evidence.objects.count() == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE cases_evidence SET filename = 'other.txt' WHERE id = %s",
        "UPDATE cases_evidence SET sha256 = repeat('0', 64) WHERE id = %s",
        "DELETE FROM cases_evidence WHERE id = %s",
        "UPDATE cases_evidencecontent SET data = data WHERE evidence_id = %s",
        "DELETE FROM cases_evidencecontent WHERE evidence_id = %s",
    ],
    ids=["rename", "rehash", "delete", "rewrite content", "delete content"],
)
def test_the_database_refuses_to_change_or_remove_evidence(world: World, statement: str) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    evidence = casework.add_evidence(case, "call.txt", TEXT, acting_user=bob)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [evidence.pk])
    kept = Evidence.objects.get(pk=evidence.pk)
    assert (kept.filename, kept.sha256) == ("call.txt", sha256(TEXT))
    item, data = casework.download_evidence(case, evidence.pk, acting_user=bob)
    assert (item.pk, data) == (evidence.pk, TEXT)


# --- links between cases ---------------------------------------------------------------------------


def test_two_cases_are_linked_once_lower_id_first_and_recorded_on_both(world: World) -> None:
    bob = world.users["analyst"]
    lower, higher = world.cases["analyst"]["team"], world.cases["lead"]["team"]  # both in the cards queue
    assert lower.pk < higher.pk
    link = casework.link_cases(higher, lower, CaseLink.Reason.SAME_SCHEME, acting_user=bob)
    stored = CaseLink.objects.get()
    assert stored.pk == link.pk
    assert (stored.first_id, stored.second_id, stored.reason, stored.linked_by_id) == (
        lower.pk,
        higher.pk,
        "same_scheme",
        bob.pk,
    )
    linked = named("CASES_LINKED")
    assert [(event["object"], event["after"], event["reason"]) for event in linked] == [
        ({"type": "case", "id": str(lower.pk)}, {"case": higher.reference}, "same_scheme"),
        ({"type": "case", "id": str(higher.pk)}, {"case": lower.reference}, "same_scheme"),
    ]
    assert casework.linked_cases(lower, bob) == [(higher, "Same fraud scheme")]
    assert casework.linked_cases(higher, bob) == [(lower, "Same fraud scheme")]
    for first, second in ((lower, higher), (higher, lower)):
        with pytest.raises(ValidationError, match="linked already"):
            casework.link_cases(first, second, CaseLink.Reason.OTHER, acting_user=bob)
    assert CaseLink.objects.count() == 1
    assert len(events()) == 2


def test_a_case_is_not_linked_to_itself_nor_for_an_unknown_reason(world: World) -> None:
    bob, case = world.users["analyst"], world.cases["analyst"]["team"]
    with pytest.raises(ValidationError, match="not linked to itself"):
        casework.link_cases(case, case, CaseLink.Reason.DUPLICATE, acting_user=bob)
    with pytest.raises(ValidationError, match="unknown reason"):
        casework.link_cases(case, world.cases["lead"]["team"], "gut feeling", acting_user=bob)
    assert not CaseLink.objects.exists()
    assert events() == []


def test_a_case_of_another_team_is_not_linked(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    mine, theirs = world.cases["analyst"]["team"], world.cases["analyst"]["other team"]
    with pytest.raises(PermissionDenied):
        casework.link_cases(mine, theirs, CaseLink.Reason.SAME_SUBJECT, acting_user=bob)
    with pytest.raises(PermissionDenied):
        casework.link_cases(theirs, mine, CaseLink.Reason.SAME_SUBJECT, acting_user=oscar)
    with pytest.raises(PermissionDenied):  # a manager works no case at all
        casework.link_cases(
            mine, world.cases["lead"]["team"], CaseLink.Reason.OTHER, acting_user=world.users["manager"]
        )
    assert not CaseLink.objects.exists()
    assert events() == []


def test_unlinking_removes_the_link_and_records_it_on_both_cases(world: World) -> None:
    bob, charlie = world.users["analyst"], world.users["lead"]
    lower, higher = world.cases["analyst"]["team"], world.cases["lead"]["team"]
    casework.link_cases(lower, higher, CaseLink.Reason.SAME_SUBJECT, acting_user=bob)
    with pytest.raises(ValidationError, match="state why"):
        casework.unlink_cases(higher, lower, acting_user=charlie, reason="   ")
    assert CaseLink.objects.count() == 1
    casework.unlink_cases(higher, lower, acting_user=charlie, reason="two customers of the same name")
    assert not CaseLink.objects.exists()
    unlinked = named("CASES_UNLINKED")
    assert [(event["object"], event["after"], event["actor"]["name"]) for event in unlinked] == [  # type: ignore[index]
        ({"type": "case", "id": str(lower.pk)}, {"case": higher.reference}, "charlie"),
        ({"type": "case", "id": str(higher.pk)}, {"case": lower.reference}, "charlie"),
    ]
    assert casework.linked_cases(lower, bob) == []
    with pytest.raises(ValidationError, match="are not linked"):
        casework.unlink_cases(lower, higher, acting_user=bob, reason="again")
    assert len(named("CASES_UNLINKED")) == 2


def test_unlinking_needs_both_cases_workable(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    mine = world.cases["analyst"]["own"]  # in the AML queue, assigned to bob: oscar's team works it
    team = world.cases["analyst"]["team"]
    casework.link_cases(mine, team, CaseLink.Reason.SHARED_ACCOUNT, acting_user=bob)
    with pytest.raises(PermissionDenied):
        casework.unlink_cases(mine, team, acting_user=oscar, reason="not the same account")
    assert CaseLink.objects.count() == 1
    assert named("CASES_UNLINKED") == []


def test_a_linked_case_the_reader_cannot_see_is_left_out(world: World) -> None:
    bob, charlie, oscar = world.users["analyst"], world.users["lead"], world.users["other_analyst"]
    mine = world.cases["analyst"]["own"]  # AML queue, assigned to bob
    team = world.cases["analyst"]["team"]  # cards queue
    casework.link_cases(team, mine, CaseLink.Reason.SHARED_ACCOUNT, acting_user=bob)
    assert casework.linked_cases(team, bob) == [(mine, "Shared account or counterparty")]
    assert casework.linked_cases(mine, bob) == [(team, "Shared account or counterparty")]
    assert Case.objects.restrict(oscar, Action.VIEW).filter(pk=mine.pk).exists()
    assert casework.linked_cases(mine, oscar) == []  # the cards case is not his to see
    assert casework.linked_cases(team, charlie) == []  # nor bob's AML case charlie's
    page = client_for(oscar).get(related_url(mine))
    assert page.status_code == 200
    assert team.reference not in page.content.decode()
    assert team.title not in page.content.decode()


# --- suggested cases -------------------------------------------------------------------------------

IBAN = "DE89 3704 0044 0532 0130 00"


def subject(customer_id: str) -> Party:
    party = Party(customer_id=customer_id)
    party.name = f"Customer {customer_id}"
    party.save()
    return party


def account(party: Party, number: str) -> Account:
    held = Account(party=party, currency="EUR")
    held.number = number
    held.save()
    return held


def alert_with_payment(
    case: Case, party: Party, client: ApiClient, *, paid_from: Account | None = None, paid_to: str = ""
) -> None:
    """An alert on ``case`` naming one payment, from one of the party's accounts and/or to a counterparty."""
    now = timezone.now()
    alert = Alert(client=client, external_id=uuid.uuid4().hex, scenario="mule", occurred_at=now, party=party, case=case)
    alert.payload = "{}"
    alert.save()
    payment = Transaction(
        alert=alert,
        account=paid_from,
        occurred_at=now,
        amount=Decimal("950.00"),
        currency="EUR",
        minor_units=2,
        direction=Transaction.Direction.DEBIT,
        channel=Transaction.Channel.TRANSFER,
    )
    payment.counterparty_account = paid_to
    payment.save()


def test_it_suggests_cases_sharing_the_subject_or_an_account_that_the_reader_may_see(world: World) -> None:
    bob, oscar = world.users["analyst"], world.users["other_analyst"]
    cards, aml = world.queues["cards"], world.queues["aml"]
    client = ApiClient.objects.create(name="Card platform", source="card-platform", scopes=["alerts:write"])
    jane = subject("CUST-0001")
    case = world.cases["analyst"]["team"]
    Case.objects.filter(pk=case.pk).update(party=jane)
    case.refresh_from_db()
    alert_with_payment(case, jane, client, paid_from=account(jane, IBAN))

    same_subject = Case.objects.create(title="Jane again", queue=cards, party=jane)
    paid_to = subject("CUST-0002")
    to_the_account = Case.objects.create(title="Paid into Jane's account", queue=cards, party=paid_to)
    alert_with_payment(to_the_account, paid_to, client, paid_to="de89-3704-0044-0532-0130-00")  # typed otherwise
    joint = subject("CUST-0003")
    same_account = Case.objects.create(title="Joint holder", queue=cards, party=joint)
    alert_with_payment(same_account, joint, client, paid_from=account(joint, "DE89370400440532013000"))
    stranger = subject("CUST-0004")
    unrelated = Case.objects.create(title="Unrelated", queue=cards, party=stranger)
    alert_with_payment(unrelated, stranger, client, paid_from=account(stranger, "GB29 NWBK 6016 1331 9268 19"))
    hidden_subject = Case.objects.create(title="Jane at AML", queue=aml, party=jane)
    elsewhere = subject("CUST-0005")
    hidden_account = Case.objects.create(title="Paid to Jane, at AML", queue=aml, party=elsewhere)
    alert_with_payment(hidden_account, elsewhere, client, paid_to=IBAN)

    assert casework.suggested_cases(case, bob) == [
        (same_subject, "Same subject"),
        (same_account, "Shared account or counterparty"),
        (to_the_account, "Shared account or counterparty"),
    ]
    # oscar sees the AML cases only: none of the cards cases is suggested to him
    assert casework.suggested_cases(hidden_subject, oscar) == []
    assert casework.suggested_cases(hidden_account, oscar) == []

    page = client_for(bob).get(related_url(case)).content.decode()
    for shown in (same_subject, to_the_account, same_account):
        assert shown.reference in page
    for left_out in (unrelated, hidden_subject, hidden_account):
        assert left_out.reference not in page

    casework.link_cases(case, same_subject, CaseLink.Reason.SAME_SUBJECT, acting_user=bob)
    assert [other for other, _ in casework.suggested_cases(case, bob)] == [same_account, to_the_account]
    assert [other for other, _ in casework.suggested_cases(same_subject, bob)] == []  # linked: not suggested back


def test_a_case_without_subject_nor_payments_has_no_suggestion(world: World) -> None:
    assert casework.suggested_cases(world.cases["analyst"]["team"], world.users["analyst"]) == []


# --- links: the views ------------------------------------------------------------------------------


def test_the_related_cases_come_as_a_page_or_as_a_fragment(world: World) -> None:
    bob = world.users["analyst"]
    case, other = world.cases["analyst"]["team"], world.cases["lead"]["team"]
    casework.link_cases(case, other, CaseLink.Reason.DUPLICATE, acting_user=bob)
    browser = client_for(bob)
    page = browser.get(related_url(case))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html
    assert f"Cases related to {case.reference}" in html
    assert other.reference in html
    assert "<td>Duplicate</td>" in html  # the link's reason, in its row
    assert reverse("cases:unlink", args=[case.pk, other.pk]) in html
    assert reverse("cases:link", args=[case.pk]) in html
    fragment = browser.get(related_url(case), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    text = fragment.content.decode()
    assert "<html" not in text
    assert other.reference in text
    assert "Link or unlink cases" in text
    assert reverse("cases:unlink", args=[case.pk, other.pk]) not in text
    assert browser.get(related_url(world.cases["analyst"]["other team"])).status_code == 404


def test_a_case_is_linked_by_its_reference(world: World) -> None:
    bob = world.users["analyst"]
    case, other = world.cases["analyst"]["team"], world.cases["lead"]["team"]
    response = client_for(bob).post(
        reverse("cases:link", args=[case.pk]), {"case": other.reference, "reason": "same_scheme"}
    )
    assert response.status_code == 302
    assert response["Location"] == related_url(case)
    stored = CaseLink.objects.get()
    assert (stored.first_id, stored.second_id, stored.reason) == (case.pk, other.pk, "same_scheme")
    assert len(named("CASES_LINKED")) == 2


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("other team", "There is no case with this reference that you may work."),
        ("missing", "There is no case with this reference that you may work."),
        ("itself", "a case is not linked to itself"),
        ("XYZ-1", "Give a case reference, such as C-000123."),
    ],
)
def test_a_link_that_cannot_be_made_is_answered_400_with_a_message(world: World, reference: str, message: str) -> None:
    case = world.cases["analyst"]["team"]
    given = {
        "other team": world.cases["analyst"]["other team"].reference,
        "missing": f"C-{MISSING_PK}",
        "itself": case.reference,
    }.get(reference, reference)
    response = client_for(world.users["analyst"]).post(
        reverse("cases:link", args=[case.pk]), {"case": given, "reason": "other"}
    )
    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    assert not CaseLink.objects.exists()
    assert named("CASES_LINKED") == []


def test_an_outsider_cannot_link_from_a_case_out_of_reach(world: World) -> None:
    case = world.cases["analyst"]["team"]
    response = client_for(world.users["other_analyst"]).post(
        reverse("cases:link", args=[case.pk]), {"case": world.cases["lead"]["team"].reference, "reason": "other"}
    )
    assert response.status_code == 404
    assert not CaseLink.objects.exists()


def test_cases_are_unlinked_from_the_related_page_with_a_reason(world: World) -> None:
    bob = world.users["analyst"]
    case, other = world.cases["analyst"]["team"], world.cases["lead"]["team"]
    casework.link_cases(case, other, CaseLink.Reason.SAME_SUBJECT, acting_user=bob)
    browser = client_for(bob)
    page = browser.get(related_url(other)).content.decode()
    url = reverse("cases:unlink", args=[other.pk, case.pk])
    assert url in page
    response = browser.post(url, {"reason": "a namesake, not the same customer"})
    assert response.status_code == 302
    assert response["Location"] == related_url(other)
    assert not CaseLink.objects.exists()
    assert len(named("CASES_UNLINKED")) == 2
    assert case.reference not in browser.get(related_url(other), headers={"HX-Request": "true"}).content.decode()
    outsider = client_for(world.users["other_analyst"]).post(url, {"reason": "not his to unlink"})
    assert outsider.status_code == 404


@pytest.mark.parametrize("linked", [True, False], ids=["without a reason", "cases not linked"])
def test_an_unlink_that_cannot_be_done_is_answered_400_with_a_message(world: World, linked: bool) -> None:
    bob = world.users["analyst"]
    case, other = world.cases["analyst"]["team"], world.cases["lead"]["team"]
    if linked:
        casework.link_cases(case, other, CaseLink.Reason.SAME_SUBJECT, acting_user=bob)
    data, message = (
        ({"reason": ""}, "State why the cases are not related.") if linked else ({"reason": "x"}, "not linked")
    )
    response = client_for(bob).post(reverse("cases:unlink", args=[case.pk, other.pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert CaseLink.objects.count() == int(linked)
    assert named("CASES_UNLINKED") == []


def test_a_closed_case_takes_no_note_or_file_until_it_is_reopened(world: World) -> None:
    bob = world.users["analyst"]
    case = world.cases["analyst"]["team"]
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    with pytest.raises(ValidationError, match="closed: reopen it first"):
        casework.add_note(case, "late thought", acting_user=bob)
    with pytest.raises(ValidationError, match="closed: reopen it first"):
        casework.add_evidence(case, "late.txt", b"late\n", acting_user=bob)
    response = client_for(bob).post(reverse("cases:note_add", args=[case.pk]), {"text": "late thought"})
    assert response.status_code == 400
    assert "closed: reopen it first" in response.content.decode()
    assert not Note.objects.exists()
    assert not Evidence.objects.exists()


def test_an_unlink_records_its_reason(world: World) -> None:
    bob = world.users["analyst"]
    case, other = world.cases["analyst"]["team"], world.cases["lead"]["team"]
    casework.link_cases(case, other, CaseLink.Reason.SAME_SUBJECT, acting_user=bob)
    casework.unlink_cases(case, other, acting_user=bob, reason="a namesake")
    assert [event["reason"] for event in named("CASES_UNLINKED")] == ["a namesake", "a namesake"]
