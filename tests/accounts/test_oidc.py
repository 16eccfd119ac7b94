"""OpenID Connect sign-in against a real provider on loopback (panva's oidc-provider, started by
tests/oidc_idp.py), and the refusals the notes ask for: wrong issuer, wrong audience, wrong
nonce, a symmetric or unsigned token, an unknown key, an e-mail that matches a local account,
a replayed or unknown state, and a provider that no longer vouches for the session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from django.core.exceptions import SuspiciousOperation
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import oidc
from accounts.models import FederatedIdentity, IdentityProviderFactor, Membership, Team, User, UserSession
from caspix.access import STEP_UP_SESSION_KEY
from tests.factories import make_user
from tests.oidc_idp import ALICE, BOB, Browser, OIDCProvider, configure_caspix, oidc_provider, sign_in
from tests.oidc_idp import User as ProviderUser
from tests.recorded import events, names

pytestmark = pytest.mark.django_db

CALLBACK = "http://testserver/oidc/callback/"
AFTER_LOGOUT = "http://testserver/login/"
CAROL = ProviderUser("carol", "carol-0003", "carol@bank.test", "Carol", ("manager", "admin"), (), ("pwd",))


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    with oidc_provider(
        redirect_uris=[CALLBACK], post_logout_redirect_uris=[AFTER_LOGOUT], users=(ALICE, BOB, CAROL)
    ) as started:
        yield started


@pytest.fixture
def idp(provider: OIDCProvider, settings: Settings) -> OIDCProvider:
    configure_caspix(settings, provider)
    Team.objects.get_or_create(slug="cards", defaults={"name": "Cards"})
    return provider


def begin(client: Client, next_url: str = "/work/") -> str:
    response = client.get(f"/oidc/login/?next={next_url}")
    assert response.status_code == 302
    return str(response["Location"])


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def signed_in_as(username: str, idp: OIDCProvider, *, client: Client | None = None, **answer: Any) -> Client:
    """The whole flow: Caspix sends the browser to the provider, the person signs in there, the
    provider sends them back with a code that Caspix exchanges."""
    client = client or Client()
    callback = sign_in(Browser(), idp, begin(client), username, **answer)
    response = client.get(relative(callback))
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def refusal() -> str:
    failed = [e for e in events() if e["name"] == "SIGN_IN_FAILED"]
    assert failed, "no refusal in the ledger"
    return str(failed[-1]["reason"])


# --- the flow ------------------------------------------------------------------------------------


def test_it_sends_pkce_state_and_nonce(idp: OIDCProvider) -> None:
    query = parse_qs(urlsplit(begin(Client())).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["state"][0]
    assert query["nonce"][0]
    assert query["redirect_uri"] == [CALLBACK]
    assert "acr_values" not in query  # the provider's factor is not asked for unless trusted


def test_it_signs_in_a_new_user_matched_on_issuer_and_subject(idp: OIDCProvider) -> None:
    client = signed_in_as("alice", idp)
    identity = FederatedIdentity.objects.get(issuer=idp.issuer, subject="alice-0001")
    user = identity.user
    assert user.username == "alice"
    assert not user.has_usable_password()
    assert list(user.roles.values_list("slug", flat=True)) == ["analyst"]
    assert Membership.objects.filter(user=user, team__slug="cards").exists()
    signed = [e for e in events() if e["name"] == "SIGNED_IN"]
    assert [(e["reason"], e["after"]) for e in signed] == [("oidc", {"issuer": idp.issuer, "provider_mfa": False})]
    # An analyst needs a second factor, and the policy asks for a Caspix one.
    assert client.get("/work/")["Location"].startswith("/login/enrol/")


def test_it_finds_the_same_user_again(idp: OIDCProvider) -> None:
    signed_in_as("alice", idp)
    signed_in_as("alice", idp)
    assert User.objects.filter(federated_identities__subject="alice-0001").count() == 1
    assert FederatedIdentity.objects.count() == 1


def test_it_never_matches_on_an_email_address(idp: OIDCProvider) -> None:
    local = make_user("alice", email="alice@bank.test", roles=["admin"])
    signed_in_as("alice", idp)
    federated = FederatedIdentity.objects.get(subject="alice-0001").user
    assert federated.pk != local.pk
    assert federated.username == "alice-2"
    assert not federated.roles.filter(slug="admin").exists()


def test_it_never_takes_a_privileged_role_from_the_provider(idp: OIDCProvider) -> None:
    signed_in_as("carol", idp)
    carol = FederatedIdentity.objects.get(subject="carol-0003").user
    assert list(carol.roles.values_list("slug", flat=True)) == ["manager"]


def test_a_user_whose_roles_need_no_factor_is_signed_in_at_once(idp: OIDCProvider) -> None:
    client = signed_in_as("carol", idp)
    assert client.get("/dashboard/").status_code == 200
    assert UserSession.objects.filter(user__username="carol", ended_at__isnull=True).count() == 1


def test_it_signs_in_with_an_es256_provider(settings: Settings) -> None:
    with oidc_provider(redirect_uris=[CALLBACK], alg="ES256") as es256:
        configure_caspix(settings, es256)
        client = signed_in_as("bob", es256)
    assert FederatedIdentity.objects.filter(issuer=es256.issuer, subject="bob-0002").exists()
    assert jwt.get_unverified_header(client.session[oidc.ID_TOKEN])["alg"] == "ES256"


# --- the provider's second factor ----------------------------------------------------------------


def test_the_providers_factor_stands_for_ours_when_the_policy_trusts_it(idp: OIDCProvider, settings: Settings) -> None:
    configure_caspix(settings, idp, mfa="idp")
    query = parse_qs(urlsplit(begin(Client())).query)
    assert query["acr_values"] == ["urn:bank:mfa"]
    client = signed_in_as("alice", idp)  # acr urn:bank:mfa, amr pwd+otp
    assert client.get("/work/").status_code == 200
    assert names()[-1] == "SECOND_FACTOR_VERIFIED"
    assert events()[-1]["reason"] == "identity provider"
    assert IdentityProviderFactor.objects.filter(user__username="alice").exists()


def test_a_password_at_the_provider_still_needs_our_factor(idp: OIDCProvider, settings: Settings) -> None:
    configure_caspix(settings, idp, mfa="idp")
    client = signed_in_as("bob", idp)  # amr pwd only, no acr
    assert client.get("/work/")["Location"].startswith("/login/verify/")
    page = client.get("/login/verify/").content.decode()
    assert "Confirm with your organisation" in page  # a second factor there, this time
    assert "add an authenticator app or a passkey" in page  # or one of Caspix's


def test_the_amr_alone_can_show_the_factor(idp: OIDCProvider, settings: Settings) -> None:
    configure_caspix(settings, idp, mfa="idp", mfa_acr=[])
    client = signed_in_as("bob", idp, amr=["pwd", "hwk"])
    assert client.get("/work/").status_code == 200


# --- refusals ------------------------------------------------------------------------------------


def test_a_callback_is_answered_once(idp: OIDCProvider) -> None:
    client = Client()
    callback = relative(sign_in(Browser(), idp, begin(client), "bob"))
    assert client.get(callback).status_code == 302
    replayed = Client().get(callback)
    assert replayed.status_code == 400
    assert b"Sign-in refused" in replayed.content
    assert client.get(callback).status_code == 400  # the same browser: the state is spent
    assert User.objects.filter(username="bob").count() == 1


def test_an_unknown_state_is_refused(idp: OIDCProvider) -> None:
    client = Client()
    begin(client)
    response = client.get("/oidc/callback/?code=abc&state=not-ours")
    assert response.status_code == 400
    assert "state" in refusal()


def test_the_providers_refusal_is_a_refusal_here(idp: OIDCProvider) -> None:
    client = Client()
    query = parse_qs(urlsplit(begin(client)).query)
    response = client.get(f"/oidc/callback/?error=access_denied&state={query['state'][0]}")
    assert response.status_code == 400
    assert refusal() == "oidc: provider error 'access_denied'"


def test_a_token_from_another_issuer_is_refused(idp: OIDCProvider, settings: Settings) -> None:
    configure_caspix(settings, idp, issuer="https://login.other.example")
    client = Client()
    callback = sign_in(Browser(), idp, begin(client), "bob")
    assert client.get(relative(callback)).status_code == 400
    assert refusal() == "oidc: InvalidIssuerError"
    assert not User.objects.filter(username="bob").exists()


def test_a_deactivated_user_is_refused(idp: OIDCProvider) -> None:
    signed_in_as("bob", idp)
    User.objects.filter(username="bob").update(is_active=False)
    client = Client()
    assert client.get(relative(sign_in(Browser(), idp, begin(client), "bob"))).status_code == 400
    assert "deactivated" in refusal()


def test_an_unreachable_provider_is_a_refusal_not_a_500(idp: OIDCProvider, settings: Settings) -> None:
    client = Client()
    callback = sign_in(Browser(), idp, begin(client), "bob")
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"
    assert client.get(relative(callback)).status_code == 400
    assert refusal() == "oidc: ConnectionError"


def test_oidc_is_absent_when_not_configured(settings: Settings) -> None:
    settings.CASPIX_OIDC = None
    assert Client().get("/oidc/login/").status_code == 404
    assert Client().get("/oidc/callback/?code=a&state=b").status_code == 404
    assert "Sign in with your organisation" not in Client().get("/login/").content.decode()


# --- the ID token's checks, with tokens signed by the provider's own key ---------------------------


def token(idp: OIDCProvider, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": idp.issuer, "sub": "bob-0002", "aud": idp.client_id, "iat": now, "exp": now + 300, "nonce": "n1"}
    body |= claims
    key = idp.signing_key
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key.private_key, key.alg, {"kid": key.kid})


def verify(token_: str, nonce: str = "n1") -> dict[str, Any]:
    backend = oidc.Backend()
    backend._configure()
    claims: dict[str, Any] = backend.verify_token(token_, nonce=nonce)
    return claims


def test_the_providers_token_verifies(idp: OIDCProvider) -> None:
    assert verify(token(idp))["sub"] == "bob-0002"


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"aud": "another-client"}, jwt.InvalidAudienceError),
        ({"aud": ["caspix", "another-client"]}, SuspiciousOperation),  # several audiences, no azp
        ({"iss": "https://login.other.example"}, jwt.InvalidIssuerError),
        ({"exp": int(time.time()) - 3600}, jwt.ExpiredSignatureError),
        ({"iat": None}, jwt.MissingRequiredClaimError),
        ({"nonce": "another"}, SuspiciousOperation),
    ],
)
def test_a_token_with_a_wrong_claim_is_refused(idp: OIDCProvider, claims: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        verify(token(idp, **claims))


def test_several_audiences_with_this_client_as_azp_are_accepted(idp: OIDCProvider) -> None:
    assert verify(token(idp, aud=["caspix", "another-client"], azp="caspix"))["azp"] == "caspix"


def test_a_symmetric_token_signed_with_the_client_secret_is_refused(idp: OIDCProvider) -> None:
    forged = jwt.encode({"iss": idp.issuer, "sub": "x"}, idp.client_secret, "HS256", {"kid": idp.signing_key.kid})
    with pytest.raises(SuspiciousOperation):
        verify(forged)


def test_an_unsigned_token_is_refused(idp: OIDCProvider) -> None:
    claims = {"iss": idp.issuer, "sub": "x", "nonce": "n1"}
    unsigned = jwt.encode(claims, None, "none", {"kid": idp.signing_key.kid})  # type: ignore[arg-type]
    with pytest.raises(SuspiciousOperation):
        verify(unsigned)


def test_a_token_signed_by_a_key_the_provider_does_not_publish_is_refused(idp: OIDCProvider) -> None:
    from tests.oidc_idp import signing_key

    stranger = signing_key("RS256", "stranger")
    forged = jwt.encode({"iss": idp.issuer, "sub": "x"}, stranger.private_key, "RS256", {"kid": stranger.kid})
    with pytest.raises(SuspiciousOperation):
        verify(forged)


def test_a_token_whose_signature_was_altered_is_refused(idp: OIDCProvider) -> None:
    header, body, signature = token(idp).split(".")
    forged_body = jwt.utils.base64url_encode(jwt.utils.base64url_decode(body).replace(b"bob-0002", b"eve-0666"))
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{header}.{forged_body.decode()}.{signature}")


def test_userinfo_for_another_subject_is_refused(idp: OIDCProvider, settings: Settings) -> None:
    settings.OIDC_STORE_ACCESS_TOKEN = True
    access_token = signed_in_as("bob", idp).session["oidc_access_token"]
    backend = oidc.Backend()
    backend._configure()
    assert backend.get_userinfo(access_token, "", {"sub": "bob-0002"})["sub"] == "bob-0002"
    with pytest.raises(SuspiciousOperation):
        backend.get_userinfo(access_token, "", {"sub": "alice-0001"})  # bob's answer, alice's token


# --- the session after sign-in: re-checked with the provider, and signed out there too -----------


def expire(client: Client) -> None:
    session = client.session
    session["oidc_id_token_expiration"] = time.time() - 1
    session.save()


def test_a_federated_session_is_confirmed_with_the_provider_again(idp: OIDCProvider) -> None:
    browser = Browser()
    client = Client()
    client.get(relative(sign_in(browser, idp, begin(client, "/dashboard/"), "carol")))
    expire(client)
    redirect = client.get("/dashboard/")
    assert redirect.status_code == 302
    assert parse_qs(urlsplit(redirect["Location"]).query)["prompt"] == ["none"]
    htmx = client.get("/dashboard/", headers={"HX-Request": "true"})
    assert (htmx.status_code, htmx["HX-Redirect"].startswith(idp.authorization_endpoint)) == (204, True)
    callback = browser.follow(htmx["HX-Redirect"], idp.issuer).location  # the provider's session is alive
    assert callback is not None
    back = client.get(relative(callback))
    assert back.status_code == 302
    assert names()[-1] == "SESSION_REFRESHED"
    assert client.get("/dashboard/").status_code == 200


def test_a_session_the_provider_no_longer_vouches_for_ends(idp: OIDCProvider) -> None:
    client = signed_in_as("carol", idp)
    expire(client)
    refresh = client.get("/dashboard/")["Location"]
    callback = Browser().follow(refresh, idp.issuer).location  # no session at the provider
    assert callback is not None
    assert parse_qs(urlsplit(callback).query)["error"] == ["login_required"]
    assert client.get(relative(callback)).status_code == 400
    assert client.get("/dashboard/")["Location"].startswith("/login/")
    ended = [e for e in events() if e["name"] == "SESSION_ENDED"]
    assert ended[-1]["reason"] == "ended by the identity provider"


def test_signing_out_ends_the_providers_session_too(idp: OIDCProvider) -> None:
    browser = Browser()
    client = Client()
    client.get(relative(sign_in(browser, idp, begin(client), "carol")))
    out = client.post("/logout/")
    assert out.status_code == 302
    location = urlsplit(out["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == idp.end_session_endpoint
    query = parse_qs(location.query)
    assert query["post_logout_redirect_uri"] == [AFTER_LOGOUT]
    assert query["client_id"] == [idp.client_id]
    back = browser.follow(out["Location"], idp.issuer).location
    assert back is not None
    assert back.startswith(AFTER_LOGOUT)
    assert names()[-1] == "SIGNED_OUT"
    # The provider's session is gone: a silent sign-in there now fails.
    again = Client()
    silent = begin(again).replace("&nonce=", "&prompt=none&nonce=")
    assert "error=login_required" in str(browser.follow(silent, idp.issuer).location)


# --- step-up at the provider ---------------------------------------------------------------------


def test_a_federated_user_steps_up_by_signing_in_at_the_provider_again(idp: OIDCProvider, settings: Settings) -> None:
    configure_caspix(settings, idp, mfa="idp")
    client = signed_in_as("alice", idp)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time() - 3600
    session.save()
    assert "Confirm with your organisation" in client.get("/login/verify/?next=/work/").content.decode()
    start = client.get("/oidc/login/?step_up=1&next=/work/")["Location"]
    query = parse_qs(urlsplit(start).query)
    assert (query["prompt"], query["max_age"]) == (["login"], ["0"])
    back = client.get(relative(sign_in(Browser(), idp, start, "alice")))
    assert back["Location"] == "/work/"
    assert time.time() - client.session[STEP_UP_SESSION_KEY] < 60
    assert (names()[-1], events()[-1]["reason"]) == ("SECOND_FACTOR_VERIFIED", "step-up")


def test_a_step_up_without_the_providers_second_factor_is_refused(idp: OIDCProvider, settings: Settings) -> None:
    configure_caspix(settings, idp, mfa="idp")
    client = signed_in_as("bob", idp)  # a password there: not verified here
    assert "Confirm with your organisation" in client.get("/login/verify/").content.decode()
    start = client.get("/oidc/login/?step_up=1&next=/work/")["Location"]
    client.get(relative(sign_in(Browser(), idp, start, "bob")))  # a password again
    assert client.get("/work/")["Location"].startswith("/login/verify/")
    assert (names()[-1], events()[-1]["reason"]) == ("SECOND_FACTOR_FAILED", "step-up")
    start = client.get("/oidc/login/?step_up=1&next=/work/")["Location"]
    client.get(relative(sign_in(Browser(), idp, start, "bob", amr=["pwd", "hwk"])))  # now with a key
    assert client.get("/work/").status_code == 200


def test_no_step_up_at_the_provider_unless_the_policy_trusts_its_factor(idp: OIDCProvider) -> None:
    client = signed_in_as("carol", idp)
    assert "Confirm with your organisation" not in client.get("/login/verify/").content.decode()
    query = parse_qs(urlsplit(client.get("/oidc/login/?step_up=1")["Location"]).query)
    assert "prompt" not in query
