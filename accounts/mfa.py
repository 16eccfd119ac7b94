"""Second factors: who needs one, enrolment, verification, recovery codes and step-up.

A user needs a second factor when any of their roles says so (``Role.mfa_required``); a user who
has enrolled one is asked for it whatever their roles. Verification is always against the device
the user chose (django-otp#110: matching a code across every device counts failures against the
wrong ones). Every verification, failure, enrolment, removal and issue of recovery codes is a
ledger event; a factor that reaches 100 consecutive failures is disabled (NIST SP 800-63B) and
says so in the ledger once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

import django_otp
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import HttpRequest
from django_otp.models import Device

from accounts.actions import actor_of
from accounts.models import (
    RECOVERY_ALPHABET,
    IdentityProviderFactor,
    Passkey,
    RecoveryCode,
    RecoveryDevice,
    Role,
    TOTPDevice,
    User,
    disabled_after_failures,
)
from audit.events import EventType
from audit.ledger import record
from caspix.access import STEP_UP_SESSION_KEY

RECOVERY_CODES = 10
FACTOR_KINDS: dict[type[Device], str] = {
    TOTPDevice: "authenticator app",
    Passkey: "passkey",
    RecoveryDevice: "recovery code",
    IdentityProviderFactor: "identity provider's factor",
}


def is_verified(user: Any) -> bool:
    """Whether this request's session verified a second factor (django-otp's middleware says)."""
    return getattr(user, "otp_device", None) is not None


def needs_second_factor(user: User) -> bool:
    return user.roles.filter(mfa_required=True).exists()


def factors(user: User) -> list[Device]:
    """The confirmed factors of ``user`` that verify with a typed code, TOTP first (passkeys
    verify in the browser: :mod:`accounts.passkeys`)."""
    found: list[Device] = list(TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk"))
    found += RecoveryDevice.objects.filter(user=user, confirmed=True, codes__used_at__isnull=True).distinct()
    return found


def second_factor_state(user: User | Any) -> tuple[bool, bool]:
    """(has a usable factor, roles require one), in one query. Recovery codes count only while
    one is unspent."""
    row = User.objects.filter(pk=user.pk).values_list(
        Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
        Exists(Passkey.objects.filter(user=OuterRef("pk"), confirmed=True)),
        Exists(RecoveryDevice.objects.filter(user=OuterRef("pk"), confirmed=True, codes__used_at__isnull=True)),
        Exists(Role.objects.filter(assignments__user=OuterRef("pk"), mfa_required=True)),
    )
    totp, passkey, recovery, needs = row.get()
    return bool(totp or passkey or recovery), bool(needs)


def has_factor(user: User) -> bool:
    return second_factor_state(user)[0]


def has_primary_factor(user: User, *, besides: Device | None = None) -> bool:
    """Whether ``user`` keeps an authenticator app or a passkey (other than ``besides``)."""
    for model in (TOTPDevice, Passkey):
        found = model.objects.filter(user=user, confirmed=True)
        if besides is not None and isinstance(besides, model):
            found = found.exclude(pk=besides.pk)
        if found.exists():
            return True
    return False


def note(event: EventType, user: User, *, reason: str = "", after: Mapping[str, object] | None = None) -> None:
    """Record, in the open transaction, an event of ``user``'s own sign-in or factors."""
    record(event, actor=actor_of(user), object_type="user", object_id=user.pk, reason=reason, after=after)


def kind_of(device: Device) -> str:
    return FACTOR_KINDS.get(type(device), "factor")


def describe(device: Device) -> dict[str, object]:
    return {"factor": kind_of(device), "device": device.persistent_id}


# --- enrolment ------------------------------------------------------------------------------------


def begin_totp(user: User) -> TOTPDevice:
    """A fresh, unconfirmed authenticator for ``user`` (an abandoned one is replaced)."""
    with transaction.atomic(durable=True):
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        device: TOTPDevice = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
        return device


def confirm_totp(request: HttpRequest, user: User, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm an authenticator with its first code; returns the recovery codes when this is the
    user's first factor (shown once), an empty list otherwise, ``None`` for a wrong code."""
    with transaction.atomic(durable=True):
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user, confirmed=False)
        if not device.verify_token(token):
            note(EventType.SECOND_FACTOR_FAILED, user, reason="enrolment", after=describe(device))
            return None
        first = not has_factor(user)
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        record(
            EventType.FACTOR_ADDED, actor=actor_of(user), object_type="user", object_id=user.pk, after=describe(device)
        )
        codes = _issue_recovery_codes(user, actor=user) if first else []
    verified(request, device)
    return codes


def issue_recovery_codes(user: User, *, acting_user: User) -> list[str]:
    """New recovery codes for ``user``, replacing any left: shown once, kept only as HMACs."""
    if acting_user.pk != user.pk:
        raise ValidationError("recovery codes are issued to their owner only")
    with transaction.atomic(durable=True):
        return _issue_recovery_codes(user, actor=acting_user)


def first_recovery_codes(user: User) -> list[str]:
    """The recovery codes that come with a user's first factor (inside its transaction)."""
    return _issue_recovery_codes(user, actor=user)


def _issue_recovery_codes(user: User, *, actor: User) -> list[str]:
    RecoveryDevice.objects.filter(user=user).delete()
    device = RecoveryDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    lookups: set[str] = set()
    while len(lookups) < RECOVERY_CODES:
        lookups.add(_random(4))
    secrets_ = [_random(10) for _ in lookups]
    RecoveryCode.objects.bulk_create(
        [
            RecoveryCode(device=device, lookup=lookup, digest=make_password(secret))
            for lookup, secret in zip(sorted(lookups), secrets_, strict=True)
        ]
    )
    codes = [f"{lookup}-{secret[:5]}-{secret[5:]}" for lookup, secret in zip(sorted(lookups), secrets_, strict=True)]
    record(
        EventType.RECOVERY_CODES_ISSUED,
        actor=actor_of(actor),
        object_type="user",
        object_id=user.pk,
        after={"count": len(codes), "device": device.persistent_id},
    )
    return codes


def _random(length: int) -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(length))  # 5 bits a symbol


def remove_factor(device: Device, *, acting_user: User, reason: str) -> None:
    """Remove a factor: its owner, or a user administrator helping someone who lost theirs."""
    from accounts.permissions import Perm

    owner = device.user
    if acting_user.pk != owner.pk and not acting_user.has_perm(Perm.MANAGE_USERS):
        raise ValidationError("a factor is removed by its owner or by a user administrator")
    if not reason.strip():
        raise ValidationError("state the reason")
    with transaction.atomic(durable=True):
        removed = [device]
        type(device).objects.filter(pk=device.pk).delete()
        if not has_primary_factor(owner):
            # Recovery codes back up an authenticator or a passkey: without either they go too,
            # or they would be a factor of their own that the user never chose.
            removed += list(RecoveryDevice.objects.filter(user=owner))
            RecoveryDevice.objects.filter(user=owner).delete()
        for gone in removed:
            record(
                EventType.FACTOR_REMOVED,
                actor=actor_of(acting_user),
                object_type="user",
                object_id=owner.pk,
                reason=reason,
                after=describe(gone),
            )


# --- verification ---------------------------------------------------------------------------------


def device_for(user: User, persistent_id: str) -> Device | None:
    """The user's own confirmed device with that id, or ``None`` (another user's is never found)."""
    device: Device | None = Device.from_persistent_id(persistent_id)
    if device is None or device.user_id != user.pk or not device.confirmed:
        return None
    return device


def verify(request: HttpRequest, user: User, device: Device, token: str, *, step_up: bool = False) -> bool:
    """Check ``token`` on the device the user chose; on success the session is verified (and
    stepped up) and gets a new key."""
    with transaction.atomic(durable=True):
        locked = type(device).objects.select_for_update().get(pk=device.pk)
        was_disabled = not locked.verify_is_allowed()[0]
        ok = locked.verify_token(token)
        event = EventType.SECOND_FACTOR_VERIFIED if ok else EventType.SECOND_FACTOR_FAILED
        record(
            event,
            actor=actor_of(user),
            object_type="user",
            object_id=user.pk,
            reason="step-up" if step_up else "sign-in",
            after=describe(locked),
        )
        failures = getattr(locked, "throttling_failure_count", 0)
        if not ok and not was_disabled and failures >= settings.CASPIX_FACTOR_MAX_FAILURES:
            record(
                EventType.FACTOR_DISABLED,
                actor=actor_of(user),
                object_type="user",
                object_id=user.pk,
                reason=f"{failures} consecutive failures",
                after=describe(locked),
            )
    if ok:
        verified(request, locked)
    return bool(ok)


def verified(request: HttpRequest, device: Device) -> None:
    from accounts import sessions

    request.session.cycle_key()  # a new session id at every change of privilege
    sessions.rekey(request)
    django_otp.login(request, device)
    request.session[STEP_UP_SESSION_KEY] = time.time()
    if request.session.get(sessions.REGISTERED) is None:
        sessions.register(request, device.user)  # the second factor completes the sign-in


def failure_message(before: Any, after: Any) -> str:
    """Why a code was refused, from the device as it was before the attempt and after it."""
    if disabled_after_failures(after):
        return "This factor is disabled after too many failures: use another, or ask an administrator."
    if not before.verify_is_allowed()[0]:
        return "Too many attempts: wait a moment before trying again."
    return "That code is not right, or has been used already."
