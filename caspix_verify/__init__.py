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

What is checked, in order: the archive is well formed (no duplicate, absolute or ``..`` member
name); the manifest is signed by one of the given keys; every member but the manifest and its
signature is listed, every listed file is present, with its size and SHA-256; the checkpoint
is signed by one of the keys, for the manifest's origin; every event's leaf hash is proven in the
checkpoint's tree, in increasing sequence; every attachment the records name has the SHA-256 they
give, and the same hash is in the ledger event that recorded it, when the pack has that event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
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


class KeyFileError(ValueError):
    """The public key file holds no key this verifier can read; the message says what it found."""


@dataclass
class Result:
    """What was checked and what failed: ``intact`` only when nothing did."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

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


# --- the archive ----------------------------------------------------------------------------------


def _unsafe(name: str) -> bool:
    path = PurePosixPath(name)
    return name.startswith("/") or "\\" in name or ".." in path.parts or name.endswith("/") or not name


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
    try:
        archive = zipfile.ZipFile(pack)
    except (zipfile.BadZipFile, OSError) as error:
        result.fail(f"the pack is not a readable ZIP archive ({error})")
        return result
    with archive:
        try:
            _verify(archive, keys, result)
        except (zipfile.BadZipFile, OSError, EOFError) as error:  # a CRC or a truncated member
            result.fail(f"the archive is damaged ({error})")
    return result


def _verify(archive: zipfile.ZipFile, keys: list[bytes], result: Result) -> None:
    names = archive.namelist()
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        result.fail(f"the archive holds {duplicates[0]} more than once")
        return
    unsafe = [name for name in names if _unsafe(name)]
    if unsafe:
        result.fail(f"the archive holds a member with an unsafe name: {unsafe[0]!r}")
        return
    for required in (MANIFEST, SIGNATURE):
        if required not in names:
            result.fail(f"the pack has no {required}")
            return
    manifest_bytes = archive.read(MANIFEST)
    manifest = _manifest(manifest_bytes, archive.read(SIGNATURE), keys, result)
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
        signature = json.loads(signature_bytes)
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
        manifest: dict[str, Any] = json.loads(manifest_bytes)
    except ValueError:
        result.fail("manifest.json is not JSON")
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
    present = set(names) - {MANIFEST, SIGNATURE}
    for name in sorted(present - set(listed)):
        result.fail(f"{name} is in the archive but not in the manifest")
    for name in sorted(set(listed) - present):
        result.fail(f"{name} is in the manifest but not in the archive")
    for name in sorted(present & set(listed)):
        digest, size = _digest(archive, name)
        entry = listed[name]
        if digest != entry.get("sha256") or size != entry.get("size"):
            result.fail(f"{name} does not match its SHA-256 and size in the manifest")
    if not result.problems:
        result.checked.append(f"{len(listed)} files match their SHA-256 in the manifest, and no other file is there")
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
            entry = json.loads(line)
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
            bodies[seq] = json.loads(body)
        except ValueError:
            result.fail(f"{where}: event {seq} is proven but its body is not JSON")
    if not result.problems:
        result.checked.append(f"{len(bodies)} events are proven in the checkpoint's tree")
    return bodies


def _attachments(
    archive: zipfile.ZipFile, listed: dict[str, dict[str, Any]], events: dict[int, dict[str, Any]], result: Result
) -> None:
    """Each attachment the records name has their SHA-256, and the ledger's when its event is here."""
    try:
        records = json.loads(archive.read(RECORDS))
        attachments = records.get("attachments", [])
        pairs = [(str(item["path"]), str(item["sha256"]), item.get("seq")) for item in attachments]
    except (ValueError, KeyError, TypeError, AttributeError):
        result.fail(f"{RECORDS} is malformed")
        return
    for path, sha256, seq in pairs:
        entry = listed.get(path)
        if entry is None:
            result.fail(f"the records name the attachment {path}, which the pack lacks")
        elif entry.get("sha256") != sha256:
            result.fail(f"{path}: the records give another SHA-256 than the file has")
        elif isinstance(seq, int) and seq in events:
            recorded = (events[seq].get("after") or {}).get("sha256")
            if recorded != sha256:
                result.fail(f"{path}: ledger event {seq} recorded another SHA-256 when the file was added")
    if pairs and not result.problems:
        result.checked.append(f"{len(pairs)} attachments match the SHA-256 in the records and the ledger")
