"""The navigation a signed-in user sees: only the areas their roles open."""

from __future__ import annotations

from typing import NamedTuple

from django.http import HttpRequest
from django.urls import reverse

from accounts.permissions import Perm


class Area(NamedTuple):
    label: str
    url_name: str
    permission: Perm


# In the order a person holding several roles lands: the first area they may open is home.
AREAS = (
    Area("Work", "cases:workspace", Perm.WORK_CASES),
    Area("Dashboard", "reporting:dashboard", Perm.VIEW_DASHBOARD),
    Area("Administration", "accounts:admin_home", Perm.MANAGE_USERS),
    Area("Audit", "audit:home", Perm.VIEW_LEDGER),
)


def areas_for(request: HttpRequest) -> list[dict[str, str]]:
    user = getattr(request, "user", None)  # absent on errors raised before authentication
    if user is None or not user.is_authenticated:
        return []
    return [{"label": area.label, "url": reverse(area.url_name)} for area in AREAS if user.has_perm(area.permission)]


def navigation(request: HttpRequest) -> dict[str, object]:
    return {"nav_areas": areas_for(request)}
