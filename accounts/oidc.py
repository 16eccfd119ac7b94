"""OpenID Connect relying party (mozilla-django-oidc): the authorization-code flow with PKCE,
state and nonce, against one configured provider.

mozilla-django-oidc runs the flow; the defaults that bite are changed here (security-notes.md):

* users are matched on (issuer, ``sub``) only, never by e-mail, and created at first sign-in;
* the ID token is checked for its signature with the provider's JWKS, by RS256 or ES256 only
  (never HS256 or ``none``), and for its issuer, audience (and ``azp``), expiry and nonce: the
  library leaves the issuer and the audience unchecked;
* the userinfo answer must name the same ``sub`` as the ID token, and the ID token's own
  authentication claims (``acr``, ``amr``, ``auth_time``) are the ones believed;
* roles and teams come from configured claims, privileged roles excepted
  (accounts/federation.py);
* the provider's second factor stands for ours only when ``CASPIX_OIDC_MFA=idp`` and the token's
  ``acr`` or ``amr`` says one was used; otherwise the user verifies a Caspix factor;
* the session is confirmed with the provider again every ``OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS``
  (a silent ``prompt=none`` round trip): a user the provider has signed out or disabled loses
  the Caspix session at the next page, and changed roles apply; htmx requests are sent there
  by a full-page redirect;
* signing out ends the provider's session too (RP-initiated logout).

Every refusal is a 400 page with a generic message, a ledger event and a log line without
identifiers; a malformed answer never yields a 500.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.urls import reverse
from mozilla_django_oidc import middleware as oidc_middleware
from mozilla_django_oidc import views as oidc_views
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts import federation, mfa, sessions
from accounts.actions import actor_of
from accounts.middleware import send_to_url
from accounts.models import User
from audit.events import EventType
from audit.ledger import record
from caspix.access import public

logger = logging.getLogger("caspix.security")

SOURCE = "OIDC federation"
REFUSAL = "caspix_oidc_refusal"  # request attribute: why the backend refused, for the ledger
OUTCOME = "caspix_oidc_outcome"  # request attribute: what the provider said of the sign-in
STEP_UP = "caspix_oidc_step_up"  # session key: this round trip confirms a privileged action
STEP_UP_WITHIN_SECONDS = 300  # how recent the provider's sign-in must be to count as a step-up
ID_TOKEN = "oidc_id_token"  # noqa: S105 - a session key, not a secret: mozilla-django-oidc's session key (OIDC_STORE_ID_TOKEN)
LEEWAY_SECONDS = 60


def configuration() -> dict[str, Any]:
    config: dict[str, Any] | None = settings.CASPIX_OIDC
    if not config:
        raise Http404("OIDC is not configured")
    return config


def provider_mfa(claims: dict[str, Any]) -> bool:
    """Whether the policy lets the provider's second factor stand for ours, for these claims."""
    config = configuration()
    if config["mfa"] != "idp":
        return False
    acr, amr = claims.get("acr"), claims.get("amr")
    by_acr = isinstance(acr, str) and acr in config["mfa_acr"]
    by_amr = isinstance(amr, list) and any(isinstance(v, str) and v in config["mfa_amr"] for v in amr)
    return by_acr or by_amr


class Backend(OIDCAuthenticationBackend):  # type: ignore[misc]
    """mozilla-django-oidc's backend with Caspix's checks. It authenticates only the callback
    of a flow this session began (a code and a state), and grants no permission of its own:
    those come from the user's roles (accounts.backends.RoleBackend)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The library reads its settings here; they are read at sign-in instead, so the backend
        # can sit in AUTHENTICATION_BACKENDS while OIDC is off.
        self.UserModel = User

    def _configure(self) -> None:
        super().__init__()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        if request is None or not settings.CASPIX_OIDC or "code" not in request.GET:
            return None
        self._configure()
        try:
            user: User | None = super().authenticate(request, **kwargs)
        except (SuspiciousOperation, jwt.PyJWTError, requests.RequestException, ValueError, KeyError) as error:
            setattr(request, REFUSAL, _why(error))
            return None
        return user

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        config = configuration()
        header = jwt.get_unverified_header(payload)
        algorithm = header.get("alg")
        if algorithm not in config["algorithms"]:
            raise SuspiciousOperation(f"ID token signed with {algorithm!r}, not one of the allowed algorithms")
        claims: dict[str, Any] = jwt.decode(
            payload,
            key,
            algorithms=[str(algorithm)],
            audience=self.OIDC_RP_CLIENT_ID,
            issuer=config["issuer"],
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token for several audiences without this client as azp")
        return claims

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        info: Any = super().get_userinfo(access_token, id_token, payload)
        if not isinstance(info, dict) or info.get("sub") != payload["sub"]:
            raise SuspiciousOperation("userinfo names another subject than the ID token")
        believed = {k: payload[k] for k in ("iss", "sub", "acr", "amr", "auth_time") if k in payload}
        return {**info, **believed}

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        # The library turns a SuspiciousOperation from here into "no user": keep the reason.
        try:
            return self._get_or_create_user(access_token, id_token, payload)
        except SuspiciousOperation as refusal:
            setattr(self.request, REFUSAL, _why(refusal))
            raise

    def _get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        claims = self.get_userinfo(access_token, id_token, payload)
        config = configuration()
        request: HttpRequest = self.request
        refreshing = request.user.is_authenticated
        try:
            with transaction.atomic(durable=True):
                user = federation.user_for(
                    config["issuer"],
                    str(claims["sub"]),
                    preferred=str(claims.get("preferred_username") or ""),
                    source=SOURCE,
                )
                if refreshing and user.pk != request.user.pk:
                    raise federation.RefusedError("the provider answered for another user than the session's")
                federation.sync(
                    user,
                    federation.strings(claims.get(config["roles_claim"]), what="roles"),
                    federation.strings(claims.get(config["teams_claim"]), what="teams"),
                    source=SOURCE,
                )
                trusted = provider_mfa(claims)
                after = {"issuer": config["issuer"], "provider_mfa": trusted}
                event = EventType.SESSION_REFRESHED if refreshing else EventType.SIGNED_IN
                record(event, actor=actor_of(user), object_type="user", object_id=user.pk, reason="oidc", after=after)
        except federation.RefusedError as refusal:
            raise SuspiciousOperation(str(refusal)) from refusal
        auth_time = claims.get("auth_time")
        setattr(
            request,
            OUTCOME,
            {"provider_mfa": trusted, "auth_time": auth_time if isinstance(auth_time, (int, float)) else None},
        )
        return user

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:  # never by e-mail
        return User.objects.filter(
            federated_identities__issuer=configuration()["issuer"], federated_identities__subject=claims.get("sub")
        )

    # Permissions come from roles only: ModelBackend's per-user and group permissions stay out.
    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_group_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return False


def _why(error: Exception) -> str:
    """A refusal in words for the ledger: our own messages, or the kind of error (a token
    endpoint's answer may carry anything, and is not copied)."""
    if isinstance(error, SuspiciousOperation):
        return str(error)[:150]
    return type(error).__name__


class Start(oidc_views.OIDCAuthenticationRequestView):  # type: ignore[misc]
    """Send the browser to the provider, with a fresh state, nonce and PKCE verifier kept in
    the session."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(oidc_views.OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponseBase:
        configuration()  # 404 where OIDC is off
        self.OIDC_OP_AUTH_ENDPOINT = settings.OIDC_OP_AUTHORIZATION_ENDPOINT
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        if self._stepping_up(request):
            request.session[STEP_UP] = True
        response: HttpResponseBase = super().get(request)
        return response

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        config = configuration()
        params = {}
        if config["mfa"] == "idp" and config["mfa_acr"]:
            params["acr_values"] = " ".join(config["mfa_acr"])
        if self._stepping_up(request):
            # The person signs in at the provider again, now, with its second factor.
            params |= {"prompt": "login", "max_age": "0"}
        return params

    @staticmethod
    def _stepping_up(request: HttpRequest) -> bool:
        return bool(request.GET.get("step_up")) and federation.can_step_up(request.user)


class Callback(oidc_views.OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """The provider's answer: the library checks the state and exchanges the code; what it
    refuses, and what it would answer 500 to, becomes a ledger event and a 400 page."""

    def get(self, request: HttpRequest) -> HttpResponseBase:
        configuration()
        if request.GET.get("error") and request.user.is_authenticated:
            # The provider no longer vouches for the user (signed out or disabled there): the
            # library signs the session out; the ledger says why.
            sessions.ended_elsewhere(request, request.user, "ended by the identity provider")
        try:
            response: HttpResponseBase = super().get(request)
        except SuspiciousOperation as error:  # an unknown state: not a flow this session began
            return federation.refused(request, "oidc", _why(error))
        return response

    def login_failure(self) -> HttpResponse:
        request: HttpRequest = self.request
        error = request.GET.get("error")
        why = getattr(request, REFUSAL, None) or (f"provider error {error[:40]!r}" if error else "no flow begun")
        return federation.refused(request, "oidc", why)

    def login_success(self) -> HttpResponseBase:
        request: HttpRequest = self.request
        refreshing = request.user.is_authenticated
        response: HttpResponseBase = super().login_success()
        outcome = getattr(request, OUTCOME, {})
        if refreshing and request.session.pop(STEP_UP, False):
            _step_up(request, self.user, outcome)
        if not refreshing:
            federation.complete(
                request,
                self.user,
                provider_mfa=bool(outcome.get("provider_mfa")),
                authenticated_at=outcome.get("auth_time"),
            )
        return response


start = public(Start.as_view())
callback = public(Callback.as_view())


def _step_up(request: HttpRequest, user: User, outcome: dict[str, Any]) -> None:
    """The provider's answer to a step-up: its second factor, used just now, stands for ours."""
    auth_time = outcome.get("auth_time")
    fresh = isinstance(auth_time, (int, float)) and time.time() - auth_time <= STEP_UP_WITHIN_SECONDS
    if outcome.get("provider_mfa") and fresh:
        federation.provider_verified(request, user, reason="step-up", authenticated_at=auth_time)
        return
    refusal = {"factor": "identity provider's factor", "refusal": "no recent sign-in with a second factor"}
    with transaction.atomic(durable=True):
        mfa.note(EventType.SECOND_FACTOR_FAILED, user, reason="step-up", after=refusal)
    messages.error(request, "Your organisation did not confirm a fresh sign-in with a second factor.")


def provider_logout_url(request: HttpRequest) -> str | None:
    """Where to send the browser after signing out a session the provider signed in, so the
    provider's session ends too (RP-initiated logout); ``None`` for any other session."""
    config = settings.CASPIX_OIDC
    token = request.session.get(ID_TOKEN)
    if not config or not token or not settings.OIDC_OP_LOGOUT_ENDPOINT:
        return None
    query = {
        "id_token_hint": token,
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("accounts:login")),
    }
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{urlencode(query)}"


class SessionRefresh(oidc_middleware.SessionRefresh):  # type: ignore[misc]
    """Confirm an OIDC session with the provider when its ID token's renewal time has passed.
    Settings are read per request (OIDC may be off); an htmx request gets ``HX-Redirect`` so the
    whole page goes to the provider, not a fragment."""

    def __init__(self, get_response: Any) -> None:
        super(oidc_middleware.SessionRefresh, self).__init__(get_response)

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        if not settings.CASPIX_OIDC or request.session.get(BACKEND_SESSION_KEY) != BACKEND_PATH:
            return None
        self.OIDC_EXEMPT_URLS = ["accounts:oidc_login", "accounts:oidc_callback", "accounts:logout"]
        self.OIDC_OP_AUTHORIZATION_ENDPOINT = settings.OIDC_OP_AUTHORIZATION_ENDPOINT
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_STATE_SIZE = 32
        self.OIDC_AUTHENTICATION_CALLBACK_URL = settings.OIDC_AUTHENTICATION_CALLBACK_URL
        self.OIDC_RP_SCOPES = settings.OIDC_RP_SCOPES
        self.OIDC_USE_NONCE = True
        self.OIDC_NONCE_SIZE = 32
        response: HttpResponseBase | None = super().process_request(request)
        if response is not None and request.headers.get("HX-Request") and response.status_code == 302:
            return send_to_url(response["Location"], request)
        return response

    @property
    def exempt_urls(self) -> set[str]:
        return {reverse(name) for name in self.OIDC_EXEMPT_URLS}


BACKEND_PATH = f"{Backend.__module__}.{Backend.__qualname__}"
