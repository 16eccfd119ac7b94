"""Verify a Caspix evidence pack or regulatory export offline, trusting nothing but a public key.

This package needs the Python standard library and ``cryptography`` (for Ed25519), and the RFC
9162 proof checks of ``audit.merkle``, a standard-library file of the same distribution. It never
imports Django or touches a database: an auditor runs it on a machine that has never seen
Caspix (``caspix-verify PACK.zip --public-key KEY``). ``docs/AUDITORS.md`` describes the format
well enough to write another verifier from it.

What a pack is (a ZIP archive):

* ``manifest.json``: the pack's kind and scope, the ledger's origin, and ``files``: every other
  member's path with its size and SHA-256.
* ``manifest.sig``: JSON ``{"algorithm": "Ed25519", "key_id": hex, "signature": base64}``; the
  signature is over :data:`SIGNING_CONTEXT` followed by the exact bytes of ``manifest.json``, made
  with the ledger's signing key (the one that signs its checkpoints). The context line keeps a
  manifest signature from ever being taken for a checkpoint's, or the reverse.
* ``ledger/checkpoint.txt`` (when the pack has events): a C2SP signed note, ``origin``, tree size
  and base64 root, signed by the same key.
* ``ledger/events.jsonl``: one event per line, ``{"seq", "body", "proof"}``: ``body`` is the
  base64 of the event's exact canonical bytes, ``proof`` the RFC 9162 inclusion proof (base64
  hashes) of leaf ``seq - 1`` in the checkpoint's tree.
* anything else the manifest lists: records (JSON, CSV), a human-readable summary (HTML), and
  attachments, each hashed in the manifest and, for attachments, in the records too.

What is checked, in order: the archive is laid out plainly, every byte accounted for (ZIP
readers disagree on archives that are not, see :func:`check_layout`); no member name is unsafe
(absolute, ``..``, unprintable) or twice (even by case or normalisation); the manifest is signed
by one of the given keys; every member but the manifest and its signature is listed, every listed
file is present, with its size and SHA-256; the checkpoint is signed by one of the keys, for the
manifest's origin and size; every event's leaf hash is proven in the checkpoint's tree, in
increasing sequence; every attachment the records name has their SHA-256, and is tied to the
``EVIDENCE_ADDED`` event in the pack that recorded that SHA-256 for that file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import shutil
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from audit import merkle

FORMAT = "caspix-pack/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHECKPOINT = "ledger/checkpoint.txt"
EVENTS = "ledger/events.jsonl"
RECORDS = "records/records.json"
SIGNING_CONTEXT = b"caspix-pack/1 manifest\n"
CHUNK = 1 << 20
EM_DASH = "\u2014"


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: two readers must not take two values."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a JSON object names a key twice")
    return dict(pairs)


def strict_json(data: bytes | str) -> Any:
    """JSON as the pack's files must be: UTF-8, no key twice in an object, no NaN or Infinity."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data, object_pairs_hook=_strict_object, parse_constant=refuse)


class KeyFileError(ValueError):
    """The public key file holds no key this verifier can read; the message says what it found."""


@dataclass
class Result:
    """What was checked and what failed: ``intact`` only when nothing did."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # every member's SHA-256, as verified

    @property
    def intact(self) -> bool:
        return not self.problems

    def fail(self, problem: str) -> None:
        self.problems.append(problem)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


# --- keys -----------------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id of an Ed25519 key: SHA-256(name ‖ "\\n" ‖ 0x01 ‖ key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]


def load_public_keys(text: str) -> list[bytes]:
    """Raw 32-byte Ed25519 keys from what Caspix publishes at ``/audit/ledger-keys`` (JSON, every
    version), from C2SP verifier keys (``origin+keyid+base64``, one per line), from a PEM public
    key, or from the base64 of a raw key."""
    stripped = text.strip()
    if not stripped:
        raise KeyFileError("the key file is empty")
    if stripped.startswith("{"):
        try:
            published = json.loads(stripped)
            keys = [base64.b64decode(entry["public_key"], validate=True) for entry in published["keys"]]
        except (ValueError, KeyError, TypeError) as error:
            raise KeyFileError(f"the JSON key file is not Caspix's published keys ({error})") from None
    elif stripped.startswith("-----BEGIN"):
        try:
            key = load_pem_public_key(stripped.encode())
        except ValueError as error:
            raise KeyFileError(f"the PEM key cannot be read ({error})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError("the PEM key is not an Ed25519 key")
        keys = [key.public_bytes(Encoding.Raw, PublicFormat.Raw)]
    else:
        keys = [_vkey_or_raw(line.strip()) for line in stripped.splitlines() if line.strip()]
    for raw in keys:
        if len(raw) != 32:
            raise KeyFileError(f"a key is {len(raw)} bytes; an Ed25519 public key is 32")
    return keys


def _vkey_or_raw(line: str) -> bytes:
    """A C2SP verifier key (``name+hexid+base64(0x01 ‖ key)``; a name never holds "+") or a base64
    raw key (which may)."""
    parts = line.split("+", 2)
    vkey = len(parts) == 3 and len(parts[1]) == 8 and all(c in "0123456789abcdef" for c in parts[1])
    try:
        raw = base64.b64decode(parts[2] if vkey else line, validate=True)
    except binascii.Error:
        raise KeyFileError("a line of the key file is neither a verifier key nor base64") from None
    if vkey:
        if raw[:1] != b"\x01":
            raise KeyFileError("a verifier key is not of the Ed25519 type (0x01)")
        if key_id(parts[0], raw[1:]).hex() != parts[1]:
            raise KeyFileError("a verifier key's id does not match its key")
        raw = raw[1:]
    return raw


def _verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- the signed checkpoint ------------------------------------------------------------------------


def read_checkpoint(note: str, keys: Iterable[bytes]) -> Checkpoint:
    """The origin, size and root of a C2SP signed note, once one of ``keys`` verifies its signature.

    Raises ``ValueError`` saying what is wrong."""
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise ValueError("the checkpoint has no signature")
    body += "\n"
    lines = body.split("\n")
    if len(lines) != 4 or not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise ValueError("the checkpoint is not origin, tree size and root on three lines")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise ValueError("the checkpoint's root is not base64") from None
    if len(root) != merkle.HASH_SIZE:
        raise ValueError(f"the checkpoint's root is {len(root)} bytes, not {merkle.HASH_SIZE}")
    name = lines[0]
    for line in signatures.rstrip("\n").split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH or parts[1] != name:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            continue
        for public in keys:
            if key_id(name, public) == blob[:4] and _verifies(public, blob[4:], body.encode()):
                return Checkpoint(name, int(lines[1]), root)
    raise ValueError("no signature of the checkpoint verifies with the given public key")


# --- the archive's layout ---------------------------------------------------------------------------

_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory
_LOCATOR = struct.Struct("<4sIQI")  # zip64 end of central directory locator
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # zip64 end of central directory record
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_ALLOWED_FLAGS = 0x0806  # deflate's option bits, and names in UTF-8: never encryption nor a trailing descriptor
_FULL16, _FULL32 = 0xFFFF, 0xFFFFFFFF


class LayoutError(ValueError):
    """The archive is not laid out as Caspix writes it; the message says where."""


@dataclass(frozen=True)
class _Entry:
    name: bytes
    flags: int
    method: int
    time: int
    date: int
    crc: int
    compressed: int
    size: int
    offset: int


def _extras(blob: bytes, where: str) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    position = 0
    while position < len(blob):
        if position + 4 > len(blob):
            raise LayoutError(f"{where}: a truncated extra field")
        kind, length = struct.unpack_from("<HH", blob, position)
        body = blob[position + 4 : position + 4 + length]
        if len(body) != length or kind != 0x0001 or kind in found:
            raise LayoutError(f"{where}: an extra field other than one zip64 field")
        found[kind] = body
        position += 4 + length
    return found


def _zip64(values: list[int], placeholders: list[bool], extra: dict[int, bytes], where: str) -> list[int]:
    """Replace the fields set to their placeholder by the zip64 extra field's values, in order."""
    wanted = sum(placeholders)
    body = extra.get(0x0001, b"")
    if wanted == 0 and not body:
        return values
    numbers = list(struct.unpack(f"<{len(body) // 8}Q", body)) if len(body) % 8 == 0 else None
    if numbers is None or len(numbers) < wanted:
        raise LayoutError(f"{where}: a zip64 field that does not give the sizes it stands for")
    taken = iter(numbers)
    return [next(taken) if placeholder else value for value, placeholder in zip(values, placeholders, strict=True)]


def _read(stream: IO[bytes], offset: int, size: int, where: str) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) != size:
        raise LayoutError(f"{where} runs past the end of the file")
    return data


def check_layout(stream: IO[bytes]) -> list[str]:
    """Names of the members, once every byte of the archive is accounted for, as Caspix writes it.

    ZIP readers disagree on archives that are not laid out plainly: a second central directory, a
    zip64 record away from where its locator points, entries the directory does not name, data
    before the first entry, a local header that says other than the directory. A verifier reading
    one way and an auditor's unzip tool another would check one file and show another. So the
    archive must be exactly: the entries, each a local header (identical to its directory record,
    no extra field but zip64, no encryption, stored or deflated, no trailing descriptor) and its
    data, back to back from byte 0; then the central directory; then, only if needed, the zip64
    record and its locator; then the end record, with no comment, at the very end.
    """
    stream.seek(0, 2)
    length = stream.tell()
    if length < _EOCD.size:
        raise LayoutError("the file is too short to be a ZIP archive")
    end = _EOCD.unpack(_read(stream, length - _EOCD.size, _EOCD.size, "the end record"))
    signature, disk, cd_disk, here, count, cd_size, cd_offset, comment = end
    if signature != b"PK\x05\x06" or comment:
        raise LayoutError("the file does not end with a ZIP end record without a comment")
    if disk or cd_disk or here != count:
        raise LayoutError("the archive spans several disks")
    directory_end = length - _EOCD.size
    placeholders = (count == _FULL16, cd_size == _FULL32, cd_offset == _FULL32)
    locator_at = length - _EOCD.size - _LOCATOR.size
    locator = _read(stream, locator_at, _LOCATOR.size, "the zip64 locator") if locator_at >= 0 else b""
    if locator[:4] == b"PK\x06\x07":
        _, record_disk, record_at, disks = _LOCATOR.unpack(locator)
        if record_disk or disks != 1 or record_at + _EOCD64.size != locator_at:
            raise LayoutError("the zip64 record is not where its locator says, just before it")
        record = _EOCD64.unpack(_read(stream, record_at, _EOCD64.size, "the zip64 record"))
        if record[0] != b"PK\x06\x06" or record[1] != _EOCD64.size - 12 or record[4] or record[5]:
            raise LayoutError("the zip64 record is malformed")
        if record[6] != record[7]:
            raise LayoutError("the archive spans several disks")
        zip64 = (record[7], record[8], record[9])
        for plain, placeholder, wide in zip((count, cd_size, cd_offset), placeholders, zip64, strict=True):
            if not placeholder and plain != wide:
                raise LayoutError("the end record and the zip64 record disagree")
        count, cd_size, cd_offset = zip64
        directory_end = record_at
    elif any(placeholders):
        raise LayoutError("the end record asks for a zip64 record that is not there")
    if cd_offset + cd_size != directory_end:
        raise LayoutError("the central directory does not end where the end records begin")
    entries = _directory(_read(stream, cd_offset, cd_size, "the central directory"), count)
    expected = 0
    for entry in entries:
        if entry.offset != expected:
            raise LayoutError(f"bytes {expected} to {entry.offset} are not one entry after another")
        expected = _local(stream, entry)
    if expected != cd_offset:
        raise LayoutError("bytes between the last entry and the central directory belong to no entry")
    return [_name(entry) for entry in entries]


def _directory(blob: bytes, count: int) -> list[_Entry]:
    entries: list[_Entry] = []
    position = 0
    while position < len(blob):
        where = f"central directory record {len(entries) + 1}"
        if position + _CENTRAL.size > len(blob):
            raise LayoutError(f"{where} is truncated")
        fields = _CENTRAL.unpack_from(blob, position)
        (signature, _, _, flags, method, time, date, crc, compressed, size, name_length, extra_length,
         comment_length, disk, _, _, offset) = fields  # fmt: skip
        start = position + _CENTRAL.size
        name = blob[start : start + name_length]
        extra = blob[start + name_length : start + name_length + extra_length]
        position = start + name_length + extra_length + comment_length
        if signature != b"PK\x01\x02" or position > len(blob) or comment_length:
            raise LayoutError(f"{where} is malformed")
        _entry_flags(flags, method, name, where)
        compressed, size, offset, disk = _central_sizes(compressed, size, offset, disk, _extras(extra, where), where)
        if disk:
            raise LayoutError(f"{where}: an entry on another disk")
        entries.append(_Entry(name, flags, method, time, date, crc, compressed, size, offset))
    if len(entries) != count:
        raise LayoutError(f"the central directory holds {len(entries)} entries, the end record says {count}")
    return entries


def _central_sizes(
    compressed: int, size: int, offset: int, disk: int, extra: dict[int, bytes], where: str
) -> tuple[int, int, int, int]:
    """The zip64 field of a directory record lists, in this order, only those of the uncompressed
    size, compressed size, local header offset and disk that are set to their placeholder."""
    size, compressed, offset, disk = _zip64(
        [size, compressed, offset, disk],
        [size == _FULL32, compressed == _FULL32, offset == _FULL32, disk == _FULL16],
        extra,
        where,
    )
    return compressed, size, offset, disk


def _entry_flags(flags: int, method: int, name: bytes, where: str) -> None:
    if flags & ~_ALLOWED_FLAGS:
        raise LayoutError(f"{where}: encrypted, or with a trailing descriptor")
    if method not in (0, 8):
        raise LayoutError(f"{where}: neither stored nor deflated")
    if not flags & 0x0800 and not name.isascii():
        raise LayoutError(f"{where}: a name that is not ASCII nor marked as UTF-8")


def _local(stream: IO[bytes], entry: _Entry) -> int:
    """Check the entry's local header against its directory record; where its data ends."""
    where = f"the local header of {_name(entry)!r}"
    fields = _LOCAL.unpack(_read(stream, entry.offset, _LOCAL.size, where))
    signature, _, flags, method, time, date, crc, compressed, size, name_length, extra_length = fields
    name = _read(stream, entry.offset + _LOCAL.size, name_length, where)
    extra = _extras(_read(stream, entry.offset + _LOCAL.size + name_length, extra_length, where), where)
    size, compressed = _zip64([size, compressed], [size == _FULL32, compressed == _FULL32], extra, where)
    if signature != b"PK\x03\x04" or (name, flags, method, time, date, crc, compressed, size) != (
        entry.name, entry.flags, entry.method, entry.time, entry.date, entry.crc, entry.compressed, entry.size,
    ):  # fmt: skip
        raise LayoutError(f"{where} says other than the central directory")
    return int(entry.offset + _LOCAL.size + name_length + extra_length + compressed)


def _name(entry: _Entry) -> str:
    return entry.name.decode("utf-8" if entry.flags & 0x0800 else "ascii", errors="replace")


# --- the archive ----------------------------------------------------------------------------------


def _unsafe(name: str) -> bool:
    """A name no reader may take two ways: absolute, climbing, a folder, with a backslash, or with
    a character that is not plainly printable (control, format such as bidirectional overrides,
    separators other than the space, unassigned)."""
    path = PurePosixPath(name)
    printable = all(unicodedata.category(c)[0] in "LMNPS" or c == " " for c in name)
    return not name or not printable or name.startswith("/") or "\\" in name or ".." in path.parts or name.endswith("/")


def _twins(names: list[str]) -> list[str]:
    """Names that a case-insensitive or normalising file system would make one file."""
    seen: dict[str, str] = {}
    twins = []
    for name in names:
        folded = unicodedata.normalize("NFC", name).casefold()
        if folded in seen:
            twins.append(name)
        seen.setdefault(folded, name)
    return twins


def _digest(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with archive.open(name) as member:
        while chunk := member.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_pack(pack: str | IO[bytes], keys: list[bytes]) -> Result:
    """Check a pack against ``keys`` (see the module's docstring for what and in which order)."""
    result = Result()
    with contextlib.ExitStack() as stack:
        stream: IO[bytes] = stack.enter_context(open(pack, "rb")) if isinstance(pack, str) else pack
        try:
            names = check_layout(stream)
            archive = stack.enter_context(zipfile.ZipFile(stream))
        except LayoutError as error:
            result.fail(f"the archive is not laid out as a pack is: {error}")
            return result
        except (zipfile.BadZipFile, OSError) as error:
            result.fail(f"the pack is not a readable ZIP archive ({error})")
            return result
        if archive.namelist() != names:
            result.fail("the archive's directory reads differently from its layout")
            return result
        result.checked.append(f"the archive is laid out plainly: {len(names)} entries, every byte accounted for")
        try:
            _verify(archive, keys, result)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, zlib.error) as error:
            result.fail(f"the archive is damaged ({error})")  # a CRC, a truncated or undecodable member
    return result


def _verify(archive: zipfile.ZipFile, keys: list[bytes], result: Result) -> None:
    names = archive.namelist()
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        result.fail(f"the archive holds {duplicates[0]!r} more than once")
        return
    unsafe = [name for name in names if _unsafe(name)]
    if unsafe:
        result.fail(f"the archive holds a member with an unsafe name: {unsafe[0]!r}")
        return
    twins = _twins(names)
    if twins:
        result.fail(f"the archive holds {twins[0]!r} and a name that differs from it only by case or form")
        return
    for required in (MANIFEST, SIGNATURE):
        if required not in names:
            result.fail(f"the pack has no {required}")
            return
    manifest_bytes, signature_bytes = archive.read(MANIFEST), archive.read(SIGNATURE)
    result.digests[MANIFEST] = hashlib.sha256(manifest_bytes).hexdigest()
    result.digests[SIGNATURE] = hashlib.sha256(signature_bytes).hexdigest()
    manifest = _manifest(manifest_bytes, signature_bytes, keys, result)
    if manifest is None:
        return
    listed = _files(manifest, names, archive, result)
    if listed is None:
        return
    events = _events(archive, manifest, keys, result) if CHECKPOINT in listed or EVENTS in listed else {}
    if RECORDS in listed:
        _attachments(archive, listed, events, result)


def _manifest(
    manifest_bytes: bytes, signature_bytes: bytes, keys: list[bytes], result: Result
) -> dict[str, Any] | None:
    try:
        signature = strict_json(signature_bytes)
        blob = base64.b64decode(signature["signature"], validate=True)
        algorithm = signature["algorithm"]
    except (ValueError, KeyError, TypeError):
        result.fail("manifest.sig is not a signature Caspix writes")
        return None
    if algorithm != "Ed25519":
        result.fail(f"manifest.sig names the algorithm {algorithm!r}, not Ed25519")
        return None
    message = SIGNING_CONTEXT + manifest_bytes
    if not any(_verifies(public, blob, message) for public in keys):
        result.fail("the manifest's signature does not verify with the given public key")
        return None
    result.checked.append("the manifest is signed by the given key")
    try:
        manifest: dict[str, Any] = strict_json(manifest_bytes)
    except ValueError as error:
        result.fail(f"manifest.json is not JSON as a pack's must be ({error})")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        result.fail(f"manifest.json is not of the format {FORMAT}")
        return None
    return manifest


def _files(
    manifest: dict[str, Any], names: list[str], archive: zipfile.ZipFile, result: Result
) -> dict[str, dict[str, Any]] | None:
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("path"), str) for entry in files
    ):
        result.fail("the manifest's file list is malformed")
        return None
    listed = {entry["path"]: entry for entry in files}
    if len(listed) != len(files):
        result.fail("the manifest lists a file twice")
        return None
    present = set(names) - {MANIFEST, SIGNATURE}
    for name in sorted(present - set(listed)):
        result.fail(f"{name!r} is in the archive but not in the manifest")
    for name in sorted(set(listed) - present):
        result.fail(f"{name!r} is in the manifest but not in the archive")
    for name in sorted(present & set(listed)):
        digest, size = _digest(archive, name)
        entry = listed[name]
        if digest != entry.get("sha256") or size != entry.get("size"):
            result.fail(f"{name!r} does not match its SHA-256 and size in the manifest")
    if not result.problems:
        result.checked.append(f"{len(listed)} files match their SHA-256 in the manifest, and no other file is there")
        result.digests.update({name: str(entry["sha256"]) for name, entry in listed.items()})
    return listed


def _lines(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    with archive.open(name) as member:
        yield from member


def _events(
    archive: zipfile.ZipFile, manifest: dict[str, Any], keys: list[bytes], result: Result
) -> dict[int, dict[str, Any]]:
    """The events' bodies by sequence number, once each is proven in the signed checkpoint."""
    origin = manifest.get("origin")
    names = set(archive.namelist())
    if CHECKPOINT not in names or EVENTS not in names:
        result.fail(f"the pack has events without a checkpoint, or the reverse ({CHECKPOINT}, {EVENTS})")
        return {}
    try:
        checkpoint = read_checkpoint(archive.read(CHECKPOINT).decode(), keys)
    except (ValueError, UnicodeDecodeError) as error:
        result.fail(f"{CHECKPOINT}: {error}")
        return {}
    if checkpoint.origin != origin:
        result.fail(f"the checkpoint is of the ledger {checkpoint.origin!r}, the manifest names {origin!r}")
        return {}
    claimed = manifest.get("checkpoint")
    if not isinstance(claimed, dict) or claimed.get("size") != checkpoint.size:
        result.fail(f"the manifest does not name the checkpoint of tree size {checkpoint.size} the pack holds")
        return {}
    result.checked.append(f"the checkpoint at tree size {checkpoint.size} is signed by the given key")
    bodies: dict[int, dict[str, Any]] = {}
    previous = 0
    for number, line in enumerate(_lines(archive, EVENTS), start=1):
        where = f"{EVENTS} line {number}"
        try:
            entry = strict_json(line)
            seq, body = int(entry["seq"]), base64.b64decode(entry["body"], validate=True)
            proof = [base64.b64decode(value, validate=True) for value in entry["proof"]]
        except (ValueError, KeyError, TypeError):
            result.fail(f"{where} is not an event with its proof")
            continue
        if seq <= previous:
            result.fail(f"{where}: event {seq} is out of order (after {previous})")
        previous = max(previous, seq)
        try:
            merkle.verify_inclusion(merkle.leaf_hash(body), seq - 1, checkpoint.size, proof, checkpoint.root)
        except merkle.ProofError as error:
            result.fail(f"{where}: event {seq} is not proven in the checkpoint ({error})")
            continue
        try:
            bodies[seq] = strict_json(body)
        except ValueError:
            result.fail(f"{where}: event {seq} is proven but its body is not JSON")
    if not result.problems:
        result.checked.append(f"{len(bodies)} events are proven in the checkpoint's tree")
    return bodies


def _attachments(
    archive: zipfile.ZipFile, listed: dict[str, dict[str, Any]], events: dict[int, dict[str, Any]], result: Result
) -> None:
    """Each attachment the records name is in the pack with their SHA-256, and is tied to the ledger
    event that recorded that same SHA-256 when the file was added, which the pack proves."""
    try:
        records = strict_json(archive.read(RECORDS))
        attachments = records.get("attachments", [])
        items = [(str(a["path"]), str(a["sha256"]), a["seq"], str(a["evidence"])) for a in attachments]
    except (ValueError, KeyError, TypeError, AttributeError):
        result.fail(f"{RECORDS} is malformed")
        return
    before = len(result.problems)
    for path, sha256, seq, evidence in items:
        entry = listed.get(path)
        added = events.get(seq) if isinstance(seq, int) and not isinstance(seq, bool) else None
        after = (added or {}).get("after") or {}
        if entry is None:
            result.fail(f"the records name the attachment {path!r}, which the pack lacks")
        elif entry.get("sha256") != sha256:
            result.fail(f"{path!r}: the records give another SHA-256 than the file has")
        elif added is None:
            result.fail(f"{path!r}: the ledger event that recorded it being added is not in the pack")
        elif added.get("name") != "EVIDENCE_ADDED" or after.get("evidence") != evidence:
            result.fail(f"{path!r}: ledger event {seq} does not record this file being added")
        elif after.get("sha256") != sha256:
            result.fail(f"{path!r}: ledger event {seq} recorded another SHA-256 when the file was added")
    if items and len(result.problems) == before:
        result.checked.append(f"{len(items)} attachments have the SHA-256 the ledger recorded when they were added")


def extract(stream: IO[bytes], result: Result, directory: str) -> None:
    """Write the members of a pack ``result`` found intact into ``directory`` (new, or empty), each
    hashed again as it is written and compared with what was verified: what lands on disk is what
    was checked, even if the file changed since. Raises ``ValueError`` and removes what it wrote
    otherwise."""
    if not result.intact or not result.digests:
        raise ValueError("only a pack found intact is extracted")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{directory} is not empty")
    try:
        with zipfile.ZipFile(stream) as archive:
            if sorted(archive.namelist()) != sorted(result.digests):
                raise ValueError("the pack changed since it was verified")
            for name, expected in result.digests.items():
                target = root.joinpath(*PurePosixPath(name).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.open(name) as member, open(target, "xb") as out:
                    while chunk := member.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != expected:
                    raise ValueError(f"{name!r} changed since the pack was verified")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
