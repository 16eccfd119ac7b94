"""factory_boy factories for the test suites."""

from __future__ import annotations

import importlib
from typing import Any

import factory
from django.apps import apps

from accounts.models import Role, RoleAssignment, User

PASSWORD = "correct horse battery staple"

_shipped = importlib.import_module("accounts.migrations.0002_shipped_roles")
# Every data migration that shapes the shipped roles, in order.
_SHAPING = (
    _shipped.ship_roles,
    importlib.import_module("accounts.migrations.0004_admins_read_the_ledger").grant,
    importlib.import_module("accounts.migrations.0009_second_factors").optional_for_readers,
    importlib.import_module("accounts.migrations.0013_passkeys").passkey_sign_in_for_casework_and_oversight,
)


def ensure_shipped_roles() -> None:
    """Put back the role templates the data migrations ship, after a transactional test
    (browser, worker) emptied every table on its way out."""
    if Role.objects.filter(builtin=True).count() < len(_shipped.SHIPPED):
        for migration in _SHAPING:
            migration(apps, None)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@bank.example")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if not create:
            return
        self.save()
        if extracted:
            ensure_shipped_roles()
        for slug in extracted or ():
            RoleAssignment.objects.get_or_create(user=self, role=Role.objects.get(slug=slug))


def make_user(username: str | None = None, roles: tuple[str, ...] | list[str] = (), **fields: Any) -> User:
    """A saved user holding the named shipped roles (password: ``PASSWORD``)."""
    if username is not None:
        fields["username"] = username
    user: User = UserFactory.create(roles=list(roles), **fields)
    return user
