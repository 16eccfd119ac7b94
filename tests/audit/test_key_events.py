"""Rotation, rewrap, retirement, re-indexing and backups become ledger events (issue [ledger] 9)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from audit.models import PendingEvent
from caspix.crypto import keys, rotation
from tests.crypto_app.models import Person

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rotation, "wait", lambda seconds: None)
    monkeypatch.setattr(rotation, "ACTIVE_KEY_TTL", 0.0)


def run(*args: str) -> None:
    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())


def recorded() -> list[dict[str, Any]]:
    return [json.loads(bytes(body)) for body in PendingEvent.objects.order_by("id").values_list("body", flat=True)]


def test_it_records_a_rotation_with_the_new_version_and_data_key(keyring: keys.LocalKeyring) -> None:
    run("rotate_key", "data")
    (event,) = recorded()
    assert event["name"] == "KEY_ROTATED"
    assert event["object"] == {"type": "key", "id": "data"}
    assert event["after"]["version"] == 2
    assert isinstance(event["after"]["data_key"], int)
    assert event["actor"]["role"] == "operator"


def test_it_records_rewrap_and_retirement(keyring: keys.LocalKeyring) -> None:
    Person.objects.create(national_id="AB123456C")
    run("rotate_key", "data")
    run("rewrap", "--key", "data", "--retire")
    names = [(e["name"], e["after"]) for e in recorded()]
    assert ("DATA_KEYS_REWRAPPED", {"count": 1, "version": 2}) in names
    assert ("KEY_VERSIONS_RETIRED", {"below": 2, "previous": 1}) in names


def test_it_records_a_new_index_key_and_the_rebuilt_indexes(keyring: keys.LocalKeyring) -> None:
    Person.objects.create(national_id="AB123456C")
    run("reindex", "--new-key", "--retire")
    names = [e["name"] for e in recorded()]
    assert names == ["BLIND_INDEX_KEY_CREATED", "BLIND_INDEXES_REBUILT", "INDEX_KEYS_RETIRED"]


def test_it_records_a_refused_backup(keyring: keys.LocalKeyring, tmp_path: Path) -> None:
    manifest = tmp_path / "forged.manifest.json"
    manifest.write_text("{}", encoding="utf-8")
    for verify_only in (["--verify-only"], []):
        with pytest.raises(CommandError, match="not a caspix-backup/1 manifest"):
            run("restore", str(manifest), *verify_only)
    events = recorded()
    assert [e["name"] for e in events] == ["BACKUP_REFUSED", "BACKUP_REFUSED"]
    assert events[0]["object"]["id"] == "forged.manifest.json"
