"""SAML 2.0 sign-in with responses signed by a test IdP (xmlsec), and every forgery refused."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from accounts.models import (
    FederatedIdentity,
    IdentityProviderFactor,
    Membership,
    SamlRequest,
    SeenAssertion,
    Team,
    TOTPDevice,
    User,
)
from accounts.saml import REQUEST_COOKIE
from tests.factories import make_user
from tests.recorded import events
from tests.saml_idp import MULTI_FACTOR, SP_ENTITY, assertion, configuration, encode, response, sign

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def saml(settings: Settings) -> None:
    settings.CASPIX_SAML = configuration()


def started() -> tuple[Client, str]:
    """A browser that asked to sign in through the IdP, and the id of the request it carries."""
    client = Client()
    redirect = client.get("/saml/login/")
    assert redirect.status_code == 302
    cookie = redirect.cookies[REQUEST_COOKIE]
    assert (cookie["samesite"], cookie["secure"], cookie["httponly"]) == ("None", True, True)
    return client, str(SamlRequest.objects.latest("pk").request_id)


def post(client: Client, xml: str) -> int:
    return int(client.post("/saml/acs/", {"SAMLResponse": encode(xml), "RelayState": "/work/"}).status_code)


def good(request_id: str, **fields: object) -> str:
    return response(sign(assertion(in_response_to=request_id, **fields)), in_response_to=request_id)  # type: ignore[arg-type]


def refusal() -> str:
    failed = [e for e in events() if e["name"] == "SIGN_IN_FAILED"]
    assert failed, "no refusal in the ledger"
    return str(failed[-1]["reason"])


def test_it_publishes_metadata_asking_for_signed_assertions() -> None:
    response_ = Client().get("/saml/metadata/")
    assert response_.status_code == 200
    xml = response_.content.decode()
    assert f'entityID="{SP_ENTITY}"' in xml
    assert 'AuthnRequestsSigned="true"' in xml
    assert 'WantAssertionsSigned="true"' in xml
    assert "https://caspix.test/saml/acs/" in xml


def test_it_sends_a_signed_authn_request() -> None:
    location = Client().get("/saml/login/")["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith("https://idp.bank.test/saml/sso?")
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert query["Signature"]


def test_it_signs_in_a_new_user_matched_on_issuer_and_subject() -> None:
    Team.objects.create(slug="cards", name="Cards")
    client, request_id = started()
    assert post(client, good(request_id, roles=["analyst", "admin"], teams=["cards"])) == 302
    identity = FederatedIdentity.objects.get(subject="alice-0001")
    user = identity.user
    assert identity.issuer == "https://idp.bank.test/saml"
    assert sorted(user.roles.values_list("slug", flat=True)) == ["analyst"]  # admin is privileged: never federated
    assert Membership.objects.filter(user=user, team__slug="cards").exists()
    assert not user.has_usable_password()
    assert [e["reason"] for e in events() if e["name"] == "SIGNED_IN"] == ["saml"]
    assert SeenAssertion.objects.count() == 1


def test_it_finds_the_same_user_again_and_follows_the_idp_on_roles_and_teams() -> None:
    Team.objects.create(slug="cards", name="Cards")
    client, request_id = started()
    post(client, good(request_id, teams=["cards"]))
    client, request_id = started()
    assert post(client, good(request_id, roles=["auditor"], teams=[])) == 302
    user = FederatedIdentity.objects.get(subject="alice-0001").user
    assert User.objects.count() == 1
    assert list(user.roles.values_list("slug", flat=True)) == ["auditor"]
    assert not Membership.objects.filter(user=user).exists()


def test_it_never_matches_on_an_email_like_subject() -> None:
    make_user("alice", email="alice@bank.example", roles=["admin"])
    client, request_id = started()
    post(client, good(request_id, subject="alice@bank.example"))
    federated = FederatedIdentity.objects.get(subject="alice@bank.example").user
    assert federated.username != "alice"
    assert not federated.roles.filter(slug="admin").exists()


def test_it_asks_for_the_second_factor_when_the_roles_require_one() -> None:
    client, request_id = started()
    post(client, good(request_id, roles=["analyst"]))
    assert client.get("/work/")["Location"].startswith("/login/enrol/")


def test_it_keeps_asking_for_a_caspix_factor_by_default_whatever_the_idp_says() -> None:
    client, request_id = started()
    post(client, good(request_id, roles=["analyst"], authn_context=MULTI_FACTOR))
    assert client.get("/work/")["Location"].startswith("/login/enrol/")
    assert [e["after"] for e in events() if e["name"] == "SIGNED_IN"][-1]["provider_mfa"] is False  # type: ignore[index]


def test_it_lets_the_idps_multi_factor_context_stand_for_ours_when_trusted(settings: Settings) -> None:
    settings.CASPIX_SAML = {**configuration(), "mfa": "idp"}
    client, request_id = started()
    post(client, good(request_id, roles=["analyst"], authn_context=MULTI_FACTOR))
    assert client.get("/work/").status_code == 200
    assert [e["name"] for e in events()][-2:] == ["SIGNED_IN", "SECOND_FACTOR_VERIFIED"]
    assert IdentityProviderFactor.objects.filter(user__federated_identities__subject="alice-0001").exists()


def test_it_asks_for_ours_when_the_idp_used_a_password_only(settings: Settings) -> None:
    settings.CASPIX_SAML = {**configuration(), "mfa": "idp"}
    client, request_id = started()
    post(client, good(request_id, roles=["analyst"]))  # PasswordProtectedTransport
    assert client.get("/work/")["Location"].startswith("/login/enrol/")


def test_it_refuses_a_deactivated_user() -> None:
    client, request_id = started()
    post(client, good(request_id))
    User.objects.update(is_active=False)
    client, request_id = started()
    assert post(client, good(request_id)) == 400
    assert "deactivated" in refusal()


def test_it_refuses_an_unsigned_assertion() -> None:
    client, request_id = started()
    assert post(client, response(assertion(in_response_to=request_id), in_response_to=request_id)) == 400
    assert "invalid response" in refusal()
    assert not FederatedIdentity.objects.exists()


def test_it_refuses_sha1() -> None:
    client, request_id = started()
    signed = sign(
        assertion(in_response_to=request_id),
        algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        digest="http://www.w3.org/2000/09/xmldsig#sha1",
    )
    assert post(client, response(signed, in_response_to=request_id)) == 400
    assert not FederatedIdentity.objects.exists()


def test_it_refuses_a_wrapped_assertion_with_a_duplicate_id() -> None:
    client, request_id = started()
    genuine = sign(assertion(in_response_to=request_id, assertion_id="_same", subject="alice-0001"))
    evil = assertion(in_response_to=request_id, assertion_id="_same", subject="mallory")
    assert post(client, response(evil, genuine, in_response_to=request_id)) == 400
    assert not FederatedIdentity.objects.exists()


def test_it_refuses_a_signed_assertion_moved_out_of_place() -> None:
    client, request_id = started()
    genuine = sign(assertion(in_response_to=request_id, subject="alice-0001"))
    evil = assertion(in_response_to=request_id, subject="mallory")
    hidden = f'<samlp:Extensions xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">{genuine}</samlp:Extensions>'
    assert post(client, response(evil, in_response_to=request_id, before=hidden)) == 400
    assert not FederatedIdentity.objects.filter(subject="mallory").exists()


def test_it_refuses_a_response_without_the_browsers_request_cookie() -> None:
    _client, request_id = started()
    assert post(Client(), good(request_id)) == 400
    assert refusal() == "saml: no request from this browser"


def test_it_refuses_a_request_answered_already() -> None:
    client, request_id = started()
    cookie = client.cookies[REQUEST_COOKIE].value
    assert post(client, good(request_id)) == 302
    again = Client()
    again.cookies[REQUEST_COOKIE] = cookie
    assert post(again, good(request_id)) == 400
    assert refusal() == "saml: request unknown, answered already or expired"


def test_it_refuses_an_assertion_seen_before_even_for_a_new_request() -> None:
    client, request_id = started()
    assert post(client, good(request_id, assertion_id="_fixed")) == 302
    client, request_id = started()
    assert post(client, good(request_id, assertion_id="_fixed")) == 400
    assert refusal() == "saml: assertion replayed"


def test_it_refuses_an_expired_assertion() -> None:
    client, request_id = started()
    assert post(client, good(request_id, lifetime=timedelta(minutes=-10))) == 400
    assert not FederatedIdentity.objects.exists()


def test_it_refuses_another_audience() -> None:
    client, request_id = started()
    assert post(client, good(request_id, audience="https://elsewhere.test/")) == 400
    assert not FederatedIdentity.objects.exists()


def test_it_refuses_a_response_to_another_request() -> None:
    client, _ = started()
    assert post(client, good("_not-this-session-s")) == 400


def test_it_refuses_an_xslt_transform_before_validating() -> None:
    client, request_id = started()
    xslt = (
        '<ds:Transform xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
        'Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116">'
        '<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"/></ds:Transform>'
    )
    xml = response(sign(assertion(in_response_to=request_id)), in_response_to=request_id, before=xslt)
    assert post(client, xml) == 400
    assert refusal() == "saml: response carries an XSLT transform"


def test_it_refuses_an_oversize_response(settings: Settings) -> None:
    settings.CASPIX_SAML_MAX_BYTES = 4096
    client, request_id = started()
    assert post(client, good(request_id, teams=["x" * 5000])) == 400
    assert refusal() == "saml: response too large"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("not base64 at all!", "saml: response is not base64"),
        ("PHNhbWw+", "saml: response is not well-formed XML"),  # "<saml>" cut short
        ("", "saml: no SAMLResponse"),
    ],
)
def test_it_answers_garbage_with_400_not_500(payload: str, why: str) -> None:
    client, _ = started()
    response_ = client.post("/saml/acs/", {"SAMLResponse": payload})
    assert response_.status_code == 400
    assert "Sign-in refused" in response_.content.decode()
    assert refusal() == why


def test_it_refuses_a_dtd() -> None:
    client, request_id = started()
    xml = '<!DOCTYPE r [<!ENTITY x "y">]>' + good(request_id)
    assert post(client, xml) == 400
    assert refusal() == "saml: response carries a DTD"


def test_it_is_off_without_an_identity_provider(settings: Settings) -> None:
    settings.CASPIX_SAML = None
    assert Client().get("/saml/metadata/").status_code == 404
    assert Client().post("/saml/acs/", {"SAMLResponse": "x"}).status_code == 404


def test_it_keeps_the_factor_for_a_user_who_has_one() -> None:
    client, request_id = started()
    post(client, good(request_id, roles=["auditor"]))
    user = FederatedIdentity.objects.get().user
    TOTPDevice.objects.create(user=user, name="Phone", confirmed=True)
    client, request_id = started()
    post(client, good(request_id, roles=["auditor"]))
    assert client.get("/audit/")["Location"].startswith("/login/verify/")


def test_it_offers_the_organisations_sign_in_on_the_login_page() -> None:
    assert "Sign in with your organisation" in Client().get("/login/").content.decode()
