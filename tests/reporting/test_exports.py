"""Evidence packs and regulatory exports: asked for, built, downloaded, verified offline, expired;
and every way of tampering with a pack that the offline verifier must catch."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, RoleAssignment, User
from audit.ledger import integrate_all, published_keys
from audit.models import Event
from cases import casework
from caspix_verify import CHECKPOINT, EVENTS, MANIFEST, RECORDS, SIGNATURE, SIGNING_CONTEXT, key_id, verify_pack
from caspix_verify.cli import main as verify_main
from reporting import exports, packs
from reporting.models import Export, ExportPart
from tests.conftest import client_for
from tests.factories import make_user
from tests.recorded import sequenced_and_pending
from tests.reporting import reporting_world as rw

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def ledger() -> list[dict[str, Any]]:
    return [dict(event) for event in sequenced_and_pending()]


def public_keys() -> list[bytes]:
    return [base64.b64decode(entry["public_key"]) for entry in published_keys()["keys"]]


@pytest.fixture
def setup() -> rw.Reporting:
    made = rw.build()
    casework.add_note(made.case, "Customer called about = the transfers", acting_user=made.analyst)
    casework.add_evidence(made.case, "statement.pdf", PDF, description="Bank statement", acting_user=made.analyst)
    casework.add_evidence(made.case, "../../etc/passwd.txt", b"plain words\n", acting_user=made.analyst)
    integrate_all()
    return made


def built(kind: str, setup: rw.Reporting, **scope: object) -> tuple[Export, bytes]:
    auditor = setup.world.users["auditor"]
    if kind == Export.Kind.CASE_PACK:
        scope.setdefault("case", setup.case)
    else:
        now = timezone.now()
        scope.setdefault("period_start", now - datetime.timedelta(days=30))
        scope.setdefault("period_end", now + datetime.timedelta(days=1))
    export = exports.request_export(kind, acting_user=auditor, **scope)  # type: ignore[arg-type]
    exports.build_export(str(export.pk))
    export.refresh_from_db()
    assert export.status == Export.Status.READY, export.failure
    _, chunks = exports.download(str(export.pk), acting_user=auditor)
    return export, b"".join(chunks)


def members(pack: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(pack)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


# --- the round trip --------------------------------------------------------------------------------


def test_a_case_pack_holds_the_records_the_files_and_every_event_proven(setup: rw.Reporting) -> None:
    export, pack = built(Export.Kind.CASE_PACK, setup)
    result = verify_pack(io.BytesIO(pack), public_keys())
    assert result.intact, result.problems
    files = members(pack)
    assert hashlib.sha256(pack).hexdigest() == export.sha256
    assert hashlib.sha256(files[MANIFEST]).hexdigest() == export.manifest_sha256
    records = json.loads(files[RECORDS])
    assert records["case"]["reference"] == setup.case.reference
    assert records["parties"][0]["name"] == "Layla Hassan"
    assert records["parties"][0]["accounts"] == [{"number": rw.IBAN, "currency": "AED"}]
    assert {t["counterparty_name"] for a in records["alerts"] for t in a["transactions"]} >= {"John Smith"}
    assert records["notes"][0]["body"] == "Customer called about = the transfers"
    attachments = {item["filename"]: item for item in records["attachments"]}
    statement = attachments["statement.pdf"]
    assert files[statement["path"]] == PDF
    assert statement["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert statement["seq"] is not None  # the EVIDENCE_ADDED event, in the pack
    assert all(".." not in path for path in files)  # a file name never walks out of its folder
    # every event about the case and its alerts is there, with its proof
    lines = [json.loads(line) for line in files[EVENTS].splitlines()]
    names = {json.loads(base64.b64decode(line["body"]))["name"] for line in lines}
    assert {"NOTE_ADDED", "EVIDENCE_ADDED"} <= names
    alert_ids = {a["id"] for a in records["alerts"]}
    expected = set(
        Event.objects.filter(object_type="case", object_id=str(setup.case.pk)).values_list("seq", flat=True)
    ) | set(Event.objects.filter(object_type="alert", object_id__in=alert_ids).values_list("seq", flat=True))
    assert expected <= {line["seq"] for line in lines}
    summary = files["summary.html"].decode()
    assert setup.case.reference in summary
    assert "statement.pdf" in summary
    manifest = json.loads(files[MANIFEST])
    assert manifest["scope"] == {"case": setup.case.reference}
    assert manifest["requested_by"] == "erin"
    assert manifest["checkpoint"]["size"] == export.checkpoint_size


def test_its_request_build_and_download_are_in_the_ledger(setup: rw.Reporting) -> None:
    export, _ = built(Export.Kind.CASE_PACK, setup)
    events = [e for e in ledger() if e["object"] == {"type": "export", "id": str(export.pk)}]
    assert [e["name"] for e in events] == ["EXPORT_REQUESTED", "EXPORT_BUILT", "EXPORT_DOWNLOADED"]
    assert events[0]["actor"]["name"] == "erin"
    assert events[0]["after"] == {"kind": "case_pack", "case": setup.case.reference}
    assert events[1]["after"]["sha256"] == export.sha256
    assert events[1]["actor"]["role"] == "system"


def test_the_pack_is_stored_encrypted_in_parts(setup: rw.Reporting) -> None:
    export, _pack = built(Export.Kind.CASE_PACK, setup)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM reporting_exportpart WHERE export_id = %s", [export.pk])
        stored = b"".join(bytes(row[0]) for row in cursor.fetchall())
    assert stored
    assert PDF not in stored
    assert b"Layla" not in stored
    assert ExportPart.objects.filter(export=export).count() == 1


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (Export.Kind.PERIOD_PACK, {"records/cases.csv", "records/cases.json", RECORDS, EVENTS, CHECKPOINT}),
        (Export.Kind.LEDGER_EXTRACT, {"ledger/events.csv", EVENTS, CHECKPOINT}),
        (Export.Kind.STR_REGISTER, {"records/reports.csv", "records/reports.json"}),
        (Export.Kind.CASE_REGISTER, {"records/cases.csv", "records/cases.json"}),
    ],
)
def test_each_kind_of_export_verifies(setup: rw.Reporting, kind: str, expected: set[str]) -> None:
    rw.drafted(setup)
    _, pack = built(kind, setup)
    result = verify_pack(io.BytesIO(pack), public_keys())
    assert result.intact, result.problems
    files = members(pack)
    assert expected <= set(files)
    if kind in (Export.Kind.STR_REGISTER, Export.Kind.CASE_REGISTER):  # registers name no customer
        assert not any(b"Layla" in data or rw.IBAN.encode() in data for data in files.values())
    if kind == Export.Kind.STR_REGISTER:
        assert setup.case.reference.encode() in files["records/reports.csv"]
        assert [row["case"] for row in json.loads(files["records/reports.json"])] == [setup.case.reference]
    if kind in (Export.Kind.CASE_REGISTER, Export.Kind.PERIOD_PACK):
        registered = {row["reference"] for row in json.loads(files["records/cases.json"])}
        assert setup.case.reference in registered
        lines = files["records/cases.csv"].decode().splitlines()
        assert lines[0].startswith("reference,title,queue")
        assert len(lines) == len(registered) + 1
    if kind == Export.Kind.PERIOD_PACK:
        assert {item["filename"] for item in json.loads(files[RECORDS])["attachments"]} >= {"statement.pdf"}


def test_a_ledger_extract_quotes_formulas_in_its_csv(setup: rw.Reporting) -> None:
    _, pack = built(Export.Kind.LEDGER_EXTRACT, setup)
    text = members(pack)["ledger/events.csv"].decode()
    assert text.splitlines()[0] == "seq,time,event,actor,role,object type,object id,reason"
    assert "NOTE_ADDED" in text
    assert "\n=" not in text
    assert ",=" not in text
    assert ",-" not in text


def test_the_cli_says_intact_and_exits_0(
    setup: rw.Reporting, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, pack = built(Export.Kind.CASE_PACK, setup)
    (tmp_path / "pack.zip").write_bytes(pack)
    (tmp_path / "keys.json").write_text(json.dumps(published_keys()))
    assert verify_main([str(tmp_path / "pack.zip"), "--public-key", str(tmp_path / "keys.json")]) == 0
    assert "The pack is intact." in capsys.readouterr().out
    # a C2SP verifier key works as well
    (tmp_path / "vkey").write_text(published_keys()["keys"][0]["vkey"] + "\n")
    assert verify_main([str(tmp_path / "pack.zip"), "--public-key", str(tmp_path / "vkey")]) == 0
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    (tmp_path / "other").write_text(base64.b64encode(other).decode())
    assert verify_main([str(tmp_path / "pack.zip"), "--public-key", str(tmp_path / "other")]) == 1
    assert "signature does not verify" in capsys.readouterr().out
    (tmp_path / "junk").write_text("not a key at all")
    assert verify_main([str(tmp_path / "pack.zip"), "--public-key", str(tmp_path / "junk")]) == 1


def test_the_verifier_needs_nothing_but_the_standard_library_and_cryptography() -> None:
    code = (
        "import sys, caspix_verify.cli\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "extra = loaded - set(sys.stdlib_module_names) - {'caspix_verify', 'audit', 'cryptography', '_cffi_backend', "
        "'cffi', '_openssl', '__main__', 'sitecustomize', 'usercustomize', '_distutils_hack'}\n"
        "extra = {name for name in extra if not name.startswith('__editable__')}\n"
        "print(sorted(extra))\n"
    )
    output = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]", output


# --- tampering ----------------------------------------------------------------------------------------


def _rehash(files: dict[str, bytes]) -> None:
    manifest = json.loads(files[MANIFEST])
    manifest["files"] = [
        {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in sorted(files.items())
        if name not in (MANIFEST, SIGNATURE)
    ]
    files[MANIFEST] = json.dumps(manifest).encode()


def forged(files: dict[str, bytes], key: Ed25519PrivateKey) -> tuple[bytes, list[bytes]]:
    """The pack re-hashed and re-signed, checkpoint included, with ``key``: what an insider
    holding a key of their own could make. Returns it and the key's public half."""
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    note = files[CHECKPOINT].decode()
    body = note.partition("\n\n")[0] + "\n"
    name = body.split("\n")[0]
    stamp = base64.b64encode(key_id(name, public) + key.sign(body.encode())).decode()
    files[CHECKPOINT] = f"{body}\n\u2014 {name} {stamp}\n".encode()
    _rehash(files)
    return resigned(files, key)


def resigned(files: dict[str, bytes], key: Ed25519PrivateKey) -> tuple[bytes, list[bytes]]:
    """The manifest, exactly as it is, signed with ``key``."""
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = {
        "algorithm": "Ed25519",
        "signature": base64.b64encode(key.sign(SIGNING_CONTEXT + files[MANIFEST])).decode(),
    }
    files[SIGNATURE] = json.dumps(signature).encode()
    return rezip(files), [public]


def _change_a_file(files: dict[str, bytes]) -> None:
    files[RECORDS] = files[RECORDS].replace(b"Layla Hassan", b"Layla Hassam")


def _add_a_file(files: dict[str, bytes]) -> None:
    files["attachments/extra.txt"] = b"planted"


def _remove_a_file(files: dict[str, bytes]) -> None:
    del files[next(name for name in files if name.startswith("attachments/"))]


def _alter_a_proof(files: dict[str, bytes]) -> None:
    lines = files[EVENTS].splitlines()
    first = json.loads(lines[0])
    proof = base64.b64decode(first["proof"][0])
    first["proof"][0] = base64.b64encode(bytes([proof[0] ^ 1]) + proof[1:]).decode()
    files[EVENTS] = b"\n".join([json.dumps(first).encode(), *lines[1:]]) + b"\n"


def _alter_an_event(files: dict[str, bytes]) -> None:
    lines = files[EVENTS].splitlines()
    first = json.loads(lines[-1])
    body = base64.b64decode(first["body"]).replace(b'"erin"', b'"eve"').replace(b'"bob"', b'"eve"')
    first["body"] = base64.b64encode(body).decode()
    files[EVENTS] = b"\n".join([*lines[:-1], json.dumps(first).encode()]) + b"\n"


def _swap_the_checkpoint(files: dict[str, bytes]) -> None:
    from audit.ledger import seal
    from audit.models import Checkpoint
    from cases import casework as work

    setup_case = json.loads(files[RECORDS])["case"]["reference"]
    assert setup_case
    analyst = RoleAssignment.objects.filter(role__slug="analyst").first()
    assert analyst is not None
    work.add_note(Export.objects.first().case, "later", acting_user=analyst.user)  # type: ignore[union-attr,arg-type]
    integrate_all()
    seal(force=True)
    files[CHECKPOINT] = Checkpoint.objects.order_by("-size").first().note.encode()  # type: ignore[union-attr]


def _swap_an_attachment(files: dict[str, bytes]) -> None:
    path = next(name for name in files if name.endswith("statement.pdf"))
    files[path] = PDF.replace(b"1.4", b"1.7")


TAMPERING: dict[str, Callable[[dict[str, bytes]], None]] = {
    "a file changed": _change_a_file,
    "a file added": _add_a_file,
    "a file removed": _remove_a_file,
    "a proof altered": _alter_a_proof,
    "an event altered": _alter_an_event,
    "the checkpoint swapped": _swap_the_checkpoint,
    "an attachment swapped": _swap_an_attachment,
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_the_verifier_catches_tampering_of_the_signed_pack(
    setup: rw.Reporting, tamper: Callable[[dict[str, bytes]], None]
) -> None:
    _, pack = built(Export.Kind.CASE_PACK, setup)
    files = members(pack)
    tamper(files)
    result = verify_pack(io.BytesIO(rezip(files)), public_keys())
    assert not result.intact
    assert any("manifest" in problem for problem in result.problems), result.problems


@pytest.mark.parametrize(
    ("tamper", "caught"),
    [
        (_alter_a_proof, "is not proven in the checkpoint"),
        (_alter_an_event, "is not proven in the checkpoint"),
        (_swap_an_attachment, "the records give another SHA-256"),
    ],
    ids=["a proof altered", "an event altered", "an attachment swapped"],
)
def test_the_verifier_checks_proofs_and_records_even_under_a_forged_signature(
    setup: rw.Reporting, tamper: Callable[[dict[str, bytes]], None], caught: str
) -> None:
    """With every signature forged by a key of the forger's (and that key given to the verifier),
    the proofs and the records still catch what was changed."""
    _, pack = built(Export.Kind.CASE_PACK, setup)
    files = members(pack)
    tamper(files)
    forgery, keys = forged(files, Ed25519PrivateKey.generate())
    result = verify_pack(io.BytesIO(forgery), keys)
    assert any(caught in problem for problem in result.problems), result.problems


def test_a_pack_resigned_with_another_key_is_refused(setup: rw.Reporting) -> None:
    _, pack = built(Export.Kind.CASE_PACK, setup)
    forgery, keys = forged(members(pack), Ed25519PrivateKey.generate())
    assert verify_pack(io.BytesIO(forgery), keys).intact  # consistent in itself...
    result = verify_pack(io.BytesIO(forgery), public_keys())  # ...but not signed by the ledger's key
    assert result.problems == ["the manifest's signature does not verify with the given public key"]


def test_the_verifier_refuses_malformed_archives(setup: rw.Reporting) -> None:
    _, pack = built(Export.Kind.CASE_PACK, setup)
    files = members(pack)
    assert "not laid out as a pack is" in verify_pack(io.BytesIO(b"PK nothing"), public_keys()).problems[0]
    assert "no manifest.sig" in verify_pack(io.BytesIO(rezip({MANIFEST: files[MANIFEST]})), public_keys()).problems[0]
    unsafe = rezip({**files, "../outside.txt": b"x"})
    assert "unsafe name" in verify_pack(io.BytesIO(unsafe), public_keys()).problems[0]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr(RECORDS, b"{}")
    assert "more than once" in verify_pack(io.BytesIO(out.getvalue()), public_keys()).problems[0]
    truncated = pack[: len(pack) // 2]
    assert not verify_pack(io.BytesIO(truncated), public_keys()).intact


# --- who may, and what goes wrong ----------------------------------------------------------------------


def test_only_exporters_ask_and_only_the_requester_downloads(setup: rw.Reporting) -> None:
    with pytest.raises(PermissionDenied):
        exports.request_export(Export.Kind.CASE_PACK, case=setup.case, acting_user=setup.analyst)
    export, _ = built(Export.Kind.CASE_PACK, setup)
    other = make_user("olga", ("auditor",))
    with pytest.raises(Export.DoesNotExist):
        exports.download(str(export.pk), acting_user=other)
    with pytest.raises(PermissionDenied):
        exports.download(str(export.pk), acting_user=setup.analyst)


def test_bad_requests_get_clear_errors(setup: rw.Reporting) -> None:
    auditor = setup.world.users["auditor"]
    now = timezone.now()
    with pytest.raises(ValidationError, match="names a case"):
        exports.request_export(Export.Kind.CASE_PACK, acting_user=auditor)
    with pytest.raises(ValidationError, match="ends before it starts"):
        exports.request_export(Export.Kind.LEDGER_EXTRACT, period_start=now, period_end=now, acting_user=auditor)
    with pytest.raises(ValidationError, match="at most"):
        exports.request_export(
            Export.Kind.LEDGER_EXTRACT,
            period_start=now - datetime.timedelta(days=400),
            period_end=now,
            acting_user=auditor,
        )
    with pytest.raises(ValidationError, match="unknown kind"):
        exports.request_export("everything", acting_user=auditor)
    assert not Export.objects.exists()


def test_a_permission_withdrawn_before_the_build_fails_it(setup: rw.Reporting) -> None:
    auditor = setup.world.users["auditor"]
    export = exports.request_export(Export.Kind.CASE_PACK, case=setup.case, acting_user=auditor)
    RoleAssignment.objects.filter(user=auditor, role=Role.objects.get(slug="auditor")).delete()
    auditor.__dict__.pop("_perm_cache", None)
    exports.build_export(str(export.pk))
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert "not open to the requester" in export.failure
    assert not ExportPart.objects.filter(export=export).exists()
    assert [e["name"] for e in ledger() if e["object"]["type"] == "export"][-1] == "EXPORT_FAILED"


def test_a_build_is_idempotent(setup: rw.Reporting) -> None:
    export, _ = built(Export.Kind.CASE_PACK, setup)
    assert exports.build_export(str(export.pk)) is None  # ready: a redelivered task does nothing
    assert ExportPart.objects.filter(export=export).count() == 1


def test_a_stalled_build_is_taken_over_and_resumed(setup: rw.Reporting, settings: object) -> None:
    auditor = setup.world.users["auditor"]
    export = exports.request_export(Export.Kind.CASE_PACK, case=setup.case, acting_user=auditor)
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING, started_at=long_ago, heartbeat_at=long_ago)
    exports.build_export(str(export.pk))
    export.refresh_from_db()
    assert export.status == Export.Status.READY
    assert export.attempts == 1


def test_a_damaged_pack_is_withheld(setup: rw.Reporting) -> None:
    export, _ = built(Export.Kind.CASE_PACK, setup)
    Export.objects.filter(pk=export.pk).update(sha256="0" * 64)
    with pytest.raises(ValidationError, match="no longer matches"):
        exports.download(str(export.pk), acting_user=setup.world.users["auditor"])


def test_expired_packs_lose_their_content_and_keep_their_record(setup: rw.Reporting) -> None:
    export, _ = built(Export.Kind.CASE_PACK, setup)
    assert exports.expire_exports(timezone.now()) == 0
    assert export.expires_at is not None
    assert exports.expire_exports(export.expires_at + datetime.timedelta(seconds=1)) == 1
    export.refresh_from_db()
    assert export.status == Export.Status.EXPIRED
    assert export.sha256
    assert not ExportPart.objects.filter(export=export).exists()
    with pytest.raises(ValidationError, match="expired"):
        exports.download(str(export.pk), acting_user=setup.world.users["auditor"])
    assert [e["name"] for e in ledger() if e["object"]["type"] == "export"][-1] == "EXPORT_EXPIRED"


# --- the pages --------------------------------------------------------------------------------------------


def test_the_pages_ask_follow_and_download(setup: rw.Reporting) -> None:
    auditor = setup.world.users["auditor"]
    client = client_for(auditor)
    page = client.get(reverse("exports:list"))
    assert page.status_code == 200
    assert b"You have not exported anything yet" in page.content
    refused = client.post(reverse("exports:list"), {"kind": "case_pack", "case": "C-999999"})
    assert refused.status_code == 400
    assert b"There is no case of that reference" in refused.content
    refused = client.post(
        reverse("exports:list"), {"kind": "ledger_extract", "first_day": "2026-05-02", "last_day": "2026-05-01"}
    )
    assert refused.status_code == 400
    assert b"comes before the first" in refused.content
    asked = client.post(reverse("exports:list"), {"kind": "case_pack", "case": setup.case.reference})
    assert asked.status_code == 302
    export = Export.objects.get()
    assert asked["Location"] == reverse("exports:export", args=[export.pk])
    waiting = client.get(reverse("exports:progress", args=[export.pk]))
    assert b"Waiting for a worker" in waiting.content
    assert b"hx-get" in waiting.content
    exports.build_export(str(export.pk))
    export.refresh_from_db()
    shown = client.get(reverse("exports:export", args=[export.pk])).content.decode()
    assert export.sha256 in shown
    assert "caspix-verify" in shown
    download = client.get(reverse("exports:download", args=[export.pk]))
    assert download["Cache-Control"] == "no-store"
    assert download["Content-Disposition"].startswith("attachment")
    data = b"".join(download.streaming_content)  # type: ignore[attr-defined]
    assert hashlib.sha256(data).hexdigest() == export.sha256
    # another auditor does not see it at all
    other = client_for(make_user("olga", ("auditor",)))
    assert other.get(reverse("exports:export", args=[export.pk])).status_code == 404
    assert other.get(reverse("exports:download", args=[export.pk])).status_code == 404


def test_asking_needs_a_fresh_second_factor(setup: rw.Reporting) -> None:
    client = client_for(setup.world.users["auditor"], verified=False)
    asked = client.post(reverse("exports:list"), {"kind": "case_pack", "case": setup.case.reference})
    assert asked.status_code == 302
    assert reverse("accounts:verify") in asked["Location"]
    assert not Export.objects.exists()


# --- ZIP readers must not disagree on what a pack holds ---------------------------------------------


def _genuine(setup: rw.Reporting) -> bytes:
    return built(Export.Kind.CASE_PACK, setup)[1]


def _parts(archive: bytes) -> tuple[bytes, bytes, int]:
    """(the entries, the central directory, how many) of an archive Python wrote without zip64."""
    count, cd_size, cd_offset = struct.unpack_from("<HII", archive, len(archive) - 12)
    return archive[:cd_offset], archive[cd_offset : cd_offset + cd_size], count


def _shifted(directory: bytes, by: int) -> bytes:
    """The central directory with every local header offset moved by ``by``."""
    out, position = bytearray(directory), 0
    while position < len(out):
        name, extra, comment = struct.unpack_from("<HHH", out, position + 28)
        (offset,) = struct.unpack_from("<I", out, position + 42)
        struct.pack_into("<I", out, position + 42, offset + by)
        position += 46 + name + extra + comment
    return bytes(out)


def _end(count: int, size: int, offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, size, offset, 0)


def _two_directories(genuine: bytes, forged: bytes) -> bytes:
    """Two archives in one, each with its zip64 record: Python 3.11 reads the record just before
    the locator (the genuine one), Info-ZIP the one the locator points to (the forged one)."""
    real, real_cd, real_n = _parts(genuine)
    fake, fake_cd, fake_n = _parts(forged)
    out = bytearray(real + fake)
    fake_cd_at = len(out)
    out += _shifted(fake_cd, len(real))
    fake_record = len(out)
    out += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, fake_n, fake_n, len(fake_cd), fake_cd_at)
    real_cd_at = len(out)
    out += real_cd
    out += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, real_n, real_n, len(real_cd), real_cd_at)
    out += struct.pack("<4sIQI", b"PK\x06\x07", 0, fake_record, 1)
    out += _end(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    return bytes(out)


def test_a_pack_that_two_zip_readers_would_read_apart_is_refused(setup: rw.Reporting) -> None:
    genuine = _genuine(setup)
    forged = members(genuine)
    _change_a_file(forged)
    result = verify_pack(io.BytesIO(_two_directories(genuine, rezip(forged))), public_keys())
    assert result.problems == [
        "the archive is not laid out as a pack is: the zip64 record is not where its locator says, just before it"
    ]


def _prepended(archive: bytes) -> bytes:
    entries, directory, count = _parts(archive)
    moved = _shifted(directory, 100)
    return b"x" * 100 + entries + moved + _end(count, len(moved), len(entries) + 100)


def _appended(archive: bytes) -> bytes:
    return archive + b"trailing"


def _hidden_entry(archive: bytes) -> bytes:
    """A local entry between two that the central directory never names (Python skips it; a
    reader of local headers sees it)."""
    entries, directory, count = _parts(archive)
    hidden_entry = _parts(rezip({"records/records.json": b"{}"}))[0]
    moved = _shifted(directory, len(hidden_entry))
    return hidden_entry + entries + moved + _end(count, len(moved), len(entries) + len(hidden_entry))


def _renamed_locally(archive: bytes) -> bytes:
    """The first local header names another file than its directory record."""
    out = bytearray(archive)
    (name_length,) = struct.unpack_from("<H", out, 26)
    out[30] = ord("X") if out[30] != ord("X") else ord("Y")
    assert name_length
    return bytes(out)


def _encrypted_flag(archive: bytes) -> bytes:
    out = bytearray(archive)
    (flags,) = struct.unpack_from("<H", out, 6)
    struct.pack_into("<H", out, 6, flags | 1)
    entries, _, _ = _parts(archive)
    struct.pack_into("<H", out, len(entries) + 8, flags | 1)  # and in its directory record
    return bytes(out)


LAYOUTS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "data before the first entry": (_prepended, "bytes 0 to 100 are not one entry after another"),
    "data after the end record": (_appended, "does not end with a ZIP end record"),
    "an entry the directory does not name": (_hidden_entry, "are not one entry after another"),
    "a local header naming another file": (_renamed_locally, "says other than the central directory"),
    "an encrypted entry": (_encrypted_flag, "encrypted, or with a trailing descriptor"),
}


@pytest.mark.parametrize("case", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_an_archive_not_laid_out_plainly_is_refused(
    setup: rw.Reporting, case: tuple[Callable[[bytes], bytes], str]
) -> None:
    alter, message = case
    result = verify_pack(io.BytesIO(alter(_genuine(setup))), public_keys())
    assert len(result.problems) == 1
    assert message in result.problems[0], result.problems


def test_names_that_could_fool_a_terminal_or_a_file_system_are_refused(setup: rw.Reporting) -> None:
    files = members(_genuine(setup))
    trick = "x\r\x1b[2Kok: The pack is intact.\x1b[8m"
    result = verify_pack(io.BytesIO(rezip({**files, trick: b"x"})), public_keys())
    assert result.problems == [f"the archive holds a member with an unsafe name: {trick!r}"]
    assert "\x1b" not in result.problems[0]  # told escaped, never sent to the terminal as it is
    bidi = "attachments/\u202etxt.exe"
    assert "unsafe name" in verify_pack(io.BytesIO(rezip({**files, bidi: b"x"})), public_keys()).problems[0]
    twin = "SUMMARY.html"
    result = verify_pack(io.BytesIO(rezip({**files, twin: b"x"})), public_keys())
    assert "differs from it only by case or form" in result.problems[0]


def test_a_manifest_or_records_that_two_json_readers_would_read_apart_are_refused(setup: rw.Reporting) -> None:
    files = members(_genuine(setup))
    files[MANIFEST] = files[MANIFEST].replace(b'"format":', b'"format": "other", "format":', 1)
    forgery, keys = resigned(files, Ed25519PrivateKey.generate())
    assert "names a key twice" in verify_pack(io.BytesIO(forgery), keys).problems[0]


def test_an_attachment_untied_from_the_ledger_is_refused_even_under_a_forged_signature(setup: rw.Reporting) -> None:
    files = members(_genuine(setup))
    records = json.loads(files[RECORDS])
    records["attachments"][0]["seq"] = None
    files[RECORDS] = json.dumps(records).encode()
    forgery, keys = forged(files, Ed25519PrivateKey.generate())
    problems = verify_pack(io.BytesIO(forgery), keys).problems
    assert any("the ledger event that recorded it being added is not in the pack" in p for p in problems), problems
    records["attachments"][0]["seq"] = records["attachments"][1]["seq"]  # another file's event
    files[RECORDS] = json.dumps(records).encode()
    forgery, keys = forged(files, Ed25519PrivateKey.generate())
    problems = verify_pack(io.BytesIO(forgery), keys).problems
    assert any("does not record this file being added" in p for p in problems), problems


# --- the build and the download, under pressure ----------------------------------------------------


def test_a_permission_withdrawn_during_the_build_discards_the_pack(
    setup: rw.Reporting, monkeypatch: pytest.MonkeyPatch
) -> None:
    auditor = setup.world.users["auditor"]
    export = exports.request_export(Export.Kind.CASE_PACK, case=setup.case, acting_user=auditor)
    build = packs.build

    def withdrawn_meanwhile(*args: Any, **kwargs: Any) -> Any:
        made = build(*args, **kwargs)  # the worker holds the user it started with, permissions cached
        User.objects.filter(pk=auditor.pk).update(is_active=False)
        return made

    monkeypatch.setattr(packs, "build", withdrawn_meanwhile)
    exports.build_export(str(export.pk))
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert export.failure == "the requester may no longer export this: the pack was discarded"
    assert not ExportPart.objects.filter(export=export).exists()
    assert "EXPORT_BUILT" not in [e["name"] for e in ledger()]


def refused(setup: rw.Reporting) -> str:
    """Why the case's pack failed to build (it must have)."""
    export = exports.request_export(Export.Kind.CASE_PACK, case=setup.case, acting_user=setup.world.users["auditor"])
    exports.build_export(str(export.pk))
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert not ExportPart.objects.filter(export=export).exists()
    return export.failure


def test_every_file_shipped_is_the_one_the_ledger_saw_added(setup: rw.Reporting) -> None:
    """A file whose bytes and SHA-256 column were both changed since (a database edit) no longer
    matches the ledger's record of it: the pack is refused, never built around it."""
    from django.db import connection

    from cases.models import Evidence, EvidenceContent

    with connection.cursor() as cursor:  # what someone with the database's keys to the tables could do
        cursor.execute("SET LOCAL session_replication_role = replica")  # the append-only triggers off
    item = Evidence.objects.get(filename="statement.pdf")
    swapped = PDF.replace(b"1.4", b"1.7")
    content = EvidenceContent.objects.get(evidence=item)
    content.data = swapped
    content.save()
    Evidence.objects.filter(pk=item.pk).update(sha256=hashlib.sha256(swapped).hexdigest())
    assert "does not match its SHA-256" in refused(setup)


def test_a_file_the_ledger_never_saw_added_is_never_shipped(setup: rw.Reporting) -> None:
    from cases.models import Evidence, EvidenceContent

    planted = Evidence.objects.create(
        case=setup.case,
        filename="planted.pdf",
        content_type="application/pdf",
        size=len(PDF),
        sha256=hashlib.sha256(PDF).hexdigest(),
        added_by=setup.analyst,
    )
    content = EvidenceContent(evidence=planted)
    content.data = PDF
    content.save()
    assert "has no EVIDENCE_ADDED event in the ledger" in refused(setup)


def test_a_period_pack_brings_each_files_event_even_from_before_the_period(setup: rw.Reporting) -> None:
    from django.db import connection

    from cases.models import Evidence

    now = timezone.now()
    # the file's row says it was added in the period; its ledger event is older than the period
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # the append-only triggers off
    Evidence.objects.update(added_at=now)
    _export, pack = built(
        Export.Kind.PERIOD_PACK, setup, period_start=now - datetime.timedelta(seconds=1),
        period_end=now + datetime.timedelta(days=1),
    )  # fmt: skip
    result = verify_pack(io.BytesIO(pack), public_keys())
    assert result.intact, result.problems
    names = {
        json.loads(base64.b64decode(json.loads(line)["body"]))["name"] for line in members(pack)[EVENTS].splitlines()
    }
    assert "EVIDENCE_ADDED" in names


def test_the_tables_keep_the_heartbeat_going() -> None:
    heard: list[int] = []
    out = io.BytesIO()
    pack = packs.PackWriter(out, timezone.now())
    rows = ({"reference": f"C-{n:06d}"} for n in range(3))
    assert packs.write_table(pack, "cases", ("reference",), rows, heard.append) == 3
    assert heard[:3] == [1, 2, 3]
    assert heard[3:] == [3]
    pack.discard()


def test_a_download_needs_a_fresh_second_factor(setup: rw.Reporting) -> None:
    export, _ = built(Export.Kind.CASE_PACK, setup)
    client = client_for(setup.world.users["auditor"], verified=False)
    response = client.get(reverse("exports:download", args=[export.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:verify"))
    page = client.get(reverse("exports:export", args=[export.pk])).content.decode()
    assert "You will be asked for your second factor first." in page


def test_a_pack_that_expires_before_it_is_read_is_cut_short_not_replaced(setup: rw.Reporting) -> None:
    export, _ = built(Export.Kind.CASE_PACK, setup)
    _, chunks = exports.download(str(export.pk), acting_user=setup.world.users["auditor"])
    assert export.expires_at is not None
    exports.expire_exports(export.expires_at)
    with pytest.raises(exports.ExportWithdrawnError, match="expired while it was being read"):
        b"".join(chunks)


@pytest.mark.django_db(transaction=True)
def test_a_pack_that_expires_while_it_is_read_is_given_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The download reads one snapshot: an expiry that commits once the first part is out does not
    take the other parts from under it."""
    import threading

    from django.db import connection

    monkeypatch.setattr(exports, "PART_SIZE", 1024)  # several parts
    setup = rw.build()
    casework.add_evidence(setup.case, "statement.pdf", PDF + b"%" * 5000 + b"\n", acting_user=setup.analyst)
    integrate_all()
    export, _ = built(Export.Kind.CASE_PACK, setup)
    assert ExportPart.objects.filter(export=export).count() > 2
    _, chunks = exports.download(str(export.pk), acting_user=setup.world.users["auditor"])
    first = next(chunks)

    def expire() -> None:
        try:
            assert export.expires_at is not None
            assert exports.expire_exports(export.expires_at) == 1
        finally:
            connection.close()

    other = threading.Thread(target=expire)
    other.start()
    other.join()
    data = first + b"".join(chunks)  # the expiry committed, but not for the snapshot this download reads
    assert hashlib.sha256(data).hexdigest() == export.sha256
    assert not ExportPart.objects.filter(export=export).exists()  # gone for everyone after it


def test_the_cli_extracts_only_what_it_verified(
    setup: rw.Reporting, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, pack = built(Export.Kind.CASE_PACK, setup)
    (tmp_path / "pack.zip").write_bytes(pack)
    (tmp_path / "keys.json").write_text(json.dumps(published_keys()))
    arguments = [str(tmp_path / "pack.zip"), "--public-key", str(tmp_path / "keys.json")]
    assert verify_main([*arguments, "--extract", str(tmp_path / "out")]) == 0
    files = members(pack)
    written = {
        path.relative_to(tmp_path / "out").as_posix(): path.read_bytes()
        for path in (tmp_path / "out").rglob("*")
        if path.is_file()
    }
    assert written == files
    assert verify_main([*arguments, "--extract", str(tmp_path / "out")]) == 1  # never over other files
    assert "is not empty" in capsys.readouterr().out
    tampered = dict(files)
    _change_a_file(tampered)
    (tmp_path / "pack.zip").write_bytes(rezip(tampered))
    assert verify_main([*arguments, "--extract", str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "bad").exists()  # a pack not intact is never extracted
