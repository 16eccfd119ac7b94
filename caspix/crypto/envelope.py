"""Envelope encryption of field values: AES-256-GCM under cached data keys.

An envelope is bytes::

    0x01 | data-key id (4 bytes, big-endian) | nonce (12 random bytes) | ciphertext ‖ tag (16 bytes)

The associated data binds the envelope to where it lives, ``caspix/1|<table>|<column>|<row>``,
followed by the envelope's first five bytes (format and key id): a ciphertext copied to another
row, another column or another table fails authentication, as does one whose key id is edited.
The data key's own record says which version of the key-encryption key wraps it, so a rewrap
never touches the rows.

Data keys are unwrapped once per process and kept in memory: on a warm cache, encrypting and
decrypting make no round trip to the key service. The newest live data key of a purpose serves
new writes; processes look for a newer one every :data:`ACTIVE_KEY_TTL` seconds, so a rotation
reaches new writes at once in the process that made it and within that delay everywhere else.
"""

from __future__ import annotations

import os
import struct
import threading
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.utils import timezone

from caspix.crypto import incidents
from caspix.crypto.keys import IntegrityError, KeyServiceError, key_service, wrapped_version
from caspix.crypto.models import KEK_FOR, DataKeyRecord, IntegrityIncident, Purpose

FORMAT = 1
_HEADER = struct.Struct(">BI")
HEADER_BYTES = _HEADER.size
NONCE_BYTES = 12
TAG_BYTES = 16
_BODY = HEADER_BYTES + NONCE_BYTES
_DATA = str(Purpose.DATA)  # a plain str: an enum member hashes through a Python-level call
#: Seconds a process keeps using its active data key before it looks for a newer one.
ACTIVE_KEY_TTL = 5.0


class DecryptionError(IntegrityError):
    """A stored ciphertext failed authentication; an integrity incident has been recorded."""


def column_aad_prefix(table: str, column: str) -> bytes:
    """The start of the associated data of every value of one column (a field makes it once)."""
    return f"caspix/1|{table}|{column}|".encode()


def location(table: str, column: str, row: object, *, column_prefix: bytes | None = None) -> bytes:
    """The associated data of the value at ``table``.``column`` of ``row``, up to the header."""
    return (column_prefix or column_aad_prefix(table, column)) + str(row).encode() + b"|"


def _describe(where: bytes) -> tuple[str, str, str]:
    _, table, column, row = where.decode(errors="replace").split("|", 3)
    return table, column, row.removesuffix("|")


class Sealed:
    """A ciphertext read from the database and not yet opened (``values()`` returns these)."""

    __slots__ = ("envelope",)

    def __init__(self, envelope: bytes) -> None:
        self.envelope = envelope

    def __repr__(self) -> str:
        return "<Sealed>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealed) and other.envelope == self.envelope

    def __hash__(self) -> int:
        return hash(self.envelope)


class KeyCache:
    """Unwrapped data keys of this process, by record id, and the active key of each purpose."""

    def __init__(self) -> None:
        # The hot paths read these dictionaries directly: active writer per purpose (id, when
        # looked up, cipher, envelope header) and cipher by envelope header.
        self._writers: dict[str, tuple[int, float, AESGCM, bytes]] = {}
        self._by_header: dict[bytes, AESGCM] = {}
        self._ciphers: dict[int, AESGCM] = {}
        self._raw: dict[int, bytes] = {}
        self._active: dict[str, tuple[int, float]] = {}
        self._live: dict[str, tuple[list[int], float]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._ciphers.clear()
            self._raw.clear()
            self._active.clear()
            self._live.clear()
            self._writers.clear()
            self._by_header.clear()

    def forget_active(self) -> None:
        """Look for the newest data keys on the next use (after this process rotated or retired)."""
        with self._lock:
            self._active.clear()
            self._live.clear()
            self._writers.clear()

    def writer(self, purpose: str) -> tuple[int, float, AESGCM, bytes]:
        """The active data key of ``purpose`` ready to encrypt: (id, looked up at, cipher, header)."""
        key_id = self.active(purpose)
        writer = (key_id, self._active[purpose][1], self.cipher(key_id), _HEADER.pack(FORMAT, key_id))
        self._writers[purpose] = writer
        return writer

    def reader(self, header: bytes) -> AESGCM:
        """The cipher named by an envelope header; raises :class:`IntegrityError` for a bad one."""
        cipher = self._by_header.get(header)
        if cipher is None:
            version, key_id = _HEADER.unpack(header)
            if version != FORMAT:
                raise IntegrityError(f"unknown envelope format {version}")
            cipher = self.cipher(key_id)
            self._by_header[header] = cipher
        return cipher

    def live(self, purpose: str) -> list[int]:
        """Ids of every live data key of ``purpose`` (what a blind-index search must cover)."""
        cached = self._live.get(purpose)
        now = time.monotonic()
        if cached is not None and now - cached[1] < ACTIVE_KEY_TTL:
            return cached[0]
        ids = list(DataKeyRecord.objects.live().of(purpose).values_list("id", flat=True))
        if not ids:
            ids = [self.active(purpose)]
        self._live[purpose] = (ids, now)
        return ids

    def active(self, purpose: str) -> int:
        """The id of the data key that serves new writes of ``purpose``, creating the first one."""
        cached = self._active.get(purpose)
        now = time.monotonic()
        if cached is not None and now - cached[1] < ACTIVE_KEY_TTL:
            return cached[0]
        key_id = DataKeyRecord.objects.live().of(purpose).order_by("-id").values_list("id", flat=True).first()
        if key_id is None:
            key_id = create_data_key(purpose).pk
        self._active[purpose] = (key_id, now)
        return key_id

    def raw(self, key_id: int) -> bytes:
        """The plaintext data key (for HMAC keys), unwrapped on first use."""
        key = self._raw.get(key_id)
        if key is None:
            self._load(key_id)
            key = self._raw[key_id]
        return key

    def cipher(self, key_id: int) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            self._load(key_id)
            cipher = self._ciphers[key_id]
        return cipher

    def _load(self, key_id: int) -> None:
        record = DataKeyRecord.objects.filter(pk=key_id).first()
        if record is None:
            raise IntegrityError(f"data key {key_id} does not exist")
        plaintext = key_service().unwrap(record.kek, record.wrapped)
        with self._lock:
            self._raw[key_id] = plaintext
            self._ciphers[key_id] = AESGCM(plaintext)


cache = KeyCache()


def create_data_key(purpose: str) -> DataKeyRecord:
    """A new data key for ``purpose``, wrapped by the latest version of its key-encryption key.

    It becomes the active key of its purpose: every process picks it up for new writes within
    :data:`ACTIVE_KEY_TTL`. Raises :class:`KeyServiceError` when the key service cannot answer.
    """
    if purpose not in Purpose.values:
        raise ValueError(f"unknown data-key purpose {purpose!r}")
    data_key = key_service().generate_data_key(KEK_FOR[purpose])
    record = DataKeyRecord.objects.create(
        purpose=purpose, wrapped=data_key.wrapped, kek_version=wrapped_version(data_key.wrapped)
    )
    with cache._lock:
        cache._raw[record.pk] = data_key.plaintext
        cache._ciphers[record.pk] = AESGCM(data_key.plaintext)
        cache._active[purpose] = (record.pk, time.monotonic())
        cache._writers.pop(purpose, None)
    return record


def seal(plaintext: bytes, where: bytes) -> bytes:
    """Encrypt ``plaintext`` for ``where`` (from :func:`location`) under the active data key,
    with a fresh random nonce."""
    writer = cache._writers.get(_DATA)
    if writer is None or time.monotonic() - writer[1] >= ACTIVE_KEY_TTL:
        writer = cache.writer(_DATA)
    header = writer[3]
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + writer[2].encrypt(nonce, plaintext, where + header)


def open_envelope(envelope: bytes, where: bytes) -> bytes:
    """Decrypt an envelope stored at ``where``.

    Any failure to authenticate (a flipped byte, a ciphertext moved from another row, an
    unknown key id) records an integrity incident and raises :class:`DecryptionError`: never a
    wrong value. A key service that cannot be reached raises :class:`KeyServiceError`.
    """
    try:
        if len(envelope) < HEADER_BYTES + NONCE_BYTES + TAG_BYTES:
            raise IntegrityError("the envelope is truncated")
        header = envelope[:HEADER_BYTES]
        cipher = cache._by_header.get(header) or cache.reader(header)
        return cipher.decrypt(envelope[HEADER_BYTES:_BODY], envelope[_BODY:], where + header)
    except InvalidTag:
        detail = "the ciphertext failed authentication"
    except IntegrityError as exc:
        detail = str(exc)
    except KeyServiceError:
        raise
    table, column, row = _describe(where)
    incident = incidents.record(IntegrityIncident.Kind.FIELD, table=table, column=column, row=row, detail=detail)
    raise DecryptionError(f"{table}.{column} of row {row}: {detail} (incident {incident})")


def rewrap_record(record: DataKeyRecord, latest: int) -> bool:
    """Re-wrap one data key under ``latest``, the newest version of its key-encryption key.

    Returns whether it changed. The data key itself, and so every row it encrypts, stays the same.
    """
    if record.kek_version >= latest:
        return False
    wrapped = key_service().rewrap(record.kek, record.wrapped)
    record.wrapped = wrapped
    record.kek_version = wrapped_version(wrapped)
    record.rewrapped_at = timezone.now()
    record.save(update_fields=["wrapped", "kek_version", "rewrapped_at"])
    return True
