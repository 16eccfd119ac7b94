"""SAML sign-in in Chromium: the IdP is played by a route that answers the signed AuthnRequest
with a response signed by the test IdP's key, posted back by the browser (HTTP-POST binding)."""

from __future__ import annotations

import base64
import re
import zlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pytest_django.fixtures import Settings

from accounts.models import FederatedIdentity
from tests.saml_idp import assertion, configuration, encode, response, sign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IDP_SSO = "http://idp.bank.test/saml/sso"


def request_id_of(url: str) -> str:
    """The ID of the (deflated, base64) AuthnRequest carried by the redirect binding."""
    encoded = parse_qs(urlsplit(url).query)["SAMLRequest"][0]
    xml = zlib.decompress(base64.b64decode(encoded), -15).decode()
    match = re.search(r'ID="([^"]+)"', xml)
    assert match is not None
    return match.group(1)


def test_it_signs_in_through_the_identity_provider(page: Any, live_server: Any, settings: Settings) -> None:
    config = configuration()
    config["sp_base_url"] = live_server.url
    config["idp_sso_url"] = IDP_SSO
    settings.CASPIX_SAML = config
    acs = f"{live_server.url}/saml/acs/"

    def identity_provider(route: Any) -> None:
        request_id = request_id_of(route.request.url)
        signed = sign(
            assertion(in_response_to=request_id, subject="erin-0042", roles=["auditor"])
            .replace("https://caspix.test/saml/acs/", acs)
            .replace("https://caspix.test/saml/metadata/", f"{live_server.url}/saml/metadata/")
        )
        xml = response(signed, in_response_to=request_id, destination=acs)
        form = (
            "<!doctype html><html><body>"
            f'<form method="post" action="{acs}">'
            f'<input type="hidden" name="SAMLResponse" value="{encode(xml)}">'
            '<input type="hidden" name="RelayState" value="/audit/">'
            '<button type="submit">Continue</button></form></body></html>'
        )
        route.fulfill(status=200, content_type="text/html", body=form)

    page.route(re.compile(r"^http://idp\.bank\.test/.*"), identity_provider)
    # The browser context's own request: it keeps the request cookie the SP sets; the redirect
    # to the IdP is then followed as a navigation, which the route answers.
    start = page.request.get("/saml/login/", max_redirects=0)
    assert start.status == 302
    page.goto(start.headers["location"])
    page.get_by_role("button", name="Continue").click()  # what the IdP's page does on load
    page.wait_for_url("**/audit/")
    assert page.get_by_role("heading", level=1).inner_text() == "Audit"
    assert FederatedIdentity.objects.get().subject == "erin-0042"
