"""/healthz says the process is alive; /readyz checks database, broker and key service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import OperationalError
from django.test import Client, override_settings

from caspix import health
from caspix.crypto import keys


@pytest.fixture(autouse=True)
def fresh_key_service(tmp_path: Path) -> object:
    keys.key_service.cache_clear()
    with override_settings(KEYRING_FILE=tmp_path / "keyring.json"):
        yield
    keys.key_service.cache_clear()


def test_it_answers_alive_without_touching_dependencies() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_it_is_ready_when_every_dependency_answers(db: None) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checked": ["database", "broker", "keys"]}


@override_settings(CELERY_BROKER_URL="redis://127.0.0.1:9/0")
def test_it_names_an_unreachable_broker(db: None) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["broker"]}


def test_it_names_an_unusable_key_service(db: None, tmp_path: Path) -> None:
    (tmp_path / "keyring.json").write_text(json.dumps({"format": "something-else"}), encoding="utf-8")
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["keys"]


def test_it_names_an_unreachable_database(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", refuse)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


@override_settings(CELERY_TASK_ALWAYS_EAGER=True, CELERY_BROKER_URL="memory://")
def test_it_needs_no_broker_when_tasks_run_in_process(db: None) -> None:
    assert Client().get("/readyz").status_code == 200


def test_it_creates_the_local_keyring_owner_readable_only(tmp_path: Path) -> None:
    keys.key_service().health()
    assert (tmp_path / "keyring.json").stat().st_mode & 0o777 == 0o600
