"""Every view states who may reach it; the authorization tests fail on a view that does not.

``public`` marks a view anyone may reach (login page, health probes). ``requires(*perms)``
demands an authenticated user holding every named business permission, resolved server-side on
each request (a role change applies to open sessions at once). A view whose rule is a gate of
its own (``/metrics``: a source range or a token) says so with ``gated``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

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


def requires(*perms: str) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Authenticated, and holding every permission in ``perms`` (none: any signed-in user)."""

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if perms and not request.user.has_perms(perms):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        setattr(wrapper, ACCESS_ATTRIBUTE, ("requires", *perms))
        return wrapper

    return decorate


def access_rule(view: Callable[..., Any]) -> tuple[str, ...] | None:
    """The rule a view declared, or ``None`` when it declared none."""
    rule = getattr(view, ACCESS_ATTRIBUTE, None)
    if rule is None and hasattr(view, "view_class"):
        rule = getattr(view.view_class, ACCESS_ATTRIBUTE, None)
    return rule
