"""Encrypted, verifiable database backups: ``manage.py backup`` and ``manage.py restore``.

A backup is two files side by side, ``<name>.caspix-backup`` and ``<name>.manifest.json``, both
created with mode 0600 under a temporary name, fsync'd, and renamed into place only when complete
(the manifest last, so a manifest names a finished backup). The manifest names the backup file
and authenticates that name: the pair is moved together and keeps its names.

**The backup file** is ``pg_dump --format=custom`` output, streamed from pg_dump's stdout and
encrypted in memory (no plaintext byte of the dump ever reaches the disk)::

    magic "CASPIXBK" (8 bytes) | header length (4 bytes, big-endian) | header (canonical JSON)
    | chunk 0 | chunk 1 | … | chunk n-1

The header holds the format (``caspix-backup/1``), the backup id (uuid4), the creation time
(UTC), the chunk size, the key backend and the backup data key wrapped by the key service's
``backup`` key-encryption key. The data key is fresh for every backup; two keys are derived from
it with HKDF-SHA256 under distinct info labels: the chunk key and the manifest key.

Chunks follow the STREAM construction with AES-256-GCM. The plaintext is cut into chunks of
``chunk_size`` bytes (1 MiB); each chunk is sealed to ``ciphertext ‖ 16-byte tag`` with

* nonce = chunk counter (11 bytes, big-endian, from 0) ‖ final flag (1 byte: 1 on the last chunk,
  0 elsewhere) — never reused, because the key is never reused;
* associated data = SHA-256 of the whole header prefix (magic, length and header), so a chunk
  cannot be moved into another backup and the header cannot be edited.

Every chunk but the last holds exactly ``chunk_size`` bytes; the last holds 1 to ``chunk_size``
bytes (0 only when the dump is empty, as the only chunk). A reordered chunk fails on its counter,
a dropped tail on the final flag (the new last chunk was sealed as not final), appended data on
the final flag of the old last chunk.

**The manifest** is JSON: format, backup id, created, file name, database name, server and
pg_dump versions, chunk size and count, plaintext and encrypted sizes, the SHA-256 of the
encrypted file and of the plaintext dump, the row count of every table of the ``public`` schema,
and ``hmac_sha256``: HMAC-SHA256 under the manifest key over the canonical JSON (sorted keys, no
whitespace, ASCII) of every other field, so an edit to the manifest is detected once the data key
is unwrapped. The row counts are taken in the very snapshot pg_dump dumps: a REPEATABLE READ
transaction exports its snapshot, counts the tables and stays open while ``pg_dump --snapshot``
runs in it.

**Restore** verifies everything before it connects to the target database: the manifest parses,
the header matches it, the data key unwraps, the manifest's HMAC verifies, the file has the size
and SHA-256 the manifest records, every chunk authenticates with the final flag on the last one
only, and the decrypted stream has the recorded size and SHA-256. A failure is a
:class:`VerificationError` and an integrity incident. Only then is the target checked to be
empty and the stream decrypted a second time into ``pg_restore --single-transaction``; the last
chunk is held back until the whole second pass has matched the manifest again, so a file changed
between the passes is never committed. The restored row counts are then compared with the
manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from psycopg import sql
from psycopg.conninfo import make_conninfo

from caspix.crypto import incidents
from caspix.crypto.keys import IntegrityError, KeyName, KeyService, KeyServiceError, key_service
from caspix.crypto.models import IntegrityIncident
from caspix.durable import fsync_directory

FORMAT = "caspix-backup/1"
MAGIC = b"CASPIXBK"
BACKUP_SUFFIX = ".caspix-backup"
MANIFEST_SUFFIX = ".manifest.json"
CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
MAX_HEADER_BYTES = 64 << 10
TAG_BYTES = 16
COUNTER_BYTES = 11
#: The tools, found on ``PATH``.
PG_DUMP = "pg_dump"
PG_RESTORE = "pg_restore"

_LENGTH = struct.Struct(">I")
_CHUNK_KEY_INFO = b"caspix-backup/1 chunk key"
_MANIFEST_KEY_INFO = b"caspix-backup/1 manifest key"
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")
_HEADER_FIELDS = {"format", "backup_id", "created", "chunk_size", "cipher", "key_name", "key_backend", "wrapped_key"}
#: libpq connection parameters that may appear in ``DATABASES[...]["OPTIONS"]``.
_LIBPQ_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
    "options",
)
#: pg_restore's messages can quote row values: only their end is shown.
_STDERR_LIMIT = 2000


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why and names no secret."""


class VerificationError(BackupError):
    """A backup failed verification: tampered, truncated, reordered, foreign or edited."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds, authenticated by an HMAC under a key derived from its data key."""

    backup_id: str
    created: str
    file: str
    database: str
    server_version: str
    pg_dump_version: str
    chunk_size: int
    chunks: int
    plaintext_bytes: int
    encrypted_bytes: int
    sha256_plaintext: str
    sha256_encrypted: str
    row_counts: dict[str, int]
    path: Path = field(compare=False)

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.file)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())

    def body(self) -> dict[str, Any]:
        """Every field the HMAC covers (all but the HMAC itself)."""
        body = asdict(self)
        del body["path"]
        return {"format": FORMAT, **body}


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    database: str
    row_counts: dict[str, int]
    verify_seconds: float
    restore_seconds: float


@dataclass(frozen=True)
class StreamSummary:
    chunks: int
    plaintext_bytes: int
    sha256_plaintext: str


# --- The chunk layer ------------------------------------------------------------------------------


def derive_keys(data_key: bytes) -> tuple[AESGCM, bytes]:
    """The chunk cipher and the manifest HMAC key, derived apart from one backup data key."""
    chunk_key, manifest_key = (
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(data_key)
        for info in (_CHUNK_KEY_INFO, _MANIFEST_KEY_INFO)
    )
    return AESGCM(chunk_key), manifest_key


def _nonce(counter: int, final: bool) -> bytes:
    return counter.to_bytes(COUNTER_BYTES, "big") + (b"\x01" if final else b"\x00")


def _read_full(read: Callable[[int], bytes], size: int) -> bytes:
    """``size`` bytes, or fewer only at the end of the stream."""
    data = read(size)
    if len(data) in (0, size):
        return data
    parts = [data]
    missing = size - len(data)
    while missing:
        more = read(missing)
        if not more:
            break
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


def seal_stream(
    read: Callable[[int], bytes], write: Callable[[bytes], object], cipher: AESGCM, aad: bytes, chunk_size: int
) -> StreamSummary:
    """Encrypt everything ``read`` gives, chunk by chunk, flagging the last chunk as final."""
    digest = hashlib.sha256()
    counter = size = 0
    pending = _read_full(read, chunk_size)
    while True:
        following = _read_full(read, chunk_size) if len(pending) == chunk_size else b""
        final = not following
        digest.update(pending)
        write(cipher.encrypt(_nonce(counter, final), pending, aad))
        size += len(pending)
        counter += 1
        if final:
            return StreamSummary(counter, size, digest.hexdigest())
        pending = following


def open_stream(read: Callable[[int], bytes], cipher: AESGCM, aad: bytes, chunk_size: int) -> Iterator[bytes]:
    """Decrypt a sealed stream chunk by chunk; raise :class:`VerificationError` at the first fault.

    Each chunk is yielded only once it has authenticated, so a consumer never sees a byte that
    was not sealed at that position of that backup.
    """
    sealed_size = chunk_size + TAG_BYTES
    current = _read_full(read, sealed_size)
    counter = 0
    while True:
        following = _read_full(read, sealed_size) if len(current) == sealed_size else b""
        last = not following
        try:
            plaintext = cipher.decrypt(_nonce(counter, last), current, aad)
        except InvalidTag:
            raise VerificationError(_diagnose(cipher, current, counter, last, aad)) from None
        yield plaintext
        if last:
            return
        counter += 1
        current = following


def _diagnose(cipher: AESGCM, sealed: bytes, counter: int, last: bool, aad: bytes) -> str:
    """Say which fault a chunk that failed to authenticate shows, where that can be told."""
    with contextlib.suppress(InvalidTag):
        cipher.decrypt(_nonce(counter, not last), sealed, aad)
        if last:
            return f"the stream ends at chunk {counter}, which is not the final chunk: the file is truncated"
        return f"chunk {counter} is the final chunk but more data follows it: data was appended"
    return f"chunk {counter} failed authentication: tampered, reordered or from another backup"


# --- Backup ---------------------------------------------------------------------------------------


def write_backup(
    out_dir: Path | str,
    name: str | None = None,
    *,
    database: Mapping[str, Any] | None = None,
    service: KeyService | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Manifest:
    """Dump ``database`` (default: the settings' database) into ``out_dir``, encrypted.

    Raises :class:`BackupError` (the key service cannot issue a key, pg_dump fails, the
    database is not PostgreSQL, the files exist); nothing is left behind when it does.
    """
    target = _postgres(database, "backup")
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise BackupError(f"{out_dir} is not a directory")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise BackupError(f"the chunk size must be between 1 and {MAX_CHUNK_SIZE} bytes")
    backup_id = uuid.uuid4()
    now = datetime.now(tz=UTC)
    created = now.isoformat(timespec="seconds")
    name = name or f"caspix-{now:%Y%m%dT%H%M%SZ}-{backup_id.hex[:8]}"
    if not _NAME.match(name):
        raise BackupError(f"{name!r} is not a usable backup name (letters, digits, '.', '_' and '-')")
    backup_path, manifest_path = out_dir / (name + BACKUP_SUFFIX), out_dir / (name + MANIFEST_SUFFIX)
    for path in (backup_path, manifest_path):
        if path.exists():
            raise BackupError(f"{path} already exists")
    pg_dump_version = _tool_version(PG_DUMP)

    service = service or key_service()
    try:
        # No ensure_keys(): creating keys is the operator's (`manage.py ensure_keys`); the runtime
        # policy may only make and unwrap backup keys, and the local keyring provisions itself.
        data_key = service.generate_data_key(KeyName.BACKUP)
    except KeyServiceError as exc:
        raise BackupError(f"the key service cannot issue a backup key, nothing was written: {exc}") from None
    cipher, manifest_key = derive_keys(data_key.plaintext)
    header = {
        "format": FORMAT,
        "backup_id": str(backup_id),
        "created": created,
        "chunk_size": chunk_size,
        "cipher": "AES-256-GCM STREAM, keys by HKDF-SHA256",
        "key_name": str(KeyName.BACKUP),
        "key_backend": service.name,
        "wrapped_key": data_key.wrapped,
    }
    header_bytes = _header_bytes(header)

    with contextlib.ExitStack() as cleanup:
        backup_file = cleanup.enter_context(_StagedFile(backup_path))
        encrypted = hashlib.sha256()

        def write(data: bytes) -> None:
            encrypted.update(data)
            backup_file.handle.write(data)

        write(header_bytes)
        with _snapshot(target) as (snapshot, row_counts, server_version):
            summary = _dump(target, snapshot, write, cipher, hashlib.sha256(header_bytes).digest(), chunk_size)
        manifest = Manifest(
            backup_id=str(backup_id),
            created=created,
            file=backup_path.name,
            database=target.name,
            server_version=server_version,
            pg_dump_version=pg_dump_version,
            chunk_size=chunk_size,
            chunks=summary.chunks,
            plaintext_bytes=summary.plaintext_bytes,
            encrypted_bytes=backup_file.handle.tell(),
            sha256_plaintext=summary.sha256_plaintext,
            sha256_encrypted=encrypted.hexdigest(),
            row_counts=row_counts,
            path=manifest_path,
        )
        manifest_file = cleanup.enter_context(_StagedFile(manifest_path))
        document = {**manifest.body(), "hmac_sha256": _manifest_hmac(manifest_key, manifest)}
        manifest_file.handle.write(json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
        backup_file.commit()
        try:
            manifest_file.commit()
        except BaseException:
            backup_path.unlink(missing_ok=True)
            raise
        fsync_directory(out_dir)
    return manifest


def _dump(
    target: _Database,
    snapshot: str,
    write: Callable[[bytes], object],
    cipher: AESGCM,
    aad: bytes,
    chunk_size: int,
) -> StreamSummary:
    command = [PG_DUMP, "--format=custom", "--no-password", f"--snapshot={snapshot}", f"--dbname={target.conninfo}"]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(  # noqa: S603 (fixed tool, no shell; the password is in the environment)
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=target.environment()
        )
        try:
            summary = seal_stream(_pipe(process.stdout).read, write, cipher, aad, chunk_size)
        except BaseException:
            process.kill()
            raise
        finally:
            _pipe(process.stdout).close()
            returncode = process.wait()
        if returncode != 0:
            raise BackupError(f"pg_dump failed (exit {returncode}); nothing was kept: {_tail(errors)}")
    return summary


# --- Verification -------------------------------------------------------------------------------


class VerifiedBackup:
    """A backup whose every byte has verified; :meth:`dump` decrypts it once more, re-checked."""

    def __init__(self, manifest: Manifest, header_bytes: bytes, cipher: AESGCM) -> None:
        self.manifest = manifest
        self._header_bytes = header_bytes
        self._cipher = cipher

    def dump(self) -> Iterator[bytes]:
        """The pg_dump archive, chunk by chunk.

        The last chunk comes out only after the whole stream matched the manifest's SHA-256
        again, so a consumer that commits at the end never commits a file that changed since it
        was verified.
        """
        with _incident_on_failure(self.manifest.path), self.manifest.backup_path.open("rb") as handle:
            if handle.read(len(self._header_bytes)) != self._header_bytes:
                raise VerificationError("the backup file changed after it was verified")
            digest = hashlib.sha256()
            held: bytes | None = None
            aad = hashlib.sha256(self._header_bytes).digest()
            for chunk in open_stream(handle.read, self._cipher, aad, self.manifest.chunk_size):
                digest.update(chunk)
                if held is not None:
                    yield held
                held = chunk
            if digest.hexdigest() != self.manifest.sha256_plaintext:
                raise VerificationError("the backup file changed after it was verified")
            if held is not None:
                yield held


def verify_backup(manifest_path: Path | str, *, service: KeyService | None = None) -> Manifest:
    """Verify a backup end to end without touching any database; return its manifest.

    Raises :class:`VerificationError` (and records an integrity incident) when anything fails,
    or :class:`BackupError` when the key service cannot answer.
    """
    return open_backup(manifest_path, service=service).manifest


def open_backup(manifest_path: Path | str, *, service: KeyService | None = None) -> VerifiedBackup:
    """Verify a backup as :func:`verify_backup` does and return it ready to decrypt again."""
    manifest_path = Path(manifest_path)
    with _incident_on_failure(manifest_path):
        return _verify(manifest_path, service or key_service())


def _verify(manifest_path: Path, service: KeyService) -> VerifiedBackup:
    manifest, claimed_hmac = _read_manifest(manifest_path)
    try:
        handle = manifest.backup_path.open("rb")
    except FileNotFoundError:
        raise VerificationError(f"the backup file {manifest.file} is missing next to the manifest") from None
    with handle:
        header_bytes, header = _read_header(handle)
        if header["backup_id"] != manifest.backup_id or header["created"] != manifest.created:
            raise VerificationError("the backup file belongs to another backup than the manifest")
        if header["chunk_size"] != manifest.chunk_size:
            raise VerificationError("the backup file's chunk size differs from the manifest's")
        cipher, manifest_key = _unlock(header, service)
        if not hmac.compare_digest(_manifest_hmac(manifest_key, manifest), claimed_hmac):
            raise VerificationError("the manifest's HMAC does not verify: the manifest was edited")
        size = os.fstat(handle.fileno()).st_size
        if size != manifest.encrypted_bytes:
            raise VerificationError(
                f"the backup file is {size} bytes, the manifest says {manifest.encrypted_bytes}: truncated or extended"
            )
        encrypted, plaintext = hashlib.sha256(header_bytes), hashlib.sha256()

        def read(size: int) -> bytes:
            data = handle.read(size)
            encrypted.update(data)
            return data

        chunks = plaintext_bytes = 0
        for chunk in open_stream(read, cipher, hashlib.sha256(header_bytes).digest(), manifest.chunk_size):
            plaintext.update(chunk)
            chunks += 1
            plaintext_bytes += len(chunk)
    if encrypted.hexdigest() != manifest.sha256_encrypted:
        raise VerificationError("the backup file's SHA-256 differs from the manifest's")
    if (chunks, plaintext_bytes) != (manifest.chunks, manifest.plaintext_bytes):
        raise VerificationError("the decrypted stream's chunk count or size differs from the manifest's")
    if plaintext.hexdigest() != manifest.sha256_plaintext:
        raise VerificationError("the decrypted stream's SHA-256 differs from the manifest's")
    return VerifiedBackup(manifest, header_bytes, cipher)


def _unlock(header: dict[str, Any], service: KeyService) -> tuple[AESGCM, bytes]:
    try:
        data_key = service.unwrap(KeyName.BACKUP, header["wrapped_key"])
    except IntegrityError:
        raise VerificationError(
            f"the backup key does not unwrap with this installation's key service ({service.name}; "
            f"the backup names {header['key_backend']}): a foreign or tampered backup"
        ) from None
    except KeyServiceError as exc:
        raise BackupError(f"the key service cannot unwrap the backup key: {exc}") from None
    return derive_keys(data_key)


@contextlib.contextmanager
def _incident_on_failure(manifest_path: Path) -> Iterator[None]:
    try:
        yield
    except VerificationError as exc:
        incident = incidents.record(IntegrityIncident.Kind.BACKUP, detail=f"{manifest_path.name}: {exc}")
        raise VerificationError(f"{exc} (integrity incident {incident})") from None


def _read_manifest(path: Path) -> tuple[Manifest, str]:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise VerificationError(f"the manifest {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise VerificationError(f"the manifest cannot be read: {type(exc).__name__}") from None
    expected = {item.name for item in fields(Manifest)} - {"path"} | {"format", "hmac_sha256"}
    if not isinstance(document, dict) or document.get("format") != FORMAT or set(document) != expected:
        raise VerificationError(f"the manifest is not a {FORMAT} manifest")
    strings = ("backup_id", "created", "file", "database", "server_version", "pg_dump_version")
    digests = ("sha256_plaintext", "sha256_encrypted", "hmac_sha256")
    sizes = ("chunk_size", "chunks", "plaintext_bytes", "encrypted_bytes")
    counts = document["row_counts"]
    if (
        not all(isinstance(document[key], str) for key in strings)
        or not all(_is_count(document[key]) for key in sizes)
        or not isinstance(counts, dict)
        or not all(_is_count(count) for count in counts.values())
        or not all(isinstance(document[key], str) and _SHA256.match(document[key]) for key in digests)
        or not _NAME.match(document["file"])
        or not document["file"].endswith(BACKUP_SUFFIX)
    ):
        raise VerificationError("the manifest has a field of the wrong type or form")
    claimed = document.pop("hmac_sha256")
    del document["format"]
    return Manifest(**document, path=path), claimed


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_header(handle: IO[bytes]) -> tuple[bytes, dict[str, Any]]:
    prefix = handle.read(len(MAGIC) + _LENGTH.size)
    if len(prefix) < len(MAGIC) + _LENGTH.size or not prefix.startswith(MAGIC):
        raise VerificationError("the backup file is not a Caspix backup")
    (length,) = _LENGTH.unpack_from(prefix, len(MAGIC))
    body = handle.read(length) if length <= MAX_HEADER_BYTES else b""
    try:
        header = json.loads(body) if len(body) == length else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or set(header) != _HEADER_FIELDS or header["format"] != FORMAT:
        raise VerificationError("the backup file's header is unreadable")
    if not isinstance(header["chunk_size"], int) or not 1 <= header["chunk_size"] <= MAX_CHUNK_SIZE:
        raise VerificationError("the backup file's header has an impossible chunk size")
    if not isinstance(header["wrapped_key"], str):
        raise VerificationError("the backup file's header has no usable wrapped key")
    return prefix + body, header


# --- Restore --------------------------------------------------------------------------------------


def restore_backup(
    manifest_path: Path | str, database: Mapping[str, Any] | None = None, *, service: KeyService | None = None
) -> RestoreReport:
    """Verify a backup, then restore it into ``database`` (default: the settings' database).

    The target must be empty (no relation in its ``public`` schema); it is not connected to
    before the backup has verified, and written to only by one ``pg_restore`` transaction.
    """
    target = _postgres(database, "restore")
    started = time.monotonic()
    verified = open_backup(manifest_path, service=service)
    verify_seconds = time.monotonic() - started
    manifest = verified.manifest
    with _connect(target) as connection:
        relations = connection.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        ).fetchone()
    if relations is None or relations[0]:
        count = 0 if relations is None else relations[0]
        raise BackupError(
            f"restore goes into an empty database: {target.name} already has {count} relations in its public schema"
        )
    _pg_restore(target, verified.dump())
    with _connect(target) as connection:
        row_counts = _row_counts(connection)
    if row_counts != manifest.row_counts:
        differing = sorted(set(row_counts) ^ set(manifest.row_counts) | _differing(row_counts, manifest.row_counts))
        with _incident_on_failure(manifest.path):
            raise VerificationError(
                f"the restored row counts differ from the manifest in {len(differing)} tables: "
                + ", ".join(differing[:5])
            )
    return RestoreReport(manifest, target.name, row_counts, verify_seconds, time.monotonic() - started - verify_seconds)


def _differing(left: Mapping[str, int], right: Mapping[str, int]) -> set[str]:
    return {table for table in set(left) & set(right) if left[table] != right[table]}


def _pg_restore(target: _Database, chunks: Iterator[bytes]) -> None:
    command = [PG_RESTORE, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    command += ["--no-password", f"--dbname={target.conninfo}"]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(  # noqa: S603 (fixed tool, no shell; the password is in the environment)
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=target.environment()
        )
        stdin = _pipe(process.stdin)
        try:
            for chunk in chunks:
                stdin.write(chunk)
            stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its exit status and messages say why
        except BaseException:
            # Nothing is committed: pg_restore runs one transaction and never saw the end.
            process.kill()
            process.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        returncode = process.wait()
        if returncode != 0:
            raise BackupError(f"pg_restore failed (exit {returncode}): {_tail(errors)}")


# --- PostgreSQL -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Database:
    name: str
    conninfo: str  # without the password, which goes through PGPASSWORD
    password: str

    def environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        if self.password:
            environment["PGPASSWORD"] = self.password
        return environment


def _postgres(database: Mapping[str, Any] | None, what: str) -> _Database:
    database = settings.DATABASES["default"] if database is None else database
    engine = str(database.get("ENGINE", ""))
    if not engine.endswith("backends.postgresql"):
        raise BackupError(
            f"{what} needs PostgreSQL; the embedded SQLite demo has no encrypted backups "
            f"(the database engine is {engine or 'not set'}): point DATABASE_URL at PostgreSQL"
        )
    params: dict[str, Any] = {"dbname": database.get("NAME")}
    for key in ("HOST", "PORT", "USER"):
        if database.get(key):
            params[key.lower()] = database[key]
    options = database.get("OPTIONS") or {}
    params.update({key: options[key] for key in _LIBPQ_OPTIONS if key in options})
    if not params["dbname"]:
        raise BackupError(f"{what} needs a database name")
    return _Database(str(params["dbname"]), make_conninfo(**params), str(database.get("PASSWORD") or ""))


def _connect(target: _Database) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(target.conninfo, password=target.password or None, autocommit=True)
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to the database {target.name}: {exc}") from None


@contextlib.contextmanager
def _snapshot(target: _Database) -> Iterator[tuple[str, dict[str, int], str]]:
    """Export a REPEATABLE READ snapshot, count the rows in it, and hold it open for pg_dump."""
    with _connect(target) as connection:
        connection.autocommit = False
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        row = connection.execute("SELECT pg_export_snapshot(), current_setting('server_version')").fetchone()
        if row is None:  # pragma: no cover (a SELECT without FROM returns one row)
            raise BackupError("the database did not export a snapshot")
        yield row[0], _row_counts(connection), row[1]
        connection.rollback()


def _row_counts(connection: psycopg.Connection[Any]) -> dict[str, int]:
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        )
    ]
    if not tables:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*) FROM public.{}").format(sql.Literal(table), sql.Identifier(table))
        for table in tables
    )
    return {str(table): int(count) for table, count in connection.execute(query)}


def _tool_version(tool: str) -> str:
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is not installed (or not on PATH): install the PostgreSQL client tools")
    result = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{tool} --version failed: {result.stderr.strip()[-_STDERR_LIMIT:]}")
    return result.stdout.strip()


# --- Files ----------------------------------------------------------------------------------------


class _StagedFile:
    """A 0600 file written under a temporary name; removed unless committed (fsync'd, renamed)."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
        descriptor = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.fchmod(descriptor, 0o600)
        self.handle = os.fdopen(descriptor, "wb")
        self.committed = False

    def __enter__(self) -> _StagedFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.committed:
            self.handle.close()
            self.partial.unlink(missing_ok=True)

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.rename(self.partial, self.final)
        self.committed = True


def _header_bytes(header: dict[str, Any]) -> bytes:
    body = _canonical(header)
    return MAGIC + _LENGTH.pack(len(body)) + body


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _manifest_hmac(key: bytes, manifest: Manifest) -> str:
    return hmac.new(key, _canonical(manifest.body()), hashlib.sha256).hexdigest()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    if stream is None:  # pragma: no cover (every pipe here is requested)
        raise BackupError("the subprocess has no pipe")
    return stream


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0)
    text = errors.read().decode("utf-8", "replace").strip()
    return text[-_STDERR_LIMIT:] or "no message"
