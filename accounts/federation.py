"""What SAML and OIDC sign-ins share: the user found by (issuer, subject) only, created on first
sign-in, their non-privileged roles and teams kept to what the identity provider asserts, and
whether the provider's own second factor stands for ours.

Privileged roles (those that administer or approve) never come from an identity provider: they
change only through four-eyes inside Caspix. Each change made here is a ledger event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import mfa
from accounts.models import FederatedIdentity, IdentityProviderFactor, Membership, Role, RoleAssignment, Team, User
from audit.events import EventType
from audit.ledger import Actor, record

logger = logging.getLogger("caspix.security")


class RefusedError(Exception):
    """Why a federated sign-in is refused, in words for the ledger (never shown to the user)."""


def can_step_up(user: Any) -> bool:
    """Whether ``user`` may verify a second factor by signing in at the OIDC provider again (to
    finish signing in, or to step up): the policy trusts its factor, and it knows the user."""
    config = settings.CASPIX_OIDC
    return bool(
        config
        and config["mfa"] == "idp"
        and user.is_authenticated
        and user.federated_identities.filter(issuer=config["issuer"]).exists()
    )


def user_for(issuer: str, subject: str, *, preferred: str, source: str) -> User:
    """The user the provider knows as ``subject``, created at their first sign-in. Call inside
    the sign-in's transaction."""
    identity = FederatedIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is not None:
        user = identity.user
        if not user.is_active:
            raise RefusedError("the account is deactivated")
        return user
    user = User.objects.create(username=free_username(preferred or subject))
    user.set_unusable_password()
    user.save(update_fields=["password"])
    FederatedIdentity.objects.create(issuer=issuer, subject=subject, user=user)
    record(
        EventType.USER_CREATED,
        actor=Actor.system(source),
        object_type="user",
        object_id=user.pk,
        after={"username": user.username, "issuer": issuer},
    )
    return user


def free_username(wanted: str) -> str:
    base = "".join(c for c in wanted.split("@")[0] if c.isalnum() or c in "._-")[:100] or "federated"
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def sync(user: User, roles: Iterable[str], teams: Iterable[str], *, source: str) -> None:
    """Make the user's non-privileged roles and their teams those the provider asserts."""
    wanted_roles, wanted_teams = set(roles), set(teams)
    federable = {role.slug: role for role in Role.objects.prefetch_related("grants") if not role.is_privileged()}
    held = {assignment.role.slug: assignment for assignment in user.role_assignments.select_related("role")}

    def note(event: EventType, object_type: str, object_id: int, after: dict[str, object]) -> None:
        actor = Actor.system(source)
        record(event, actor=actor, object_type=object_type, object_id=object_id, reason="federation", after=after)

    for slug in sorted(wanted_roles & set(federable) - set(held)):
        RoleAssignment.objects.create(user=user, role=federable[slug])
        note(EventType.ROLE_GRANTED, "user", user.pk, {"role": slug})
    for slug in sorted(set(held) & set(federable) - wanted_roles):
        held[slug].delete()
        note(EventType.ROLE_REVOKED, "user", user.pk, {"role": slug})
    found = {team.slug: team for team in Team.objects.filter(slug__in=wanted_teams)}
    member_of = {m.team.slug: m for m in user.memberships.select_related("team")}
    for slug in sorted(set(found) - set(member_of)):
        Membership.objects.create(team=found[slug], user=user)
        note(EventType.TEAM_MEMBER_ADDED, "team", found[slug].pk, {"user": user.pk})
    for slug in sorted(set(member_of) - wanted_teams):
        member_of[slug].delete()
        note(EventType.TEAM_MEMBER_REMOVED, "team", member_of[slug].team_id, {"user": user.pk})


def strings(value: Any, *, what: str) -> list[str]:
    """A claim or attribute that lists names: a list of strings, or one string of names separated
    by spaces or commas. Anything else is refused, not guessed at."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise RefusedError(f"the {what} claim is not a list of names")


def refused(request: HttpRequest, protocol: str, why: str) -> HttpResponse:
    """A refused federated sign-in: a 400 page with a generic message, the reason in the ledger,
    a log line without identifiers."""
    with transaction.atomic(durable=True):
        record(EventType.SIGN_IN_FAILED, actor=Actor(None, "unknown account", ""), reason=f"{protocol}: {why}"[:200])
    logger.warning("%s sign-in refused", protocol.upper())
    return render(request, "accounts/federation_refused.html", status=400)


def provider_verified(request: HttpRequest, user: User, *, reason: str, authenticated_at: float | None) -> None:
    """The provider checked the user's second factor: the session is verified by it (a new
    session key, the ledger told), and step-up freshness runs from when the provider checked."""
    device = IdentityProviderFactor.for_user(user)
    with transaction.atomic(durable=True):
        mfa.note(EventType.SECOND_FACTOR_VERIFIED, user, reason=reason, after=mfa.describe(device))
    mfa.verified(request, device)
    if authenticated_at is not None:
        from caspix.access import STEP_UP_SESSION_KEY

        request.session[STEP_UP_SESSION_KEY] = min(time.time(), authenticated_at)


def complete(request: HttpRequest, user: User, *, provider_mfa: bool, authenticated_at: float | None) -> None:
    """After the provider's sign-in: its second factor stands for ours when the policy trusts it
    and it says one was used; otherwise the user verifies (or enrols) a Caspix factor as after
    a password, and the session is registered only once that is done."""
    if provider_mfa:
        provider_verified(request, user, reason="identity provider", authenticated_at=authenticated_at)
        return
    if not any(mfa.second_factor_state(user)):
        from accounts import sessions

        sessions.register(request, user)
