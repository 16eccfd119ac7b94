"""Passkeys: WebAuthn credentials as a second factor, and as the whole sign-in where every role
of the user allows it.

django-otp-webauthn runs the ceremonies (py_webauthn underneath); this module sets the policy
its defaults leave open (docs/SECURITY.md):

* the relying-party id and origins come from settings, never from a request's headers;
* user verification (the authenticator's PIN or biometric) is required at registration and at
  every use for a privileged user (a role that administers or approves), and always for a
  sign-in without a password;
* a sign-in without a password is offered when ``CASPIX_PASSKEY_SIGN_IN`` is on, and admitted only
  for a user every one of whose role templates allows it (``Role.passkey_sign_in``);
* registering a passkey needs a fresh second factor once the user has one (step-up), as every
  other change of factor does;
* every ceremony's outcome is a ledger event; a refused one answers JSON with a generic message,
  never a 500, and a credential that fails 100 times running is disabled (NIST SP 800-63B).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.db import transaction
from django.http import JsonResponse
from django.urls import reverse
from django_otp_webauthn import exceptions as api
from django_otp_webauthn import views as library
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.utils import rewrite_exceptions
from webauthn.helpers import exceptions as pywebauthn
from webauthn.helpers.structs import ResidentKeyRequirement, UserVerificationRequirement

from accounts import mfa, sessions
from accounts.actions import actor_of
from accounts.models import Passkey, User, UserSession
from audit.events import EventType
from audit.ledger import Actor, record
from caspix.access import public, requires, stepped_up

logger = logging.getLogger("caspix.security")

MAX_PASSKEYS = 10  # per user: the list an authenticator is offered stays short


def needs_user_verification(user: User | Any) -> bool:
    return sessions.tier_of(user) == UserSession.Tier.PRIVILEGED


def may_sign_in_without_password(user: User) -> bool:
    """Every role the user holds allows a passkey sign-in, and they hold at least one."""
    allowed = list(user.roles.values_list("passkey_sign_in", flat=True))
    return bool(allowed) and all(allowed)


def passkeys(user: User) -> list[Passkey]:
    return list(Passkey.objects.filter(user=user, confirmed=True).order_by("pk"))


class Helper(WebAuthnHelper):
    """django-otp-webauthn's helper, with Caspix's policy for user verification, and failures
    counted against the credential that failed."""

    failed: Passkey | None = None
    user_verified: bool = False  # what the authenticator said at the last registration

    def get_discoverable_credentials_preference(self) -> ResidentKeyRequirement:
        # Preferred, not required: a security key with little memory still registers; it then
        # serves as a second factor only, since a sign-in without a password needs a
        # credential the authenticator can find by itself.
        return ResidentKeyRequirement.PREFERRED

    def get_generate_registration_options_kwargs(self, *, user: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_generate_registration_options_kwargs(user=user)
        if needs_user_verification(user):
            kwargs["authenticator_selection"].user_verification = UserVerificationRequirement.REQUIRED
        return kwargs

    def get_generate_authentication_options_kwargs(
        self, *, user: Any = None, require_user_verification: bool
    ) -> dict[str, Any]:
        required = require_user_verification or (user is not None and needs_user_verification(user))
        kwargs: dict[str, Any] = super().get_generate_authentication_options_kwargs(
            user=user, require_user_verification=required
        )
        return kwargs

    def create_credential(self, user: Any, response: Any, parsed_credential: Any, original_data: Any) -> Passkey:
        self.user_verified = bool(response.user_verified)
        device: Passkey = super().create_credential(user, response, parsed_credential, original_data)
        return device

    def authenticate_complete(self, user: Any, state: dict[str, Any], data: dict[str, Any]) -> Passkey:
        if user is None:
            # A sign-in without a password: refused before the library records the use, for a
            # user whose roles do not allow it.
            named = _named_in(data)
            if named is not None and not may_sign_in_without_password(named.user):
                self.failed = named
                raise Refused(code="passkey_sign_in_not_allowed")
        try:
            device: Passkey = super().authenticate_complete(user=user, state=state, data=data)
        except pywebauthn.InvalidAuthenticationResponse:
            self.failed = _named_in(data)
            # Counted only after the password: anyone can send a bad signature naming a credential
            # to the sign-in without one, and must not disable somebody else's passkey that way.
            if self.failed is not None and user is not None and self.failed.user_id == user.pk:
                self.failed.throttle_increment(commit=True)
            raise
        if device.verify_is_allowed()[0]:
            device.throttle_reset(commit=True)
        return device


def _named_in(data: Any) -> Passkey | None:
    """The credential a (refused) response names, if it is one of ours."""
    from webauthn.helpers import parse_authentication_credential_json

    try:
        raw_id = parse_authentication_credential_json(data).raw_id
    except (pywebauthn.InvalidJSONStructure, ValueError, TypeError, KeyError):
        return None
    return Passkey.objects.filter(credential_id_sha256=Passkey.get_credential_id_sha256(raw_id)).first()


class Refused(api.OTPWebAuthnApiError):
    status_code = 403
    default_code = "refused"


class StepUpRequired(api.OTPWebAuthnApiError):
    status_code = 403
    default_detail = "Confirm it is you with your second factor first."  # type: ignore[assignment]
    default_code = "step_up_required"


# What a browser is told of a refusal: enough to act on, nothing an attacker learns from.
MESSAGES = {
    "step_up_required": StepUpRequired.default_detail,
    "passwordless_login_disabled": "Sign-in with a passkey alone is not offered here: use your password.",
    "passkey_sign_in_not_allowed": "Sign-in with a passkey alone is not open to this account: use your password.",
    "too_many_passkeys": f"You have {MAX_PASSKEYS} passkeys already: remove one first.",
    "no_passkey": "You have no passkey: use another factor.",
    "credential_disabled": "This passkey is disabled: use another factor, or ask an administrator.",
    "not_authenticated": "Sign in first.",
    "user_not_verified": "Confirm it is you with your second factor first.",
}
GENERIC = "The passkey was not accepted. Try again, or use another factor."
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, pywebauthn.InvalidJSONStructure)


class _Ceremony(library.BaseWebAuthnView):
    """A JSON endpoint of a ceremony: refusals answer JSON with a generic message, are logged
    without detail that could identify anyone, and (on completion) are ledger events."""

    completes = False

    def handle_exception(self, exc: Exception) -> JsonResponse:
        if isinstance(exc, api.OTPWebAuthnApiError):
            code, status = str(exc.code), int(exc.status_code)
        elif isinstance(exc, MALFORMED):
            code, status = "malformed_request", 400
        else:
            raise exc
        logger.warning("passkey ceremony refused: %s", code)
        if self.completes:
            self.record_refusal(code)
        return JsonResponse({"detail": MESSAGES.get(code, GENERIC), "code": code}, status=status)

    def record_refusal(self, code: str) -> None:
        raise NotImplementedError


class _Registration(library.RegistrationCeremonyMixin, _Ceremony):
    def check_can_register(self) -> None:
        user: User = self.request.user  # type: ignore[assignment]
        if mfa.has_factor(user) and not stepped_up(self.request):
            raise StepUpRequired
        if Passkey.objects.filter(user=user).count() >= MAX_PASSKEYS:
            raise Refused(code="too_many_passkeys")


class RegisterBegin(library.BeginCredentialRegistrationView, _Registration):
    pass


class RegisterComplete(library.CompleteCredentialRegistrationView, _Registration):
    completes = True

    def post(self, *args: Any, **kwargs: Any) -> JsonResponse:
        user: User = self.request.user  # type: ignore[assignment]
        state = self.get_state()
        name = str(self.request.GET.get("name", "")).strip()[:64] or "Passkey"
        with transaction.atomic(durable=True):
            first = not mfa.has_factor(user)
            helper = self.get_helper()
            with rewrite_exceptions(logger=None):
                device: Passkey = helper.register_complete(user=user, state=state, data=self.request.data)  # type: ignore[attr-defined]
            device.name = name
            device.save(update_fields=["name"])
            mfa.note(
                EventType.FACTOR_ADDED, user, after={**mfa.describe(device), "user_verified": helper.user_verified}
            )
            codes = mfa.first_recovery_codes(user) if first else []
        if not mfa.is_verified(user):
            mfa.verified(self.request, device)  # the first factor completes the sign-in
        return JsonResponse({"id": device.pk, "redirect_url": reverse("accounts:factors"), "recovery_codes": codes})

    def record_refusal(self, code: str) -> None:
        user: User = self.request.user  # type: ignore[assignment]
        with transaction.atomic(durable=True):
            mfa.note(
                EventType.SECOND_FACTOR_FAILED, user, reason="enrolment", after={"factor": "passkey", "refusal": code}
            )


class _Authentication(library.AuthenticationCeremonyMixin, _Ceremony):
    def check_can_authenticate(self) -> None:
        super().check_can_authenticate()
        user = self.get_user()
        if user is not None and not Passkey.objects.filter(user=user, confirmed=True).exists():
            raise Refused(code="no_passkey", detail=MESSAGES["no_passkey"])


class AuthenticateBegin(library.BeginCredentialAuthenticationView, _Authentication):
    pass


class AuthenticateComplete(library.CompleteCredentialAuthenticationView, _Authentication):
    completes = True
    helper: Helper | None = None

    def get_helper(self) -> Helper:
        if self.helper is None:
            self.helper = Helper(request=self.request)
        return self.helper

    def check_device_usable(self, device: Any) -> None:
        super().check_device_usable(device)
        if not device.verify_is_allowed()[0]:
            raise api.CredentialDisabled
        if self.get_user() is None and not may_sign_in_without_password(device.user):
            self.get_helper().failed = device  # the roles changed since the check before verifying
            raise Refused(code="passkey_sign_in_not_allowed")

    def complete_auth(self, device: Any) -> Any:
        user: User = device.user
        signed_in = self.request.user.is_authenticated
        step_up = signed_in and mfa.is_verified(self.request.user)
        with transaction.atomic(durable=True):
            if not signed_in:
                mfa.note(EventType.SIGNED_IN, user, reason="passkey")
            mfa.note(
                EventType.SECOND_FACTOR_VERIFIED,
                user,
                reason="step-up" if step_up else "sign-in",
                after=mfa.describe(device),
            )
        if not signed_in:
            login(self.request, user, backend="accounts.backends.RoleBackend")
        mfa.verified(self.request, device)
        return user

    def record_refusal(self, code: str) -> None:
        failed = self.get_helper().failed
        user = self.request.user if self.request.user.is_authenticated else (failed.user if failed else None)
        actor = actor_of(user) if user is not None else Actor(None, "unknown account", "")
        with transaction.atomic(durable=True):
            if self.request.user.is_authenticated:
                event, reason = EventType.SECOND_FACTOR_FAILED, ("step-up" if mfa.is_verified(user) else "sign-in")
            else:
                event, reason = EventType.SIGN_IN_FAILED, "passkey"
            target = {"object_type": "user", "object_id": user.pk} if user is not None else {}
            after = {"factor": "passkey", "refusal": code}
            if failed is not None:
                after["device"] = failed.persistent_id
            record(event, actor=actor, reason=reason, after=after, **target)  # type: ignore[arg-type]
            if failed is not None:
                failed.refresh_from_db()
                if failed.throttling_failure_count == settings.CASPIX_FACTOR_MAX_FAILURES:
                    record(
                        EventType.FACTOR_DISABLED,
                        actor=actor,
                        object_type="user",
                        object_id=failed.user_id,
                        reason=f"{failed.throttling_failure_count} consecutive failures",
                        after=mfa.describe(failed),
                    )


register_begin = requires()(RegisterBegin.as_view())
register_complete = requires()(RegisterComplete.as_view())
# Open to the anonymous for a sign-in without a password (refused when it is off), and to a
# signed-in user for the second factor or a step-up.
authenticate_begin = public(AuthenticateBegin.as_view())
authenticate_complete = public(AuthenticateComplete.as_view())
