"""Signing in and out, and the second factor: verification, enrolment, recovery codes, step-up.

Sign-in is in two steps: the password (Django's LoginView), then, for a user who has a factor or
whose roles require one, the factor. Until then :class:`accounts.middleware.SecondFactorMiddleware`
lets the session reach nothing but these pages. Every outcome is a ledger event; a failed
sign-in answers the same whether or not the account exists.
"""

from __future__ import annotations

from typing import Any, cast

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import federation, mfa, oidc, passkeys, sessions
from accounts.actions import actor_of
from accounts.lockout import note_failure
from accounts.models import Passkey, RecoveryDevice, TOTPDevice, User
from audit.events import EventType
from audit.ledger import Actor, record
from caspix.access import public, requires, stepped_up

# ASVS 7.4.3: after a change of factor, offer to end the other sessions.
OTHER_SESSIONS = (
    "If you did not make this change, or were signed in elsewhere, end your other sessions on the Sessions page."
)


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        strip=True,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "text",
                "autocapitalize": "none",
                "spellcheck": "false",
            }
        ),
    )


class VerifyForm(CodeForm):
    device = forms.ChoiceField(label="Factor")

    def __init__(self, *args: Any, devices: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["device"]).choices = [
            (d.persistent_id, f"{mfa.kind_of(d).capitalize()}: {d.name}") for d in devices
        ]
        self.order_fields(["device", "code"])


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe and target.startswith("/") else reverse("accounts:home")


# --- password -------------------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["saml_enabled"] = bool(settings.CASPIX_SAML)
        context["oidc_enabled"] = bool(settings.CASPIX_OIDC)
        context["passkey_sign_in"] = settings.OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN
        return context

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)  # Django's login() gives the session a new key
        user = form.get_user()
        with transaction.atomic(durable=True):
            record(EventType.SIGNED_IN, actor=actor_of(user), object_type="user", object_id=user.pk, reason="password")
        if not any(mfa.second_factor_state(user)):
            sessions.register(self.request, user)  # no second factor to wait for: signed in
        return response

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        # The page says the same whether or not the account exists; the ledger names the account
        # only when it does (what was typed may be a password in the wrong field).
        username = str(form.data.get("username", ""))[:150]
        user = User.objects.filter(username=username).first() if username else None
        actor = actor_of(user) if user is not None else Actor(None, "unknown account", "")
        with transaction.atomic(durable=True):
            record(
                EventType.SIGN_IN_FAILED,
                actor=actor,
                object_type="user" if user is not None else "",
                object_id=user.pk if user is not None else "",
                reason="password",
            )
        note_failure(self.request)
        return super().form_invalid(form)


class LogoutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        provider = oidc.provider_logout_url(request)  # read before the session goes
        if user.is_authenticated:
            with transaction.atomic(durable=True):
                record(EventType.SIGNED_OUT, actor=actor_of(user), object_type="user", object_id=user.pk)
                sessions.signed_out(request)
        response = super().post(request, *args, **kwargs)
        return HttpResponseRedirect(provider) if provider else response


login = public(LoginView.as_view())
logout = public(LogoutView.as_view())


# --- the second factor ----------------------------------------------------------------------------


@requires()
@require_http_methods(["GET", "HEAD", "POST"])
def verify(request: HttpRequest) -> HttpResponseBase:
    """Verify a factor: at sign-in, or again for a privileged action (step-up)."""
    user: User = request.user  # type: ignore[assignment]
    devices = mfa.factors(user)
    keys = passkeys.passkeys(user)
    federated = federation.can_step_up(user)  # the provider's second factor, asked for again
    if not devices and not keys and not federated:
        return HttpResponseRedirect(reverse("accounts:enrol"))
    step_up = mfa.is_verified(user)
    form = VerifyForm(request.POST if request.method == "POST" else None, devices=devices)
    if request.method == "POST" and form.is_valid():
        device = mfa.device_for(user, form.cleaned_data["device"])
        if device is not None and mfa.verify(request, user, device, form.cleaned_data["code"], step_up=step_up):
            return HttpResponseRedirect(_next(request))
        if device is None:
            form.add_error("device", "Choose one of your factors.")
        else:
            form.add_error("code", mfa.failure_message(device, type(device).objects.get(pk=device.pk)))
    context = {
        "form": form if devices else None,
        "passkeys": keys,
        "oidc_step_up": federated,
        "next": _next(request),
        "step_up": step_up,
    }
    return render(request, "accounts/verify.html", context, status=400 if form.errors else 200)


def _qr_svg(device: TOTPDevice) -> str:
    svg: str = segno.make(device.provisioning_uri(), error="m").svg_inline(scale=4, dark="#1b1f24", light="#ffffff")
    return mark_safe(svg)  # noqa: S308 - segno's own SVG of our own URI, nothing from the user


@requires()
@require_http_methods(["GET", "POST"])  # not HEAD: a GET begins an enrolment
def enrol(request: HttpRequest) -> HttpResponseBase:
    """Add an authenticator app: at the first sign-in, or later with a fresh second factor."""
    user: User = request.user  # type: ignore[assignment]
    if mfa.has_factor(user) and not (mfa.is_verified(user) and stepped_up(request)):
        return HttpResponseRedirect(f"{reverse('accounts:verify')}?next={reverse('accounts:enrol')}")
    if request.method != "POST":
        device = mfa.begin_totp(user)
        return _enrol_page(request, device, CodeForm())
    pending: TOTPDevice | None = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if pending is None:
        return HttpResponseRedirect(reverse("accounts:enrol"))
    form = CodeForm(request.POST)
    if form.is_valid():
        codes = mfa.confirm_totp(request, user, pending, form.cleaned_data["code"])
        if codes is not None:
            first_factor = bool(codes)
            messages.success(
                request, "Your authenticator app is enrolled." + ("" if first_factor else f" {OTHER_SESSIONS}")
            )
            if codes:
                return render(request, "accounts/recovery_codes.html", {"codes": codes, "next": _next(request)})
            return HttpResponseRedirect(reverse("accounts:factors"))
        form.add_error("code", "That code is not right: check the app's clock, and enter the newest code.")
    return _enrol_page(request, pending, form, status=400)


def _enrol_page(request: HttpRequest, device: TOTPDevice, form: forms.Form, status: int = 200) -> HttpResponse:
    key = device.base32_key()
    secret = " ".join(key[i : i + 4] for i in range(0, len(key), 4))
    context = {
        "qr": _qr_svg(device),
        "secret": secret,
        "form": form,
        "next": _next(request),
    }
    return render(request, "accounts/enrol.html", context, status=status)


@requires(step_up=True)
@require_safe
def factors(request: HttpRequest) -> HttpResponse:
    """One's own factors: add an authenticator, remove one, issue new recovery codes."""
    user: User = request.user  # type: ignore[assignment]
    context = {
        "totp": TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk"),
        "passkeys": passkeys.passkeys(user),
        "recovery": RecoveryDevice.objects.filter(user=user).first(),
        "needed": mfa.needs_second_factor(user),
        "form": ReasonForm(),
    }
    return render(request, "accounts/factors.html", context)


@requires(step_up=True)
@require_POST
def factor_remove(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Remove one of one's authenticator apps."""
    return _remove(request, TOTPDevice.objects.filter(user=request.user, confirmed=True, pk=pk).first())


@requires(step_up=True)
@require_POST
def passkey_remove(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Remove one of one's passkeys."""
    return _remove(request, Passkey.objects.filter(user=request.user, pk=pk).first())


def _remove(request: HttpRequest, device: TOTPDevice | Passkey | None) -> HttpResponseBase:
    user: User = request.user  # type: ignore[assignment]
    form = ReasonForm(request.POST)
    if device is None:
        messages.error(request, "There is no such factor of yours.")
    elif form.is_valid():
        if mfa.needs_second_factor(user) and not mfa.has_primary_factor(user, besides=device):
            messages.error(request, "Your roles require a second factor: add another before removing this one.")
        else:
            try:
                mfa.remove_factor(device, acting_user=user, reason=form.cleaned_data["reason"])
            except ValidationError as error:
                messages.error(request, "; ".join(error.messages))
            else:
                messages.success(request, f"The {mfa.kind_of(device)} was removed. {OTHER_SESSIONS}")
    else:
        messages.error(request, "State the reason for removing the factor.")
    return HttpResponseRedirect(reverse("accounts:factors"))


@requires(step_up=True)
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """New recovery codes, replacing the old ones, shown on this page only."""
    user: User = request.user  # type: ignore[assignment]
    codes = mfa.issue_recovery_codes(user, acting_user=user)
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "next": reverse("accounts:factors")})


# --- one's sessions -------------------------------------------------------------------------------


@requires(step_up=True)
@require_safe
def my_sessions(request: HttpRequest) -> HttpResponse:
    """The user's own signed-in sessions, this one marked; ending them needs a fresh factor."""
    user: User = request.user  # type: ignore[assignment]
    context = {"sessions": sessions.live_sessions(user), "current": request.session.get(sessions.REGISTERED)}
    return render(request, "accounts/sessions.html", context)


@requires(step_up=True)
@require_POST
def session_end(request: HttpRequest, pk: int) -> HttpResponseBase:
    user: User = request.user  # type: ignore[assignment]
    target = next((s for s in sessions.live_sessions(user) if s.pk == pk), None)
    if target is None:
        messages.error(request, "There is no such session of yours.")
    else:
        sessions.end(target, acting_user=user, reason="ended by its owner")
        messages.success(request, "The session was ended.")
    return HttpResponseRedirect(reverse("accounts:sessions"))


@requires(step_up=True)
@require_POST
def sessions_end_others(request: HttpRequest) -> HttpResponseBase:
    user: User = request.user  # type: ignore[assignment]
    ended = sessions.end_all(user, acting_user=user, reason="ended by its owner", keep=request.session.session_key)
    messages.success(request, f"{ended} other session{'s' if ended != 1 else ''} ended.")
    return HttpResponseRedirect(reverse("accounts:sessions"))


@requires()
@require_POST
def keepalive(request: HttpRequest) -> HttpResponse:
    """The idle warning's "stay signed in": any request resets the idle clock; this one says so."""
    sessions.keep_alive(request)
    return HttpResponse(status=204)


def record_forged_request(request: HttpRequest) -> None:
    """A request refused by the CSRF check: who sent it (if signed in), where to, in the ledger."""
    user = getattr(request, "user", None)
    actor = actor_of(user) if user is not None and user.is_authenticated else Actor(None, "anonymous", "")
    with transaction.atomic(durable=True):
        record(
            EventType.FORGED_REQUEST_REFUSED,
            actor=actor,
            object_type="path",
            object_id=request.path[:64],
            reason="csrf",
        )
