"""/readyz against a real OpenBao: ready when Transit answers, 503 naming keys when it does not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from caspix.crypto import keys
from tests.openbao import OpenBao, transit_backend


@pytest.fixture
def transit(openbao: OpenBao) -> Iterator[dict[str, object]]:
    config = openbao.config()
    with transit_backend(config):
        yield config


def test_it_is_ready_with_openbao(db: None, transit: dict[str, object]) -> None:
    assert keys.key_service().name == "transit"
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content


def test_it_names_keys_when_openbao_refuses_the_token(db: None, transit: dict[str, object]) -> None:
    keys.key_service.cache_clear()
    with override_settings(VAULT={**transit, "TOKEN": "not-a-valid-token"}):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["keys"]


def test_it_names_keys_when_openbao_is_unreachable(db: None, transit: dict[str, object]) -> None:
    keys.key_service.cache_clear()
    with override_settings(VAULT={**transit, "ADDR": "http://127.0.0.1:9", "TIMEOUT": 1}):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["keys"]
