"""The navigation a signed-in user sees: only the areas their roles open."""

from __future__ import annotations

from typing import NamedTuple

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from accounts.permissions import Perm


class Area(NamedTuple):
    label: str
    url_name: str
    permission: Perm
    also: tuple[Perm, ...] = ()  # other permissions that open it as well

    def opens_to(self, user: object) -> bool:
        return any(user.has_perm(perm) for perm in (self.permission, *self.also))  # type: ignore[attr-defined]


# In the order a person holding several roles lands: the first area they may open is home.
AREAS = (
    Area("Work", "cases:workspace", Perm.WORK_CASES),
    Area("Search", "cases:search", Perm.WORK_CASES),
    Area("Reports", "reports:list", Perm.DRAFT_STR, also=(Perm.APPROVE_STR,)),
    Area("Dashboard", "reporting:dashboard", Perm.VIEW_DASHBOARD),
    Area("Administration", "accounts:admin_home", Perm.MANAGE_USERS),
    Area("Audit", "audit:home", Perm.VIEW_LEDGER),
    Area("Exports", "exports:list", Perm.EXPORT_EVIDENCE),
    Area("Access review", "access_review:list", Perm.VIEW_ACCESS_REVIEW, also=(Perm.SIGN_OFF_ACCESS_REVIEW,)),
)


def areas_for(request: HttpRequest) -> list[dict[str, str]]:
    user = getattr(request, "user", None)  # absent on errors raised before authentication
    if user is None or not user.is_authenticated:
        return []
    return [{"label": area.label, "url": reverse(area.url_name)} for area in AREAS if area.opens_to(user)]


def navigation(request: HttpRequest) -> dict[str, object]:
    return {"nav_areas": areas_for(request)}


def session_clock(request: HttpRequest) -> dict[str, object]:
    """The idle timeout the browser warns about, for a session whose sign-in is complete."""
    from accounts.sessions import SEEN, idle_limit, tier_of

    user = getattr(request, "user", None)
    session = getattr(request, "session", None)
    if user is None or session is None or not user.is_authenticated or SEEN not in session:
        return {}
    return {"session_clock": {"idle": idle_limit(tier_of(user)), "warning": settings.CASPIX_SESSION_WARNING_SECONDS}}
