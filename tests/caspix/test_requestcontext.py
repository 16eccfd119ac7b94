"""Request ids: kept when well-formed, replaced otherwise, on every log line with the user id."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from django.test import Client, RequestFactory, override_settings

from accounts.models import User
from caspix.logconfig import CaspixJsonFormatter
from caspix.masking import MaskingFilter
from caspix.requestcontext import ContextFilter, accept_request_id, client_address
from tests.conftest import client_for

GOOD = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize("value", [GOOD, GOOD.upper(), GOOD.replace("-", "")])
def test_it_keeps_a_well_formed_request_id(value: str) -> None:
    assert accept_request_id(value) == value.lower()


@pytest.mark.parametrize(
    "value", [None, "", "abc", "4111111111111111", GOOD + "\nforged-line", "<script>", "x" * 500, GOOD + " "]
)
def test_it_replaces_a_malformed_request_id(value: str | None) -> None:
    replaced = accept_request_id(value)
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert replaced != value


def test_it_echoes_the_request_id(db: None) -> None:
    response = Client().get("/healthz", headers={"X-Request-ID": GOOD})
    assert response["X-Request-ID"] == GOOD
    other = Client().get("/healthz", headers={"X-Request-ID": "drop table"})
    assert re.fullmatch(r"[0-9a-f]{32}", other["X-Request-ID"])


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(MaskingFilter())
    handler.setFormatter(CaspixJsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


@override_settings(CELERY_BROKER_URL="redis://127.0.0.1:9/0")
def test_it_logs_json_lines_with_request_and_user_ids(analyst: User, log_output: io.StringIO) -> None:
    client = client_for(analyst)
    client.get("/readyz", headers={"X-Request-ID": GOOD})
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    warning = next(line for line in lines if line["message"] == "readiness check failed: broker")
    assert warning["request_id"] == GOOD
    assert warning["user_id"] == analyst.pk
    assert warning["level"] == "WARNING"
    assert warning["logger"] == "caspix.health"
    assert warning["time"].endswith("+00:00")
    assert "exc_info" in warning


def test_it_never_logs_a_malformed_request_id(db: None, log_output: io.StringIO) -> None:
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:9/0"):
        Client().get("/readyz", headers={"X-Request-ID": "4111 1111 1111 1111"})
    assert "4111" not in log_output.getvalue()
    assert log_output.getvalue()


def test_it_logs_outside_requests_with_placeholders(log_output: io.StringIO) -> None:
    logging.getLogger("caspix.test").warning("outside a request")
    line = json.loads(log_output.getvalue())
    assert line["request_id"] == "-"
    assert line["user_id"] is None


def test_it_takes_the_client_address_from_the_socket_without_a_proxy(rf: RequestFactory) -> None:
    request = rf.get("/", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert client_address(request) == "192.0.2.7"


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_it_takes_the_address_the_proxy_appended_last(rf: RequestFactory) -> None:
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    assert client_address(request) == "203.0.113.9"  # the first entry is the client's to forge


def test_it_gives_no_address_for_garbage(rf: RequestFactory) -> None:
    assert client_address(rf.get("/", REMOTE_ADDR="not an address")) is None
