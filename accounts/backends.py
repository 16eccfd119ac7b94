"""Authentication by username and password; authorization from the user's roles only."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.db.models import Model

from accounts.models import RolePermission

_CACHE_ATTRIBUTE = "_caspix_permissions"


class RoleBackend(ModelBackend):
    """Business permissions are the union of the user's roles' grants.

    Django's per-user and per-group model permissions are ignored, and so is ``is_superuser``.
    Object-level access is decided elsewhere (``restrict()``), so object checks answer False.
    The set is read once per request: the user object lives for one request.
    """

    def get_user_permissions(self, user_obj: Any, obj: Model | None = None) -> set[str]:
        return set()

    def get_group_permissions(self, user_obj: Any, obj: Model | None = None) -> set[str]:
        return set()

    def get_all_permissions(self, user_obj: Any, obj: Model | None = None) -> set[str]:
        if obj is not None or not user_obj.is_active or user_obj.is_anonymous:
            return set()
        cached: set[str] | None = getattr(user_obj, _CACHE_ATTRIBUTE, None)
        if cached is None:
            cached = set(
                RolePermission.objects.filter(role__assignments__user=user_obj).values_list("permission", flat=True)
            )
            setattr(user_obj, _CACHE_ATTRIBUTE, cached)
        return cached

    def has_perm(self, user_obj: Any, perm: str, obj: Model | None = None) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in self.get_all_permissions(user_obj))
