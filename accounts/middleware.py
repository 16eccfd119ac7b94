"""Per request: the user's last activity (for access reviews), and the second-factor gate."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse

from accounts import federation
from accounts.actions import note_activity
from accounts.mfa import is_verified, second_factor_state


class ActivityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            note_activity(user)
        return response


class SecondFactorMiddleware:
    """A session whose user has a second factor, or whose roles require one, reaches nothing but
    verification (or enrolment) until the factor is verified: sign-in is not over before."""

    OPEN = frozenset(
        {
            "accounts:login",
            "accounts:logout",
            "accounts:verify",
            "accounts:enrol",
            "accounts:passkey_authenticate_begin",
            "accounts:passkey_authenticate_complete",
            "accounts:passkey_register_begin",  # the first factor only: a second needs the first
            "accounts:passkey_register_complete",
            "accounts:saml_metadata",
            "accounts:saml_login",
            "accounts:saml_acs",
            "accounts:oidc_login",
            "accounts:oidc_callback",
            "healthz",
            "readyz",
            "metrics",
            "audit:ledger_keys",
        }
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not is_verified(user):
            try:
                name = resolve(request.path_info).view_name
            except Resolver404:
                name = ""
            if name not in self.OPEN and not request.path_info.startswith(settings.STATIC_URL):
                has, needs = second_factor_state(user)
                if has or needs:
                    # Verification offers every way there is, the identity provider's included.
                    verify = has or federation.can_step_up(user)
                    return send_to("accounts:verify" if verify else "accounts:enrol", request)
        return self.get_response(request)


def send_to(page: str, request: HttpRequest) -> HttpResponse:
    """Redirect to ``page``, to come back to this request's page; an htmx request gets its
    ``HX-Redirect`` instead, so the whole page goes there rather than a fragment of it."""
    return send_to_url(f"{reverse(page)}?{urlencode({'next': request.get_full_path()})}", request)


def send_to_url(target: str, request: HttpRequest) -> HttpResponse:
    """Redirect to ``target``, by ``HX-Redirect`` for an htmx request (the whole page goes)."""
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)
