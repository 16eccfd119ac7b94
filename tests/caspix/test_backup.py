"""``manage.py backup`` and ``restore``: encrypted, verified, restored into an empty database.

Real PostgreSQL, real pg_dump and pg_restore, the real local keyring. Tests that look for an
integrity incident or need committed rows run as transactional tests (pg_dump and the incident
recorder use connections of their own).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Event
from caspix.crypto import backup
from caspix.crypto.backup import (
    BACKUP_SUFFIX,
    CHUNK_SIZE,
    MANIFEST_SUFFIX,
    TAG_BYTES,
    BackupError,
    Manifest,
    VerificationError,
    derive_keys,
    open_backup,
    open_stream,
    restore_backup,
    seal_stream,
    verify_backup,
    write_backup,
)
from caspix.crypto.keys import KeyName, LocalKeyring, TransitService, key_service
from caspix.crypto.models import IntegrityIncident
from tests.factories import make_user
from tests.openbao import OpenBao

pytestmark = pytest.mark.xdist_group("backup")

ROOT = Path(__file__).resolve().parents[2]
SMALL_CHUNK = 16 * 1024


# --- Databases ------------------------------------------------------------------------------------


def database(name: str) -> dict[str, Any]:
    """The settings' database (the test database during tests) under another name."""
    return {**settings.DATABASES["default"], "NAME": name}


def connect(name: str) -> psycopg.Connection[Any]:
    config = database(name)
    return psycopg.connect(
        dbname=name,
        host=config["HOST"],
        port=config["PORT"],
        user=config["USER"],
        password=config["PASSWORD"] or None,
        autocommit=True,
    )


def url(name: str) -> str:
    config = database(name)
    password = f":{quote(config['PASSWORD'], safe='')}" if config["PASSWORD"] else ""
    return f"postgres://{quote(config['USER'], safe='')}{password}@{config['HOST']}:{config['PORT']}/{name}"


@pytest.fixture(scope="module")
def make_database() -> Iterator[Callable[[], str]]:
    """Creates empty databases (``caspix_drill_<hex>``) and drops them all at the end."""
    created: list[str] = []

    def create() -> str:
        name = f"caspix_drill_{secrets.token_hex(6)}"
        with connect("postgres") as admin:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        created.append(name)
        return name

    yield create
    with connect("postgres") as admin:
        for name in created:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def empty_target(make_database: Callable[[], str]) -> str:
    """One empty database shared by the tests in which a restore must never write."""
    return make_database()


def relations(name: str) -> int:
    with connect(name) as target:
        row = target.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def table_counts(name: str) -> dict[str, int]:
    with connect(name) as target:
        tables = [row[0] for row in target.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        counts = {}
        for table in tables:
            row = target.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(table))).fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts


def backup_incidents() -> int:
    return IntegrityIncident.objects.filter(kind=IntegrityIncident.Kind.BACKUP).count()


# --- Backups --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_backup(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """A backup of the test database in 16 KiB chunks, so it has several.

    Tests using it are marked ``django_db``: pytest-django creates the test database only when
    the session holds such a test.
    """
    return write_backup(tmp_path_factory.mktemp("backup"), "base", chunk_size=SMALL_CHUNK)


def script(directory: Path, body: str) -> Path:
    """A stand-in for a PostgreSQL client tool: answers ``--version``, then runs ``body``."""
    path = directory / f"tool-{secrets.token_hex(4)}"
    path.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo "fake 1.0"; exit 0; fi\n{body}\n')
    path.chmod(0o700)
    return path


def copy_of(manifest: Manifest, directory: Path) -> Path:
    shutil.copy(manifest.backup_path, directory / manifest.backup_path.name)
    return Path(shutil.copy(manifest.path, directory / manifest.path.name))


def header_end(data: bytes | bytearray) -> int:
    return len(backup.MAGIC) + 4 + int.from_bytes(data[len(backup.MAGIC) : len(backup.MAGIC) + 4], "big")


def flip_a_chunk_byte(manifest_path: Path, manifest: Manifest) -> None:
    data = bytearray(manifest_path.with_name(manifest.file).read_bytes())
    data[header_end(data) + SMALL_CHUNK + TAG_BYTES + 100] ^= 0x01
    manifest_path.with_name(manifest.file).write_bytes(bytes(data))


def drop_the_last_chunk(manifest_path: Path, manifest: Manifest) -> None:
    data = manifest_path.with_name(manifest.file).read_bytes()
    sealed = SMALL_CHUNK + TAG_BYTES
    manifest_path.with_name(manifest.file).write_bytes(data[: header_end(data) + (manifest.chunks - 1) * sealed])


def swap_two_chunks(manifest_path: Path, manifest: Manifest) -> None:
    data = manifest_path.with_name(manifest.file).read_bytes()
    start, sealed = header_end(data), SMALL_CHUNK + TAG_BYTES
    first, second = data[start : start + sealed], data[start + sealed : start + 2 * sealed]
    manifest_path.with_name(manifest.file).write_bytes(data[:start] + second + first + data[start + 2 * sealed :])


def edit_the_header(manifest_path: Path, manifest: Manifest) -> None:
    data = manifest_path.with_name(manifest.file).read_bytes()
    manifest_path.with_name(manifest.file).write_bytes(data.replace(b'"cipher":"AES', b'"cipher":"DES', 1))


def edit_header_bytes(old: bytes, new: bytes | Callable[[re.Match[bytes]], bytes]) -> Callable[[Path, Manifest], None]:
    """An edit of the header that keeps its length, so the file still parses up to the header."""

    def tamper(manifest_path: Path, manifest: Manifest) -> None:
        data = manifest_path.with_name(manifest.file).read_bytes()
        end = header_end(data)
        header = re.sub(old, new, data[:end], count=1)
        assert header != data[:end]
        assert len(header) == end
        manifest_path.with_name(manifest.file).write_bytes(header + data[end:])

    return tamper


def replace_the_backup_file(manifest_path: Path, manifest: Manifest) -> None:
    manifest_path.with_name(manifest.file).write_bytes(b"PGDMP not encrypted")


def edit_a_row_count(manifest_path: Path, manifest: Manifest) -> None:
    document = json.loads(manifest_path.read_text())
    document["row_counts"]["accounts_role"] += 1
    manifest_path.write_text(json.dumps(document))


def replace_the_manifest(manifest_path: Path, manifest: Manifest) -> None:
    manifest_path.write_text("not json")


def replace_the_manifest_with_other_json(manifest_path: Path, manifest: Manifest) -> None:
    manifest_path.write_text('{"format": "caspix-backup/1"}')


def make_a_row_count_negative(manifest_path: Path, manifest: Manifest) -> None:
    document = json.loads(manifest_path.read_text())
    document["row_counts"]["accounts_role"] = -1
    manifest_path.write_text(json.dumps(document))


def remove_the_backup_file(manifest_path: Path, manifest: Manifest) -> None:
    manifest_path.with_name(manifest.file).unlink()


# --- The restore drill ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_restores_a_verified_backup_into_an_empty_database(tmp_path: Path, make_database: Callable[[], str]) -> None:
    """Back up, verify, restore into an empty database: the same rows, the ciphertexts open and
    the restored ledger verifies."""
    from tests.crypto_app.models import Person

    make_user(username="alice", roles=["analyst"])
    make_user(username="bob")
    person = Person.objects.create(name="Ada", national_id="AB123456C", born=datetime.date(1980, 2, 29))
    with transaction.atomic():  # the ledger integrates and seals when this commits
        for n in range(5):
            record(EventType.KEY_ROTATED, actor=Actor.system("drill"), object_id=n)
    target = make_database()
    out = io.StringIO()

    call_command("backup", str(tmp_path), stdout=out)
    manifest_path = next(tmp_path.glob("*" + MANIFEST_SUFFIX))
    call_command("restore", str(manifest_path), "--verify-only", stdout=out)
    call_command("restore", str(manifest_path), database_url=url(target), stdout=out)

    manifest = verify_backup(manifest_path)
    assert manifest.row_counts == table_counts(target)
    # The source's ledger has since recorded the backup and the restore, and nothing else changed.
    source = table_counts(settings.DATABASES["default"]["NAME"])
    changed = {table for table in source if source[table] != manifest.row_counts[table]}
    assert changed <= {"audit_event", "audit_tree_node", "audit_checkpoint"}
    assert list(Event.objects.filter(seq__gt=5).values_list("event_type", flat=True)) == [
        EventType.BACKUP_WRITTEN,
        EventType.BACKUP_RESTORED,
    ]
    assert manifest.row_counts["accounts_user"] == 2
    assert manifest.row_counts["crypto_tests_person"] == 1
    assert "counts match the manifest" in out.getvalue()
    assert "local:v" not in out.getvalue()  # no wrapped key in the output

    query = "SELECT id, purpose, wrapped FROM crypto_data_key ORDER BY id"
    with connection.cursor() as cursor:
        cursor.execute(query)
        data_keys = cursor.fetchall()
    with connect(target) as restored:
        assert restored.execute(query).fetchall() == data_keys
    # A fresh process on the restored database alone (its own data-key table, a cold key cache)
    # opens the ciphertexts: the copy stands without the source.
    read = (
        "from tests.crypto_app.models import Person; "
        f"p = Person.objects.get(pk='{person.pk}'); print(p.national_id, p.born.isoformat())"
    )

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CASPIX_ENV": "test", "DATABASE_URL": url(target)}
        env["CASPIX_KEYRING_FILE"] = str(settings.KEYRING_FILE)
        command = [sys.executable, "manage.py", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)

    opened = manage("shell", "--verbosity=0", "-c", read)
    assert opened.stdout.split() == ["AB123456C", "1980-02-29"], opened.stderr
    verified = manage("audit_verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["size"] == json.loads(verified.stdout)["last_checkpoint"] == 5


@pytest.mark.django_db(transaction=True)
def test_it_keeps_no_plaintext_and_only_owner_readable_files(tmp_path: Path) -> None:
    from tests.crypto_app.models import Person

    marker = f"caspix-marker-{secrets.token_hex(8)}"
    Person.objects.create(name=marker, national_id="AB123456C")
    manifest = write_backup(tmp_path, "plain")

    assert sorted(path.name for path in tmp_path.iterdir()) == ["plain" + BACKUP_SUFFIX, "plain" + MANIFEST_SUFFIX]
    for path in (manifest.path, manifest.backup_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    encrypted = manifest.backup_path.read_bytes()
    dump = b"".join(open_backup(manifest.path).dump())
    # The dump names its tables in the clear (its row data is compressed); the backup names nothing.
    assert dump.startswith(b"PGDMP")
    assert b"crypto_tests_person" in dump
    for clear in (marker.encode(), b"PGDMP", b"crypto_tests_person", b"CREATE TABLE"):
        assert clear not in encrypted
    assert hashlib.sha256(dump).hexdigest() == manifest.sha256_plaintext
    assert hashlib.sha256(encrypted).hexdigest() == manifest.sha256_encrypted


# --- Refusals before the database is touched -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        pytest.param(flip_a_chunk_byte, "chunk 1 failed authentication", id="flipped byte"),
        pytest.param(drop_the_last_chunk, "truncated or extended", id="last chunk dropped"),
        pytest.param(swap_two_chunks, "chunk 0 failed authentication", id="chunks swapped"),
        pytest.param(edit_the_header, "chunk 0 failed authentication", id="header edited"),
        pytest.param(edit_a_row_count, "the manifest's HMAC does not verify", id="manifest edited"),
    ],
)
def test_it_refuses_a_tampered_backup_before_touching_the_database(
    tamper: Callable[[Path, Manifest], None], message: str, small_backup: Manifest, tmp_path: Path, empty_target: str
) -> None:
    assert small_backup.chunks >= 3
    manifest_path = copy_of(small_backup, tmp_path)
    tamper(manifest_path, small_backup)

    with pytest.raises(VerificationError, match=message) as refused:
        restore_backup(manifest_path, database(empty_target))

    assert "integrity incident" in str(refused.value)
    assert backup_incidents() == 1
    assert relations(empty_target) == 0


MALFORMED: list[tuple[Callable[[Path, Manifest], None], str]] = [
    (edit_header_bytes(rb'"created":"2', b'"created":"1'), "belongs to another backup than the manifest"),
    (edit_header_bytes(rb'"chunk_size":16384', b'"chunk_size":16385'), "chunk size differs from the manifest's"),
    (edit_header_bytes(rb'"chunk_size":16384', b'"chunk_size":-1638'), "impossible chunk size"),
    (edit_header_bytes(rb'\{"backup_id"', b'["backup_id"'), "header is unreadable"),
    (
        edit_header_bytes(rb'"wrapped_key":"[^"]+"', lambda m: b'"wrapped_key":' + b"1" * (len(m[0]) - 14)),
        "no usable wrapped key",
    ),
    (replace_the_backup_file, "is not a Caspix backup"),
    (remove_the_backup_file, "is missing"),
    (replace_the_manifest, "the manifest cannot be read"),
    (replace_the_manifest_with_other_json, "is not a caspix-backup/1 manifest"),
    (make_a_row_count_negative, "a field of the wrong type or form"),
]


@pytest.mark.django_db(transaction=True)
def test_it_refuses_malformed_backups_and_manifests(small_backup: Manifest, tmp_path: Path) -> None:
    for number, (tamper, message) in enumerate(MALFORMED, start=1):
        directory = tmp_path / str(number)
        directory.mkdir()
        manifest_path = copy_of(small_backup, directory)
        tamper(manifest_path, small_backup)
        with pytest.raises(VerificationError, match=message):
            verify_backup(manifest_path)
        assert backup_incidents() == number
    with pytest.raises(VerificationError, match="does not exist"):
        verify_backup(tmp_path / "nothing.manifest.json")


def resign(manifest_path: Path, **changes: object) -> None:
    """Edit the manifest as only a holder of the backup key could: with a valid HMAC."""
    document = json.loads(manifest_path.read_text())
    header = manifest_path.with_name(document["file"]).read_bytes()
    wrapped = json.loads(header[len(backup.MAGIC) + 4 : header_end(header)])["wrapped_key"]
    _, manifest_key = derive_keys(key_service().unwrap(KeyName.BACKUP, wrapped))
    document.update(changes)
    del document["hmac_sha256"]
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    document["hmac_sha256"] = hmac.new(manifest_key, canonical, hashlib.sha256).hexdigest()
    manifest_path.write_text(json.dumps(document))


@pytest.mark.django_db(transaction=True)
def test_it_checks_the_file_against_a_manifest_with_a_valid_hmac(small_backup: Manifest, tmp_path: Path) -> None:
    manifest_path = copy_of(small_backup, tmp_path)
    resign(manifest_path)
    assert verify_backup(manifest_path) == small_backup  # the test signs as the writer does

    disagreements: list[tuple[dict[str, object], str]] = [
        ({"sha256_encrypted": "0" * 64}, "the backup file's SHA-256 differs"),
        ({"chunks": 1}, "chunk count or size differs"),
        ({"sha256_plaintext": "0" * 64}, "the decrypted stream's SHA-256 differs"),
    ]
    for changes, message in disagreements:
        manifest_path = copy_of(small_backup, tmp_path)
        resign(manifest_path, **changes)
        with pytest.raises(VerificationError, match=message):
            verify_backup(manifest_path)
    assert backup_incidents() == 3


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_backup_made_under_another_keyring(tmp_path: Path, empty_target: str) -> None:
    foreign = LocalKeyring(tmp_path / "foreign-keyring.json")
    manifest = write_backup(tmp_path, "foreign", service=foreign)
    assert verify_backup(manifest.path, service=foreign) == manifest

    with pytest.raises(CommandError, match="the backup key does not unwrap"):
        call_command("restore", str(manifest.path), database_url=url(empty_target))

    assert backup_incidents() == 1
    assert relations(empty_target) == 0


@pytest.mark.django_db(transaction=True)
def test_it_notices_a_file_changed_after_verification(small_backup: Manifest, tmp_path: Path) -> None:
    manifest_path = copy_of(small_backup, tmp_path)
    verified = open_backup(manifest_path)
    edit_the_header(manifest_path, small_backup)

    with pytest.raises(VerificationError, match="changed after it was verified"):
        list(verified.dump())
    assert backup_incidents() == 1


@pytest.mark.django_db
def test_it_refuses_a_database_that_is_not_empty(
    small_backup: Manifest, tmp_path: Path, make_database: Callable[[], str]
) -> None:
    target = make_database()
    with connect(target) as occupied:
        occupied.execute("CREATE TABLE kept (note text)")
        occupied.execute("INSERT INTO kept VALUES ('untouched')")

    with pytest.raises(BackupError, match="restore goes into an empty database") as refused:
        restore_backup(copy_of(small_backup, tmp_path), database(target))
    assert not isinstance(refused.value, VerificationError)
    with pytest.raises(CommandError, match="restore goes into an empty database"):
        call_command("restore", str(small_backup.path))  # the settings' database, full of tables

    with connect(target) as occupied:
        assert occupied.execute("SELECT note FROM kept").fetchall() == [("untouched",)]
    assert table_counts(target) == {"kept": 1}


@pytest.mark.django_db(transaction=True)
def test_it_reports_restored_row_counts_that_differ(
    small_backup: Manifest, tmp_path: Path, make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pg_restore that swallows the archive and restores nothing.
    monkeypatch.setattr(backup, "PG_RESTORE", str(script(tmp_path, "cat >/dev/null\nexit 0")))

    with pytest.raises(VerificationError, match="the restored row counts differ from the manifest"):
        restore_backup(small_backup.path, database(make_database()))
    assert backup_incidents() == 1


@pytest.mark.django_db
def test_it_reports_a_failing_pg_restore(
    small_backup: Manifest, tmp_path: Path, empty_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = "head -c 10 >/dev/null\necho 'pg_restore: error: could not execute query' >&2\nexit 1"
    monkeypatch.setattr(backup, "PG_RESTORE", str(script(tmp_path, failing)))

    with pytest.raises(BackupError, match=r"pg_restore failed \(exit 1\): pg_restore: error: could not execute"):
        restore_backup(small_backup.path, database(empty_target))
    assert relations(empty_target) == 0


def test_it_stops_pg_restore_when_the_stream_fails_or_it_stops_reading(
    tmp_path: Path, empty_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup, "PG_RESTORE", str(script(tmp_path, "exec 0<&-\necho 'gave up' >&2\nexit 1")))
    target = backup._postgres(database(empty_target), "restore")
    with pytest.raises(BackupError, match=r"pg_restore failed \(exit 1\): gave up"):
        backup._pg_restore(target, iter([b"x" * CHUNK_SIZE] * 4))  # more than a pipe holds

    def failing() -> Iterator[bytes]:
        yield b"PGDMP"
        raise VerificationError("chunk 1 failed authentication")

    monkeypatch.setattr(backup, "PG_RESTORE", str(script(tmp_path, "cat >/dev/null")))
    with pytest.raises(VerificationError, match="chunk 1 failed authentication"):
        backup._pg_restore(target, failing())


# --- Backup failures ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_removes_everything_when_pg_dump_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    failing = "head -c 300000 /dev/urandom\necho 'pg_dump: error: query failed: simulated' >&2\nexit 1"
    monkeypatch.setattr(backup, "PG_DUMP", str(script(tmp_path, failing)))

    with pytest.raises(BackupError, match=r"pg_dump failed \(exit 1\).*pg_dump: error: query failed: simulated"):
        write_backup(out, "failed", chunk_size=SMALL_CHUNK)
    assert list(out.iterdir()) == []


@pytest.mark.django_db
def test_it_stops_pg_dump_and_removes_everything_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup, "seal_stream", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        write_backup(tmp_path, "full")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_it_gives_pg_dump_the_password_in_its_environment_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    telling = 'echo "password=$PGPASSWORD" >&2\necho "arguments=$*" >&2\nexit 1'
    monkeypatch.setattr(backup, "PG_DUMP", str(script(tmp_path, telling)))
    with pytest.raises(BackupError) as failed:
        write_backup(out, database={**database(settings.DATABASES["default"]["NAME"]), "PASSWORD": "s3cret pw"})
    assert "password=s3cret pw" in str(failed.value)
    assert "arguments=--format=custom --no-password --snapshot=" in str(failed.value)
    assert "s3cret" not in str(failed.value).split("arguments=")[1]
    assert list(out.iterdir()) == []


@pytest.mark.django_db
def test_it_refuses_a_database_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r'database "caspix_missing_[0-9a-f]+" does not exist'):
        write_backup(tmp_path, database=database(f"caspix_missing_{secrets.token_hex(4)}"))
    assert list(tmp_path.iterdir()) == []


def test_it_writes_nothing_when_the_key_service_is_down(tmp_path: Path) -> None:
    broken = tmp_path / "keyring.json"
    broken.write_text("{not a keyring")
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(BackupError, match="the key service cannot issue a backup key, nothing was written"):
        write_backup(out, service=LocalKeyring(broken))
    assert list(out.iterdir()) == []


@pytest.mark.django_db
def test_it_says_so_when_the_key_service_is_down_at_restore(small_backup: Manifest, tmp_path: Path) -> None:
    broken = tmp_path / "keyring.json"
    broken.write_text("{not a keyring")

    with pytest.raises(BackupError, match="the key service cannot unwrap the backup key") as refused:
        verify_backup(small_backup.path, service=LocalKeyring(broken))
    assert not isinstance(refused.value, VerificationError)


def test_it_refuses_sqlite_with_a_clear_message(tmp_path: Path) -> None:
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "caspix.sqlite3")}
    with pytest.raises(BackupError, match="backup needs PostgreSQL; the embedded SQLite demo"):
        write_backup(tmp_path, database=sqlite)
    with pytest.raises(CommandError, match="restore needs PostgreSQL; the embedded SQLite demo"):
        call_command("restore", str(tmp_path / "x.manifest.json"), database_url=f"sqlite:///{tmp_path}/db.sqlite3")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_it_refuses_unusable_destinations(small_backup: Manifest, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("backup", str(tmp_path / "missing" / "nightly"))
    with pytest.raises(CommandError, match="--name needs DESTINATION to be a directory"):
        call_command("backup", str(tmp_path / "nightly"), name="other")
    with pytest.raises(BackupError, match="not a usable backup name"):
        write_backup(tmp_path, "../escape")
    with pytest.raises(BackupError, match="already exists"):
        write_backup(small_backup.path.parent, "base")
    with pytest.raises(BackupError, match="the chunk size must be between"):
        write_backup(tmp_path, chunk_size=0)
    with pytest.raises(BackupError, match="needs a database name"):
        write_backup(tmp_path, database=database(""))


def test_it_needs_the_postgresql_client_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup, "PG_DUMP", "caspix-no-such-pg_dump")
    with pytest.raises(BackupError, match="caspix-no-such-pg_dump is not installed"):
        write_backup(tmp_path)
    broken = tmp_path / "pg_dump"
    broken.write_text("#!/bin/sh\necho 'no libpq' >&2\nexit 127\n")
    broken.chmod(0o700)
    monkeypatch.setattr(backup, "PG_DUMP", str(broken))
    with pytest.raises(BackupError, match="--version failed: no libpq"):
        write_backup(tmp_path)
    assert list(tmp_path.iterdir()) == [broken]


@pytest.mark.django_db
def test_it_backs_up_through_transit_with_the_runtime_policy(
    openbao: OpenBao, small_backup: Manifest, tmp_path: Path
) -> None:
    """The runtime token of deploy/openbao/ makes and unwraps backup keys; it creates none."""
    prefix = f"b{secrets.token_hex(4)}"
    token = openbao.token_under(prefix, "runtime")
    config = openbao.config(prefix=prefix)
    TransitService(config).ensure_keys()  # the operator, at deploy
    runtime = TransitService({**config, "TOKEN": token})

    manifest = write_backup(tmp_path, "transit", service=runtime, chunk_size=SMALL_CHUNK)

    header = manifest.backup_path.read_bytes()[:1000]
    assert b'"key_backend":"transit"' in header
    assert b'"wrapped_key":"vault:v1:' in header
    assert verify_backup(manifest.path, service=runtime) == manifest
    assert manifest.row_counts == small_backup.row_counts


@pytest.mark.django_db
def test_it_writes_to_a_path_prefix(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("backup", str(tmp_path / "nightly"), stdout=out)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["nightly" + BACKUP_SUFFIX, "nightly" + MANIFEST_SUFFIX]
    assert "MB/s" in out.getvalue()


# --- The chunk layer, without PostgreSQL ----------------------------------------------------------


def sealed(data: bytes, chunk_size: int, piece: int | None = None) -> tuple[bytes, AESGCM]:
    cipher, _ = derive_keys(secrets.token_bytes(32))
    source, sink = io.BytesIO(data), io.BytesIO()

    def read(size: int) -> bytes:  # a pipe: it may return less than asked for
        return source.read(min(size, piece) if piece else size)

    summary = seal_stream(read, sink.write, cipher, b"aad", chunk_size)
    assert summary.plaintext_bytes == len(data)
    assert summary.sha256_plaintext == hashlib.sha256(data).hexdigest()
    return sink.getvalue(), cipher


def opened(stream: bytes, cipher: AESGCM, chunk_size: int, aad: bytes = b"aad") -> bytes:
    return b"".join(open_stream(io.BytesIO(stream).read, cipher, aad, chunk_size))


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE])
def test_it_round_trips_edge_sizes_in_1_mib_chunks(size: int) -> None:
    data = secrets.token_bytes(size)
    stream, cipher = sealed(data, CHUNK_SIZE, piece=65536)  # as a pipe gives it
    assert len(stream) == size + TAG_BYTES * max(1, math.ceil(size / CHUNK_SIZE))
    assert opened(stream, cipher, CHUNK_SIZE) == data


@given(data=st.binary(max_size=300), chunk_size=st.integers(1, 64), piece=st.none() | st.integers(1, 7))
def test_it_round_trips_any_stream(data: bytes, chunk_size: int, piece: int | None) -> None:
    stream, cipher = sealed(data, chunk_size, piece)
    assert opened(stream, cipher, chunk_size) == data


def test_it_detects_truncation_appending_reordering_and_moving() -> None:
    chunk = 64
    stream, cipher = sealed(secrets.token_bytes(3 * chunk), chunk)
    sealed_size = chunk + TAG_BYTES
    chunks = [stream[i : i + sealed_size] for i in range(0, len(stream), sealed_size)]

    with pytest.raises(VerificationError, match="the stream ends at chunk 1, which is not the final chunk"):
        opened(b"".join(chunks[:-1]), cipher, chunk)
    with pytest.raises(VerificationError, match="chunk 2 is the final chunk but more data follows"):
        opened(stream + b"appended", cipher, chunk)
    with pytest.raises(VerificationError, match="chunk 2 failed authentication"):
        opened(stream[:-1], cipher, chunk)
    with pytest.raises(VerificationError, match="chunk 0 failed authentication"):
        opened(b"".join([chunks[1], chunks[0], *chunks[2:]]), cipher, chunk)
    with pytest.raises(VerificationError, match="chunk 0 failed authentication"):
        opened(stream, cipher, chunk, aad=b"another backup's header")
    with pytest.raises(VerificationError, match="chunk 0 failed authentication"):
        opened(b"", cipher, chunk)


def test_it_derives_the_chunk_and_manifest_keys_apart() -> None:
    data_key = secrets.token_bytes(32)
    cipher, manifest_key = derive_keys(data_key)
    assert len(manifest_key) == 32
    assert manifest_key != data_key
    nonce = b"\x00" * 12
    assert cipher.encrypt(nonce, b"", None) != derive_keys(secrets.token_bytes(32))[0].encrypt(nonce, b"", None)
    assert derive_keys(data_key)[1] == manifest_key
