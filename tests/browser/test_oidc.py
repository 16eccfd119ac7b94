"""OpenID Connect sign-in and sign-out in Chromium, against the real provider on loopback
(tests/oidc_idp.py): the browser goes there, signs in on its form, and comes back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from accounts.models import FederatedIdentity
from tests.oidc_idp import ALICE, OIDCProvider, configure_caspix, oidc_provider
from tests.oidc_idp import User as ProviderUser
from tests.recorded import sequenced_and_pending

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CAROL = ProviderUser("carol", "carol-0003", "carol@bank.test", "Carol Manager", ("manager",), (), ("pwd",))


@pytest.fixture
def idp(live_server: Any, settings: Settings, allowed_origins: list[str]) -> Iterator[OIDCProvider]:
    with oidc_provider(
        redirect_uris=[f"{live_server.url}/oidc/callback/"],
        post_logout_redirect_uris=[f"{live_server.url}/login/"],
        users=(ALICE, CAROL),
    ) as provider:
        configure_caspix(settings, provider)
        allowed_origins.append(provider.issuer)
        yield provider


def sign_in_at_the_provider(page: Any, username: str) -> None:
    page.goto("/login/")
    page.get_by_role("link", name="Sign in with your organisation").click()
    page.locator("#username").fill(username)
    page.locator("#sign-in").click()


def recorded(name: str) -> list[dict[str, object]]:
    return [event for event in sequenced_and_pending() if event["name"] == name]


def test_it_signs_in_and_out_through_the_provider(page: Any, idp: OIDCProvider, live_server: Any) -> None:
    sign_in_at_the_provider(page, "carol")
    page.wait_for_url(f"{live_server.url}/**")
    page.goto("/dashboard/")
    assert page.url == f"{live_server.url}/dashboard/"
    assert FederatedIdentity.objects.filter(issuer=idp.issuer, subject="carol-0003").exists()
    assert [event["reason"] for event in recorded("SIGNED_IN")] == ["oidc"]

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/login/**")  # through the provider's end-session page
    assert recorded("SIGNED_OUT")
    # The provider's session ended too: signing in again asks for the person there.
    page.get_by_role("link", name="Sign in with your organisation").click()
    page.locator("#username").wait_for(state="visible")


def test_the_providers_factor_stands_for_ours_when_trusted(
    page: Any, idp: OIDCProvider, live_server: Any, settings: Settings
) -> None:
    configure_caspix(settings, idp, mfa="idp")
    sign_in_at_the_provider(page, "alice")  # an analyst, signed in there with a password and an OTP
    page.wait_for_url(f"{live_server.url}/**")
    page.goto("/work/")
    assert page.url == f"{live_server.url}/work/"  # no Caspix factor asked for
    assert [event["reason"] for event in recorded("SECOND_FACTOR_VERIFIED")] == ["identity provider"]


def test_without_that_trust_an_analyst_enrols_a_caspix_factor(page: Any, idp: OIDCProvider, live_server: Any) -> None:
    sign_in_at_the_provider(page, "alice")
    page.wait_for_url(f"{live_server.url}/login/enrol/**")
    assert page.get_by_role("heading", name="Add an authenticator app").is_visible()
