"""System checks: every encrypted field can name its row before the insert."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks
from django.db import models
from django.db.models.fields import NOT_PROVIDED

from caspix.crypto.fields import BlindIndexField, EncryptedField, ProtectedModel


def _has_value_before_insert(field: models.Field[Any, Any]) -> bool:
    return field.has_default() or field.db_default is not NOT_PROVIDED


@checks.register(checks.Tags.models)
def check_encrypted_fields(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [error for model in apps.get_models() for error in errors_for(model)]


def errors_for(model: type[models.Model]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for field in model._meta.local_fields:
        if isinstance(field, EncryptedField):
            bound = model._meta.pk if field.bind == "pk" else _find(model, field.bind)
            if bound is None or not _has_value_before_insert(bound):
                errors.append(
                    checks.Error(
                        f"{model.__name__}.{field.name} binds its ciphertext to {field.bind!r}, which has no value "
                        "before the insert",
                        hint="Give the model a UUIDField primary key with default=uuid.uuid4, "
                        "or bind= a field with a default.",
                        obj=field,
                        id="crypto.E001",
                    )
                )
        if isinstance(field, BlindIndexField) and not issubclass(model, ProtectedModel):
            errors.append(
                checks.Error(
                    f"{model.__name__}.{field.name} is a blind index on a model that does not keep it in step",
                    hint="Derive the model from caspix.crypto.fields.ProtectedModel.",
                    obj=field,
                    id="crypto.E003",
                )
            )
        if isinstance(field, BlindIndexField) and _find(model, field.source) is None:
            errors.append(
                checks.Error(
                    f"{model.__name__}.{field.name} indexes {field.source!r}, which is not a field",
                    obj=field,
                    id="crypto.E002",
                )
            )
    return errors


def _find(model: type[models.Model], name: str) -> models.Field[Any, Any] | None:
    try:
        field = model._meta.get_field(name)
    except Exception:
        return None
    return field if isinstance(field, models.Field) else None
