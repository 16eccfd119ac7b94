"""Users and role templates.

A user holds one or more roles; a role is a named set of business permissions from the catalog
in :mod:`accounts.permissions`. Permissions are resolved from the database on every request, so
a role change reaches sessions already open.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import auth
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    """A person who signs in to Caspix.

    Django's ``is_superuser`` and ``is_staff`` flags exist (inherited) but grant nothing here:
    every permission comes from the user's roles.
    """

    roles: models.ManyToManyField[Role, RoleAssignment] = models.ManyToManyField(
        "Role", through="RoleAssignment", related_name="users", blank=True
    )

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

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


class Role(models.Model):
    """A role template: a named set of business permissions."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    builtin = models.BooleanField(default=False, help_text="Shipped with Caspix")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RolePermission(models.Model):
    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="grants")
    permission = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["role", "permission"], name="role_permission_unique")]

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
