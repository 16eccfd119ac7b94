"""The one door of every queryset, for rows that open as a whole to a business permission.

Cases have a per-row boundary and a ``restrict`` of their own (``cases.models``); the rest of
what a page lists (users, roles, teams, queues, the ledger) opens to the holders of a permission
or not at all. Kept apart from :mod:`caspix.access`, which imports the auth views, so that models
can import it while the apps load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)


class GatedQuerySet(models.QuerySet[_M]):
    """Rows that open as a whole to the holders of a business permission.

    Administration objects and reference data (users, roles, teams, queues, the ledger) have no
    per-row boundary, but they still come through ``restrict(user, action)``, the one door of
    every queryset (STYLE.md principle 4): the action is named, and a user holding none of its
    permissions gets no row. ``gates`` maps each action to the permissions that open it (any
    one of them). Per-row boundaries (cases) define ``restrict`` of their own.
    """

    gates: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def restrict(self, user: Any, action: str) -> Self:
        try:
            perms = self.gates[action]
        except KeyError:
            known = ", ".join(sorted(self.gates))
            raise ValueError(f"{self.model.__name__} has no action {action!r}: {known}") from None
        if user.is_authenticated and user.is_active and any(user.has_perm(perm) for perm in perms):
            return self.all()
        return self.none()
