"""The key service, on both backends: a real OpenBao (Transit) and the local keyring."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from caspix.crypto.keys import (
    IntegrityError,
    KeyName,
    KeyService,
    KeyServiceError,
    LocalKeyring,
    Signature,
    TransitService,
    verify_signature,
    wrapped_version,
)
from tests.openbao import OpenBao


@pytest.fixture(params=["local", "transit"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> KeyService:
    if request.param == "local":
        keyring: KeyService = LocalKeyring(tmp_path / "keyring.json")
    else:
        openbao: OpenBao = request.getfixturevalue("openbao")
        keyring = TransitService(
            openbao.config()  # every test gets keys of its own on the shared server
        )
    keyring.ensure_keys()
    return keyring


def test_it_wraps_and_unwraps_a_data_key(service: KeyService) -> None:
    key = service.generate_data_key(KeyName.DATA)
    assert len(key.plaintext) == 32
    assert wrapped_version(key.wrapped) == 1
    assert base64.b64encode(key.plaintext).decode() not in key.wrapped
    assert service.unwrap(KeyName.DATA, key.wrapped) == key.plaintext
    assert "plaintext" not in repr(key)


def test_it_makes_a_fresh_key_every_time(service: KeyService) -> None:
    first, second = service.generate_data_key(KeyName.DATA), service.generate_data_key(KeyName.DATA)
    assert first.plaintext != second.plaintext
    assert first.wrapped != second.wrapped


def test_it_refuses_a_key_wrapped_under_another_name(service: KeyService) -> None:
    key = service.generate_data_key(KeyName.DATA)
    with pytest.raises(IntegrityError):
        service.unwrap(KeyName.INDEX, key.wrapped)


def test_it_refuses_a_tampered_wrapped_key(service: KeyService) -> None:
    wrapped = service.generate_data_key(KeyName.DATA).wrapped
    prefix, body = wrapped.rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 0x01
    with pytest.raises(IntegrityError):
        service.unwrap(KeyName.DATA, f"{prefix}:{base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(IntegrityError):
        service.unwrap(KeyName.DATA, "not a wrapped key")


def test_it_rotates_without_losing_old_versions_then_retires_them(service: KeyService) -> None:
    old = service.generate_data_key(KeyName.DATA)
    info = service.rotate(KeyName.DATA)
    assert (info.latest_version, info.min_decryption_version) == (2, 1)
    new = service.generate_data_key(KeyName.DATA)
    assert wrapped_version(new.wrapped) == 2
    assert service.unwrap(KeyName.DATA, old.wrapped) == old.plaintext

    rewrapped = service.rewrap(KeyName.DATA, old.wrapped)
    assert wrapped_version(rewrapped) == 2
    assert service.unwrap(KeyName.DATA, rewrapped) == old.plaintext

    assert service.set_min_decryption_version(KeyName.DATA, 2).min_decryption_version == 2
    with pytest.raises(IntegrityError):
        service.unwrap(KeyName.DATA, old.wrapped)
    assert service.unwrap(KeyName.DATA, rewrapped) == old.plaintext


def test_it_refuses_a_min_decryption_version_out_of_range(service: KeyService) -> None:
    with pytest.raises(KeyServiceError, match="between 1 and 1"):
        service.set_min_decryption_version(KeyName.DATA, 2)


def test_it_signs_with_ed25519_and_verifies_offline(service: KeyService) -> None:
    message = b"caspix.example/ledger\n42\nroot\n"
    signature = service.sign(KeyName.LEDGER, message)
    public = service.public_keys(KeyName.LEDGER)
    assert set(public) == {1}
    assert len(public[1]) == 32
    verify_signature(public, message, signature)
    with pytest.raises(IntegrityError):
        verify_signature(public, message + b"x", signature)
    with pytest.raises(IntegrityError):
        verify_signature(public, message, Signature(2, signature.signature))


def test_it_keeps_verifying_old_signatures_after_rotation(service: KeyService) -> None:
    old = service.sign(KeyName.LEDGER, b"before")
    service.rotate(KeyName.LEDGER)
    new = service.sign(KeyName.LEDGER, b"after")
    assert (old.version, new.version) == (1, 2)
    public = service.public_keys(KeyName.LEDGER)
    verify_signature(public, b"before", old)
    verify_signature(public, b"after", new)


def test_it_creates_keys_idempotently(service: KeyService) -> None:
    service.rotate(KeyName.BACKUP)
    service.ensure_keys()
    assert service.info(KeyName.BACKUP).latest_version == 2


def test_it_is_healthy(service: KeyService) -> None:
    service.health()


def test_it_refuses_to_sign_with_an_encryption_key(tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / "keyring.json")
    keyring.ensure_keys()
    with pytest.raises(KeyServiceError, match="not a signing key"):
        keyring.sign(KeyName.DATA, b"x")


def test_it_keeps_the_local_keyring_owner_only_and_shared_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    first, second = LocalKeyring(path), LocalKeyring(path)
    first.ensure_keys()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = first.generate_data_key(KeyName.DATA)
    second.rotate(KeyName.DATA)
    # The first instance meets version 2 for the first time and reloads the keyring.
    rotated = second.rewrap(KeyName.DATA, key.wrapped)
    assert first.unwrap(KeyName.DATA, rotated) == key.plaintext
    assert json.loads(path.read_text(encoding="utf-8"))["keys"]["data"]["latest"] == 2


def test_it_destroys_retired_local_key_material(tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / "keyring.json")
    keyring.ensure_keys()
    keyring.rotate(KeyName.DATA)
    keyring.set_min_decryption_version(KeyName.DATA, 2)
    versions = json.loads((tmp_path / "keyring.json").read_text(encoding="utf-8"))["keys"]["data"]["versions"]
    assert set(versions) == {"2"}


def test_it_provisions_a_new_keyring_with_every_named_key(tmp_path: Path) -> None:
    LocalKeyring(tmp_path / "keyring.json").generate_data_key(KeyName.DATA)
    stored = json.loads((tmp_path / "keyring.json").read_text(encoding="utf-8"))["keys"]
    assert set(stored) == {name.value for name in KeyName}


def test_it_adds_a_named_key_missing_from_an_older_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyring(path).health()
    stored = json.loads(path.read_text(encoding="utf-8"))
    del stored["keys"]["backup"]
    path.write_text(json.dumps(stored), encoding="utf-8")
    assert LocalKeyring(path).generate_data_key(KeyName.BACKUP).wrapped.startswith("local:v1:")


def test_it_reports_transit_down_as_a_key_service_error(openbao: OpenBao) -> None:
    down = TransitService(openbao.config(ADDR="http://127.0.0.1:9", TIMEOUT=1))
    with pytest.raises(KeyServiceError, match="generate_data_key: the key service cannot be reached"):
        down.generate_data_key(KeyName.DATA)
