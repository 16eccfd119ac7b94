"""Schemathesis against the intake API's own OpenAPI description, over HTTP, every request signed.

Hypothesis draws requests from the schema; each is signed as an upstream system signs it (the
signature is computed over the bytes ``requests`` sends) and its answer checked: never a server
error, a status and a content type the description documents, a body that follows its schema,
and no operation that answers without a valid signature (``ignored_auth``: the same request
without, or with a forged, signature must be refused).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import requests
import schemathesis
from caspix_client import sign  # on the path that conftest gives
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from cases.models import ApiKey, Queue
from tests.intake.conftest import alert

pytestmark = pytest.mark.django_db(transaction=True)


class Signed(requests.auth.AuthBase):
    """Sign the prepared request, over the exact bytes it carries."""

    def __init__(self, key: ApiKey, secret: bytes) -> None:
        self.key, self.secret = key, secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        raw: Any = request.body or b""
        body = raw.encode() if isinstance(raw, str) else bytes(raw)
        request.headers.update(sign(request.method or "GET", request.path_url, body, self.key.key_id, self.secret))
        request.headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        return request


# What the issue asks: no server error, status and schema conformance, ignored auth. Not the
# check that every schema-valid request is accepted: a Luhn digit, a currency's minor units or an
# account named by the alert are rules no JSON schema states, refused with a documented 422.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]
# The suite draws the same examples every run (CI stays deterministic); a longer, random
# exploration: CASPIX_SCHEMATHESIS_EXAMPLES=500 pytest tests/intake/test_schemathesis.py
EXAMPLES = int(os.environ.get("CASPIX_SCHEMATHESIS_EXAMPLES", "25"))
FIXED = "CASPIX_SCHEMATHESIS_EXAMPLES" not in os.environ
OPERATIONS = ["POST /api/v1/alerts", "POST /api/v1/alerts/bulk", "GET /api/v1/alerts/{id}"]


@pytest.mark.parametrize("label", OPERATIONS)
def test_it_follows_its_own_description(
    label: str, live_server: Any, api_key: tuple[ApiKey, bytes], routing: dict[str, Queue]
) -> None:
    generated = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    description = schemathesis.openapi.from_dict(generated)
    operations: list[Any] = [result.ok() for result in description.get_all_operations()]  # type: ignore[union-attr]
    [operation] = [op for op in operations if op.label == label]
    session = requests.Session()
    auth = Signed(*api_key)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=FIXED
    )
    def check(case: Any) -> None:
        response = case.call(base_url=live_server.url, session=session, auth=auth)
        case.validate_response(
            response, checks=CHECKS, transport_kwargs={"base_url": live_server.url, "session": session, "auth": auth}
        )

    try:
        check()
    finally:
        session.close()


def test_it_takes_a_valid_alert_drawn_as_the_schema_describes(
    live_server: Any, api_key: tuple[ApiKey, bytes], routing: dict[str, Queue]
) -> None:
    """The generator seldom draws an alert that every rule accepts: one known-good request too."""
    response = requests.post(f"{live_server.url}/api/v1/alerts", json=alert(), auth=Signed(*api_key), timeout=30)
    assert response.status_code == 201, response.text
