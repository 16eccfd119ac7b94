"""Session policy: tiers, idle and absolute timeouts, the concurrent-session limit, ending sessions.

A session is *registered* (a :class:`~accounts.models.UserSession`) once sign-in is complete: the
password, and the second factor when the user has one or needs one. Registering applies the
concurrent-session limit of the user's tier: the newest session wins and the oldest ones end. The
idle and absolute clocks live in the session itself (server-side) and are checked on every
request by :class:`SessionPolicyMiddleware`, without a query. Ending a session deletes it from
Django's session store, so it is refused on its next request wherever it is; every end is a ledger
event with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.actions import actor_of
from accounts.middleware import send_to
from accounts.models import User, UserSession
from accounts.permissions import PRIVILEGED
from audit.events import EventType
from audit.ledger import Actor, record
from caspix.requestcontext import client_address

STARTED = "caspix_session_started"  # time.time() when the sign-in completed
SEEN = "caspix_session_seen"  # time.time() of the last request, to SEEN_PRECISION
REGISTERED = "caspix_session_id"  # the UserSession's id
SEEN_PRECISION = 30  # seconds: the idle clock is kept to this, to save a write per request


def tier_of(user: User | Any) -> str:
    perms = user.get_all_permissions()
    return UserSession.Tier.PRIVILEGED if any(p in PRIVILEGED for p in perms) else UserSession.Tier.STANDARD


def idle_limit(tier: str) -> int:
    limit: int = settings.CASPIX_SESSION_IDLE_SECONDS[tier]
    return limit


def register(request: HttpRequest, user: User) -> UserSession:
    """Record a completed sign-in, and end the user's oldest sessions beyond the tier's limit."""
    if request.session.session_key is None:
        request.session.save()
    key = str(request.session.session_key)
    tier = tier_of(user)
    now = time.time()
    with transaction.atomic(durable=True):
        User.objects.select_for_update().filter(pk=user.pk).first()  # one sign-in at a time per user
        current, _ = UserSession.objects.update_or_create(
            session_key=key,
            defaults={
                "user": user,
                "tier": tier,
                "source": client_address(request) or "",
                "user_agent": request.headers.get("User-Agent", "")[:200],
                "ended_at": None,
            },
        )
        live = list(
            UserSession.objects.filter(user=user, ended_at__isnull=True).exclude(pk=current.pk).order_by("-started_at")
        )
        for old in live[settings.CASPIX_SESSION_LIMIT[tier] - 1 :]:
            _end(old, reason="concurrent limit", actor=actor_of(user))
    request.session[REGISTERED] = current.pk
    request.session[STARTED] = now
    request.session[SEEN] = now
    return current


def end(session: UserSession, *, acting_user: User, reason: str) -> None:
    """End one session: its owner, or a user administrator."""
    from accounts.permissions import Perm

    if acting_user.pk != session.user_id and not acting_user.has_perm(Perm.MANAGE_USERS):
        raise PermissionError("a session is ended by its owner or by a user administrator")
    with transaction.atomic(durable=True):
        _end(session, reason=reason, actor=actor_of(acting_user))


def end_all(user: User, *, acting_user: User, reason: str, keep: str | None = None) -> int:
    """End every session of ``user`` (but the one whose key is ``keep``)."""
    sessions = UserSession.objects.filter(user=user, ended_at__isnull=True).exclude(session_key=keep or "")
    ended = 0
    with transaction.atomic(durable=True):
        for session in sessions.select_for_update():
            _end(session, reason=reason, actor=actor_of(acting_user))
            ended += 1
    return ended


def signed_out(request: HttpRequest) -> None:
    """The user signed this session out: its record says so (the ledger has the sign-out).
    The caller's logout empties the session."""
    _close(request, "signed out")


def ended_elsewhere(request: HttpRequest, user: User, reason: str) -> None:
    """This session ends for a reason from outside (the identity provider no longer vouches for
    the user): its record and the ledger say so; the caller's logout empties the session."""
    session_id = _close(request, reason)
    if session_id is not None:
        with transaction.atomic(durable=True):
            record(
                EventType.SESSION_ENDED,
                actor=actor_of(user),
                object_type="user",
                object_id=user.pk,
                reason=reason,
                after={"session": session_id},
            )


def _close(request: HttpRequest, reason: str) -> int | None:
    registered = request.session.get(REGISTERED)
    if registered is None:
        return None
    UserSession.objects.filter(pk=registered, ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason)
    return int(registered)


def _end(session: UserSession, *, reason: str, actor: Actor) -> None:
    session.ended_at = timezone.now()
    session.end_reason = reason
    session.save(update_fields=["ended_at", "end_reason"])
    Session.objects.filter(session_key=session.session_key).delete()
    record(
        EventType.SESSION_ENDED,
        actor=actor,
        object_type="user",
        object_id=session.user_id,
        reason=reason,
        after={"session": session.pk, "tier": session.tier},
    )


def live_sessions(user: User) -> list[UserSession]:
    return list(UserSession.objects.filter(user=user, ended_at__isnull=True).order_by("-started_at"))


def rekey(request: HttpRequest) -> None:
    """After the session got a new key (a second factor verified): follow it."""
    registered = request.session.get(REGISTERED)
    if registered is not None:
        UserSession.objects.filter(pk=registered).update(session_key=str(request.session.session_key))


def keep_alive(request: HttpRequest) -> None:
    if isinstance(request.session.get(SEEN), (int, float)):
        request.session[SEEN] = time.time()


class SessionPolicyMiddleware:
    """Ends a session that has been idle, or alive, too long for its tier (a session whose
    sign-in is not complete has no clock yet: the second-factor gate holds it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not request.path_info.startswith(settings.STATIC_URL):
            expired = self._expired(request, user)
            if expired is not None:
                return expired
        return self.get_response(request)

    def _expired(self, request: HttpRequest, user: Any) -> HttpResponse | None:
        session = request.session
        now = time.time()
        started, seen = session.get(STARTED), session.get(SEEN)
        if not isinstance(started, (int, float)) or not isinstance(seen, (int, float)):
            return None  # sign-in not complete yet (second factor pending), or not registered
        tier = tier_of(user)
        if now - seen > idle_limit(tier):
            return self._end_here(request, user, "idle")
        if now - started > settings.SESSION_COOKIE_AGE:
            return self._end_here(request, user, "absolute")
        if now - seen >= SEEN_PRECISION:
            session[SEEN] = now
            UserSession.objects.filter(pk=int(session.get(REGISTERED) or 0)).update(last_seen_at=timezone.now())
        return None

    def _end_here(self, request: HttpRequest, user: Any, reason: str) -> HttpResponse:
        registered = UserSession.objects.filter(
            pk=int(request.session.get(REGISTERED) or 0), ended_at__isnull=True
        ).first()
        with transaction.atomic(durable=True):
            if registered is not None:
                _end(registered, reason=reason, actor=Actor(user.pk, user.get_username(), "session policy"))
        logout(request)
        return send_to("accounts:login", request)
