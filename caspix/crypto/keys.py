"""The key service: OpenBao/Vault Transit in production, a local keyring in the embedded default.

This module is the only code that talks to the key backend. Callers get the service from
:func:`key_service` and never construct a backend themselves.

Named keys, each with numbered versions (a rotation adds one; new work uses the latest, older
versions keep decrypting and verifying until retired with ``min_decryption_version``):

* ``data``: AES-256-GCM key-encryption key that wraps the data keys of encrypted fields;
* ``index``: AES-256-GCM key-encryption key that wraps the blind-index HMAC keys, kept apart
  from ``data`` so one compromise does not give both;
* ``ledger``: Ed25519 signing key of the audit ledger's checkpoints;
* ``backup``: AES-256-GCM key-encryption key of backup keys, independent of the data keys.

Wrapped values carry their backend and version (``vault:v3:…`` from Transit, ``local:v3:…`` from
the keyring), so any version can be unwrapped and the version is visible without a round trip.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import hvac
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from hvac import exceptions as vault_errors

KEYRING_FORMAT = "caspix-keyring/1"
DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_WRAPPED = re.compile(r"\A(?P<backend>vault|local):v(?P<version>[1-9][0-9]{0,8}):(?P<body>[A-Za-z0-9+/=_-]+)\Z")


class KeyServiceError(Exception):
    """The key service cannot be reached or refused the operation."""


class IntegrityError(KeyServiceError):
    """A wrapped key or signature failed authentication: tampered, moved or foreign."""


class KeyName(StrEnum):
    DATA = "data"
    INDEX = "index"
    LEDGER = "ledger"
    BACKUP = "backup"


KEY_TYPES: dict[KeyName, str] = {
    KeyName.DATA: "aes256-gcm96",
    KeyName.INDEX: "aes256-gcm96",
    KeyName.LEDGER: "ed25519",
    KeyName.BACKUP: "aes256-gcm96",
}


@dataclass(frozen=True)
class DataKey:
    """A fresh 256-bit key in the clear (use, never store) and wrapped (store, never use)."""

    plaintext: bytes
    wrapped: str

    def __repr__(self) -> str:  # the plaintext never reaches a log or a traceback
        return f"DataKey(wrapped={self.wrapped[:16]}…)"


@dataclass(frozen=True)
class KeyInfo:
    name: KeyName
    latest_version: int
    min_decryption_version: int


@dataclass(frozen=True)
class Signature:
    version: int
    signature: bytes


def wrapped_version(wrapped: str) -> int:
    """The key version a wrapped value was made with, read from its prefix."""
    match = _WRAPPED.match(wrapped)
    if match is None:
        raise IntegrityError("the wrapped value is malformed")
    return int(match["version"])


class KeyService(Protocol):
    name: str

    def health(self) -> None:
        """Raise :class:`KeyServiceError` unless the backend answers and is usable."""

    def ensure_keys(self) -> None:
        """Create every named key that does not exist yet (idempotent)."""

    def generate_data_key(self, name: KeyName) -> DataKey: ...

    def unwrap(self, name: KeyName, wrapped: str) -> bytes: ...

    def rewrap(self, name: KeyName, wrapped: str) -> str:
        """The same data key wrapped under the latest version of ``name``."""

    def rotate(self, name: KeyName) -> KeyInfo: ...

    def info(self, name: KeyName) -> KeyInfo: ...

    def set_min_decryption_version(self, name: KeyName, version: int) -> KeyInfo: ...

    def sign(self, name: KeyName, message: bytes) -> Signature: ...

    def public_keys(self, name: KeyName) -> dict[int, bytes]:
        """Raw Ed25519 public keys by version (verification needs no round trip)."""


def verify_signature(public_keys: dict[int, bytes], message: bytes, signature: Signature) -> None:
    """Raise :class:`IntegrityError` unless ``signature`` is valid for ``message``."""
    raw = public_keys.get(signature.version)
    if raw is None:
        raise IntegrityError(f"no public key of version {signature.version}")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature.signature, message)
    except (InvalidSignature, ValueError):
        raise IntegrityError("the signature does not verify") from None


# --- Local keyring ------------------------------------------------------------------------------


class LocalKeyring:
    """Keys held in a JSON file readable only by its owner (embedded default and tests).

    Writes take an exclusive lock on a sibling lock file and replace the keyring atomically, so
    processes sharing it never lose a rotation; a reader that meets an unknown version reloads.
    """

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None
        self._mutex = threading.Lock()

    # storage

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            self._create()
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyServiceError(f"the local keyring cannot be read: {type(exc).__name__}") from None
        if data.get("format") != KEYRING_FORMAT or not isinstance(data.get("keys"), dict):
            raise KeyServiceError("the local keyring has an unknown format")
        return data

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A new keyring holds every named key at once: the embedded default needs no setup step.
        keys = {name.value: self._new_entry(name) for name in KeyName}
        data = {"format": KEYRING_FORMAT, "installation": secrets.token_hex(8), "keys": keys}
        # O_EXCL: two processes starting at once never overwrite each other's keyring.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)

    def _load(self, *, fresh: bool = False) -> dict[str, Any]:
        with self._mutex:
            if self._data is None or fresh:
                self._data = self._read()
            return self._data

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a", encoding="utf-8") as lock, self._mutex:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            yield data
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            self._data = data

    def _key(self, name: KeyName, version: int | None = None) -> tuple[dict[str, Any], int, bytes]:
        for fresh in (False, True):
            entry = self._load(fresh=fresh)["keys"].get(name)
            if entry is None:
                continue
            wanted = entry["latest"] if version is None else version
            material = entry["versions"].get(str(wanted))
            if material is not None:
                return entry, wanted, base64.b64decode(material["key"])
        if version is None:
            # The embedded default provisions itself: a keyring missing a named key gets it.
            self.ensure_keys()
            entry = self._load()["keys"][name]
            return entry, entry["latest"], base64.b64decode(entry["versions"][str(entry["latest"])]["key"])
        raise IntegrityError(f"the key {name!r} has no version {version}")

    @classmethod
    def _new_entry(cls, name: KeyName) -> dict[str, Any]:
        material = base64.b64encode(cls._new_material(KEY_TYPES[name])).decode()
        return {
            "type": KEY_TYPES[name],
            "latest": 1,
            "min_decryption_version": 1,
            "versions": {"1": {"key": material, "created": _now()}},
        }

    @staticmethod
    def _new_material(key_type: str) -> bytes:
        if key_type == "ed25519":
            return Ed25519PrivateKey.generate().private_bytes_raw()
        return AESGCM.generate_key(bit_length=256)

    # operations

    def health(self) -> None:
        self._load(fresh=True)

    def ensure_keys(self) -> None:
        if all(name in self._load(fresh=True)["keys"] for name in KeyName):
            return
        with self._writing() as data:
            for name in KeyName:
                if name not in data["keys"]:
                    data["keys"][name] = self._new_entry(name)

    def generate_data_key(self, name: KeyName) -> DataKey:
        plaintext = secrets.token_bytes(DATA_KEY_BYTES)
        return DataKey(plaintext, self._wrap(name, plaintext))

    def _wrap(self, name: KeyName, plaintext: bytes) -> str:
        _, version, kek = self._key(name)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(kek).encrypt(nonce, plaintext, _wrap_aad(name, version))
        return f"local:v{version}:{base64.b64encode(nonce + sealed).decode()}"

    def unwrap(self, name: KeyName, wrapped: str) -> bytes:
        match = _WRAPPED.match(wrapped)
        if match is None or match["backend"] != "local":
            raise IntegrityError("the wrapped key is malformed or from another backend")
        version = int(match["version"])
        entry, _, kek = self._key(name, version)
        if version < entry["min_decryption_version"]:
            raise IntegrityError(f"version {version} of {name!r} is retired")
        try:
            blob = base64.b64decode(match["body"], validate=True)
            return AESGCM(kek).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _wrap_aad(name, version))
        except (InvalidTag, ValueError):
            raise IntegrityError("the wrapped key failed authentication") from None

    def rewrap(self, name: KeyName, wrapped: str) -> str:
        return self._wrap(name, self.unwrap(name, wrapped))

    def rotate(self, name: KeyName) -> KeyInfo:
        with self._writing() as data:
            entry = data["keys"].get(name)
            if entry is None:
                raise KeyServiceError(f"the key {name!r} does not exist: run ensure_keys")
            entry["latest"] += 1
            material = base64.b64encode(self._new_material(entry["type"])).decode()
            entry["versions"][str(entry["latest"])] = {"key": material, "created": _now()}
        return self.info(name)

    def info(self, name: KeyName) -> KeyInfo:
        entry, _, _ = self._key(name)
        return KeyInfo(name, entry["latest"], entry["min_decryption_version"])

    def set_min_decryption_version(self, name: KeyName, version: int) -> KeyInfo:
        with self._writing() as data:
            entry = data["keys"].get(name)
            if entry is None:
                raise KeyServiceError(f"the key {name!r} does not exist: run ensure_keys")
            if not entry["min_decryption_version"] <= version <= entry["latest"]:
                raise KeyServiceError(
                    f"min_decryption_version must be between {entry['min_decryption_version']} and {entry['latest']}"
                )
            entry["min_decryption_version"] = version
            # A retired version's material is destroyed: nothing can decrypt with it again.
            for old in [v for v in entry["versions"] if int(v) < version]:
                del entry["versions"][old]
        return self.info(name)

    def sign(self, name: KeyName, message: bytes) -> Signature:
        entry, version, seed = self._key(name)
        if entry["type"] != "ed25519":
            raise KeyServiceError(f"the key {name!r} is not a signing key")
        return Signature(version, Ed25519PrivateKey.from_private_bytes(seed).sign(message))

    def public_keys(self, name: KeyName) -> dict[int, bytes]:
        entry, _, _ = self._key(name)
        if entry["type"] != "ed25519":
            raise KeyServiceError(f"the key {name!r} is not a signing key")
        return {
            int(version): Ed25519PrivateKey.from_private_bytes(base64.b64decode(material["key"]))
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
            for version, material in entry["versions"].items()
        }


def _wrap_aad(name: KeyName, version: int) -> bytes:
    return f"caspix-keyring/1|{name}|v{version}".encode()


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


# --- OpenBao / Vault Transit ---------------------------------------------------------------------


class TransitService:
    """OpenBao/Vault Transit through hvac, over TLS, authenticated by token or AppRole.

    Private key material never leaves the key service: Transit wraps, unwraps and signs; only
    data keys (by design) and public keys come back.
    """

    name = "transit"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.mount: str = config["MOUNT"]
        self.prefix: str = config.get("KEY_PREFIX", "caspix")

    @functools.cached_property
    def client(self) -> hvac.Client:
        verify: bool | str = self.config["CACERT"] or True
        client = hvac.Client(
            url=self.config["ADDR"],
            token=self.config["TOKEN"],
            verify=verify,
            timeout=self.config["TIMEOUT"],
            namespace=self.config["NAMESPACE"],
        )
        if not self.config["TOKEN"]:
            client.auth.approle.login(role_id=self.config["ROLE_ID"], secret_id=self.config["SECRET_ID"])
        return client

    def _key_name(self, name: KeyName) -> str:
        return f"{self.prefix}-{name}"

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Translate hvac and transport failures into key-service errors naming the operation."""
        try:
            yield
        except KeyServiceError:
            raise
        except vault_errors.InvalidRequest as exc:
            message = " ".join(getattr(exc, "errors", None) or [])
            if "cipher: message authentication failed" in message or "invalid ciphertext" in message:
                raise IntegrityError(f"{what}: the wrapped key failed authentication") from None
            if "disallowed by policy (too old)" in message:
                raise IntegrityError(f"{what}: the key version is retired") from None
            raise KeyServiceError(f"{what}: the key service refused the request") from None
        except vault_errors.VaultError as exc:
            raise KeyServiceError(f"{what}: the key service refused ({type(exc).__name__})") from None
        except Exception as exc:
            raise KeyServiceError(f"{what}: the key service cannot be reached ({type(exc).__name__})") from None

    @property
    def _transit(self) -> Any:
        return self.client.secrets.transit

    def health(self) -> None:
        with self._call("health"):
            status = self.client.sys.read_health_status(method="GET")
            state = status if isinstance(status, dict) else status.json()
            if not state.get("initialized") or state.get("sealed"):
                raise KeyServiceError("the key service is not initialised or is sealed")
            if not self.client.is_authenticated():
                raise KeyServiceError("the key service refused Caspix's credentials")

    def ensure_keys(self) -> None:
        with self._call("ensure_keys"):
            for name in KeyName:
                # Transit leaves an existing key as it is when asked to create it again.
                self._transit.create_key(
                    name=self._key_name(name), key_type=KEY_TYPES[name], exportable=False, mount_point=self.mount
                )

    def generate_data_key(self, name: KeyName) -> DataKey:
        with self._call("generate_data_key"):
            data = self._transit.generate_data_key(
                name=self._key_name(name), key_type="plaintext", bits=DATA_KEY_BYTES * 8, mount_point=self.mount
            )["data"]
        return DataKey(base64.b64decode(data["plaintext"]), data["ciphertext"])

    def unwrap(self, name: KeyName, wrapped: str) -> bytes:
        match = _WRAPPED.match(wrapped)
        if match is None or match["backend"] != "vault":
            raise IntegrityError("the wrapped key is malformed or from another backend")
        with self._call("unwrap"):
            data = self._transit.decrypt_data(name=self._key_name(name), ciphertext=wrapped, mount_point=self.mount)
        return base64.b64decode(data["data"]["plaintext"])

    def rewrap(self, name: KeyName, wrapped: str) -> str:
        with self._call("rewrap"):
            data = self._transit.rewrap_data(name=self._key_name(name), ciphertext=wrapped, mount_point=self.mount)
        return str(data["data"]["ciphertext"])

    def rotate(self, name: KeyName) -> KeyInfo:
        with self._call("rotate"):
            self._transit.rotate_key(name=self._key_name(name), mount_point=self.mount)
        return self.info(name)

    def _read(self, name: KeyName) -> dict[str, Any]:
        with self._call("read_key"):
            data: dict[str, Any] = self._transit.read_key(name=self._key_name(name), mount_point=self.mount)["data"]
        return data

    def info(self, name: KeyName) -> KeyInfo:
        data = self._read(name)
        return KeyInfo(name, int(data["latest_version"]), int(data["min_decryption_version"]))

    def set_min_decryption_version(self, name: KeyName, version: int) -> KeyInfo:
        current = self.info(name)
        if not current.min_decryption_version <= version <= current.latest_version:
            raise KeyServiceError(
                f"min_decryption_version must be between {current.min_decryption_version} and {current.latest_version}"
            )
        with self._call("set_min_decryption_version"):
            self._transit.update_key_configuration(
                name=self._key_name(name), min_decryption_version=version, mount_point=self.mount
            )
        return self.info(name)

    def sign(self, name: KeyName, message: bytes) -> Signature:
        with self._call("sign"):
            data = self._transit.sign_data(
                name=self._key_name(name), hash_input=base64.b64encode(message).decode(), mount_point=self.mount
            )["data"]
        _, version, body = str(data["signature"]).split(":", 2)
        return Signature(int(version.removeprefix("v")), base64.b64decode(body))

    def public_keys(self, name: KeyName) -> dict[int, bytes]:
        keys = self._read(name)["keys"]
        return {int(version): base64.b64decode(entry["public_key"]) for version, entry in keys.items()}


@functools.cache
def key_service() -> KeyService:
    if settings.KEY_BACKEND == "transit":
        return TransitService(settings.VAULT)
    return LocalKeyring(settings.KEYRING_FILE)
