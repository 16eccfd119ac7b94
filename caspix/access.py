"""Every view states who may reach it; the authorization tests fail on a view that does not.

``public`` marks a view anyone may reach (login page, health probes). ``requires(*perms)``
demands an authenticated user holding every named business permission, resolved server-side on
each request (a role change applies to open sessions at once). A view whose rule is a gate of
its own (``/metrics``: a source range or a token) says so with ``gated``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

View = TypeVar("View", bound=Callable[..., Any])

ACCESS_ATTRIBUTE = "caspix_access"


def public(view: View) -> View:
    setattr(view, ACCESS_ATTRIBUTE, ("public",))
    return view


def gated(reason: str) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        setattr(view, ACCESS_ATTRIBUTE, ("gated", reason))
        return view

    return decorate


def requires(
    *perms: str, any_of: tuple[str, ...] = (), step_up: bool = False
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Authenticated, and holding every permission in ``perms`` (none: any signed-in user) and,
    when ``any_of`` names some, at least one of them (a report is read by those who draft it
    and by those who approve it).

    With ``step_up``, the view changes something privileged: it may be read at any time, and says
    so (``request.step_up``), but a change (any method but GET and HEAD) needs a second factor
    verified within ``CASPIX_STEP_UP_MINUTES``; without one the user is sent to verify it and
    brought back to the page.
    """

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if perms and not request.user.has_perms(perms):
                raise PermissionDenied
            if any_of and not any(request.user.has_perm(perm) for perm in any_of):
                raise PermissionDenied
            if step_up:
                fresh = stepped_up(request)
                request.step_up = {"fresh": fresh, "minutes": settings.CASPIX_STEP_UP_MINUTES}  # type: ignore[attr-defined]
                if not fresh and request.method not in ("GET", "HEAD"):
                    target = urlencode({"next": _page_of_the_form(request)})
                    return HttpResponseRedirect(f"{reverse(STEP_UP_URL)}?{target}")
            return view(request, *args, **kwargs)

        either = (f"any of {' '.join(any_of)}",) if any_of else ()
        setattr(wrapper, ACCESS_ATTRIBUTE, ("requires", *perms, *either, *(("step-up",) if step_up else ())))
        return wrapper

    return decorate


def _page_of_the_form(request: HttpRequest) -> str:
    """Where to come back to after stepping up: the page the form was on (its action may answer
    POST only), if it is ours; otherwise home. The user submits again from there."""
    referer = urlsplit(request.headers.get("Referer", ""))
    same_site = url_has_allowed_host_and_scheme(
        request.headers.get("Referer", ""), allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    if same_site and referer.path.startswith("/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


STEP_UP_SESSION_KEY = "caspix_second_factor_at"  # when the session last verified a second factor
STEP_UP_URL = "accounts:verify"


def stepped_up(request: HttpRequest) -> bool:
    """Whether this session verified a second factor within ``CASPIX_STEP_UP_MINUTES``."""
    at = request.session.get(STEP_UP_SESSION_KEY)
    return isinstance(at, (int, float)) and 0 <= time.time() - at <= settings.CASPIX_STEP_UP_MINUTES * 60


def access_rule(view: Callable[..., Any]) -> tuple[str, ...] | None:
    """The rule a view declared, or ``None`` when it declared none."""
    rule = getattr(view, ACCESS_ATTRIBUTE, None)
    if rule is None and hasattr(view, "view_class"):
        rule = getattr(view.view_class, ACCESS_ATTRIBUTE, None)
    return rule
