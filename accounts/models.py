"""Users and role templates.

A user holds one or more roles; a role is a named set of business permissions from the catalog
in :mod:`accounts.permissions`. Permissions are resolved from the database on every request, so
a role change reaches sessions already open.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import models as auth_models
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from accounts.permissions import DESCRIPTIONS, PRIVILEGED, Perm
from caspix.crypto.fields import EncryptedTextField
from caspix.gates import GatedQuerySet

# Who may list these objects, by action; see caspix.access.GatedQuerySet.
REVIEWERS = (Perm.VIEW_ACCESS_REVIEW, Perm.SIGN_OFF_ACCESS_REVIEW)


class UserQuerySet(GatedQuerySet["User"]):
    gates = {
        "view": (Perm.MANAGE_USERS, Perm.MANAGE_TEAMS, Perm.MANAGE_ROLES),
        "manage": (Perm.MANAGE_USERS,),
        "review": REVIEWERS,
        # A case worker picks the colleague to open a case to (the view keeps case workers only).
        "colleague": (Perm.WORK_CASES,),
        # A manager's dashboard names the analysts whose closed cases it counts (usernames only).
        "aggregate": (Perm.VIEW_DASHBOARD,),
    }


class UserManager(auth_models.UserManager["User"]):
    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db)

    def restrict(self, user: Any, action: str) -> UserQuerySet:
        return self.get_queryset().restrict(user, action)


class User(AbstractUser):
    """A person who signs in to Caspix.

    Django's ``is_superuser`` and ``is_staff`` flags exist (inherited) but grant nothing here:
    every permission comes from the user's roles.
    """

    roles: models.ManyToManyField[Role, RoleAssignment] = models.ManyToManyField(
        "Role", through="RoleAssignment", related_name="users", blank=True
    )
    last_activity = models.DateTimeField(
        null=True, blank=True, help_text="Last signed-in request, to the minute (for access reviews)"
    )
    session_epoch = models.PositiveIntegerField(
        default=0, help_text="Raised to end every open session of the user (deactivation)"
    )

    objects: ClassVar[UserManager] = UserManager()

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

    # Sessions carry an HMAC of the password hash (Django) and of the session epoch (Caspix):
    # raising the epoch ends every session of the user on its next request, wherever it is.
    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        return salted_hmac(
            "caspix.accounts.User.session_auth_hash",
            f"{self.password}\x00{self.session_epoch}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    # PermissionsMixin answers True to everything for an active superuser; Caspix asks the
    # backends for every user alike.
    def has_perm(self, perm: str, obj: models.Model | None = None) -> bool:
        if not self.is_active:
            return False
        return any(backend.has_perm(self, perm, obj) for backend in auth.get_backends() if hasattr(backend, "has_perm"))

    def has_perms(self, perm_list: Iterable[str], obj: models.Model | None = None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        if not self.is_active:
            return False
        return any(
            backend.has_module_perms(self, app_label)
            for backend in auth.get_backends()
            if hasattr(backend, "has_module_perms")
        )


class RoleQuerySet(GatedQuerySet["Role"]):
    gates = {"view": (Perm.MANAGE_ROLES, Perm.MANAGE_USERS), "manage": (Perm.MANAGE_ROLES,), "review": REVIEWERS}


class Role(models.Model):
    """A role template: a named set of business permissions."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    builtin = models.BooleanField(default=False, help_text="Shipped with Caspix")
    mfa_required = models.BooleanField(
        default=True, help_text="Holders sign in with a second factor, enrolled at their first sign-in"
    )
    passkey_sign_in = models.BooleanField(
        default=False,
        help_text="Holders may sign in with a passkey alone (user verification required), without a password",
    )

    objects = RoleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def permissions(self) -> list[str]:
        """The business permissions this template grants (prefetch ``grants`` for lists)."""
        return sorted(grant.permission for grant in self.grants.all())

    def is_privileged(self) -> bool:
        """Changing who holds it, or what it holds, needs a second administrator's approval."""
        return any(p in PRIVILEGED for p in self.permissions())


class RolePermission(models.Model):
    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="grants")
    permission = models.CharField(max_length=100, choices=[(p.value, DESCRIPTIONS[p]) for p in Perm])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["role", "permission"], name="role_permission_unique"),
            # The catalog is the whole of what a role can grant, in the database too.
            models.CheckConstraint(
                condition=models.Q(permission__in=[p.value for p in Perm]), name="role_permission_in_catalog"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role.slug}: {self.permission}"


class RoleAssignment(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="assignments")
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="role_assignment_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} as {self.role_id}"


class TeamQuerySet(GatedQuerySet["Team"]):
    gates = {
        "view": (Perm.MANAGE_TEAMS, Perm.MANAGE_USERS),
        "manage": (Perm.MANAGE_TEAMS,),
        "review": REVIEWERS,
        "aggregate": (Perm.VIEW_DASHBOARD,),  # a manager's dashboard counts cases by team
    }


class Team(models.Model):
    """An investigator team: its members work the cases of the queues it owns."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        User, through="Membership", related_name="teams", blank=True
    )

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(GatedQuerySet["Membership"]):
    gates = {"view": (Perm.MANAGE_TEAMS, Perm.MANAGE_USERS), "review": REVIEWERS}


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    added_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique")]
        indexes = [models.Index(fields=["user", "team"], name="membership_by_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.team_id}"


def _totp_seed() -> str:
    return secrets.token_hex(20)  # 160 bits, as RFC 4226 recommends


def _hex_seed(value: str) -> None:
    if not (len(value) % 2 == 0 and 32 <= len(value) <= 80 and all(c in "0123456789abcdef" for c in value)):
        raise ValidationError("a TOTP seed is 16 to 40 bytes, hex-encoded in lower case")


class TOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """A TOTP authenticator whose seed is encrypted at rest (ASVS 13.3.1).

    django-otp's own TOTPDevice keeps the seed in a plain column; this one stores it in an
    :class:`~caspix.crypto.fields.EncryptedTextField` bound to the device's ``uid``, and verifies
    as django-otp does: 30 s steps (ASVS 6.5.5), one step of tolerance, each time step accepted
    once (6.5.1), failures throttled. Enrolment and the login step arrive with MFA.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    key = EncryptedTextField(bind="uid", default=_totp_seed, validators=[_hex_seed])
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, "6"), (8, "8")], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1, help_text="time step of the last accepted token")

    class Meta(Device.Meta):
        verbose_name = "TOTP device"
        constraints = [models.CheckConstraint(condition=models.Q(step__lte=30), name="totp_step_at_most_30_s")]

    def __str__(self) -> str:
        return f"TOTP device {self.pk} of user {self.user_id}"

    @property
    def bin_key(self) -> bytes:
        return bytes.fromhex(self.key)

    def verify_is_allowed(self) -> tuple[bool, dict[str, Any] | None]:
        return disabled_after_failures(self) or super().verify_is_allowed()  # type: ignore[no-untyped-call]

    def verify_token(self, token: Any) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            number = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            tolerance = min(self.tolerance, self.policy_tolerance())
            # A drift learnt under a wider tolerance (a tier ago) must not shift the window.
            drift = max(-tolerance, min(tolerance, self.drift))
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, drift)
            totp.time = time.time()
            verified = totp.verify(number, tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                self.drift = totp.drift
                self.throttle_reset(commit=False)  # type: ignore[no-untyped-call]
                self.set_last_used_timestamp(commit=False)  # type: ignore[no-untyped-call]
                self.save()
        if not verified:
            self.throttle_increment(commit=True)  # type: ignore[no-untyped-call]
        return verified

    def get_throttle_factor(self) -> int:
        return 1  # seconds, doubling with each consecutive failure

    def policy_tolerance(self) -> int:
        """The time steps of tolerance the owner's tier allows (settings.CASPIX_TOTP_TOLERANCE)."""
        tier = "privileged" if any(role.is_privileged() for role in self.user.roles.all()) else "standard"
        tolerance: int = settings.CASPIX_TOTP_TOLERANCE[tier]
        return tolerance

    def base32_key(self) -> str:
        """The seed as authenticator apps take it typed in: base32, unpadded."""
        return base64.b32encode(self.bin_key).decode().rstrip("=")

    def provisioning_uri(self) -> str:
        """The otpauth:// URI an authenticator app reads from the enrolment QR code."""
        secret = self.base32_key()
        label = quote(f"{settings.OTP_TOTP_ISSUER}:{self.user.get_username()}")
        query = urlencode(
            {"secret": secret, "issuer": settings.OTP_TOTP_ISSUER, "digits": self.digits, "period": self.step}
        )
        return f"otpauth://totp/{label}?{query}"


def disabled_after_failures(device: Any) -> tuple[bool, dict[str, Any]] | None:
    """NIST SP 800-63B: after 100 consecutive failures a factor is disabled until re-enrolled."""
    if device.throttling_failure_count >= settings.CASPIX_FACTOR_MAX_FAILURES:
        return False, {"reason": "disabled", "failure_count": device.throttling_failure_count}
    return None


class RecoveryDevice(ThrottlingMixin, Device):
    """The user's single-use recovery codes, as one django-otp device.

    A code is ``LLLL-SSSSS-SSSSS``: a lookup part that finds its row (not secret) and 50 random
    bits kept only as a password hash (Argon2id, salted; ASVS 6.5.2 wants one below 112 bits), so
    a copy of the table does not yield them. Each code is spent by its first use, and one attempt
    costs one hash check.
    """

    class Meta(Device.Meta):
        verbose_name = "recovery codes"

    def __str__(self) -> str:
        return f"Recovery codes of user {self.user_id}"

    def verify_is_allowed(self) -> tuple[bool, dict[str, Any] | None]:
        return disabled_after_failures(self) or super().verify_is_allowed()  # type: ignore[no-untyped-call]

    def get_throttle_factor(self) -> int:
        return 1

    def verify_token(self, token: Any) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        lookup, secret = split_recovery_code(str(token))
        code = self.codes.filter(lookup=lookup, used_at__isnull=True).first() if lookup else None
        if code is None:
            make_password(secret or "-")  # the same cost, so timing does not tell a known lookup part
            spent = False
        else:
            spent = check_password(secret, code.digest) and bool(
                self.codes.filter(pk=code.pk, used_at__isnull=True).update(used_at=timezone.now())
            )
        if spent:
            self.throttle_reset(commit=True)  # type: ignore[no-untyped-call]
        else:
            self.throttle_increment(commit=True)  # type: ignore[no-untyped-call]
        return bool(spent)

    def remaining(self) -> int:
        return self.codes.filter(used_at__isnull=True).count()


# django-otp-webauthn's models module asks for the user model as it is imported: import it once
# User is defined.
from django_otp_webauthn.models import AbstractWebAuthnAttestation, AbstractWebAuthnCredential  # noqa: E402


class Passkey(ThrottlingMixin, AbstractWebAuthnCredential):
    """A WebAuthn credential (django-otp-webauthn's model, with django-otp's failure counter).

    Its signature cannot be guessed, but a credential that keeps failing is disabled all the same
    after 100 consecutive failures (NIST SP 800-63B), as every other factor is.
    """

    class Meta(AbstractWebAuthnCredential.Meta):
        verbose_name = "passkey"  # type: ignore[assignment]
        verbose_name_plural = "passkeys"  # type: ignore[assignment]
        indexes = [models.Index(fields=["credential_id_sha256"], name="passkey_sha256_idx")]

    def __str__(self) -> str:
        return f"Passkey {self.pk} of user {self.user_id}"

    def verify_is_allowed(self) -> tuple[bool, dict[str, Any] | None]:
        return disabled_after_failures(self) or super().verify_is_allowed()  # type: ignore[no-untyped-call]

    def get_throttle_factor(self) -> int:
        return 0  # failures are counted, not slowed down: a signature cannot be guessed


class PasskeyAttestation(AbstractWebAuthnAttestation):
    """What the authenticator said of itself at registration, kept for later review."""

    credential = models.OneToOneField(Passkey, on_delete=models.CASCADE, related_name="attestation", editable=False)

    def __str__(self) -> str:
        return f"attestation of passkey {self.credential_id}"


RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols, no 0/O or 1/I


def split_recovery_code(code: str) -> tuple[str, str]:
    """(lookup, secret) of a code typed in any case, with or without dashes and spaces."""
    normalised = "".join(code.split()).replace("-", "").upper()
    if len(normalised) != 14 or any(c not in RECOVERY_ALPHABET for c in normalised):
        return "", ""
    return normalised[:4], normalised[4:]


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryDevice, on_delete=models.CASCADE, related_name="codes")
    lookup = models.CharField(max_length=4)
    digest = models.CharField(max_length=128)  # a Django password hash of the secret part
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "lookup"], name="recovery_code_lookup_unique")]

    def __str__(self) -> str:
        return f"recovery code {self.pk} ({'used' if self.used_at else 'unused'})"


class UserSession(models.Model):
    """A signed-in session, fully authenticated: for the user's own list, the administrators', the
    concurrent-session limit and the ledger. The session itself lives in Django's session store;
    ending it deletes it there, so it is refused on its next request wherever it is."""

    class Tier(models.TextChoices):
        PRIVILEGED = "privileged", "privileged"
        STANDARD = "standard", "standard"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="signed_in_sessions")
    session_key = models.CharField(max_length=40, unique=True)
    tier = models.CharField(max_length=10, choices=Tier.choices)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "ended_at"], name="user_session_live")]

    def __str__(self) -> str:
        return f"session {self.pk} of user {self.user_id}"


class IdentityProviderFactor(Device):
    """The second factor an identity provider checked, standing for ours when the federation
    policy trusts it (accounts/federation.py). It verifies no code of its own: it exists so the
    session can say which factor verified it, as every other one does."""

    class Meta(Device.Meta):
        verbose_name = "identity provider's factor"

    def __str__(self) -> str:
        return f"Identity provider's factor of user {self.user_id}"

    @classmethod
    def for_user(cls, user: User) -> IdentityProviderFactor:
        device: IdentityProviderFactor
        device, _ = cls.objects.get_or_create(user=user, defaults={"name": "Identity provider", "confirmed": True})
        return device

    def verify_token(self, token: Any) -> bool:
        return False


class FederatedIdentity(models.Model):
    """A user as an identity provider knows them: its entity id (issuer) and their subject there.
    Users are matched on this pair only, never on an e-mail address (ASVS 6.8.1, 10.5.2)."""

    issuer = models.CharField(max_length=512)
    subject = models.CharField(max_length=512)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="federated_identities")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="federated_identity_unique")]

    def __str__(self) -> str:
        return f"federated identity {self.pk}"


class SamlRequest(models.Model):
    """An AuthnRequest this SP sent: a response must answer one, once, within ten minutes, from
    the browser that asked (a cookie carries its signed id: the session cookie is SameSite=Lax and
    does not come with the IdP's cross-site POST)."""

    request_id = models.CharField(max_length=256, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"SAML request {self.pk}"


class SeenAssertion(models.Model):
    """A SAML assertion already used, kept past its validity so it is never accepted twice
    (python3-saml leaves replay to the application; ASVS 6.8.3)."""

    issuer = models.CharField(max_length=512)
    assertion_id = models.CharField(max_length=256)
    not_on_or_after = models.DateTimeField(null=True)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "assertion_id"], name="seen_assertion_once")]

    def __str__(self) -> str:
        return f"seen assertion {self.pk}"


class StuffingAlarm(models.Model):
    """Credential stuffing raised for a source address in a window: raised once, by whichever
    process sees it first (the unique constraint decides)."""

    source = models.CharField(max_length=45)
    window = models.BigIntegerField(help_text="the window's number: its start in seconds / its length")
    raised_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "window"], name="stuffing_alarm_once")]

    def __str__(self) -> str:
        return f"stuffing alarm {self.pk}"


class ApprovalQuerySet(models.QuerySet["ApprovalRequest"]):
    def restrict(self, user: User | Any, action: str) -> ApprovalQuerySet:
        """``decide``: the requests of the kinds ``user`` may approve; ``view``: those and the
        ones they made; ``export``: every request, for the auditors' evidence packs. Nothing for
        anyone else."""
        from accounts.approvals import KINDS  # the kinds register themselves there

        if action not in ("view", "decide", "export"):
            raise ValueError(f"ApprovalRequest has no action {action!r}: decide, export, view")
        if not (user.is_authenticated and user.is_active):
            return self.none()
        if action == "export":
            return self.all() if user.has_perm(Perm.EXPORT_EVIDENCE) else self.none()
        decidable = Q(kind__in=[name for name, kind in KINDS.items() if user.has_perm(kind.approver_permission)])
        return self.filter(decidable | Q(maker=user) if action == "view" else decidable)


class ApprovalRequest(models.Model):
    """A change that a second, authorised person must approve before it happens (four-eyes).

    ``payload`` is the exact proposed change and ``payload_hash`` its SHA-256 over the ledger's
    canonical serialisation (with the kind): an approval names the hash it saw, and the change
    runs only if the stored payload still has it. It executes in the approving transaction.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        EXPIRED = "expired", "expired"
        WITHDRAWN = "withdrawn", "withdrawn"

    kind = models.CharField(max_length=64)
    payload = models.JSONField()
    payload_hash = models.CharField(max_length=64)
    maker = models.ForeignKey(User, on_delete=models.PROTECT, related_name="approval_requests")
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="approval_decisions"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    objects = ApprovalQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="approval_status_expiry")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")), name="approval_expires_later"
            ),
            models.CheckConstraint(condition=~models.Q(decided_by=models.F("maker")), name="approval_not_by_its_maker"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} request {self.pk} ({self.status})"
