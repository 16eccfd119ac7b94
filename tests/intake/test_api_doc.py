"""docs/API.md's worked example verifies, and the app serves its OpenAPI description and docs page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from django.test import Client

from cases.signatures import verify_request

DOC = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()


def block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)\n```", DOC, re.DOTALL)
    assert match is not None, language
    return match.group(1)


def test_it_documents_a_request_that_verifies() -> None:
    body = block("json").encode()
    lines = dict(line.split(": ", 1) for line in block("http").splitlines()[1:])
    secret_text = re.search(r"secret \(base64url\)\n?\s*`([A-Za-z0-9_-]+)`", DOC)
    assert secret_text is not None
    secret = base64.urlsafe_b64decode(secret_text.group(1) + "=" * (-len(secret_text.group(1)) % 4))
    verified = verify_request(
        method="POST",
        path="/api/v1/alerts",
        headers=lines,
        body=body,
        keys=lambda keyid: [secret] if keyid == "tms-3f9a0c21d4e7" else [],
        now=1795515300,
        window_seconds=300,
        nonce_seen=lambda *_: False,
    )
    assert (verified.keyid, verified.nonce) == ("tms-3f9a0c21d4e7", "Zk1tP3xq0Wd7cHVyZ2VkLW5vbmNl")


@pytest.mark.django_db
def test_it_serves_its_openapi_description_and_docs_page(client: Client) -> None:
    schema = client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    description = schema.json()
    assert description["openapi"].startswith("3.")
    assert set(description["paths"]) == {"/api/v1/alerts", "/api/v1/alerts/bulk", "/api/v1/alerts/{id}"}
    assert "httpMessageSignature" in description["components"]["securitySchemes"]
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert b"https://" not in page.content  # every asset from the app itself
