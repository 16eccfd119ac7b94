"""The test OIDC provider (tests/oidc_idp.py) does what the relying-party tests will count on:
discovery, its JWKS, the code flow with PKCE signed in without a person, the claims Caspix reads,
and RP-initiated logout. Plain HTTP from Python here; the browser tests drive the same pages."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest

from tests import oidc_idp
from tests.oidc_idp import ALICE, BOB, MFA, Algorithm, Browser, OIDCProvider, OIDCProviderError, sign_in, sign_out

CALLBACK = "http://127.0.0.1:9/oidc/callback/"
LOGGED_OUT = "http://127.0.0.1:9/signed-out/"
SCOPE = "openid email profile caspix"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    workdir = tmp_path_factory.mktemp("oidc")
    with oidc_idp.oidc_provider(
        redirect_uris=[CALLBACK], post_logout_redirect_uris=[LOGGED_OUT], workdir=workdir
    ) as provider:
        yield provider


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback)
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as answer:
        return json.load(answer)


def _post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=urlencode(form).encode(), headers=headers or {})  # noqa: S310
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


class Flow:
    """One authorization request as an RP makes it: state, nonce and a PKCE verifier of its own."""

    def __init__(self, provider: OIDCProvider, **extra: str | None) -> None:
        self.provider = provider
        self.state, self.nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": CALLBACK,
            "scope": SCOPE,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params = {key: value for key, value in (params | extra).items() if value is not None}
        self.url = f"{provider.authorization_endpoint}?{urlencode(params)}"

    def callback(self, location: str) -> dict[str, str]:
        assert location.startswith(CALLBACK + "?")
        query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        assert query["state"] == self.state
        return query

    def redeem(self, code: str, *, basic: bool = False, verifier: str | None = None) -> tuple[int, Any]:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        form["code_verifier"] = verifier or self.verifier
        client = {"client_id": self.provider.client_id, "client_secret": self.provider.client_secret}
        if not basic:  # mozilla-django-oidc's default: the secret in the body
            return _post(self.provider.token_endpoint, form | client)
        credentials = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        return _post(self.provider.token_endpoint, form, {"Authorization": f"Basic {credentials}"})


def _verified(provider: OIDCProvider, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims, checked against the published JWKS as an RP checks them."""
    header = jwt.get_unverified_header(id_token)
    published = {key["kid"]: key for key in _get(provider.jwks_uri)["keys"]}
    assert header["alg"] == provider.alg
    assert header["kid"] == provider.signing_key.kid
    claims: dict[str, Any] = jwt.decode(
        id_token,
        jwt.PyJWK(published[header["kid"]]).key,
        algorithms=[provider.alg],
        audience=provider.client_id,
        issuer=provider.issuer,
    )
    assert claims["nonce"] == nonce
    return claims


def _signed_in(provider: OIDCProvider, username: str, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh browser signs in as ``username``: (the token response, the verified ID token claims)."""
    flow = Flow(provider)
    query = flow.callback(sign_in(Browser(), provider, flow.url, username, **overrides))
    assert query["iss"] == provider.issuer
    status, tokens = flow.redeem(query["code"])
    assert status == 200, tokens
    return tokens, _verified(provider, tokens["id_token"], flow.nonce)


def test_discovery_describes_a_code_flow_provider_on_loopback(idp: OIDCProvider) -> None:
    document = _get(f"{idp.issuer}/.well-known/openid-configuration")

    assert document == idp.metadata
    assert idp.issuer.startswith("http://127.0.0.1:")
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_post", "client_secret_basic"} <= set(document["token_endpoint_auth_methods_supported"])
    assert {"RS256", "ES256"} <= set(document["id_token_signing_alg_values_supported"])
    assert {"openid", "email", "profile", "caspix"} <= set(document["scopes_supported"])
    assert {"caspix_roles", "caspix_teams", "acr", "amr"} <= set(document["claims_supported"])
    assert document["acr_values_supported"] == [MFA]
    assert document["end_session_endpoint"] == f"{idp.issuer}/session/end"


def test_jwks_publishes_the_public_halves_of_the_keys(idp: OIDCProvider) -> None:
    keys = _get(idp.jwks_uri)["keys"]

    assert {key["kid"]: key for key in keys} == {key.kid: key.public_jwk() for key in idp.keys}
    assert {key["alg"] for key in keys} == {"RS256", "ES256"}
    assert not any({"d", "p", "q", "dp", "dq", "qi"} & set(key) for key in keys)


def test_code_flow_with_pkce_yields_an_id_token_with_caspix_claims(idp: OIDCProvider) -> None:
    tokens, claims = _signed_in(idp, "alice")

    assert claims["sub"] == ALICE.sub
    assert (claims["email"], claims["name"]) == (ALICE.email, ALICE.name)
    assert claims["caspix_roles"] == ["analyst"]
    assert claims["caspix_teams"] == ["cards"]
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["acr"] == MFA
    assert claims["auth_time"] <= claims["iat"] < claims["exp"]
    userinfo = _get(idp.userinfo_endpoint, {"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo["sub"] == ALICE.sub
    assert userinfo["caspix_roles"] == ["analyst"]
    assert userinfo["caspix_teams"] == ["cards"]


def test_each_user_brings_their_own_amr_and_acr(idp: OIDCProvider) -> None:
    _tokens, claims = _signed_in(idp, "bob")

    assert claims["sub"] == BOB.sub
    assert claims["caspix_teams"] == ["aml"]
    assert claims["amr"] == ["pwd"]
    assert "acr" not in claims


def test_one_sign_in_may_claim_another_amr_and_acr(idp: OIDCProvider) -> None:
    _tokens, claims = _signed_in(idp, "bob", acr=MFA, amr=["pwd", "hwk"])

    assert (claims["acr"], claims["amr"]) == (MFA, ["pwd", "hwk"])


def test_es256_signing(tmp_path: Path) -> None:
    with oidc_idp.oidc_provider(redirect_uris=[CALLBACK], alg="ES256", workdir=tmp_path) as provider:
        _tokens, claims = _signed_in(provider, "alice")

    assert provider.signing_key.alg == "ES256"
    assert claims["sub"] == ALICE.sub


def test_basic_client_authentication_is_accepted_too(idp: OIDCProvider) -> None:
    flow = Flow(idp)
    query = flow.callback(sign_in(Browser(), idp, flow.url, "alice"))

    status, tokens = flow.redeem(query["code"], basic=True)

    assert status == 200, tokens
    assert _verified(idp, tokens["id_token"], flow.nonce)["sub"] == ALICE.sub


def test_pkce_is_required_and_checked(idp: OIDCProvider) -> None:
    without = Flow(idp, code_challenge=None, code_challenge_method=None)
    refused = without.callback(Browser().follow(without.url, idp.issuer).location or "")
    assert (refused["error"], refused["error_description"]) == (
        "invalid_request",
        "Authorization Server policy requires PKCE to be used for this request",
    )

    flow = Flow(idp)
    query = flow.callback(sign_in(Browser(), idp, flow.url, "alice"))
    status, answer = flow.redeem(query["code"], verifier=secrets.token_urlsafe(48))
    assert (status, answer["error"]) == (400, "invalid_grant")


def test_a_wrong_secret_is_refused(idp: OIDCProvider) -> None:
    flow = Flow(idp)
    query = flow.callback(sign_in(Browser(), idp, flow.url, "alice"))
    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": CALLBACK}
    form |= {"code_verifier": flow.verifier, "client_id": idp.client_id, "client_secret": "wrong"}

    status, answer = _post(idp.token_endpoint, form)

    assert (status, answer["error"]) == (401, "invalid_client")


def test_unknown_user_stays_on_the_form_and_cancel_returns_access_denied(idp: OIDCProvider) -> None:
    browser, flow = Browser(), Flow(idp)
    with pytest.raises(OIDCProviderError, match="Unknown user"):
        sign_in(browser, idp, flow.url, "mallory")

    page = browser.follow(flow.url, idp.issuer)
    cancel = Browser.forms(page)["abort"]
    location = browser.follow(idp.issuer + cancel.action, idp.issuer, cancel.fields).location
    assert flow.callback(location or "")["error"] == "access_denied"


def test_a_session_signs_in_again_without_the_form_unless_prompt_login(idp: OIDCProvider) -> None:
    browser = Browser()
    sign_in(browser, idp, Flow(idp).url, "alice")

    again = Flow(idp)
    page = browser.follow(again.url, idp.issuer)
    assert "code" in again.callback(page.location or "")

    forced = Flow(idp, prompt="login")
    assert "login" in Browser.forms(browser.follow(forced.url, idp.issuer))
    query = forced.callback(sign_in(browser, idp, forced.url, "bob"))
    status, tokens = forced.redeem(query["code"])
    assert status == 200
    assert _verified(idp, tokens["id_token"], forced.nonce)["sub"] == BOB.sub


def test_prompt_none_without_a_session_answers_login_required(idp: OIDCProvider) -> None:
    flow = Flow(idp, prompt="none")

    assert flow.callback(Browser().follow(flow.url, idp.issuer).location or "")["error"] == "login_required"


def test_rp_initiated_logout_returns_to_the_rp_and_ends_the_session(idp: OIDCProvider) -> None:
    browser, flow = Browser(), Flow(idp)
    query = flow.callback(sign_in(browser, idp, flow.url, "alice"))
    _status, tokens = flow.redeem(query["code"])

    location = sign_out(
        browser, idp, id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT, state="bye"
    )

    assert location == f"{LOGGED_OUT}?state=bye"
    assert "login" in Browser.forms(browser.follow(Flow(idp).url, idp.issuer))


def test_the_logout_confirmation_can_stay_on_screen(tmp_path: Path) -> None:
    with oidc_idp.oidc_provider(
        redirect_uris=[CALLBACK], post_logout_redirect_uris=[LOGGED_OUT], logout_prompt=True, workdir=tmp_path
    ) as provider:
        browser, flow = Browser(), Flow(provider)
        flow.callback(sign_in(browser, provider, flow.url, "alice"))
        params = {"client_id": provider.client_id, "post_logout_redirect_uri": LOGGED_OUT}
        page = browser.follow(f"{provider.end_session_endpoint}?{urlencode(params)}", provider.issuer)
        assert 'id="sign-out"' in page.text
        assert ".submit()" not in page.text

        assert sign_out(browser, provider, **params) == LOGGED_OUT


def test_logout_to_an_unregistered_uri_is_refused(idp: OIDCProvider) -> None:
    page = Browser().follow(
        f"{idp.end_session_endpoint}?{urlencode({'client_id': idp.client_id, 'post_logout_redirect_uri': CALLBACK})}",
        idp.issuer,
    )

    assert page.status == 400
    assert "post_logout_redirect_uri not registered" in page.text


def test_a_second_issuer_with_its_own_keys_is_not_trusted_by_the_first(idp: OIDCProvider, tmp_path: Path) -> None:
    other_keys = (oidc_idp.signing_key("RS256", name="rogue"),)
    with oidc_idp.oidc_provider(redirect_uris=[CALLBACK], keys=other_keys, workdir=tmp_path) as rogue:
        tokens, _claims = _signed_in(rogue, "alice")

    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["kid"] not in {key["kid"] for key in _get(idp.jwks_uri)["keys"]}


def test_missing_packages_and_node_fail_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {"oidc-provider": "0.0.0"}}))
    monkeypatch.setattr(oidc_idp, "PROVIDER_DIR", tmp_path)
    with pytest.raises(OIDCProviderError, match="npm ci"), oidc_idp.oidc_provider(redirect_uris=[CALLBACK]):
        pass

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with (
        pytest.raises(OIDCProviderError, match="node is not on PATH"),
        oidc_idp.oidc_provider(redirect_uris=[CALLBACK]),
    ):
        pass


@pytest.mark.parametrize(
    ("redirect", "alg", "reason"),
    [
        ("not a uri", "RS256", "redirect_uris must only contain valid uris"),
        (CALLBACK, "ES256", "jwks.keys[0] is of no use"),  # an RSA key labelled ES256
    ],
)
def test_a_provider_that_cannot_start_shows_its_log(redirect: str, alg: Algorithm, reason: str, tmp_path: Path) -> None:
    keys = [dataclasses.replace(oidc_idp.signing_key("RS256"), alg=alg)]
    with (
        pytest.raises(OIDCProviderError, match="did not start") as failure,
        oidc_idp.oidc_provider(redirect_uris=[redirect], keys=keys, alg=alg, workdir=tmp_path),
    ):
        pass

    assert reason in str(failure.value)
